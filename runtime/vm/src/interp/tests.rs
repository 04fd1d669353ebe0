//! Interpreter tests, one per instruction family, plus built-ins.

use super::*;
use crate::error::RuntimeErrorKind;
use varpulis_program::{Builtin, FieldDef, Function, Type};

fn ev() -> Event {
    Event::new(
        0,
        1_000,
        vec![
            Some(Value::Int(7)),
            Some(Value::Float(2.5)),
            None,
            Some(Value::str("abc")),
        ],
    )
}

/// Evaluates code against the test event; returns the value and error count.
fn run_with(
    p: &Program,
    code: Vec<Instr>,
    consts: Vec<Value>,
    locals: u16,
) -> (Option<Value>, u64) {
    let mut vm = Vm::new();
    let mut globals = vec![Some(Value::Int(100))];
    let mut c = Chunk::new(code, consts);
    c.locals = locals;
    let e = ev();
    let v = vm.eval(p, &mut globals, &c, &EvalCx::event(&e, 42));
    (v, vm.error_count)
}

fn check(code: Vec<Instr>, consts: Vec<Value>) -> Option<Value> {
    run_with(&Program::default(), code, consts, 4).0
}

fn errs(code: Vec<Instr>, consts: Vec<Value>) -> u64 {
    run_with(&Program::default(), code, consts, 4).1
}

fn bin(a: Value, op: Instr, b: Value) -> Option<Value> {
    check(vec![Instr::Const(0), Instr::Const(1), op], vec![a, b])
}

fn call(b: Builtin, args: Vec<Value>) -> Option<Value> {
    let n = args.len();
    let mut code: Vec<Instr> = (0..n).map(|i| Instr::Const(i as u32)).collect();
    code.push(Instr::CallBuiltin(b, n as u8));
    check(code, args)
}

use Value::{Bool, Float, Int};

#[test]
fn loads_fields_time_locals_globals_and_absence() {
    assert_eq!(check(vec![Instr::LoadField(0)], vec![]), Some(Int(7)));
    assert_eq!(
        check(vec![Instr::LoadField(2)], vec![]),
        None,
        "absent slot"
    );
    assert_eq!(
        check(vec![Instr::LoadField(99)], vec![]),
        None,
        "out of layout"
    );
    assert_eq!(
        check(vec![Instr::LoadTime], vec![]),
        Some(Value::Timestamp(1_000))
    );
    assert_eq!(check(vec![Instr::LoadGlobal(0)], vec![]), Some(Int(100)));
    assert_eq!(
        check(
            vec![Instr::Const(0), Instr::StoreLocal(1), Instr::LoadLocal(1)],
            vec![Int(3)]
        ),
        Some(Int(3))
    );
    assert_eq!(check(vec![Instr::LoadAlias(0, 0)], vec![]), None);
    assert_eq!(check(vec![], vec![]), None, "empty chunk has no value");
}

#[test]
fn arithmetic_follows_rec_semantics() {
    assert_eq!(bin(Int(7), Instr::Div, Int(2)), Some(Int(3)));
    assert_eq!(bin(Int(7), Instr::Rem, Int(2)), Some(Int(1)));
    assert_eq!(bin(Int(1), Instr::Add, Float(0.5)), Some(Float(1.5)));
    assert_eq!(
        bin(Value::str("a"), Instr::Add, Value::str("b")),
        Some(Value::str("ab"))
    );
    assert_eq!(bin(Int(2), Instr::Pow, Int(10)), Some(Int(1024)));
    assert_eq!(bin(Int(2), Instr::Pow, Int(-1)), Some(Float(0.5)));
    assert_eq!(bin(Int(1), Instr::Div, Int(0)), None);
    assert_eq!(bin(Float(1.0), Instr::Div, Float(0.0)), None);
    assert_eq!(
        errs(
            vec![Instr::Const(0), Instr::Const(1), Instr::Div],
            vec![Int(1), Int(0)]
        ),
        1
    );
    assert_eq!(
        bin(Int(i64::MAX), Instr::Add, Int(1)),
        None,
        "overflow is an error"
    );
    assert_eq!(bin(Value::str("a"), Instr::Sub, Int(1)), None);
    assert_eq!(bin(Int(6), Instr::BitAnd, Int(3)), Some(Int(2)));
    assert_eq!(bin(Int(1), Instr::Shl, Int(4)), Some(Int(16)));
    assert_eq!(
        check(vec![Instr::Const(0), Instr::Neg], vec![Int(3)]),
        Some(Int(-3))
    );
}

#[test]
fn time_arithmetic() {
    use Value::{Duration as D, Timestamp as T};
    assert_eq!(bin(T(10), Instr::Add, D(5)), Some(T(15)));
    assert_eq!(bin(T(10), Instr::Sub, D(5)), Some(T(5)));
    assert_eq!(bin(T(10), Instr::Sub, T(4)), Some(D(6)));
    assert_eq!(bin(D(3), Instr::Add, D(4)), Some(D(7)));
    assert_eq!(bin(D(3), Instr::Mul, Int(4)), Some(D(12)));
    assert_eq!(bin(D(3), Instr::Lt, D(4)), Some(Bool(true)));
    assert_eq!(bin(T(3), Instr::Lt, D(4)), None);
}

#[test]
fn comparisons_promote_numbers_and_order_strings() {
    assert_eq!(bin(Int(3), Instr::Eq, Float(3.0)), Some(Bool(true)));
    assert_eq!(bin(Int(3), Instr::Le, Float(3.5)), Some(Bool(true)));
    assert_eq!(
        bin(Value::str("a"), Instr::Lt, Value::str("b")),
        Some(Bool(true))
    );
    assert_eq!(bin(Value::Null, Instr::Eq, Value::Null), Some(Bool(true)));
    assert_eq!(bin(Int(1), Instr::Eq, Value::str("1")), Some(Bool(false)));
    assert_eq!(bin(Int(1), Instr::Lt, Value::str("1")), None);
    // `x == null` is not true for an absent x: absence propagates.
    assert_eq!(
        check(
            vec![Instr::LoadField(2), Instr::Const(0), Instr::Eq],
            vec![Value::Null]
        ),
        None
    );
    let arr = Value::array(vec![Int(1), Int(2)]);
    assert_eq!(bin(Float(2.0), Instr::In, arr.clone()), Some(Bool(true)));
    assert_eq!(bin(Int(5), Instr::NotIn, arr), Some(Bool(true)));
    assert_eq!(
        bin(Value::str("b"), Instr::In, Value::str("abc")),
        Some(Bool(true))
    );
}

#[test]
fn and_or_short_circuit_and_reject_non_booleans() {
    // a and b: [a, AndThen(end), b, ToBool]
    let and = |a: Value, b: Value| {
        check(
            vec![
                Instr::Const(0),
                Instr::AndThen(4),
                Instr::Const(1),
                Instr::ToBool,
            ],
            vec![a, b],
        )
    };
    let or = |a: Value, b: Value| {
        check(
            vec![
                Instr::Const(0),
                Instr::OrElse(4),
                Instr::Const(1),
                Instr::ToBool,
            ],
            vec![a, b],
        )
    };
    assert_eq!(and(Bool(true), Bool(true)), Some(Bool(true)));
    assert_eq!(
        and(Bool(false), Int(1)),
        Some(Bool(false)),
        "rhs not evaluated"
    );
    assert_eq!(and(Bool(true), Int(1)), None);
    assert_eq!(and(Int(1), Bool(true)), None);
    assert_eq!(or(Bool(true), Int(1)), Some(Bool(true)));
    assert_eq!(or(Bool(false), Bool(false)), Some(Bool(false)));
    assert_eq!(
        check(vec![Instr::Const(0), Instr::Not], vec![Bool(true)]),
        Some(Bool(false))
    );
    assert_eq!(check(vec![Instr::Const(0), Instr::Not], vec![Int(1)]), None);
}

#[test]
fn if_then_else_and_loops() {
    // if c then 1 else 2
    let ite = |c: Value| {
        check(
            vec![
                Instr::Const(0),
                Instr::JumpIfNotTrue(4),
                Instr::Const(1),
                Instr::Jump(5),
                Instr::Const(2),
            ],
            vec![c, Int(1), Int(2)],
        )
    };
    assert_eq!(ite(Bool(true)), Some(Int(1)));
    assert_eq!(ite(Value::Null), Some(Int(2)), "non-true selects else");
    // sum = 0; for x in [1,2,3]: if x == 2: continue; sum = sum + x
    // locals: 0 iter, 1 index, 2 x, 3 sum
    let code = vec![
        Instr::Const(0),
        Instr::StoreLocal(0), // iter
        Instr::Const(1),
        Instr::StoreLocal(1), // index = 0
        Instr::Const(1),
        Instr::StoreLocal(3), // sum = 0
        Instr::ForNext {
            iter: 0,
            index: 1,
            var: 2,
            exit: 17,
        }, // 6
        Instr::LoadLocal(2),
        Instr::Const(2),
        Instr::Eq,
        Instr::JumpIfNotTrue(12), // 7..10
        Instr::Jump(6),           // 11: continue
        Instr::LoadLocal(3),
        Instr::LoadLocal(2),
        Instr::Add,
        Instr::StoreLocal(3), // 12..15
        Instr::Jump(6),       // 16
        Instr::LoadLocal(3),  // 17
    ];
    let arr = Value::array(vec![Int(1), Int(2), Int(3)]);
    assert_eq!(check(code, vec![arr, Int(0), Int(2)]), Some(Int(4)));
    // while true: (runaway) is stopped by the budget
    let (v, e) = run_with(&Program::default(), vec![Instr::Jump(0)], vec![], 0);
    assert_eq!((v, e), (None, 1));
}

#[test]
fn construction_index_slice_member_range() {
    let arr = check(
        vec![
            Instr::Const(0),
            Instr::LoadField(2),
            Instr::Const(1),
            Instr::MakeArray(3),
        ],
        vec![Int(1), Int(2)],
    );
    assert_eq!(
        arr,
        Some(Value::array(vec![Int(1), Int(2)])),
        "absent elements skipped"
    );
    let m = check(
        vec![
            Instr::Const(0),
            Instr::Const(1),
            Instr::MakeMap(1),
            Instr::Member(0),
        ],
        vec![Value::str("k"), Int(9)],
    );
    assert_eq!(m, Some(Int(9)));
    let a = Value::array(vec![Int(1), Int(2), Int(3)]);
    assert_eq!(bin(a.clone(), Instr::Index, Int(-1)), Some(Int(3)));
    assert_eq!(bin(a.clone(), Instr::Index, Int(5)), None);
    assert_eq!(
        errs(
            vec![Instr::Const(0), Instr::Const(1), Instr::Index],
            vec![a.clone(), Int(5)]
        ),
        1
    );
    assert_eq!(
        bin(Value::str("héllo"), Instr::Index, Int(1)),
        Some(Value::str("é"))
    );
    assert_eq!(
        check(
            vec![
                Instr::Const(0),
                Instr::Const(1),
                Instr::Slice {
                    start: true,
                    end: false
                }
            ],
            vec![a, Int(1)]
        ),
        Some(Value::array(vec![Int(2), Int(3)]))
    );
    assert_eq!(
        check(
            vec![
                Instr::Const(0),
                Instr::Const(1),
                Instr::Const(2),
                Instr::Slice {
                    start: true,
                    end: true
                }
            ],
            vec![Value::str("abcdef"), Int(1), Int(-2)]
        ),
        Some(Value::str("bcd"))
    );
    assert_eq!(
        check(
            vec![
                Instr::Const(0),
                Instr::Const(1),
                Instr::Range { inclusive: true }
            ],
            vec![Int(1), Int(3)]
        ),
        Some(Value::array(vec![Int(1), Int(2), Int(3)]))
    );
    assert_eq!(
        check(
            vec![Instr::LoadField(2), Instr::MemberOpt(0)],
            vec![Value::str("x")]
        ),
        Some(Value::Null)
    );
}

#[test]
fn user_functions_recursion_and_limits() {
    let mut p = Program::default();
    // fn fact(n): if n <= 1 then 1 else n * fact(n - 1)
    p.functions.push(Function {
        name: "fact".into(),
        params: vec![FieldDef {
            name: "n".into(),
            ty: Type::Int,
        }],
        chunk: Chunk {
            locals: 1,
            ..Chunk::new(
                vec![
                    Instr::LoadLocal(0),
                    Instr::Const(0),
                    Instr::Le,
                    Instr::JumpIfNotTrue(6),
                    Instr::Const(0),
                    Instr::Return,
                    Instr::LoadLocal(0),
                    Instr::LoadLocal(0),
                    Instr::Const(0),
                    Instr::Sub,
                    Instr::Call(0, 1),
                    Instr::Mul,
                    Instr::Return,
                ],
                vec![Int(1)],
            )
        },
        span: SpanId::NONE,
    });
    // fn forever(): forever()
    p.functions.push(Function {
        name: "forever".into(),
        params: vec![],
        chunk: Chunk::new(vec![Instr::Call(1, 0)], vec![]),
        span: SpanId::NONE,
    });
    assert_eq!(
        run_with(
            &p,
            vec![Instr::Const(0), Instr::Call(0, 1)],
            vec![Int(5)],
            0
        )
        .0,
        Some(Int(120))
    );
    let (v, e) = run_with(&p, vec![Instr::Call(1, 0)], vec![], 0);
    assert_eq!(v, None);
    assert_eq!(e, 1);
    let (v, e) = run_with(&p, vec![Instr::Call(0, 0)], vec![], 0);
    assert_eq!((v, e), (None, 1), "arity mismatch");
    let (v, _) = run_with(&p, vec![Instr::Call(7, 0)], vec![], 0);
    assert_eq!(v, None, "unknown function");
}

#[test]
fn malformed_bytecode_never_panics() {
    for code in [
        vec![Instr::Add],
        vec![Instr::Const(9)],
        vec![Instr::LoadLocal(200)],
        vec![Instr::MakeMap(3)],
        vec![Instr::CallBuiltin(Builtin::Abs, 4)],
        vec![Instr::Jump(1000)],
        vec![Instr::Slice {
            start: true,
            end: true,
        }],
        vec![Instr::EmitEvent(9)],
        vec![Instr::Return],
    ] {
        let _ = check(code, vec![]);
    }
}

#[test]
fn math_builtins() {
    assert_eq!(call(Builtin::Abs, vec![Int(-3)]), Some(Int(3)));
    assert_eq!(call(Builtin::Sqrt, vec![Int(9)]), Some(Float(3.0)));
    assert_eq!(call(Builtin::Floor, vec![Float(2.7)]), Some(Int(2)));
    assert_eq!(call(Builtin::Ceil, vec![Float(2.1)]), Some(Int(3)));
    assert_eq!(call(Builtin::Round, vec![Float(2.5)]), Some(Int(3)));
    assert_eq!(call(Builtin::Round, vec![Float(f64::NAN)]), None);
    assert_eq!(call(Builtin::Pow, vec![Int(2), Int(3)]), Some(Int(8)));
    assert_eq!(call(Builtin::Log, vec![Float(1.0)]), Some(Float(0.0)));
    assert_eq!(call(Builtin::Log10, vec![Int(100)]), Some(Float(2.0)));
    assert_eq!(call(Builtin::Exp, vec![Int(0)]), Some(Float(1.0)));
    assert_eq!(call(Builtin::Sin, vec![Int(0)]), Some(Float(0.0)));
    assert_eq!(call(Builtin::Cos, vec![Int(0)]), Some(Float(1.0)));
    assert_eq!(call(Builtin::Tan, vec![Int(0)]), Some(Float(0.0)));
    assert_eq!(
        call(Builtin::Min, vec![Int(2), Float(1.5)]),
        Some(Float(1.5))
    );
    assert_eq!(call(Builtin::Max, vec![Int(2), Float(1.5)]), Some(Int(2)));
    assert_eq!(
        call(Builtin::Clamp, vec![Int(12), Int(0), Int(10)]),
        Some(Int(10))
    );
    assert_eq!(call(Builtin::Abs, vec![Value::str("x")]), None);
}

#[test]
fn string_builtins() {
    let s = |x: &str| Value::str(x);
    assert_eq!(call(Builtin::Len, vec![s("héllo")]), Some(Int(5)));
    assert_eq!(call(Builtin::Trim, vec![s(" a ")]), Some(s("a")));
    assert_eq!(call(Builtin::Lower, vec![s("AbC")]), Some(s("abc")));
    assert_eq!(call(Builtin::Upper, vec![s("AbC")]), Some(s("ABC")));
    assert_eq!(
        call(Builtin::Split, vec![s("a,b"), s(",")]),
        Some(Value::array(vec![s("a"), s("b")]))
    );
    assert_eq!(
        call(
            Builtin::Join,
            vec![Value::array(vec![s("a"), Int(1)]), s("-")]
        ),
        Some(s("a-1"))
    );
    assert_eq!(
        call(Builtin::Replace, vec![s("aXa"), s("a"), s("b")]),
        Some(s("bXb"))
    );
    assert_eq!(
        call(Builtin::StartsWith, vec![s("abc"), s("ab")]),
        Some(Bool(true))
    );
    assert_eq!(
        call(Builtin::EndsWith, vec![s("abc"), s("bc")]),
        Some(Bool(true))
    );
    assert_eq!(
        call(Builtin::Substring, vec![s("abcdef"), Int(2)]),
        Some(s("cdef"))
    );
    assert_eq!(
        call(Builtin::Substring, vec![s("abcdef"), Int(1), Int(3)]),
        Some(s("bc"))
    );
    assert_eq!(call(Builtin::Reverse, vec![s("abc")]), Some(s("cba")));
    assert_eq!(
        call(Builtin::Concat, vec![s("a"), Int(1), s("b")]),
        Some(s("a1b"))
    );
}

#[test]
fn collection_builtins() {
    let a = |v: Vec<Value>| Value::array(v);
    let arr = a(vec![Int(3), Int(1), Int(2)]);
    assert_eq!(call(Builtin::First, vec![arr.clone()]), Some(Int(3)));
    assert_eq!(call(Builtin::Last, vec![arr.clone()]), Some(Int(2)));
    assert_eq!(call(Builtin::First, vec![a(vec![])]), None);
    assert_eq!(
        call(Builtin::Push, vec![arr.clone(), Int(4)]),
        Some(a(vec![Int(3), Int(1), Int(2), Int(4)]))
    );
    assert_eq!(
        call(Builtin::Pop, vec![arr.clone()]),
        Some(a(vec![Int(3), Int(1)]))
    );
    assert_eq!(
        call(Builtin::Sort, vec![arr.clone()]),
        Some(a(vec![Int(1), Int(2), Int(3)]))
    );
    assert_eq!(
        call(Builtin::Reverse, vec![arr.clone()]),
        Some(a(vec![Int(2), Int(1), Int(3)]))
    );
    assert_eq!(
        call(Builtin::Contains, vec![arr.clone(), Int(1)]),
        Some(Bool(true))
    );
    assert_eq!(
        call(Builtin::Contains, vec![Value::str("abc"), Value::str("z")]),
        Some(Bool(false))
    );
    assert_eq!(
        call(Builtin::Get, vec![arr.clone(), Int(9)]),
        Some(Value::Null)
    );
    assert_eq!(
        call(Builtin::Set, vec![arr.clone(), Int(0), Int(9)]),
        Some(a(vec![Int(9), Int(1), Int(2)]))
    );
    assert_eq!(
        call(Builtin::Range, vec![Int(3)]),
        Some(a(vec![Int(0), Int(1), Int(2)]))
    );
    assert_eq!(
        call(Builtin::Range, vec![Int(1), Int(3)]),
        Some(a(vec![Int(1), Int(2)]))
    );
    assert_eq!(call(Builtin::Sum, vec![arr.clone()]), Some(Float(6.0)));
    assert_eq!(call(Builtin::Avg, vec![arr]), Some(Float(2.0)));
    assert_eq!(call(Builtin::Avg, vec![a(vec![])]), Some(Value::Null));
    let mut m = varpulis_program::ValueMap::new();
    m.insert("k".into(), Int(1));
    let m = Value::map(m);
    assert_eq!(
        call(Builtin::Keys, vec![m.clone()]),
        Some(a(vec![Value::str("k")]))
    );
    assert_eq!(
        call(Builtin::Values, vec![m.clone()]),
        Some(a(vec![Int(1)]))
    );
    assert_eq!(
        call(Builtin::Get, vec![m.clone(), Value::str("k")]),
        Some(Int(1))
    );
    assert_eq!(
        call(Builtin::Contains, vec![m, Value::str("k")]),
        Some(Bool(true))
    );
}

#[test]
fn conversion_predicate_and_misc_builtins() {
    assert_eq!(
        call(Builtin::ToString, vec![Float(2.0)]),
        Some(Value::str("2.0"))
    );
    assert_eq!(
        call(Builtin::ToInt, vec![Value::str(" 42 ")]),
        Some(Int(42))
    );
    assert_eq!(call(Builtin::ToInt, vec![Value::str("4.9")]), Some(Int(4)));
    assert_eq!(call(Builtin::ToInt, vec![Value::str("x")]), None);
    assert_eq!(call(Builtin::ToFloat, vec![Int(2)]), Some(Float(2.0)));
    assert_eq!(
        call(Builtin::TypeOf, vec![Value::str("x")]),
        Some(Value::str("string"))
    );
    assert_eq!(call(Builtin::IsNull, vec![Value::Null]), Some(Bool(true)));
    assert_eq!(call(Builtin::IsInt, vec![Int(1)]), Some(Bool(true)));
    assert_eq!(call(Builtin::IsFloat, vec![Int(1)]), Some(Bool(false)));
    assert_eq!(
        call(Builtin::IsString, vec![Value::str("")]),
        Some(Bool(true))
    );
    assert_eq!(call(Builtin::IsBool, vec![Bool(true)]), Some(Bool(true)));
    assert_eq!(
        call(Builtin::IsArray, vec![Value::array(vec![])]),
        Some(Bool(true))
    );
    assert_eq!(call(Builtin::IsMap, vec![Int(1)]), Some(Bool(false)));
    assert_eq!(call(Builtin::Now, vec![]), Some(Value::Timestamp(42)));
    // coalesce skips absent values and nulls
    assert_eq!(
        check(
            vec![
                Instr::LoadField(2),
                Instr::Const(0),
                Instr::Const(1),
                Instr::CallBuiltin(Builtin::Coalesce, 3)
            ],
            vec![Value::Null, Int(5)]
        ),
        Some(Int(5))
    );
    assert_eq!(
        check(
            vec![
                Instr::LoadField(2),
                Instr::CallBuiltin(Builtin::Coalesce, 1)
            ],
            vec![]
        ),
        None
    );
    // absence propagates through calls without an error
    assert_eq!(
        run_with(
            &Program::default(),
            vec![Instr::LoadField(2), Instr::CallBuiltin(Builtin::Abs, 1)],
            vec![],
            0
        ),
        (None, 0)
    );
    assert_eq!(
        errs(
            vec![Instr::Const(0), Instr::CallBuiltin(Builtin::ToInt, 1)],
            vec![Value::str("x")]
        ),
        1
    );
    let mut vm = Vm::new();
    vm.report(
        RuntimeErrorKind::DivisionByZero,
        SpanId::NONE,
        0,
        String::new(),
    );
    assert_eq!(vm.reports[0].kind.code(), "R0001");
}

/// Evaluates code with sequence bindings: alias 0 plain (`v` = 1), alias 1
/// a Kleene list of `v` = 20, 10, 30, alias 2 unbound.
fn with_bindings(code: Vec<Instr>) -> Option<Value> {
    let mut b = crate::sequence::Bindings::new(3);
    let e = |v: i64| std::sync::Arc::new(Event::new(0, v, vec![Some(Int(v))]));
    b.set(0, e(1));
    for v in [20, 10, 30] {
        b.push(1, e(v));
    }
    let mut vm = Vm::new();
    let cur = ev();
    let mut cx = EvalCx::event(&cur, 42);
    cx.bindings = Some(&b);
    vm.eval(&Program::default(), &mut [], &Chunk::new(code, vec![]), &cx)
}

#[test]
fn alias_instructions_read_the_bindings() {
    assert_eq!(with_bindings(vec![Instr::LoadAlias(0, 0)]), Some(Int(1)));
    // A Kleene alias reads its most recent event, `first` its earliest.
    assert_eq!(with_bindings(vec![Instr::LoadAlias(1, 0)]), Some(Int(30)));
    assert_eq!(with_bindings(vec![Instr::AliasFirst(1, 0)]), Some(Int(20)));
    assert_eq!(with_bindings(vec![Instr::AliasLen(1)]), Some(Int(3)));
    assert_eq!(with_bindings(vec![Instr::AliasLen(0)]), Some(Int(1)));
    assert_eq!(with_bindings(vec![Instr::AliasLen(2)]), Some(Int(0)));
    assert_eq!(with_bindings(vec![Instr::LoadAlias(2, 0)]), None);
    assert_eq!(with_bindings(vec![Instr::AliasFirst(2, 0)]), None);
    assert_eq!(
        with_bindings(vec![Instr::AliasValues(1, 0)]),
        Some(Value::array(vec![Int(20), Int(10), Int(30)]))
    );
    assert_eq!(
        with_bindings(vec![
            Instr::AliasValues(1, 0),
            Instr::CallBuiltin(Builtin::Sum, 1)
        ]),
        Some(Float(60.0))
    );
    // An absent field is skipped; an unbound alias gives an empty array.
    assert_eq!(
        with_bindings(vec![Instr::AliasValues(1, 5)]),
        Some(Value::array(vec![]))
    );
    assert_eq!(
        with_bindings(vec![Instr::AliasValues(2, 0)]),
        Some(Value::array(vec![]))
    );
}

#[test]
fn alias_instructions_without_bindings_are_unbound() {
    assert_eq!(check(vec![Instr::AliasLen(0)], vec![]), Some(Int(0)));
    assert_eq!(check(vec![Instr::AliasFirst(0, 0)], vec![]), None);
}

#[test]
fn append_local_builds_arrays_in_place_and_skips_absence() {
    // local 0 = []; append 1; append (no value); append 2; load.
    let code = vec![
        Instr::MakeArray(0),
        Instr::StoreLocal(0),
        Instr::Const(0),
        Instr::AppendLocal(0),
        Instr::LoadField(2),
        Instr::AppendLocal(0),
        Instr::Const(1),
        Instr::AppendLocal(0),
        Instr::LoadLocal(0),
    ];
    assert_eq!(
        check(code, vec![Int(1), Int(2)]),
        Some(Value::array(vec![Int(1), Int(2)]))
    );
    // A slot that does not hold an array starts one.
    assert_eq!(
        check(
            vec![Instr::Const(0), Instr::AppendLocal(1), Instr::LoadLocal(1)],
            vec![Int(5)]
        ),
        Some(Value::array(vec![Int(5)]))
    );
    assert_eq!(
        errs(vec![Instr::Const(0), Instr::AppendLocal(99)], vec![Int(5)]),
        1
    );
}

#[test]
fn eval_with_locals_presets_the_first_locals() {
    let mut vm = Vm::new();
    let mut globals = Vec::new();
    let mut c = Chunk::new(
        vec![Instr::LoadLocal(0), Instr::CallBuiltin(Builtin::Len, 1)],
        vec![],
    );
    c.locals = 1;
    let e = ev();
    let arr = Value::array(vec![Int(1), Int(2), Int(3)]);
    let v = vm.eval_with_locals(
        &Program::default(),
        &mut globals,
        &c,
        &EvalCx::event(&e, 0),
        vec![arr],
    );
    assert_eq!(v, Some(Int(3)));
    assert_eq!(vm.locals.len(), 0, "locals are released");
}
