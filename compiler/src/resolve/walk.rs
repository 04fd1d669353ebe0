//! Read-only walks over syntax trees that collect the names an item refers
//! to, for the dependency graph (cycle detection) of the name index.

use varpulis_syntax::ast::{
    Arg, Block, Expr, ExprKind, InlineStream, Item, LambdaBody, OpKind, PatternExpr, PatternKind,
    SourceKind, Stmt, StmtKind, TypeExpr, TypeKind,
};

/// The top-level names `item` depends on for its *signature*: a stream's
/// sources and step types, a pattern's step types, an event's parent, the
/// functions and globals a function or global initialiser uses.
pub fn signature_deps(item: &Item) -> Vec<String> {
    let mut out = Vec::new();
    match item {
        Item::Event(e) => out.extend(e.extends.iter().map(|i| i.name.clone())),
        Item::Stream(s) => {
            match &s.source.kind {
                SourceKind::Named { name, .. } => out.push(name.name.clone()),
                SourceKind::From { ty, .. } => out.push(ty.name.clone()),
                SourceKind::Merge(items) | SourceKind::Join(items) => {
                    for it in items {
                        match it {
                            InlineStream::Ref(i) => out.push(i.name.clone()),
                            InlineStream::Decl { ty, .. } => out.push(ty.name.clone()),
                        }
                    }
                }
                SourceKind::Sequence(steps) => out.extend(steps.iter().map(|s| s.ty.name.clone())),
                SourceKind::Timer(_) | SourceKind::Error => {}
            }
            for op in &s.ops {
                if let OpKind::FollowedBy(step) | OpKind::Not(step) = &op.kind {
                    out.push(step.ty.name.clone());
                }
            }
        }
        Item::Pattern(p) => pattern_steps(&p.expr, &mut out),
        Item::Fn(f) if f.ret.is_none() => block_names(&f.body, &mut out),
        Item::Var(v) => expr_names(&v.value, &mut out),
        Item::Assign(a) => expr_names(&a.value, &mut out),
        Item::TypeAlias(t) => type_names(&t.ty, &mut out),
        _ => {}
    }
    out
}

fn type_names(t: &TypeExpr, out: &mut Vec<String>) {
    match &t.kind {
        TypeKind::Named(n) => out.push(n.name.clone()),
        TypeKind::Array(x) | TypeKind::Stream(x) | TypeKind::Optional(x) => type_names(x, out),
        TypeKind::Map(k, v) => {
            type_names(k, out);
            type_names(v, out);
        }
        TypeKind::Tuple(ts) => ts.iter().for_each(|x| type_names(x, out)),
        TypeKind::Error => {}
    }
}

fn pattern_steps(p: &PatternExpr, out: &mut Vec<String>) {
    match &p.kind {
        PatternKind::Seq(items) => items.iter().for_each(|i| pattern_steps(i, out)),
        PatternKind::And(a, b) | PatternKind::Or(a, b) => {
            pattern_steps(a, out);
            pattern_steps(b, out);
        }
        PatternKind::Not(a) => pattern_steps(a, out),
        PatternKind::Step(s) => out.push(s.ty.name.clone()),
        PatternKind::Error => {}
    }
}

/// The event types a function body creates with `emit T(...)`, in order of
/// first appearance.
pub fn emitted_types(block: &Block) -> Vec<String> {
    fn go(b: &Block, out: &mut Vec<String>) {
        for s in &b.stmts {
            match &s.kind {
                StmtKind::Emit { ty, .. } if !out.contains(&ty.name) => out.push(ty.name.clone()),
                StmtKind::If {
                    branches,
                    else_block,
                } => {
                    branches.iter().for_each(|(_, b)| go(b, out));
                    if let Some(b) = else_block {
                        go(b, out);
                    }
                }
                StmtKind::For { body, .. } | StmtKind::While { body, .. } => go(body, out),
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    go(block, &mut out);
    out
}

/// Every identifier (variables and callees) used in `block`.
pub fn block_names(block: &Block, out: &mut Vec<String>) {
    for s in &block.stmts {
        stmt_names(s, out);
    }
}

fn stmt_names(s: &Stmt, out: &mut Vec<String>) {
    match &s.kind {
        StmtKind::Var(v) => expr_names(&v.value, out),
        StmtKind::Assign(a) => expr_names(&a.value, out),
        StmtKind::If {
            branches,
            else_block,
        } => {
            for (c, b) in branches {
                expr_names(c, out);
                block_names(b, out);
            }
            if let Some(b) = else_block {
                block_names(b, out);
            }
        }
        StmtKind::For { iter, body, .. } => {
            expr_names(iter, out);
            block_names(body, out);
        }
        StmtKind::While { cond, body } => {
            expr_names(cond, out);
            block_names(body, out);
        }
        StmtKind::Return(Some(e)) | StmtKind::Expr(e) => expr_names(e, out),
        StmtKind::Emit { args, .. } => args_names(args, out),
        StmtKind::Return(None) | StmtKind::Break | StmtKind::Continue => {}
    }
}

fn args_names(args: &[Arg], out: &mut Vec<String>) {
    for a in args {
        expr_names(&a.value, out);
    }
}

/// Every identifier used in `e`.
pub fn expr_names(e: &Expr, out: &mut Vec<String>) {
    match &e.kind {
        ExprKind::Ident(i) => out.push(i.name.clone()),
        ExprKind::Array(items) => items.iter().for_each(|x| expr_names(x, out)),
        ExprKind::Map(items) => items.iter().for_each(|(_, x)| expr_names(x, out)),
        ExprKind::Member { base, .. } => expr_names(base, out),
        ExprKind::Index { base, index } => {
            expr_names(base, out);
            expr_names(index, out);
        }
        ExprKind::Slice { base, start, end } => {
            expr_names(base, out);
            start
                .iter()
                .chain(end.iter())
                .for_each(|x| expr_names(x, out));
        }
        ExprKind::Call { callee, args } => {
            expr_names(callee, out);
            args_names(args, out);
        }
        ExprKind::Unary { expr, .. } | ExprKind::Paren(expr) => expr_names(expr, out),
        ExprKind::Binary { lhs, rhs, .. }
        | ExprKind::Range {
            start: lhs,
            end: rhs,
            ..
        } => {
            expr_names(lhs, out);
            expr_names(rhs, out);
        }
        ExprKind::If {
            cond,
            then_branch,
            else_branch,
        } => {
            expr_names(cond, out);
            expr_names(then_branch, out);
            expr_names(else_branch, out);
        }
        ExprKind::Lambda { body, .. } => match &**body {
            LambdaBody::Expr(x) => expr_names(x, out),
            LambdaBody::Block(b) => block_names(b, out),
        },
        ExprKind::Int(_)
        | ExprKind::Float(_)
        | ExprKind::Str(_)
        | ExprKind::Bool(_)
        | ExprKind::Null
        | ExprKind::Duration(_)
        | ExprKind::Timestamp(_)
        | ExprKind::Error => {}
    }
}

/// Whether `e` contains an `Error` node from parser recovery (its problems
/// were reported by the parser, so the checker stays quiet about it).
pub fn has_error(e: &Expr) -> bool {
    match &e.kind {
        ExprKind::Error => true,
        ExprKind::Array(items) => items.iter().any(has_error),
        ExprKind::Map(items) => items.iter().any(|(_, x)| has_error(x)),
        ExprKind::Member { base, .. }
        | ExprKind::Unary { expr: base, .. }
        | ExprKind::Paren(base) => has_error(base),
        ExprKind::Index { base, index } => has_error(base) || has_error(index),
        ExprKind::Slice { base, start, end } => {
            has_error(base) || start.iter().chain(end.iter()).any(|x| has_error(x))
        }
        ExprKind::Call { callee, args } => {
            has_error(callee) || args.iter().any(|a| has_error(&a.value))
        }
        ExprKind::Binary { lhs, rhs, .. }
        | ExprKind::Range {
            start: lhs,
            end: rhs,
            ..
        } => has_error(lhs) || has_error(rhs),
        ExprKind::If {
            cond,
            then_branch,
            else_branch,
        } => has_error(cond) || has_error(then_branch) || has_error(else_branch),
        _ => false,
    }
}

/// The name of a `merge`/`join` branch: the inline stream's name, or the
/// referenced event type or stream.
pub fn inline_name(item: &InlineStream) -> &str {
    match item {
        InlineStream::Ref(i) => &i.name,
        InlineStream::Decl { name, .. } => &name.name,
    }
}
