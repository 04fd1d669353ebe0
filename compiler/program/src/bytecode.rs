//! Bytecode for VPL expressions and function bodies: a stack machine.
//!
//! A [`Chunk`] is a flat list of [`Instr`]uctions plus a constant pool. The
//! machine keeps a stack of *optional* values: `None` is "no value"
//! (docs/LANGUAGE.md#missing-values-and-null) and propagates through operators and calls. A chunk's
//! result is the value on top of the stack when execution runs off the end
//! (or the operand of [`Instr::Return`]); an empty stack yields no value.
//!
//! Operand conventions: `u16` slots index event fields, locals and aggregate
//! results; `u32` indices address constants, globals, functions and jump
//! targets (absolute instruction indices within the same chunk). A jump to
//! `code.len()` ends the chunk. Malformed bytecode (stack underflow, bad
//! index) never panics the VM: it yields no value and a runtime error.

use crate::schema::SchemaId;
use crate::span::SpanId;
use crate::value::Value;
use serde::{Deserialize, Serialize};

/// Index into [`crate::Program::functions`].
pub type FunctionId = u32;
/// Index into [`crate::Program::globals`].
pub type GlobalId = u32;

/// A compiled expression or function body.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Chunk {
    /// Instructions.
    pub code: Vec<Instr>,
    /// Constant pool, addressed by [`Instr::Const`] and name operands.
    pub consts: Vec<Value>,
    /// Span of each instruction (same length as `code`), or empty when the
    /// chunk carries only [`Chunk::span`]. Runtime errors report the span of
    /// the failing instruction.
    pub spans: Vec<SpanId>,
    /// Span of the whole expression, used when `spans` is empty.
    pub span: SpanId,
    /// Number of local slots the chunk uses (temporaries, `for` state). For a
    /// function chunk this includes the parameters, which occupy slots
    /// `0..params`.
    pub locals: u16,
}

impl Chunk {
    /// A chunk from instructions and constants with no span information.
    pub fn new(code: Vec<Instr>, consts: Vec<Value>) -> Chunk {
        Chunk {
            code,
            consts,
            spans: Vec::new(),
            span: SpanId::NONE,
            locals: 0,
        }
    }

    /// The span to report for the instruction at `pc`.
    pub fn span_at(&self, pc: usize) -> SpanId {
        self.spans.get(pc).copied().unwrap_or(self.span)
    }

    /// The slot the chunk reads when it is only a read of one field of its event (a partition
    /// key, an aggregate's argument, a projected field): evaluating it has no effect and its
    /// value is that field's, or none when the event lacks it.
    pub fn plain_field(&self) -> Option<u16> {
        match self.code.as_slice() {
            [Instr::LoadField(s)] | [Instr::LoadField(s), Instr::Return] => Some(*s),
            _ => None,
        }
    }
}

/// One stack-machine instruction. "Pops a, b" means `b` is on top.
///
/// Unless stated otherwise an instruction whose operand is no value pushes no
/// value (absence propagates silently), and one whose operands have the wrong
/// types pushes no value *and* records a runtime error with the instruction's
/// span.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Instr {
    // ----- loads and stores -------------------------------------------------
    /// Pushes `consts[i]`.
    Const(u32),
    /// Pushes the current event's field in slot `s` (no value when absent).
    LoadField(u16),
    /// Pushes the current event's undeclared field named by the string
    /// constant `consts[i]`, from the overflow (no value when absent).
    LoadExtra(u32),
    /// `LoadAlias(a, s)`: pushes field slot `s` of the event bound to
    /// sequence alias `a` (for a Kleene alias, the most recent binding). No
    /// value when the alias is unbound.
    LoadAlias(u16, u16),
    /// `AliasLen(a)`: pushes the number of events bound to sequence alias
    /// `a` as an int (`len(ks)`; 0 or 1 for a plain alias, 0 when unbound).
    AliasLen(u16),
    /// `AliasFirst(a, s)`: pushes field slot `s` of the *earliest* event
    /// bound to alias `a` (`first(ks).f`, `first(ks.f)`). No value when the
    /// alias is unbound. (`last(ks).f` is [`Instr::LoadAlias`].)
    AliasFirst(u16, u16),
    /// `AliasValues(a, s)`: pushes an array of field slot `s` of every event
    /// bound to alias `a`, oldest first, skipping events where the field is
    /// absent (empty when unbound). Array built-ins then give `sum(ks.f)`,
    /// `avg`, `min`, `max` over a Kleene alias.
    AliasValues(u16, u16),
    /// Pushes the current event's time as a `Timestamp` (the `timestamp`
    /// identifier when the event has no such field, docs/LANGUAGE.md#types).
    LoadTime,
    /// Pushes local slot `l` (a parameter, `let`, or temporary).
    LoadLocal(u16),
    /// Pops a value into local slot `l` (an absent value clears the slot).
    StoreLocal(u16),
    /// Pops a value and appends it to the array in local slot `l` (in place;
    /// an absent value is skipped; a slot that is not an array becomes
    /// `[value]`). Builds the results of `.filter` and `.map` in linear time.
    AppendLocal(u16),
    /// Pushes global `g`.
    LoadGlobal(u32),
    /// Pops a value into global `g` (`x := e` on a `var`).
    StoreGlobal(u32),
    /// Pushes the result of aggregate call `i` (only inside
    /// [`crate::AggItem::expr`]).
    LoadAgg(u16),
    /// Discards the top of the stack.
    Pop,
    /// Duplicates the top of the stack.
    Dup,

    // ----- unary ------------------------------------------------------------
    /// Pops `a`, pushes `-a` (int, float, duration).
    Neg,
    /// Pops `a`, pushes `not a`; no value unless `a` is a bool.
    Not,
    /// Pops `a`, pushes `~a` on ints.
    BitNot,

    // ----- binary arithmetic (pops a, b; pushes a ∘ b) ------------------------
    /// `+`: numbers (int+int → int, otherwise float), `str + str`
    /// concatenation, `ts + dur → ts`, `dur + ts → ts`, `dur + dur → dur`.
    Add,
    /// `-`: numbers, `ts − dur → ts`, `ts − ts → dur`, `dur − dur → dur`.
    Sub,
    /// `*`: numbers, `dur * int|float → dur`, `int * dur → dur`.
    Mul,
    /// `/`: numbers (int/int truncates); `dur / int → dur`, `dur / dur →
    /// float`. Division by zero: no value and a runtime error.
    Div,
    /// `%`: remainder; modulo by zero as for `Div`.
    Rem,
    /// `**`: int**int (exponent ≥ 0) → int (wrapping), otherwise float.
    Pow,
    /// `&` on ints.
    BitAnd,
    /// `|` on ints.
    BitOr,
    /// `^` on ints.
    BitXor,
    /// `<<` on ints (shift amount 0..63).
    Shl,
    /// `>>` on ints (arithmetic, shift amount 0..63).
    Shr,

    // ----- comparison (pops a, b; pushes bool) --------------------------------
    /// `==`: structural; ints and floats compare numerically. Never an error.
    Eq,
    /// `!=`: negation of `Eq`.
    Ne,
    /// `<`: numbers (mixed promoted), strings (lexicographic), timestamps,
    /// durations; other pairs: no value and an error.
    Lt,
    /// `<=`, as `Lt`.
    Le,
    /// `>`, as `Lt`.
    Gt,
    /// `>=`, as `Lt`.
    Ge,
    /// `a in b`: element of array (by `==`), key of map, substring of string.
    In,
    /// `a not in b`.
    NotIn,

    // ----- logic and control flow -------------------------------------------
    /// Short-circuit `and`, left operand on top. `false` → leave it and jump
    /// to the target; `true` → pop and continue (evaluate the right operand,
    /// then [`Instr::ToBool`]); anything else → replace with no value, jump.
    AndThen(u32),
    /// Short-circuit `or`: `true` → leave it and jump; `false` → pop and
    /// continue; anything else → replace with no value and jump.
    OrElse(u32),
    /// Replaces a non-bool top of stack with no value (ends an `and`/`or`).
    ToBool,
    /// Unconditional jump to the instruction index.
    Jump(u32),
    /// Pops a value; jumps unless it is `true` (`if`, `while`, `elif`; a
    /// non-true condition selects the else branch, docs/LANGUAGE.md#comparisons-and-logic).
    JumpIfNotTrue(u32),
    /// Pops a value and ends the chunk (or function call) with it.
    Return,
    /// One step of `for var in iterable`: if `locals[index] <
    /// len(locals[iter])` stores element `locals[index]` (of an array, or
    /// char of a string, or key of a map) into `locals[var]`, increments
    /// `locals[index]` and continues; otherwise jumps to `exit`. The compiler
    /// initialises `locals[iter]` with the iterable and `locals[index]` with
    /// `0` before the loop (ranges are arrays, docs/LANGUAGE.md#comparisons-and-logic).
    ForNext {
        /// Local holding the iterable.
        iter: u16,
        /// Local holding the int position.
        index: u16,
        /// Loop variable.
        var: u16,
        /// Jump target when exhausted.
        exit: u32,
    },

    // ----- construction and access ------------------------------------------
    /// Pops `n` values, pushes an array of them (absent ones are skipped).
    MakeArray(u32),
    /// Pops `n` key/value pairs (key below value), pushes a map; keys must be
    /// strings.
    MakeMap(u32),
    /// Pops `a`, `i`: `a[i]` on arrays (negative from the end), strings (one
    /// char) and maps (string key). Out of range: no value and an error.
    Index,
    /// Pops the target then the bounds that are present: `a[s:e]` on arrays
    /// and strings (char indices), negative from the end, clamped to range.
    Slice {
        /// Whether a start bound was pushed (after the target).
        start: bool,
        /// Whether an end bound was pushed (after the start).
        end: bool,
    },
    /// Pops `m`, pushes `m.name` where `consts[i]` is the name: the map's
    /// entry. No value when missing.
    Member(u32),
    /// `m?.name`: like `Member`, but a null or absent `m` gives `null`.
    MemberOpt(u32),
    /// Pops `a`, `b` (ints), pushes the int array `a..b` (or `a..=b` when
    /// `inclusive`). At most 10 000 000 elements, else an error.
    Range {
        /// `..=` rather than `..`.
        inclusive: bool,
    },

    // ----- calls --------------------------------------------------------------
    /// Pops `argc` arguments (first pushed = first argument), calls the
    /// built-in, pushes its result. Wrong arity: no value and an error.
    CallBuiltin(Builtin, u8),
    /// Pops `argc` arguments and calls user function `f`; they become its
    /// locals `0..argc`. Pushes the result. Depth is bounded (error past it).
    Call(FunctionId, u8),
    /// `emit Type(...)` in a function body: pops one value per field of
    /// schema `s` (absent → field absent) and appends an event of that type,
    /// stamped with the current event's time, to the `.process()` output.
    EmitEvent(SchemaId),
}

/// Built-in scalar functions (docs/LANGUAGE.md#built-in-functions plus the REC set `now
/// coalesce clamp to_upper to_lower concat`). Aliases share a variant:
/// [`Builtin::from_name`] maps every spelling.
#[allow(missing_docs)] // Each variant is documented by its VPL name in `name()`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Builtin {
    // math
    Abs,
    Sqrt,
    Floor,
    Ceil,
    Round,
    Pow,
    Log,
    Log10,
    Exp,
    Sin,
    Cos,
    Tan,
    Min,
    Max,
    Clamp,
    // strings
    Len,
    Trim,
    Lower,
    Upper,
    Split,
    Join,
    Replace,
    StartsWith,
    EndsWith,
    Substring,
    Reverse,
    Concat,
    // collections
    First,
    Last,
    Push,
    Pop,
    Sort,
    Contains,
    Keys,
    Values,
    Get,
    Set,
    Range,
    Sum,
    Avg,
    // conversion
    ToString,
    ToInt,
    ToFloat,
    TypeOf,
    // predicates
    IsNull,
    IsInt,
    IsFloat,
    IsString,
    IsBool,
    IsArray,
    IsMap,
    // misc
    Now,
    Coalesce,
}

impl Builtin {
    /// Every built-in, for tables and tests.
    pub const ALL: &'static [Builtin] = &[
        Builtin::Abs,
        Builtin::Sqrt,
        Builtin::Floor,
        Builtin::Ceil,
        Builtin::Round,
        Builtin::Pow,
        Builtin::Log,
        Builtin::Log10,
        Builtin::Exp,
        Builtin::Sin,
        Builtin::Cos,
        Builtin::Tan,
        Builtin::Min,
        Builtin::Max,
        Builtin::Clamp,
        Builtin::Len,
        Builtin::Trim,
        Builtin::Lower,
        Builtin::Upper,
        Builtin::Split,
        Builtin::Join,
        Builtin::Replace,
        Builtin::StartsWith,
        Builtin::EndsWith,
        Builtin::Substring,
        Builtin::Reverse,
        Builtin::Concat,
        Builtin::First,
        Builtin::Last,
        Builtin::Push,
        Builtin::Pop,
        Builtin::Sort,
        Builtin::Contains,
        Builtin::Keys,
        Builtin::Values,
        Builtin::Get,
        Builtin::Set,
        Builtin::Range,
        Builtin::Sum,
        Builtin::Avg,
        Builtin::ToString,
        Builtin::ToInt,
        Builtin::ToFloat,
        Builtin::TypeOf,
        Builtin::IsNull,
        Builtin::IsInt,
        Builtin::IsFloat,
        Builtin::IsString,
        Builtin::IsBool,
        Builtin::IsArray,
        Builtin::IsMap,
        Builtin::Now,
        Builtin::Coalesce,
    ];

    /// Looks a built-in up by any of its VPL spellings
    /// (`lower`/`lowercase`/`to_lower`, `upper`/`uppercase`/`to_upper`).
    pub fn from_name(name: &str) -> Option<Builtin> {
        Some(match name {
            "lowercase" | "to_lower" => Builtin::Lower,
            "uppercase" | "to_upper" => Builtin::Upper,
            _ => return Builtin::ALL.iter().copied().find(|b| b.name() == name),
        })
    }

    /// The canonical VPL name.
    pub fn name(self) -> &'static str {
        match self {
            Builtin::Abs => "abs",
            Builtin::Sqrt => "sqrt",
            Builtin::Floor => "floor",
            Builtin::Ceil => "ceil",
            Builtin::Round => "round",
            Builtin::Pow => "pow",
            Builtin::Log => "log",
            Builtin::Log10 => "log10",
            Builtin::Exp => "exp",
            Builtin::Sin => "sin",
            Builtin::Cos => "cos",
            Builtin::Tan => "tan",
            Builtin::Min => "min",
            Builtin::Max => "max",
            Builtin::Clamp => "clamp",
            Builtin::Len => "len",
            Builtin::Trim => "trim",
            Builtin::Lower => "lower",
            Builtin::Upper => "upper",
            Builtin::Split => "split",
            Builtin::Join => "join",
            Builtin::Replace => "replace",
            Builtin::StartsWith => "starts_with",
            Builtin::EndsWith => "ends_with",
            Builtin::Substring => "substring",
            Builtin::Reverse => "reverse",
            Builtin::Concat => "concat",
            Builtin::First => "first",
            Builtin::Last => "last",
            Builtin::Push => "push",
            Builtin::Pop => "pop",
            Builtin::Sort => "sort",
            Builtin::Contains => "contains",
            Builtin::Keys => "keys",
            Builtin::Values => "values",
            Builtin::Get => "get",
            Builtin::Set => "set",
            Builtin::Range => "range",
            Builtin::Sum => "sum",
            Builtin::Avg => "avg",
            Builtin::ToString => "to_string",
            Builtin::ToInt => "to_int",
            Builtin::ToFloat => "to_float",
            Builtin::TypeOf => "type_of",
            Builtin::IsNull => "is_null",
            Builtin::IsInt => "is_int",
            Builtin::IsFloat => "is_float",
            Builtin::IsString => "is_string",
            Builtin::IsBool => "is_bool",
            Builtin::IsArray => "is_array",
            Builtin::IsMap => "is_map",
            Builtin::Now => "now",
            Builtin::Coalesce => "coalesce",
        }
    }

    /// Accepted argument counts `(min, max)`; `max == u8::MAX` is variadic.
    pub fn arity(self) -> (u8, u8) {
        match self {
            Builtin::Now => (0, 0),
            Builtin::Pow
            | Builtin::Min
            | Builtin::Max
            | Builtin::Split
            | Builtin::Join
            | Builtin::StartsWith
            | Builtin::EndsWith
            | Builtin::Push
            | Builtin::Contains
            | Builtin::Get => (2, 2),
            Builtin::Clamp | Builtin::Replace | Builtin::Set => (3, 3),
            Builtin::Substring => (2, 3),
            Builtin::Range => (1, 2),
            Builtin::Concat | Builtin::Coalesce => (1, u8::MAX),
            _ => (1, 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_is_found_by_its_name_and_aliases_resolve() {
        for b in Builtin::ALL {
            assert_eq!(Builtin::from_name(b.name()), Some(*b));
        }
        assert_eq!(Builtin::from_name("to_upper"), Some(Builtin::Upper));
        assert_eq!(Builtin::from_name("lowercase"), Some(Builtin::Lower));
        assert_eq!(Builtin::from_name("nope"), None);
    }
}
