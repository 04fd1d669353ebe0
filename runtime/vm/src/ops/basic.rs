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
    pub items: Vec<Chunk>,
    /// Output schema.
    pub schema: SchemaId,
}

impl Operator for Project {
    fn process(&mut self, rec: Rec, cx: &mut Cx<'_>, out: &mut Vec<Rec>) {
        let mut ev = cx.new_event(self.schema, rec.ev.time);
        match Arc::get_mut(&mut ev) {
            Some(e) => {
                e.fields.reserve(self.items.len());
                for c in &self.items {
                    e.fields.push(cx.eval_rec(c, &rec));
                }
            }
            // Never: a new event has no other handle.
            None => {
                let fields = self.items.iter().map(|c| cx.eval_rec(c, &rec)).collect();
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
