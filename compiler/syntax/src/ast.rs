//! The abstract syntax tree of VPL.
//!
//! Every node carries a [`Span`]. Spans inside an [`Item`] are *relative to the
//! start of that item* (see [`ItemNode::offset`]): editing one declaration
//! therefore leaves the trees of all other declarations equal, which is what
//! lets the compiler's incremental queries skip re-checking them. Add the
//! item's offset to get a position in the (loop-expanded) file text.
//!
//! The tree is deliberately generic where the language is open-ended: pipeline
//! operators are parsed as `.name(args)` calls ([`OpKind::Call`]) and the
//! compiler's capability table decides what each name means. Only constructs
//! whose arguments are not expressions get their own node (`->` steps,
//! `.not(T where e)`, `.emit as T(...)`).

use crate::span::Span;

/// An identifier with its span.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Ident {
    /// The name as written.
    pub name: String,
    /// Where it was written.
    pub span: Span,
}

/// One top-level declaration together with its position in the file.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ItemNode {
    /// Byte offset of the item's first byte in the (loop-expanded) file text.
    /// All spans inside [`ItemNode::item`] are relative to this offset.
    pub offset: u32,
    /// The declaration.
    pub item: Item,
}

/// A top-level declaration.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Item {
    /// `event Name [extends Base]:` with indented fields.
    Event(EventDecl),
    /// `type Name = T`.
    TypeAlias(TypeAlias),
    /// `let`/`var`/`const` at top level.
    Var(VarDecl),
    /// `x := e` at top level.
    Assign(Assign),
    /// `fn name(params) [-> T]:` with an indented body.
    Fn(FnDecl),
    /// `stream Name [: T] = source ops*`.
    Stream(StreamDecl),
    /// `pattern Name = pexpr [within d] [partition by k] [policy p]`.
    Pattern(PatternDecl),
    /// `connector Name = kind (k: v, ...)`.
    Connector(ConnectorDecl),
    /// `context Name [(k: v, ...)]`.
    Context(ContextDecl),
    /// Legacy `config name { ... }` or `config:` block.
    Config(ConfigDecl),
    /// `import "path" [as alias]`.
    Import(ImportDecl),
    /// A top-level statement other than a declaration (`if`, `while`, a bare
    /// expression). Grammatical but ignored at load, as in the reference.
    Stmt(Stmt),
    /// Text that could not be parsed as any item; the errors say why.
    Error(Span),
}

impl Item {
    /// The declared name, for items that declare one.
    pub fn name(&self) -> Option<&Ident> {
        match self {
            Item::Event(d) => Some(&d.name),
            Item::TypeAlias(d) => Some(&d.name),
            Item::Var(d) => Some(&d.name),
            Item::Assign(d) => Some(&d.target),
            Item::Fn(d) => Some(&d.name),
            Item::Stream(d) => Some(&d.name),
            Item::Pattern(d) => Some(&d.name),
            Item::Connector(d) => Some(&d.name),
            Item::Context(d) => Some(&d.name),
            Item::Config(d) => d.name.as_ref(),
            Item::Import(_) | Item::Stmt(_) | Item::Error(_) => None,
        }
    }
}

/// `event Name [extends Base]:` followed by field declarations.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EventDecl {
    /// The event type's name.
    pub name: Ident,
    /// The parent type after `extends`, whose fields are inherited.
    pub extends: Option<Ident>,
    /// Declared fields in order.
    pub fields: Vec<FieldDecl>,
    /// The whole declaration.
    pub span: Span,
}

/// `name: T` inside an event declaration.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FieldDecl {
    /// Field name.
    pub name: Ident,
    /// Declared type (`T?` for optional fields).
    pub ty: TypeExpr,
    /// The whole field line.
    pub span: Span,
}

/// A written type.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TypeExpr {
    /// Which type.
    pub kind: TypeKind,
    /// Where it was written.
    pub span: Span,
}

/// The shapes of written types (docs/LANGUAGE.md#types).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TypeKind {
    /// `int`, `float`, `bool`, `str`, `timestamp`, `duration`, or a user name
    /// (event type or alias); the compiler tells them apart.
    Named(Ident),
    /// `[T]`.
    Array(Box<TypeExpr>),
    /// `{K: V}`.
    Map(Box<TypeExpr>, Box<TypeExpr>),
    /// `(T1, T2, ...)`.
    Tuple(Vec<TypeExpr>),
    /// `Stream<T>`.
    Stream(Box<TypeExpr>),
    /// `T?`.
    Optional(Box<TypeExpr>),
    /// A type that failed to parse.
    Error,
}

/// `type Name = T`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TypeAlias {
    /// Alias name.
    pub name: Ident,
    /// Aliased type.
    pub ty: TypeExpr,
    /// The whole declaration.
    pub span: Span,
}

/// Which binding keyword introduced a variable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VarKind {
    /// `let`: immutable.
    Let,
    /// `var`: mutable.
    Var,
    /// `const`: immutable, evaluated at load.
    Const,
}

/// `let|var|const name [: T] = value`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct VarDecl {
    /// The keyword used.
    pub kind: VarKind,
    /// Variable name.
    pub name: Ident,
    /// Optional declared type.
    pub ty: Option<TypeExpr>,
    /// Initialiser.
    pub value: Expr,
    /// The whole declaration.
    pub span: Span,
}

/// `target := value`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Assign {
    /// Assigned variable.
    pub target: Ident,
    /// New value.
    pub value: Expr,
    /// The whole statement.
    pub span: Span,
}

/// `fn name(p: T, ...) [-> R]:` with an indented body.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FnDecl {
    /// Function name.
    pub name: Ident,
    /// Parameters (types are mandatory in the language; a missing one is a
    /// syntax error and is recorded as [`TypeKind::Error`]).
    pub params: Vec<Param>,
    /// Declared return type.
    pub ret: Option<TypeExpr>,
    /// The body; its value is the operand of `return` or the last expression.
    pub body: Block,
    /// The whole declaration.
    pub span: Span,
}

/// A function parameter.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Param {
    /// Parameter name.
    pub name: Ident,
    /// Parameter type.
    pub ty: TypeExpr,
}

/// An indented block of statements.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Block {
    /// Statements in order.
    pub stmts: Vec<Stmt>,
    /// From the first to the last statement.
    pub span: Span,
}

/// A statement inside a function body (or at top level).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Stmt {
    /// Which statement.
    pub kind: StmtKind,
    /// Where it was written.
    pub span: Span,
}

/// Statement forms (docs/LANGUAGE.md#functions-fn).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum StmtKind {
    /// `let`/`var`/`const` binding.
    Var(VarDecl),
    /// `x := e`.
    Assign(Assign),
    /// `if c: ... elif c: ... else: ...`; `branches` holds the `if` and every
    /// `elif` in order.
    If {
        /// Condition and body of `if` then each `elif`.
        branches: Vec<(Expr, Block)>,
        /// The `else` body.
        else_block: Option<Block>,
    },
    /// `for v in e:`.
    For {
        /// Loop variable.
        var: Ident,
        /// Iterated value (array or range).
        iter: Expr,
        /// Loop body.
        body: Block,
    },
    /// `while c:`.
    While {
        /// Loop condition.
        cond: Expr,
        /// Loop body.
        body: Block,
    },
    /// `break`.
    Break,
    /// `continue`.
    Continue,
    /// `return [e]`.
    Return(Option<Expr>),
    /// `emit Type(field: e, ...)`: creates an event (under `.process()`).
    Emit {
        /// Event type to create.
        ty: Ident,
        /// Field values.
        args: Vec<Arg>,
    },
    /// An expression evaluated for its value or effect.
    Expr(Expr),
}

/// `stream Name [: T] = source op*`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StreamDecl {
    /// Stream name; outputs are re-typed to it.
    pub name: Ident,
    /// Optional declared type (`Stream<T>`).
    pub ty: Option<TypeExpr>,
    /// Where events come from.
    pub source: Source,
    /// Pipeline operators in written order.
    pub ops: Vec<Op>,
    /// The whole declaration.
    pub span: Span,
}

impl StreamDecl {
    /// Whether the first operator is the call `.name(...)` (the source
    /// operators `.timeouts()` and `.late()` must come first).
    pub fn starts_with_op(&self, name: &str) -> bool {
        matches!(
            self.ops.first(),
            Some(Op { kind: OpKind::Call { name: n, .. }, .. }) if n.name == name
        )
    }
}

/// A stream's source (docs/LANGUAGE.md#stream-sources).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Source {
    /// Which source.
    pub kind: SourceKind,
    /// Where it was written.
    pub span: Span,
}

/// Source forms.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SourceKind {
    /// `[all] Name [as alias]`: an event type, another stream or a named
    /// pattern.
    Named {
        /// `all` makes the first sequence step Kleene+.
        all: bool,
        /// Referenced name.
        name: Ident,
        /// Alias bound to the event (first step of a sequence).
        alias: Option<Ident>,
    },
    /// `Type.from(Conn, k: v, ...)`.
    From {
        /// Event type read from the connector.
        ty: Ident,
        /// Connector arguments; the first positional one names the connector.
        args: Vec<Arg>,
    },
    /// `merge(x, y, ...)`.
    Merge(Vec<InlineStream>),
    /// `join(x, y, ...)`; the join condition is a following `.on(...)` op.
    Join(Vec<InlineStream>),
    /// `sequence(a: A, b: B where e, ...)`.
    Sequence(Vec<SequenceStep>),
    /// `timer(period [, initial_delay: d])`.
    Timer(Vec<Arg>),
    /// A source that failed to parse; errors were reported. The stream keeps
    /// its name so that references to it still resolve.
    Error,
}

/// An item of `merge(...)` or `join(...)`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum InlineStream {
    /// A reference to an event type or stream by name.
    Ref(Ident),
    /// `stream S = Type [.where(e) | .on(e)]`.
    Decl {
        /// Local name of the branch.
        name: Ident,
        /// Event type or stream feeding it.
        ty: Ident,
        /// Operators written on the branch (`.where`, `.on`).
        ops: Vec<Op>,
        /// The whole item.
        span: Span,
    },
}

/// One `alias: Type [where e] [.within(d)]` entry of `sequence(...)`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SequenceStep {
    /// Alias bound to the step's event.
    pub alias: Ident,
    /// Event type of the step.
    pub ty: Ident,
    /// Step filter.
    pub filter: Option<Expr>,
    /// Per-step `.within(d)` (ignored by the reference).
    pub within: Option<Expr>,
    /// The whole entry.
    pub span: Span,
}

/// A pipeline operator.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Op {
    /// Which operator.
    pub kind: OpKind,
    /// From the `.` or `->` to the end of the operator.
    pub span: Span,
}

/// Operator forms.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum OpKind {
    /// `.name(args)`: `where`, `select`, `window`, `aggregate`, `within`, ...
    /// The compiler's capability table gives each name its meaning.
    Call {
        /// Operator name after the dot.
        name: Ident,
        /// Positional and named arguments.
        args: Vec<Arg>,
    },
    /// `-> [all] Type [where e] [as alias]`.
    FollowedBy(SeqStep),
    /// `.not(Type [where e])`.
    Not(SeqStep),
    /// `.emit [as Type] (name: e, ...)`.
    Emit {
        /// The type named after `as` (only validated).
        as_type: Option<Ident>,
        /// Emitted fields.
        args: Vec<Arg>,
    },
}

/// A sequence step: `[all] Type [where e] [as alias]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SeqStep {
    /// `all`: Kleene+.
    pub all: bool,
    /// Event type or stream matched by the step.
    pub ty: Ident,
    /// Step filter.
    pub filter: Option<Expr>,
    /// Alias bound to the matched event(s).
    pub alias: Option<Ident>,
    /// The whole step.
    pub span: Span,
}

/// A call argument: positional (`e`) or named (`name: e`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Arg {
    /// The name before `:` for named arguments.
    pub name: Option<Ident>,
    /// The value.
    pub value: Expr,
    /// The whole argument.
    pub span: Span,
}

/// `pattern Name = pexpr [within d] [partition by k] [policy p]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PatternDecl {
    /// Pattern name, usable as a stream source.
    pub name: Ident,
    /// The pattern.
    pub expr: PatternExpr,
    /// `within d`: deadline from the first event of a run.
    pub within: Option<Expr>,
    /// `partition by k`: one independent matcher per key.
    pub partition_by: Option<Ident>,
    /// `policy p`: the event selection policy (`skip_till_any_match`, ...).
    pub policy: Option<Ident>,
    /// The whole declaration.
    pub span: Span,
}

/// A pattern expression.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PatternExpr {
    /// Which form.
    pub kind: PatternKind,
    /// Where it was written.
    pub span: Span,
}

/// Pattern forms, including the sugar of docs/LANGUAGE.md#pattern-shorthand (`A -> B`,
/// `Type[pred]`, `AND(a, b)`, ...), which the parser maps onto these.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PatternKind {
    /// `SEQ(p, p, ...)` or `p -> p -> ...`.
    Seq(Vec<PatternExpr>),
    /// `p AND p` / `AND(p, p)`: both, in any order.
    And(Box<PatternExpr>, Box<PatternExpr>),
    /// `p OR p` / `OR(p, p)`: either.
    Or(Box<PatternExpr>, Box<PatternExpr>),
    /// `NOT p` / `NOT(p)`: absence.
    Not(Box<PatternExpr>),
    /// `Type[+|*|?] [where e] [as a]` or `Type[pred]`.
    Step(PatternStep),
    /// A pattern that failed to parse.
    Error,
}

/// One event step of a named pattern.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PatternStep {
    /// Event type or stream.
    pub ty: Ident,
    /// Kleene suffix.
    pub kleene: Option<Kleene>,
    /// Filter (`where e` or `[e]`).
    pub filter: Option<Expr>,
    /// Alias.
    pub alias: Option<Ident>,
}

/// Kleene suffixes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kleene {
    /// `+`: one or more.
    Plus,
    /// `*`: zero or more.
    Star,
    /// `?`: zero or one.
    Optional,
}

/// `connector Name = kind (k: v, ...)`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConnectorDecl {
    /// Connector name.
    pub name: Ident,
    /// Connector kind (`file`, `http`, `kafka`, `mqtt`, ...).
    pub kind: Ident,
    /// Parameters (config values only: literals, identifiers, arrays).
    pub params: Vec<Arg>,
    /// The whole declaration.
    pub span: Span,
}

/// `context Name [(k: v, ...)]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ContextDecl {
    /// Context name.
    pub name: Ident,
    /// Parameters such as `cores: [0, 1]`.
    pub params: Vec<Arg>,
    /// The whole declaration.
    pub span: Span,
}

/// A `config:` block: `sources:` and `sinks:` sections declaring connectors,
/// and the legacy flat `key: value` entries (also the only content of the
/// legacy `config name { k: v }` form), which are warned about and ignored.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConfigDecl {
    /// Block name; `None` for `config:` (named `default`).
    pub name: Option<Ident>,
    /// Legacy flat entries.
    pub entries: Vec<Arg>,
    /// `sources:` and `sinks:` sections, in written order.
    pub sections: Vec<ConfigSection>,
    /// The whole declaration.
    pub span: Span,
}

/// Which section of a `config:` block a connector is declared in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConfigRole {
    /// `sources:`: connectors that `.from(...)` reads.
    Sources,
    /// `sinks:`: connectors that `.to(...)` writes.
    Sinks,
}

impl ConfigRole {
    /// The section keyword.
    pub fn keyword(self) -> &'static str {
        match self {
            ConfigRole::Sources => "sources",
            ConfigRole::Sinks => "sinks",
        }
    }
}

/// `sources:` or `sinks:` with indented connector entries.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConfigSection {
    /// Which section.
    pub role: ConfigRole,
    /// The section keyword as written.
    pub keyword: Ident,
    /// The connectors declared in it.
    pub connectors: Vec<ConfigConnector>,
    /// The whole section.
    pub span: Span,
}

/// `name: { type: kind, key: value, ... }` (or `name:` with indented
/// `key: value` lines) inside a config section: a named connector whose
/// kind is its `type:` parameter.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConfigConnector {
    /// Connector name.
    pub name: Ident,
    /// Parameters in written order, `type` included. Whether they were
    /// written in braces or on indented lines is layout, not meaning.
    pub params: Vec<Arg>,
    /// The whole entry.
    pub span: Span,
}

impl ConfigConnector {
    /// The `type:` parameter.
    pub fn type_param(&self) -> Option<&Arg> {
        self.params
            .iter()
            .find(|p| p.name.as_ref().is_some_and(|n| n.name == "type"))
    }

    /// The `type:` parameter's value, when it is a name or a string.
    pub fn kind(&self) -> Option<Ident> {
        let param = self.type_param()?;
        match &param.value.kind {
            ExprKind::Ident(id) => Some(id.clone()),
            ExprKind::Str(s) => Some(Ident {
                name: s.clone(),
                span: param.value.span,
            }),
            _ => None,
        }
    }
}

/// `import "path" [as alias]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ImportDecl {
    /// The path as written (decoded string).
    pub path: String,
    /// Span of the path literal.
    pub path_span: Span,
    /// Optional alias (ignored, as in the reference).
    pub alias: Option<Ident>,
    /// The whole declaration.
    pub span: Span,
}

/// An expression.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Expr {
    /// Which expression.
    pub kind: ExprKind,
    /// Where it was written.
    pub span: Span,
}

/// A float literal, compared by bit pattern so the tree can be `Eq`.
#[derive(Clone, Copy, Debug)]
pub struct FloatLit(pub f64);

impl PartialEq for FloatLit {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for FloatLit {}

impl std::hash::Hash for FloatLit {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.to_bits().hash(state);
    }
}

/// Expression forms (docs/LANGUAGE.md#literals, docs/LANGUAGE.md#expressions).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ExprKind {
    /// Integer literal.
    Int(i64),
    /// Float literal.
    Float(FloatLit),
    /// String literal, escapes decoded.
    Str(String),
    /// `true` / `false`.
    Bool(bool),
    /// `null`.
    Null,
    /// Duration literal in nanoseconds (`5m`).
    Duration(u64),
    /// Timestamp literal in nanoseconds since the Unix epoch (`@2024-01-01`).
    Timestamp(i64),
    /// `[a, b, ...]`.
    Array(Vec<Expr>),
    /// `{k: v, "k": v}`.
    Map(Vec<(Ident, Expr)>),
    /// A name.
    Ident(Ident),
    /// `base.name`, or `base?.name` when `optional`.
    Member {
        /// Object.
        base: Box<Expr>,
        /// Member name.
        name: Ident,
        /// `?.`: null-safe access.
        optional: bool,
    },
    /// `base[index]`.
    Index {
        /// Indexed value.
        base: Box<Expr>,
        /// Index.
        index: Box<Expr>,
    },
    /// `base[start:end]`.
    Slice {
        /// Sliced value.
        base: Box<Expr>,
        /// Start, inclusive.
        start: Option<Box<Expr>>,
        /// End, exclusive.
        end: Option<Box<Expr>>,
    },
    /// `callee(args)`; method-style calls appear as a `Member` callee.
    Call {
        /// Called expression (usually an `Ident`).
        callee: Box<Expr>,
        /// Arguments.
        args: Vec<Arg>,
    },
    /// Prefix operator.
    Unary {
        /// Operator.
        op: UnaryOp,
        /// Operand.
        expr: Box<Expr>,
    },
    /// Infix operator.
    Binary {
        /// Operator.
        op: BinaryOp,
        /// Left operand.
        lhs: Box<Expr>,
        /// Right operand.
        rhs: Box<Expr>,
    },
    /// `if c then a else b`.
    If {
        /// Condition.
        cond: Box<Expr>,
        /// Value when true.
        then_branch: Box<Expr>,
        /// Value otherwise.
        else_branch: Box<Expr>,
    },
    /// `x => e`, `(a, b) => e`, `(a) => { stmts e }`.
    Lambda {
        /// Parameters.
        params: Vec<Ident>,
        /// Body; a braced body is a block whose last statement is the value.
        body: Box<LambdaBody>,
    },
    /// `a..b` or `a..=b`.
    Range {
        /// Start.
        start: Box<Expr>,
        /// End.
        end: Box<Expr>,
        /// `..=`.
        inclusive: bool,
    },
    /// `( e )`, kept so the formatter can preserve parentheses.
    Paren(Box<Expr>),
    /// An expression that failed to parse; errors were reported.
    Error,
}

/// The body of a lambda.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum LambdaBody {
    /// `=> e`.
    Expr(Expr),
    /// `=> { stmt* e }`.
    Block(Block),
}

/// Prefix operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    /// `-`.
    Neg,
    /// `not`.
    Not,
    /// `~` (bitwise not).
    BitNot,
}

/// Infix operators, loosest first (docs/LANGUAGE.md#operators-and-precedence).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    /// `or`.
    Or,
    /// `and`.
    And,
    /// `==`.
    Eq,
    /// `!=`.
    Ne,
    /// `<`.
    Lt,
    /// `<=`.
    Le,
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
    /// `in`.
    In,
    /// `not in`.
    NotIn,
    /// `is`.
    Is,
    /// `|`.
    BitOr,
    /// `^`.
    BitXor,
    /// `&`.
    BitAnd,
    /// `<<`.
    Shl,
    /// `>>`.
    Shr,
    /// `+`.
    Add,
    /// `-`.
    Sub,
    /// `*`.
    Mul,
    /// `/`.
    Div,
    /// `%`.
    Rem,
    /// `**`.
    Pow,
}

impl BinaryOp {
    /// The operator as written in source.
    pub fn as_str(self) -> &'static str {
        match self {
            BinaryOp::Or => "or",
            BinaryOp::And => "and",
            BinaryOp::Eq => "==",
            BinaryOp::Ne => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::Le => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::Ge => ">=",
            BinaryOp::In => "in",
            BinaryOp::NotIn => "not in",
            BinaryOp::Is => "is",
            BinaryOp::BitOr => "|",
            BinaryOp::BitXor => "^",
            BinaryOp::BitAnd => "&",
            BinaryOp::Shl => "<<",
            BinaryOp::Shr => ">>",
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Rem => "%",
            BinaryOp::Pow => "**",
        }
    }
}
