//! Stateless operators: filter/having, select, emit, partition_by, print,
//! log, sink (`.to`) and process.

use super::keys::KeyTracker;
use super::{Cx, Operator, Rec, StateResult};
use crate::engine::{output_of, SideOutput};
use crate::interp::arith;
use std::sync::Arc;
use varpulis_program::{
    Chunk, ConfigValue, ConnectorId, Event, Instr, LogSpec, SchemaId, StateBound, Value, ValueKey,
};

/// `.where(e)`, `.filter(e)`, `.having(e)`.
pub struct Filter {
    chunk: Chunk,
    /// `field <cmp> constant`, the most common condition, evaluated without
    /// the interpreter loop: (field slot, comparison, constant).
    simple: Option<(u16, Instr, Value)>,
}

impl Filter {
    /// A filter on `chunk`.
    pub fn new(chunk: Chunk) -> Filter {
        let simple = match chunk.code.as_slice() {
            [Instr::LoadField(s), Instr::Const(c), op]
            | [Instr::LoadField(s), Instr::Const(c), op, Instr::Return]
                if matches!(
                    op,
                    Instr::Eq | Instr::Ne | Instr::Lt | Instr::Le | Instr::Gt | Instr::Ge
                ) =>
            {
                chunk.consts.get(*c as usize).map(|v| (*s, *op, v.clone()))
            }
            _ => None,
        };
        Filter { chunk, simple }
    }
}

impl Operator for Filter {
    fn process(&mut self, rec: Rec, cx: &mut Cx<'_>, out: &mut Vec<Rec>) {
        let pass = match &self.simple {
            // Same operator function as the interpreter; an absent field
            // gives no value (not true). Errors take the interpreter path so
            // they are reported with their span.
            Some((slot, op, k)) => match rec.ev.get(*slot) {
                None => false,
                Some(v) => match arith::binary(*op, v, k) {
                    Ok(r) => matches!(r, Value::Bool(true)),
                    Err(_) => cx.test_rec(&self.chunk, &rec),
                },
            },
            None => cx.test_rec(&self.chunk, &rec),
        };
        if pass {
            out.push(rec);
        }
    }
}

/// `.select(...)` and `.emit(items)`: a new event of `schema` from items.
pub struct Project {
    /// One expression per slot.
    items: Vec<Chunk>,
    /// Per item, a plain read of the record ([`Read`]) done without the
    /// interpreter loop.
    reads: Vec<Option<Read>>,
    /// Output schema.
    schema: SchemaId,
}

/// An item that only reads the record, the most common `.emit` items
/// (`f`, `alias.f`, `first(ks).f`, `len(ks)`). Each gives what the
/// interpreter's instruction of the same name gives; none can fail.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Read {
    /// `LoadField(s)`.
    Field(u16),
    /// `LoadAlias(a, s)`.
    Alias(u16, u16),
    /// `AliasFirst(a, s)`.
    AliasFirst(u16, u16),
    /// `AliasLen(a)`.
    AliasLen(u16),
}

impl Read {
    fn of(chunk: &Chunk) -> Option<Read> {
        let one = match chunk.code.as_slice() {
            [one] | [one, Instr::Return] => *one,
            _ => return None,
        };
        match one {
            Instr::LoadField(s) => Some(Read::Field(s)),
            Instr::LoadAlias(a, s) => Some(Read::Alias(a, s)),
            Instr::AliasFirst(a, s) => Some(Read::AliasFirst(a, s)),
            Instr::AliasLen(a) => Some(Read::AliasLen(a)),
            _ => None,
        }
    }

    fn read(self, rec: &Rec) -> Option<Value> {
        let b = rec.bindings.as_deref();
        match self {
            Read::Field(s) => rec.ev.get(s).cloned(),
            Read::Alias(a, s) => b.and_then(|b| b.get(a)).and_then(|e| e.get(s)).cloned(),
            Read::AliasFirst(a, s) => b.and_then(|b| b.first(a)).and_then(|e| e.get(s)).cloned(),
            Read::AliasLen(a) => {
                let n = b.map_or(0, |b| b.count(a));
                Some(Value::Int(i64::try_from(n).unwrap_or(i64::MAX)))
            }
        }
    }
}

impl Project {
    /// A projection of `items` (one per slot of `schema`).
    pub fn new(items: Vec<Chunk>, schema: SchemaId) -> Project {
        let reads = items.iter().map(Read::of).collect();
        Project {
            items,
            reads,
            schema,
        }
    }

    fn item(&self, i: usize, c: &Chunk, cx: &mut Cx<'_>, rec: &Rec) -> Option<Value> {
        match self.reads.get(i).copied().flatten() {
            Some(r) => r.read(rec),
            None => cx.eval_rec(c, rec),
        }
    }
}

impl Operator for Project {
    fn process(&mut self, rec: Rec, cx: &mut Cx<'_>, out: &mut Vec<Rec>) {
        let mut ev = cx.new_event(self.schema, rec.ev.time);
        match Arc::get_mut(&mut ev) {
            Some(e) => {
                e.fields.reserve(self.items.len());
                for (i, c) in self.items.iter().enumerate() {
                    e.fields.push(self.item(i, c, cx, &rec));
                }
            }
            // Never: a new event has no other handle.
            None => {
                let fields = (self.items.iter().enumerate())
                    .map(|(i, c)| self.item(i, c, cx, &rec))
                    .collect();
                ev = Arc::new(Event::new(self.schema, rec.ev.time, fields));
            }
        }
        out.push(Rec {
            ev,
            key: rec.key,
            bindings: rec.bindings,
        });
    }
}

/// `.partition_by(e)`: events lacking the key share the key `""`. With a
/// state bound it tracks the keys and evicts some ([`KeyTracker`]).
pub struct PartitionBy {
    key: Chunk,
    bound: Option<KeyTracker>,
    evicted: Vec<ValueKey>,
}

impl PartitionBy {
    /// Partitions by `key`, bounding the keys when `bound` is given.
    pub fn new(key: Chunk, bound: Option<&StateBound>) -> PartitionBy {
        PartitionBy {
            key,
            bound: bound.map(KeyTracker::new),
            evicted: Vec::new(),
        }
    }
}

impl Operator for PartitionBy {
    fn process(&mut self, mut rec: Rec, cx: &mut Cx<'_>, out: &mut Vec<Rec>) {
        let k = ValueKey(
            cx.eval_rec(&self.key, &rec)
                .unwrap_or_else(|| Value::str("")),
        );
        if let Some(t) = &mut self.bound {
            t.touch(&k, rec.ev.time, &mut self.evicted);
        }
        rec.key = Some(k);
        out.push(rec);
    }

    fn on_watermark(&mut self, wm: i64, _cx: &mut Cx<'_>, _out: &mut Vec<Rec>) {
        // The end of input (watermark +∞) is not idleness: evicting there
        // would drop the partial windows a final flush is about to release.
        if wm == i64::MAX {
            return;
        }
        if let Some(t) = &mut self.bound {
            t.expire(wm, &mut self.evicted);
        }
    }

    fn next_timer(&self) -> Option<i64> {
        self.bound.as_ref().and_then(KeyTracker::next_idle)
    }

    fn take_evicted(&mut self) -> Vec<ValueKey> {
        std::mem::take(&mut self.evicted)
    }

    fn sets_key(&self) -> bool {
        true
    }

    fn memory(&self) -> Option<crate::memory::OpMemory> {
        let t = self.bound.as_ref()?;
        Some(crate::memory::OpMemory {
            bytes: t.bytes(),
            keys: t.len() as u64,
            evictions: t.evictions(),
            ..crate::memory::OpMemory::default()
        })
    }

    fn save(&self) -> StateResult<Option<Vec<u8>>> {
        match &self.bound {
            Some(t) => t.save(),
            None => Ok(None),
        }
    }

    fn load(&mut self, bytes: &[u8]) -> StateResult<()> {
        match &mut self.bound {
            Some(t) => t.load(bytes),
            // State of a bound since removed: nothing to keep.
            None => Ok(()),
        }
    }
}

/// `.print(...)`.
pub struct Print {
    /// Expressions; empty prints the whole event.
    pub items: Vec<Chunk>,
    /// The layout of events at this point (for the no-argument form).
    pub layout: SchemaId,
}

impl Operator for Print {
    fn process(&mut self, rec: Rec, cx: &mut Cx<'_>, out: &mut Vec<Rec>) {
        let line = if self.items.is_empty() {
            let o = output_of(cx.program, cx.stream, self.layout, &rec.ev);
            let fields: Vec<String> = o
                .fields
                .iter()
                .map(|(k, v)| format!("{k}: {}", render(v)))
                .collect();
            format!(
                "[PRINT] [{}] {}: {{{}}}",
                cx.stream,
                o.event_type,
                fields.join(", ")
            )
        } else {
            let parts: Vec<String> = self
                .items
                .iter()
                .map(|c| {
                    cx.eval_rec(c, &rec)
                        .map_or_else(|| "null".into(), |v| v.to_string())
                })
                .collect();
            format!("[PRINT] {}", parts.join(" "))
        };
        cx.side.push(SideOutput::Print {
            stream: cx.stream.clone(),
            line,
        });
        out.push(rec);
    }
}

fn render(v: &Value) -> String {
    match v {
        Value::Str(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

/// `.log(level:, message:, data:)`.
pub struct Log(pub LogSpec);

impl Operator for Log {
    fn process(&mut self, rec: Rec, cx: &mut Cx<'_>, out: &mut Vec<Rec>) {
        let mut line = format!(
            "[{}] [{}] {}",
            self.0.level.name(),
            cx.stream,
            self.0.message
        );
        if let Some(d) = &self.0.data {
            let v = cx
                .eval_rec(d, &rec)
                .map_or_else(|| "null".into(), |v| v.to_string());
            line.push_str(" data=");
            line.push_str(&v);
        }
        cx.side.push(SideOutput::Log {
            stream: cx.stream.clone(),
            level: self.0.level,
            line,
        });
        out.push(rec);
    }
}

/// `.to(Conn, ...)`.
pub struct Sink {
    /// The connector.
    pub connector: ConnectorId,
    /// `topic` from the site, else from the connector.
    pub topic: Option<Arc<str>>,
    /// Site parameters.
    pub params: Vec<(Arc<str>, ConfigValue)>,
    /// Layout of events here.
    pub layout: SchemaId,
}

impl Operator for Sink {
    fn process(&mut self, rec: Rec, cx: &mut Cx<'_>, out: &mut Vec<Rec>) {
        let mut o = output_of(cx.program, cx.stream, self.layout, &rec.ev);
        // Sinks receive events typed by the stream (docs/LANGUAGE.md#to-sinks).
        o.event_type = cx.stream.clone();
        cx.side.push(SideOutput::Sink {
            connector: self.connector,
            topic: self.topic.clone(),
            params: self.params.clone(),
            output: o,
        });
        out.push(rec);
    }
}

/// `.process(f(args))`: events created with `emit` replace the input.
pub struct Process(pub Chunk);

impl Operator for Process {
    fn process(&mut self, rec: Rec, cx: &mut Cx<'_>, out: &mut Vec<Rec>) {
        cx.vm.emitted.clear();
        cx.eval_rec(&self.0, &rec);
        for ev in cx.vm.emitted.drain(..) {
            out.push(Rec {
                ev: Arc::new(ev),
                key: rec.key.clone(),
                bindings: rec.bindings.clone(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interp::{EvalCx, Vm};
    use crate::sequence::Bindings;
    use crate::testing::{code, event};

    #[test]
    fn plain_reads_agree_with_the_interpreter() {
        let program = crate::testing::ProgramBuilder::new().build();
        let ev = |t: i64, v: Value| Arc::new(event(0, t, vec![Value::str("k"), v]));
        let mut b = Bindings::new(3);
        b.set(0, ev(1, Value::Int(1)));
        b.push(1, ev(2, Value::Float(2.5)));
        b.push(1, ev(3, Value::Float(3.5)));
        // Alias 2 is left unbound.
        let recs = [
            Rec {
                ev: ev(4, Value::Int(4)),
                key: None,
                bindings: Some(Arc::new(b)),
            },
            Rec {
                ev: Arc::new(event(0, 5, vec![Value::str("k")])),
                key: None,
                bindings: None,
            },
        ];
        let mut instrs = Vec::new();
        for s in 0..3 {
            instrs.push(Instr::LoadField(s));
            for a in 0..4 {
                instrs.push(Instr::LoadAlias(a, s));
                instrs.push(Instr::AliasFirst(a, s));
                instrs.push(Instr::AliasLen(a));
            }
        }
        let mut vm = Vm::new();
        for rec in &recs {
            for &i in &instrs {
                for chunk in [code(vec![i], vec![]), code(vec![i, Instr::Return], vec![])] {
                    let read = Read::of(&chunk).expect("a plain read");
                    let mut cx = EvalCx::event(&rec.ev, 0);
                    cx.bindings = rec.bindings.as_deref();
                    let slow = vm.eval(&program, &mut [], &chunk, &cx);
                    assert_eq!(read.read(rec), slow, "{i:?}");
                }
            }
        }
        let sum = code(
            vec![Instr::LoadField(0), Instr::LoadField(1), Instr::Add],
            vec![],
        );
        assert_eq!(Read::of(&sum), None, "only plain reads");
    }
}
