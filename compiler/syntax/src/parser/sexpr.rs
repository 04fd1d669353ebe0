//! A compact s-expression rendering of the tree, for tests only.

use crate::ast::*;

/// Renders an item on one line.
pub(crate) fn item(item: &Item) -> String {
    match item {
        Item::Event(e) => {
            let fields: Vec<String> = e
                .fields
                .iter()
                .map(|f| format!("{}:{}", f.name.name, ty(&f.ty)))
                .collect();
            let ext = e
                .extends
                .as_ref()
                .map_or(String::new(), |b| format!(" extends {}", b.name));
            format!("(event {}{ext} {})", e.name.name, fields.join(" "))
        }
        Item::TypeAlias(t) => format!("(type {} {})", t.name.name, ty(&t.ty)),
        Item::Var(v) => var(v),
        Item::Assign(a) => format!("(:= {} {})", a.target.name, expr(&a.value)),
        Item::Fn(f) => {
            let params: Vec<String> = f
                .params
                .iter()
                .map(|p| format!("{}:{}", p.name.name, ty(&p.ty)))
                .collect();
            let ret = f
                .ret
                .as_ref()
                .map_or(String::new(), |r| format!(" -> {}", ty(r)));
            format!(
                "(fn {}({}){ret} {})",
                f.name.name,
                params.join(", "),
                block(&f.body)
            )
        }
        Item::Stream(s) => {
            let t =
                s.ty.as_ref()
                    .map_or(String::new(), |t| format!(": {}", ty(t)));
            let mut out = format!("(stream {}{t} {}", s.name.name, source(&s.source));
            for op in &s.ops {
                out.push(' ');
                out.push_str(&self::op(op));
            }
            out.push(')');
            out
        }
        Item::Pattern(p) => {
            let mut out = format!("(pattern {} {}", p.name.name, pattern(&p.expr));
            if let Some(w) = &p.within {
                out.push_str(&format!(" within {}", expr(w)));
            }
            if let Some(k) = &p.partition_by {
                out.push_str(&format!(" partition-by {}", k.name));
            }
            if let Some(k) = &p.policy {
                out.push_str(&format!(" policy {}", k.name));
            }
            out.push(')');
            out
        }
        Item::Connector(c) => format!(
            "(connector {} {} {})",
            c.name.name,
            c.kind.name,
            args(&c.params)
        ),
        Item::Context(c) => format!("(context {} {})", c.name.name, args(&c.params)),
        Item::Config(c) => {
            let mut out = format!(
                "(config {} {}",
                c.name.as_ref().map_or("-", |n| n.name.as_str()),
                args(&c.entries)
            );
            for s in &c.sections {
                out.push_str(&format!(" ({}", s.role.keyword()));
                for k in &s.connectors {
                    out.push_str(&format!(" ({} {})", k.name.name, args(&k.params)));
                }
                out.push(')');
            }
            out.push(')');
            out
        }
        Item::Import(i) => format!(
            "(import {:?}{})",
            i.path,
            i.alias
                .as_ref()
                .map_or(String::new(), |a| format!(" as {}", a.name))
        ),
        Item::Stmt(s) => stmt(s),
        Item::Error(_) => "(error)".to_string(),
    }
}

fn var(v: &VarDecl) -> String {
    let kw = match v.kind {
        VarKind::Let => "let",
        VarKind::Var => "var",
        VarKind::Const => "const",
    };
    let t =
        v.ty.as_ref()
            .map_or(String::new(), |t| format!(":{}", ty(t)));
    format!("({kw} {}{t} {})", v.name.name, expr(&v.value))
}

fn block(b: &Block) -> String {
    let stmts: Vec<String> = b.stmts.iter().map(stmt).collect();
    format!("[{}]", stmts.join(" "))
}

fn stmt(s: &Stmt) -> String {
    match &s.kind {
        StmtKind::Var(v) => var(v),
        StmtKind::Assign(a) => format!("(:= {} {})", a.target.name, expr(&a.value)),
        StmtKind::If {
            branches,
            else_block,
        } => {
            let mut out = "(if".to_string();
            for (c, b) in branches {
                out.push_str(&format!(" {} {}", expr(c), block(b)));
            }
            if let Some(b) = else_block {
                out.push_str(&format!(" else {}", block(b)));
            }
            out.push(')');
            out
        }
        StmtKind::For { var, iter, body } => {
            format!("(for {} {} {})", var.name, expr(iter), block(body))
        }
        StmtKind::While { cond, body } => format!("(while {} {})", expr(cond), block(body)),
        StmtKind::Break => "(break)".to_string(),
        StmtKind::Continue => "(continue)".to_string(),
        StmtKind::Return(e) => match e {
            Some(e) => format!("(return {})", expr(e)),
            None => "(return)".to_string(),
        },
        StmtKind::Emit { ty, args: a } => format!("(emit {} {})", ty.name, args(a)),
        StmtKind::Expr(e) => expr(e),
    }
}

fn source(s: &Source) -> String {
    match &s.kind {
        SourceKind::Named { all, name, alias } => format!(
            "{}{}{}",
            if *all { "all " } else { "" },
            name.name,
            alias
                .as_ref()
                .map_or(String::new(), |a| format!(" as {}", a.name))
        ),
        SourceKind::From { ty, args: a } => format!("(from {} {})", ty.name, args(a)),
        SourceKind::Merge(items) => format!("(merge {})", inline(items)),
        SourceKind::Join(items) => format!("(join {})", inline(items)),
        SourceKind::Sequence(steps) => {
            let s: Vec<String> = steps
                .iter()
                .map(|st| {
                    let mut out = format!("{}:{}", st.alias.name, st.ty.name);
                    if let Some(f) = &st.filter {
                        out.push_str(&format!(" where {}", expr(f)));
                    }
                    if let Some(w) = &st.within {
                        out.push_str(&format!(" within {}", expr(w)));
                    }
                    out
                })
                .collect();
            format!("(sequence {})", s.join(", "))
        }
        SourceKind::Timer(a) => format!("(timer {})", args(a)),
        SourceKind::Error => "(error-source)".to_string(),
    }
}

fn inline(items: &[InlineStream]) -> String {
    let v: Vec<String> = items
        .iter()
        .map(|i| match i {
            InlineStream::Ref(id) => id.name.clone(),
            InlineStream::Decl { name, ty, ops, .. } => {
                let ops: Vec<String> = ops.iter().map(op).collect();
                format!("(stream {} {} {})", name.name, ty.name, ops.join(" "))
            }
        })
        .collect();
    v.join(" ")
}

fn step(s: &SeqStep) -> String {
    let mut out = format!("{}{}", if s.all { "all " } else { "" }, s.ty.name);
    if let Some(f) = &s.filter {
        out.push_str(&format!(" where {}", expr(f)));
    }
    if let Some(a) = &s.alias {
        out.push_str(&format!(" as {}", a.name));
    }
    out
}

fn op(o: &Op) -> String {
    match &o.kind {
        OpKind::Call { name, args: a } => format!(".{}{}", name.name, args(a)),
        OpKind::FollowedBy(s) => format!("(-> {})", step(s)),
        OpKind::Not(s) => format!("(.not {})", step(s)),
        OpKind::Emit { as_type, args: a } => format!(
            ".emit{}{}",
            as_type
                .as_ref()
                .map_or(String::new(), |t| format!(" as {}", t.name)),
            args(a)
        ),
    }
}

fn args(a: &[Arg]) -> String {
    let v: Vec<String> = a
        .iter()
        .map(|arg| match &arg.name {
            Some(n) => format!("{}: {}", n.name, expr(&arg.value)),
            None => expr(&arg.value),
        })
        .collect();
    format!("({})", v.join(", "))
}

fn pattern(p: &PatternExpr) -> String {
    match &p.kind {
        PatternKind::Seq(items) => {
            let v: Vec<String> = items.iter().map(pattern).collect();
            format!("(SEQ {})", v.join(" "))
        }
        PatternKind::And(a, b) => format!("(AND {} {})", pattern(a), pattern(b)),
        PatternKind::Or(a, b) => format!("(OR {} {})", pattern(a), pattern(b)),
        PatternKind::Not(a) => format!("(NOT {})", pattern(a)),
        PatternKind::Step(s) => {
            let k = match s.kleene {
                Some(Kleene::Plus) => "+",
                Some(Kleene::Star) => "*",
                Some(Kleene::Optional) => "?",
                None => "",
            };
            let mut out = format!("{}{k}", s.ty.name);
            if let Some(f) = &s.filter {
                out.push_str(&format!("[{}]", expr(f)));
            }
            if let Some(a) = &s.alias {
                out.push_str(&format!(" as {}", a.name));
            }
            out
        }
        PatternKind::Error => "(error)".to_string(),
    }
}

/// Renders a type.
pub(crate) fn ty(t: &TypeExpr) -> String {
    match &t.kind {
        TypeKind::Named(n) => n.name.clone(),
        TypeKind::Array(e) => format!("[{}]", ty(e)),
        TypeKind::Map(k, v) => format!("{{{}: {}}}", ty(k), ty(v)),
        TypeKind::Tuple(items) => {
            let v: Vec<String> = items.iter().map(ty).collect();
            format!("({})", v.join(", "))
        }
        TypeKind::Stream(e) => format!("Stream<{}>", ty(e)),
        TypeKind::Optional(e) => format!("{}?", ty(e)),
        TypeKind::Error => "?error".to_string(),
    }
}

/// Renders an expression.
pub(crate) fn expr(e: &Expr) -> String {
    match &e.kind {
        ExprKind::Int(v) => v.to_string(),
        ExprKind::Float(v) => format!("{:?}", v.0),
        ExprKind::Str(s) => format!("{s:?}"),
        ExprKind::Bool(b) => b.to_string(),
        ExprKind::Null => "null".to_string(),
        ExprKind::Duration(ns) => format!("{ns}ns"),
        ExprKind::Timestamp(ns) => format!("@{ns}"),
        ExprKind::Array(items) => {
            let v: Vec<String> = items.iter().map(expr).collect();
            format!("[{}]", v.join(", "))
        }
        ExprKind::Map(entries) => {
            let v: Vec<String> = entries
                .iter()
                .map(|(k, v)| format!("{}: {}", k.name, expr(v)))
                .collect();
            format!("{{{}}}", v.join(", "))
        }
        ExprKind::Ident(i) => i.name.clone(),
        ExprKind::Member {
            base,
            name,
            optional,
        } => format!(
            "{}{}{}",
            expr(base),
            if *optional { "?." } else { "." },
            name.name
        ),
        ExprKind::Index { base, index } => format!("{}[{}]", expr(base), expr(index)),
        ExprKind::Slice { base, start, end } => format!(
            "{}[{}:{}]",
            expr(base),
            start.as_ref().map_or(String::new(), |s| expr(s)),
            end.as_ref().map_or(String::new(), |s| expr(s))
        ),
        ExprKind::Call { callee, args: a } => format!("{}{}", expr(callee), args(a)),
        ExprKind::Unary { op, expr: inner } => {
            let o = match op {
                UnaryOp::Neg => "-",
                UnaryOp::Not => "not",
                UnaryOp::BitNot => "~",
            };
            format!("({o} {})", expr(inner))
        }
        ExprKind::Binary { op, lhs, rhs } => {
            format!("({} {} {})", op.as_str(), expr(lhs), expr(rhs))
        }
        ExprKind::If {
            cond,
            then_branch,
            else_branch,
        } => format!(
            "(if {} {} {})",
            expr(cond),
            expr(then_branch),
            expr(else_branch)
        ),
        ExprKind::Lambda { params, body } => {
            let p: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
            let b = match body.as_ref() {
                LambdaBody::Expr(e) => expr(e),
                LambdaBody::Block(b) => block(b),
            };
            format!("(fn ({}) {b})", p.join(" "))
        }
        ExprKind::Range {
            start,
            end,
            inclusive,
        } => format!(
            "({} {} {})",
            if *inclusive { "..=" } else { ".." },
            expr(start),
            expr(end)
        ),
        ExprKind::Paren(e) => format!("({})", expr(e)),
        ExprKind::Error => "?".to_string(),
    }
}
