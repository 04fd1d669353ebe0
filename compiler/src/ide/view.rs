//! One file as the IDE queries see it: its checked items and the
//! classification of every identifier of an item into an [`Occurrence`].
//!
//! Items live in the loop-expanded text (identical to the file's text unless
//! it has declaration loops); [`FileView`] maps every span it hands out back
//! to the file's own text, so callers only ever see original offsets.

use rustc_hash::FxHashMap;
use varpulis_syntax::ast::{
    Arg, Item, OpKind, PatternExpr, PatternKind, SourceKind, StmtKind, TypeKind,
};
use varpulis_syntax::{SourceMap, Span, Token, TokenKind};

use crate::capabilities::Op;
use crate::host::{CheckedItem, Compiler};
use crate::model::{ExprInfo, Resolution};
use crate::resolve::DeclKind;

/// What a name refers to, the identity that references and rename follow.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// A top-level declaration (event, stream, pattern, function, global,
    /// connector, context, type alias).
    TopLevel(String),
    /// An event field, identified by name across the file (a field flows
    /// from an event into the streams that read it and their outputs).
    Field(String),
    /// A sequence alias of item `item`.
    Alias {
        /// Index of the item binding it.
        item: usize,
        /// The alias.
        name: String,
    },
    /// A parameter or local variable of item `item`.
    Local {
        /// Index of the item.
        item: usize,
        /// The variable.
        name: String,
    },
    /// A built-in scalar function.
    Builtin(String),
    /// An aggregate function.
    Aggregate(String),
    /// A pipeline operator (the name after the dot).
    Operator(String),
    /// A keyword.
    Keyword,
}

/// How an occurrence should be presented (outline icons, highlighting).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SymbolKind {
    /// An event type.
    Event,
    /// A stream.
    Stream,
    /// A named pattern.
    Pattern,
    /// A user function.
    Function,
    /// A `let`/`var` global.
    Variable,
    /// A `const` global.
    Constant,
    /// A connector.
    Connector,
    /// A context.
    Context,
    /// A type alias or built-in type name.
    Type,
    /// A field.
    Field,
    /// A sequence alias.
    Alias,
    /// A parameter or local variable.
    Local,
    /// A built-in function or aggregate.
    Builtin,
    /// A pipeline operator.
    Operator,
    /// A keyword.
    Keyword,
}

impl SymbolKind {
    /// The presentation kind of a top-level declaration.
    pub fn of_decl(kind: DeclKind) -> SymbolKind {
        match kind {
            DeclKind::Event => SymbolKind::Event,
            DeclKind::Stream => SymbolKind::Stream,
            DeclKind::Pattern => SymbolKind::Pattern,
            DeclKind::Fn => SymbolKind::Function,
            DeclKind::Global(varpulis_syntax::ast::VarKind::Const) => SymbolKind::Constant,
            DeclKind::Global(_) => SymbolKind::Variable,
            DeclKind::Connector => SymbolKind::Connector,
            DeclKind::Context => SymbolKind::Context,
            DeclKind::TypeAlias => SymbolKind::Type,
        }
    }
}

/// One classified identifier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Occurrence {
    /// The identifier's bytes in the file.
    pub span: Span,
    /// What it refers to.
    pub target: Target,
    /// How to present it.
    pub kind: SymbolKind,
    /// Whether this occurrence declares the target.
    pub is_definition: bool,
    /// Index of the item it is in.
    pub item: usize,
    /// The checker's facts about the expression it names, if any.
    pub info: Option<ExprInfo>,
}

/// Words the parser treats as keywords somewhere (docs/LANGUAGE.md#names-and-keywords).
pub(crate) const KEYWORDS: &[&str] = varpulis_syntax::KEYWORDS;

/// Built-in type names.
pub(crate) const TYPE_NAMES: &[&str] = &[
    "int",
    "float",
    "bool",
    "str",
    "string",
    "timestamp",
    "duration",
    "any",
    "Stream",
];

/// A file's checked items, with helpers to find and classify them.
pub(crate) struct FileView<'a> {
    /// The file's own text.
    pub text: &'a str,
    /// The loop-expanded text the items' offsets refer to.
    expanded: std::borrow::Cow<'a, str>,
    map: Option<SourceMap>,
    /// Checked items in order.
    pub items: Vec<CheckedItem<'a>>,
    /// Top-level names with their kinds.
    pub decls: FxHashMap<String, DeclKind>,
    /// Index into `items` of each top-level name's declaring item.
    pub decl_items: FxHashMap<String, usize>,
}

impl<'a> FileView<'a> {
    /// The view of `path`, or `None` for an unknown file.
    pub fn new(c: &'a Compiler, path: &str) -> Option<FileView<'a>> {
        let text = c.text(path)?;
        // Declaration loops are rare; only pay for the expansion when a line
        // may start one.
        let (expanded, map) = if text.starts_with("for ") || text.contains("\nfor ") {
            let (exp, map, _) = varpulis_syntax::expand_decl_loops(text);
            if map.is_identity() {
                (std::borrow::Cow::Borrowed(text), None)
            } else {
                (std::borrow::Cow::Owned(exp), Some(map))
            }
        } else {
            (std::borrow::Cow::Borrowed(text), None)
        };
        let symbols = c.symbols(path);
        let decls = symbols.iter().map(|s| (s.name.clone(), s.kind)).collect();
        let decl_items = symbols.iter().map(|s| (s.name.clone(), s.item)).collect();
        Some(FileView {
            text,
            expanded,
            map,
            items: c.items(path),
            decls,
            decl_items,
        })
    }

    /// A span of the expanded text in the file's text.
    pub fn to_orig(&self, span: Span) -> Span {
        match &self.map {
            Some(m) => m.span_to_original(span),
            None => span,
        }
    }

    /// The range of item `i` in the expanded text.
    fn item_range(&self, i: usize) -> Span {
        let start = self.items.get(i).map_or(0, |c| c.offset);
        let end = self
            .items
            .get(i + 1)
            .map_or(self.expanded.len() as u32, |c| c.offset);
        Span::new(start, end)
    }

    /// The range of item `i` in the file's text.
    pub fn item_span(&self, i: usize) -> Span {
        self.to_orig(self.item_range(i))
    }

    /// The range of item `i`'s code in the file's text: from its first to
    /// its last token that is not a comment.
    pub fn item_code_span(&self, i: usize) -> Span {
        let r = self.item_range(i);
        let toks = self.item_tokens(i);
        let code: Vec<&Token> = toks.iter().filter(|t| !t.kind.is_comment()).collect();
        match (code.first(), code.last()) {
            (Some(a), Some(b)) => {
                self.to_orig(Span::new(a.span.start, b.span.end).shifted(r.start))
            }
            _ => self.to_orig(r),
        }
    }

    /// The item whose range contains `offset` (a position just after an
    /// item's last byte belongs to the item).
    pub fn item_at(&self, offset: u32) -> Option<usize> {
        if self.items.is_empty() {
            return None;
        }
        if self.map.is_none() {
            let i = self.items.partition_point(|c| c.offset <= offset);
            return Some(i.saturating_sub(1));
        }
        (0..self.items.len()).find(|&i| {
            let s = self.item_span(i);
            offset >= s.start && offset <= s.end
        })
    }

    /// The text of item `i` (expanded).
    pub fn item_text(&self, i: usize) -> &str {
        self.expanded
            .get(self.item_range(i).range())
            .unwrap_or_default()
    }

    /// The tokens of item `i`, item-relative.
    pub fn item_tokens(&self, i: usize) -> Vec<Token> {
        varpulis_syntax::lex(self.item_text(i))
    }

    /// An offset of the file's text in item `i`'s coordinates, if it falls
    /// inside the item. Inside loop bodies the first copy is used.
    pub fn relative(&self, i: usize, offset: u32) -> Option<u32> {
        let r = self.item_range(i);
        match &self.map {
            None => (offset >= r.start && offset <= r.end).then(|| offset - r.start),
            Some(_) => (r.start..=r.end)
                .find(|&e| self.to_orig(Span::new(e, e)).start == offset)
                .map(|e| e - r.start),
        }
    }

    /// Every classified identifier of item `i`, in order, with file spans.
    pub fn occurrences(&self, i: usize) -> Vec<Occurrence> {
        let Some(ci) = self.items.get(i) else {
            return Vec::new();
        };
        let text = self.item_text(i);
        let tokens = varpulis_syntax::lex(text);
        let word = |s: Span| text.get(s.range()).unwrap_or_default();
        let mut known: FxHashMap<u32, (u32, Target, SymbolKind, bool, Option<&ExprInfo>)> =
            FxHashMap::default();

        // Names the checker resolved, keyed by the start of the name token.
        for (span, info) in &ci.analysis.exprs {
            let Some(res) = &info.resolution else {
                continue;
            };
            let at_start = |name: &str| {
                let s = Span::new(span.start, span.start + name.len() as u32);
                (word(s) == name).then_some(s)
            };
            let (s, target, kind) = match res {
                Resolution::Field { name, .. } | Resolution::DynamicField { name } => {
                    let Some(s) = at_start(name) else { continue };
                    (s, Target::Field(name.clone()), SymbolKind::Field)
                }
                Resolution::AliasField { field, .. } => {
                    let s = Span::new(span.end.saturating_sub(field.len() as u32), span.end);
                    if word(s) != field {
                        continue;
                    }
                    (s, Target::Field(field.clone()), SymbolKind::Field)
                }
                Resolution::Alias { name, .. } => {
                    let Some(s) = at_start(name) else { continue };
                    let t = Target::Alias {
                        item: i,
                        name: name.clone(),
                    };
                    (s, t, SymbolKind::Alias)
                }
                Resolution::Local { name } => {
                    let Some(s) = at_start(name) else { continue };
                    let t = Target::Local {
                        item: i,
                        name: name.clone(),
                    };
                    (s, t, SymbolKind::Local)
                }
                Resolution::Global { name } | Resolution::Function { name } => {
                    let Some(s) = at_start(name) else { continue };
                    let kind = self
                        .decls
                        .get(name)
                        .map_or(SymbolKind::Variable, |k| SymbolKind::of_decl(*k));
                    (s, Target::TopLevel(name.clone()), kind)
                }
                Resolution::Builtin { name } => {
                    let Some(s) = at_start(name) else { continue };
                    (s, Target::Builtin(name.clone()), SymbolKind::Builtin)
                }
                Resolution::Aggregate { name } => {
                    let Some(s) = at_start(name) else { continue };
                    (s, Target::Aggregate(name.clone()), SymbolKind::Builtin)
                }
            };
            // A call records its resolution on the whole call; its callee
            // identifier may be recorded too: keep the more specific one.
            known
                .entry(s.start)
                .or_insert((s.end, target, kind, false, Some(info)));
        }

        // Names the syntax tree declares.
        let mut defs = Defs {
            item: i,
            out: Vec::new(),
        };
        defs.item(ci.item, self);
        for (s, target, kind, is_def) in defs.out {
            known.insert(s.start, (s.end, target, kind, is_def, None));
        }

        let mut out = Vec::new();
        let mut depth = 0i32;
        let mut prev: Option<TokenKind> = None;
        for (k, t) in tokens.iter().enumerate() {
            match t.kind {
                TokenKind::LParen | TokenKind::LBracket | TokenKind::LBrace => depth += 1,
                TokenKind::RParen | TokenKind::RBracket | TokenKind::RBrace => depth -= 1,
                _ => {}
            }
            if t.kind.is_comment() {
                continue;
            }
            let after_dot = matches!(prev, Some(TokenKind::Dot | TokenKind::QuestionDot));
            prev = Some(t.kind);
            if t.kind != TokenKind::Ident {
                continue;
            }
            let w = word(t.span);
            let classified = match known.get(&t.span.start) {
                Some((end, target, kind, is_def, info)) if *end == t.span.end => {
                    Some((target.clone(), *kind, *is_def, info.cloned()))
                }
                _ => None,
            };
            let next = tokens[k + 1..].iter().find(|t| !t.kind.is_comment());
            let named_key = depth > 0 && next.is_some_and(|n| n.kind == TokenKind::Colon);
            let (target, kind, is_def, info) = match classified {
                Some(c) => c,
                None if after_dot => continue,
                None if !named_key && self.decls.contains_key(w) => {
                    let kind = SymbolKind::of_decl(self.decls[w]);
                    (Target::TopLevel(w.to_string()), kind, false, None)
                }
                None if TYPE_NAMES.contains(&w) => (Target::Keyword, SymbolKind::Type, false, None),
                None if KEYWORDS.contains(&w) && !named_key => {
                    (Target::Keyword, SymbolKind::Keyword, false, None)
                }
                None => continue,
            };
            out.push(Occurrence {
                span: self.to_orig(t.span.shifted(ci.offset)),
                target,
                kind,
                is_definition: is_def,
                item: i,
                info,
            });
        }
        out
    }

    /// Every classified identifier of the file, in order.
    pub fn all_occurrences(&self) -> Vec<Occurrence> {
        (0..self.items.len())
            .flat_map(|i| self.occurrences(i))
            .collect()
    }

    /// The occurrence covering `offset` (touching its start or end).
    pub fn occurrence_at(&self, offset: u32) -> Option<Occurrence> {
        let i = self.item_at(offset)?;
        let occs = self.occurrences(i);
        // Prefer an identifier that contains the offset strictly, then one
        // that ends at it (the cursor just after a word).
        occs.iter()
            .find(|o| o.span.start <= offset && offset < o.span.end)
            .or_else(|| occs.iter().find(|o| o.span.end == offset))
            .cloned()
    }
}

/// Collects the names a syntax tree declares or that only the tree knows
/// (operator names), item-relative.
struct Defs {
    item: usize,
    out: Vec<(Span, Target, SymbolKind, bool)>,
}

impl Defs {
    fn push(&mut self, s: Span, target: Target, kind: SymbolKind, is_def: bool) {
        self.out.push((s, target, kind, is_def));
    }

    fn alias(&mut self, id: &varpulis_syntax::ast::Ident) {
        let t = Target::Alias {
            item: self.item,
            name: id.name.clone(),
        };
        self.push(id.span, t, SymbolKind::Alias, true);
    }

    fn output_keys(&mut self, args: &[Arg]) {
        for a in args {
            if let Some(n) = &a.name {
                self.push(
                    n.span,
                    Target::Field(n.name.clone()),
                    SymbolKind::Field,
                    true,
                );
            }
        }
    }

    fn item(&mut self, item: &Item, view: &FileView<'_>) {
        if let Some(name) = item.name() {
            let kind = view
                .decls
                .get(&name.name)
                .map_or(SymbolKind::Variable, |k| SymbolKind::of_decl(*k));
            self.push(name.span, Target::TopLevel(name.name.clone()), kind, true);
        }
        match item {
            Item::Config(cfg) => {
                for k in cfg.sections.iter().flat_map(|s| &s.connectors) {
                    let t = Target::TopLevel(k.name.name.clone());
                    self.push(k.name.span, t, SymbolKind::Connector, true);
                }
            }
            Item::Event(e) => {
                for f in &e.fields {
                    let t = Target::Field(f.name.name.clone());
                    self.push(f.name.span, t, SymbolKind::Field, true);
                }
            }
            Item::Stream(s) => {
                match &s.source.kind {
                    SourceKind::Named { alias: Some(a), .. } => self.alias(a),
                    SourceKind::Sequence(steps) => {
                        steps.iter().for_each(|st| self.alias(&st.alias))
                    }
                    _ => {}
                }
                for op in &s.ops {
                    match &op.kind {
                        OpKind::Call { name, args } => {
                            let t = Target::Operator(name.name.clone());
                            self.push(name.span, t, SymbolKind::Operator, false);
                            if matches!(
                                Op::from_name(&name.name),
                                Some(Op::Select | Op::Aggregate | Op::Emit)
                            ) {
                                self.output_keys(args);
                            }
                        }
                        OpKind::FollowedBy(step) => {
                            if let Some(a) = &step.alias {
                                self.alias(a);
                            }
                        }
                        OpKind::Not(step) => {
                            let s = Span::new(op.span.start + 1, op.span.start + 4);
                            let t = Target::Operator(Op::Not.name().to_string());
                            self.push(s, t, SymbolKind::Operator, false);
                            if let Some(a) = &step.alias {
                                self.alias(a);
                            }
                        }
                        OpKind::Emit { args, .. } => {
                            let s = Span::new(op.span.start + 1, op.span.start + 5);
                            let t = Target::Operator(Op::Emit.name().to_string());
                            self.push(s, t, SymbolKind::Operator, false);
                            self.output_keys(args);
                        }
                    }
                }
            }
            Item::Pattern(p) => self.pattern(&p.expr),
            Item::Fn(f) => {
                for p in &f.params {
                    let t = Target::Local {
                        item: self.item,
                        name: p.name.name.clone(),
                    };
                    self.push(p.name.span, t, SymbolKind::Local, true);
                    if let TypeKind::Named(n) = &p.ty.kind {
                        if crate::types::builtin_type(&n.name).is_some() {
                            self.push(n.span, Target::Keyword, SymbolKind::Type, false);
                        }
                    }
                }
                self.block(&f.body);
            }
            _ => {}
        }
    }

    fn block(&mut self, b: &varpulis_syntax::ast::Block) {
        for s in &b.stmts {
            match &s.kind {
                StmtKind::Var(v) => {
                    let t = Target::Local {
                        item: self.item,
                        name: v.name.name.clone(),
                    };
                    self.push(v.name.span, t, SymbolKind::Local, true);
                }
                StmtKind::For { var, body, .. } => {
                    let t = Target::Local {
                        item: self.item,
                        name: var.name.clone(),
                    };
                    self.push(var.span, t, SymbolKind::Local, true);
                    self.block(body);
                }
                StmtKind::If {
                    branches,
                    else_block,
                } => {
                    branches.iter().for_each(|(_, b)| self.block(b));
                    if let Some(b) = else_block {
                        self.block(b);
                    }
                }
                StmtKind::While { body, .. } => self.block(body),
                _ => {}
            }
        }
    }

    fn pattern(&mut self, p: &PatternExpr) {
        match &p.kind {
            PatternKind::Seq(v) => v.iter().for_each(|x| self.pattern(x)),
            PatternKind::And(a, b) | PatternKind::Or(a, b) => {
                self.pattern(a);
                self.pattern(b);
            }
            PatternKind::Not(a) => self.pattern(a),
            PatternKind::Step(s) => {
                if let Some(a) = &s.alias {
                    self.alias(a);
                }
            }
            PatternKind::Error => {}
        }
    }
}
