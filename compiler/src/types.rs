//! Static types and event schemas.
//!
//! VPL values are dynamically typed at run time (docs/LANGUAGE.md#types); the
//! checker assigns each expression a static [`Type`] to catch mistakes early.
//! Two types accept everything: [`Type::Any`] (a value whose type is not known
//! statically, e.g. a field of an undeclared event type) and [`Type::Error`]
//! (the result of an expression that already produced a diagnostic; it
//! suppresses cascades).

use std::fmt;

/// A static type.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Type {
    /// Statically unknown; compatible with everything.
    Any,
    /// An expression already reported as wrong; compatible with everything.
    Error,
    /// `null`.
    Null,
    /// `bool`.
    Bool,
    /// `int` (i64).
    Int,
    /// `float` (f64).
    Float,
    /// `str`.
    Str,
    /// `timestamp` (ns since the Unix epoch).
    Timestamp,
    /// `duration` (ns).
    Duration,
    /// `[T]`.
    Array(Box<Type>),
    /// `{K: V}`.
    Map(Box<Type>, Box<Type>),
    /// `(T1, T2, ...)`.
    Tuple(Vec<Type>),
    /// One event of the named type or stream (a sequence alias, `first(ks)`).
    Event(Box<Schema>),
    /// The events bound by a Kleene step (`-> all T as ks`).
    EventList(Box<Schema>),
}

impl Type {
    /// Whether the type is statically unknown (no diagnostics about it).
    pub fn is_unknown(&self) -> bool {
        matches!(self, Type::Any | Type::Error)
    }

    /// Whether the type is `int` or `float`.
    pub fn is_numeric(&self) -> bool {
        matches!(self, Type::Int | Type::Float)
    }

    /// Whether a value of this type can be used where `expected` is wanted,
    /// with numeric widening int → float and `null` accepted everywhere
    /// (optional values).
    pub fn fits(&self, expected: &Type) -> bool {
        match (self, expected) {
            (a, b) if a.is_unknown() || b.is_unknown() => true,
            (Type::Null, _) => true,
            (Type::Int, Type::Float) => true,
            (Type::Array(a), Type::Array(b)) => a.fits(b),
            (Type::Map(k1, v1), Type::Map(k2, v2)) => k1.fits(k2) && v1.fits(v2),
            (Type::Tuple(a), Type::Tuple(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.fits(y))
            }
            (Type::Event(_), Type::Event(_)) => true,
            (Type::EventList(_), Type::EventList(_)) => true,
            (a, b) => a == b,
        }
    }

    /// The common type of two branches (`if`, array elements), if any:
    /// int and float widen to float, `null` joins anything, unknown wins.
    pub fn join(&self, other: &Type) -> Option<Type> {
        match (self, other) {
            (Type::Error, _) | (_, Type::Error) => Some(Type::Error),
            (Type::Any, _) | (_, Type::Any) => Some(Type::Any),
            (Type::Null, t) | (t, Type::Null) => Some(t.clone()),
            (Type::Int, Type::Float) | (Type::Float, Type::Int) => Some(Type::Float),
            (Type::Array(a), Type::Array(b)) => Some(Type::Array(Box::new(a.join(b)?))),
            (a, b) if a.fits(b) && b.fits(a) => Some(a.clone()),
            _ => None,
        }
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Type::Any | Type::Error => f.write_str("any"),
            Type::Null => f.write_str("null"),
            Type::Bool => f.write_str("bool"),
            Type::Int => f.write_str("int"),
            Type::Float => f.write_str("float"),
            Type::Str => f.write_str("str"),
            Type::Timestamp => f.write_str("timestamp"),
            Type::Duration => f.write_str("duration"),
            Type::Array(t) => write!(f, "[{t}]"),
            Type::Map(k, v) => write!(f, "{{{k}: {v}}}"),
            Type::Tuple(ts) => {
                f.write_str("(")?;
                for (i, t) in ts.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{t}")?;
                }
                f.write_str(")")
            }
            Type::Event(s) => write!(f, "event `{}`", s.name),
            Type::EventList(s) => write!(f, "[event `{}`]", s.name),
        }
    }
}

/// One field of a schema.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Field {
    /// Field name. Fields of bound sequence events are named `alias.field`
    /// and join fields `Source.field`.
    pub name: String,
    /// Static type.
    pub ty: Type,
    /// Declared `T?`, or present in only some branches of a `merge`.
    pub optional: bool,
}

impl Field {
    /// A required field.
    pub fn new(name: impl Into<String>, ty: Type) -> Field {
        Field {
            name: name.into(),
            ty,
            optional: false,
        }
    }
}

/// An alias bound by a sequence step and visible in the schema after it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AliasBinding {
    /// The alias.
    pub name: String,
    /// The schema of the bound event(s).
    pub schema: Schema,
    /// Bound by a Kleene step (`all T`, `T+`, `T*`): a list of events.
    pub kleene: bool,
}

/// The shape of the events flowing at one point of a pipeline.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Schema {
    /// The event type or stream name the events carry.
    pub name: String,
    /// Ordered fields.
    pub fields: Vec<Field>,
    /// Aliases bound by a sequence (after a match).
    pub aliases: Vec<AliasBinding>,
    /// Fields not listed are allowed and have type `any` (undeclared event
    /// types, open-ended outputs).
    pub open: bool,
}

impl Schema {
    /// A closed schema with the given fields.
    pub fn new(name: impl Into<String>, fields: Vec<Field>) -> Schema {
        Schema {
            name: name.into(),
            fields,
            aliases: Vec::new(),
            open: false,
        }
    }

    /// An open schema: any field is accepted with type `any`.
    pub fn open(name: impl Into<String>) -> Schema {
        Schema {
            open: true,
            ..Schema::new(name, Vec::new())
        }
    }

    /// The index and declaration of the field `name`.
    pub fn field(&self, name: &str) -> Option<(usize, &Field)> {
        self.fields.iter().enumerate().find(|(_, f)| f.name == name)
    }

    /// The alias binding `name`.
    pub fn alias(&self, name: &str) -> Option<&AliasBinding> {
        self.aliases.iter().find(|a| a.name == name)
    }

    /// Adds a field unless one with that name exists; returns whether added.
    pub fn push_field(&mut self, field: Field) -> bool {
        if self.field(&field.name).is_some() {
            return false;
        }
        self.fields.push(field);
        true
    }

    /// Field names, in order.
    pub fn field_names(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|f| f.name.as_str())
    }
}

/// The signature of a user-defined function.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FnSig {
    /// Parameter names and types.
    pub params: Vec<(String, Type)>,
    /// Declared or inferred return type.
    pub ret: Type,
    /// Event types the body creates with `emit T(...)`, in order, without
    /// repetition (what `.process(f(...))` outputs).
    pub emits: Vec<String>,
}

/// Parses a built-in type name.
pub fn builtin_type(name: &str) -> Option<Type> {
    Some(match name {
        "int" => Type::Int,
        "float" => Type::Float,
        "bool" => Type::Bool,
        "str" | "string" => Type::Str,
        "timestamp" => Type::Timestamp,
        "duration" => Type::Duration,
        "any" => Type::Any,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(a: Type, b: Type) -> Option<String> {
        a.join(&b).map(|t| t.to_string())
    }

    #[test]
    fn join_widens_numbers_and_absorbs_null() {
        assert_eq!(check(Type::Int, Type::Float).as_deref(), Some("float"));
        assert_eq!(check(Type::Null, Type::Str).as_deref(), Some("str"));
        assert_eq!(check(Type::Str, Type::Int), None);
    }

    #[test]
    fn ints_fit_floats_but_not_the_reverse() {
        assert!(Type::Int.fits(&Type::Float));
        assert!(!Type::Float.fits(&Type::Int));
        assert!(Type::Any.fits(&Type::Bool));
    }
}
