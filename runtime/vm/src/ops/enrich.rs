//! `.enrich(...)`: asks the host's [`Enricher`](crate::enrich::Enricher)
//! for the keys of a batch of records and writes the answers, the status
//! and the latency into each record's output event, in input order.

use std::sync::Arc;

use super::{Cx, Operator, Rec};
use crate::enrich::{EnrichStatus, Lookup, LookupRequest};
use varpulis_program::{EnrichSpec, Event, Value};

/// `.enrich(...)`.
pub struct Enrich {
    spec: EnrichSpec,
    /// The connector's name, for the host.
    name: Arc<str>,
}

impl Enrich {
    /// The operator for `spec` on connector `name`.
    pub fn new(spec: EnrichSpec, name: Arc<str>) -> Enrich {
        Enrich { spec, name }
    }

    /// The output event of `rec` given its lookup.
    fn output(&self, rec: &Rec, lookup: &Lookup) -> Event {
        let s = &self.spec;
        let mut ev = Event::clone(&rec.ev);
        ev.type_id = s.schema;
        let width = usize::from(s.status_slot.max(s.latency_slot)) + 1;
        // Slots the input layout gained after this operator was compiled
        // (fields of an undeclared type that a later stream reads) are not
        // part of the output layout, whose own slots start there.
        ev.fields.truncate(usize::from(s.input_width));
        ev.fields.resize(width, None);
        for (name, slot) in s.fields.iter().zip(s.slots.iter()) {
            // The store's value, else the fallback: the lookup failed or
            // timed out, or the store holds no such key or field.
            let value = match (&lookup.fields, lookup.status.answered()) {
                (Some(m), true) => m.get(name).cloned(),
                _ => None,
            }
            .or_else(|| s.fallback.clone());
            if let Some(f) = ev.fields.get_mut(usize::from(*slot)) {
                *f = value;
            }
        }
        if let Some(f) = ev.fields.get_mut(usize::from(s.status_slot)) {
            *f = Some(Value::str(lookup.status.as_str()));
        }
        if let Some(f) = ev.fields.get_mut(usize::from(s.latency_slot)) {
            *f = Some(Value::Int(
                i64::try_from(lookup.latency_ms).unwrap_or(i64::MAX),
            ));
        }
        ev
    }
}

impl Operator for Enrich {
    fn process(&mut self, rec: Rec, cx: &mut Cx<'_>, out: &mut Vec<Rec>) {
        let mut one = vec![rec];
        self.process_batch(&mut one, cx, out);
    }

    fn process_batch(&mut self, recs: &mut Vec<Rec>, cx: &mut Cx<'_>, out: &mut Vec<Rec>) {
        // Keys first (records without a key value are not looked up), then
        // one request for the whole batch.
        let keys: Vec<Option<Value>> = recs
            .iter()
            .map(|r| cx.eval_rec(&self.spec.key, r).filter(|v| *v != Value::Null))
            .collect();
        let asked: Vec<Value> = keys.iter().flatten().cloned().collect();
        let request = LookupRequest {
            connector: self.spec.connector,
            name: &self.name,
            fields: &self.spec.fields,
            timeout: self.spec.timeout,
            cache_ttl: self.spec.cache_ttl,
        };
        let mut answers = if asked.is_empty() {
            Vec::new()
        } else {
            cx.enricher.lookup(&request, &asked)
        }
        .into_iter();
        for (rec, key) in recs.drain(..).zip(keys) {
            // A host that answers fewer keys than asked fails the rest.
            let lookup = match key {
                Some(_) => answers
                    .next()
                    .unwrap_or_else(|| Lookup::failed(EnrichStatus::Error, 0)),
                None => Lookup::failed(EnrichStatus::Error, 0),
            };
            let ev = self.output(&rec, &lookup);
            out.push(Rec {
                ev: Arc::new(ev),
                key: rec.key,
                bindings: rec.bindings,
            });
        }
    }
}
