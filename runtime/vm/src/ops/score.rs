//! `.score(model:, inputs:, outputs:)`: model inference on batches of events
//! (docs/LANGUAGE.md#score).
//!
//! The engine hands the operator every record that reaches it in one engine
//! step ([`Operator::process_batch`]); the operator runs the model once per
//! [`MAX_BATCH`] rows and emits the scored events in input order. An event
//! whose input field is missing or not a number is counted as a runtime
//! error naming the field (R0009) and dropped; a failed model run counts
//! every event of its batch (R0010) and drops them.

use super::{Cx, Operator, Rec};
use crate::error::RuntimeErrorKind as K;
use crate::model::Model;
use std::sync::Arc;
use varpulis_program::{Chunk, Event, SchemaId, SpanId, Value};

/// Most rows one model run takes.
pub const MAX_BATCH: usize = 1024;

/// `.score(...)`.
pub struct Score {
    model: Arc<dyn Model>,
    /// The model as written, for error reports.
    name: Arc<str>,
    inputs: Vec<(Arc<str>, Chunk)>,
    /// Output slots in `schema`, in model-output order.
    outputs: Vec<u16>,
    schema: SchemaId,
    width: usize,
    span: SpanId,
    /// Rows of the batch being built (reused).
    rows: Vec<f64>,
    /// The records of those rows.
    batch: Vec<Rec>,
}

impl Score {
    /// A score operator running `model`; `width` is the number of slots of
    /// `schema`.
    pub fn new(model: Arc<dyn Model>, spec: &varpulis_program::ScoreSpec, width: usize) -> Score {
        Score {
            model,
            name: spec.model.clone(),
            inputs: spec.inputs.clone(),
            outputs: spec.outputs.iter().map(|(_, s)| *s).collect(),
            schema: spec.schema,
            width,
            span: spec.span,
            rows: Vec::new(),
            batch: Vec::new(),
        }
    }

    fn cap(&self) -> usize {
        self.model
            .max_rows()
            .map_or(MAX_BATCH, |m| m.clamp(1, MAX_BATCH))
    }

    /// Reads one record's inputs into the batch, or reports the field that
    /// has no number.
    fn add(&mut self, rec: Rec, cx: &mut Cx<'_>) {
        let start = self.rows.len();
        for (name, chunk) in &self.inputs {
            let v = match cx.eval_rec(chunk, &rec) {
                Some(Value::Int(i)) => i as f64,
                Some(Value::Float(f)) => f,
                other => {
                    self.rows.truncate(start);
                    let found = match other {
                        None => "it is missing".to_string(),
                        Some(v) => format!("found {}", v.type_name()),
                    };
                    cx.vm.report(
                        K::ScoreInput,
                        self.span,
                        rec.ev.time,
                        format!(
                            "model `{}`: input `{name}` is not a number ({found})",
                            self.name
                        ),
                    );
                    return;
                }
            };
            self.rows.push(v);
        }
        self.batch.push(rec);
    }

    /// Runs the model on the batch and pushes the scored events.
    fn flush(&mut self, cx: &mut Cx<'_>, out: &mut Vec<Rec>) {
        if self.batch.is_empty() {
            return;
        }
        let n = self.batch.len();
        let m = self.outputs.len();
        match self.model.run(n, &self.rows) {
            Ok(scores) if scores.len() == n * m => {
                for (rec, row) in self.batch.drain(..).zip(scores.chunks(m.max(1))) {
                    let mut ev: Event = (*rec.ev).clone();
                    ev.type_id = self.schema;
                    ev.fields.resize(self.width, None);
                    for (slot, v) in self.outputs.iter().zip(row) {
                        if let Some(f) = ev.fields.get_mut(*slot as usize) {
                            *f = Some(Value::Float(*v));
                        }
                    }
                    out.push(Rec {
                        ev: Arc::new(ev),
                        key: rec.key,
                        bindings: rec.bindings,
                    });
                }
            }
            result => {
                let why = match result {
                    Err(e) => e,
                    Ok(s) => format!("{} numbers for {n} rows of {m} outputs", s.len()),
                };
                for rec in self.batch.drain(..) {
                    cx.vm.report(
                        K::ScoreModel,
                        self.span,
                        rec.ev.time,
                        format!("model `{}` failed on a batch of {n}: {why}", self.name),
                    );
                }
            }
        }
        self.rows.clear();
    }
}

impl Operator for Score {
    fn process(&mut self, rec: Rec, cx: &mut Cx<'_>, out: &mut Vec<Rec>) {
        self.add(rec, cx);
        self.flush(cx, out);
    }

    fn process_batch(&mut self, recs: &mut Vec<Rec>, cx: &mut Cx<'_>, out: &mut Vec<Rec>) {
        let cap = self.cap();
        for rec in recs.drain(..) {
            self.add(rec, cx);
            if self.batch.len() >= cap {
                self.flush(cx, out);
            }
        }
        self.flush(cx, out);
    }
}
