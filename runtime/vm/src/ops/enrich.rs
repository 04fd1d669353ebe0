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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use crate::enrich::{EnrichStatus, Enricher, Lookup, LookupRequest};
    use crate::testing::{event, field, input, render, ProgramBuilder};
    use crate::Engine;
    use varpulis_program::{
        ConfigValue, ConnectorDef, EmitSpec, EnrichSpec, OpSpec, SpanId, Value, ValueMap,
        WindowSpec,
    };

    /// Answers `tier: "t-KEY"`, fails key `x`, and records each batch's keys.
    struct Fake(Arc<Mutex<Vec<Vec<Value>>>>);

    impl Enricher for Fake {
        fn lookup(&mut self, request: &LookupRequest<'_>, keys: &[Value]) -> Vec<Lookup> {
            assert_eq!(request.name, "Users");
            self.0.lock().expect("lock").push(keys.to_vec());
            keys.iter()
                .map(|k| match k {
                    Value::Str(s) if &**s == "x" => Lookup::failed(EnrichStatus::Timeout, 9),
                    Value::Str(s) => {
                        let mut m = ValueMap::new();
                        m.insert("tier".into(), Value::str(format!("t-{s}")));
                        Lookup {
                            fields: Some(Arc::new(m)),
                            status: EnrichStatus::Ok,
                            latency_ms: 2,
                        }
                    }
                    _ => Lookup::failed(EnrichStatus::Error, 0),
                })
                .collect()
        }
    }

    /// `R(k, v)` through a 1 s tumbling window, then `.enrich(Users, key: k,
    /// fields: [tier], fallback: "none")` and `.emit()`.
    fn engine() -> Engine {
        let mut b = ProgramBuilder::new();
        let r = b.event("R", &["k", "v"]);
        b.program.connectors.push(ConnectorDef {
            name: "Users".into(),
            kind: "http".into(),
            params: vec![("url".into(), ConfigValue::Str("http://h/{key}".into()))],
            span: SpanId::NONE,
        });
        let out = b.layout(
            "S",
            &["k", "v", "tier", "enrich_status", "enrich_latency_ms"],
        );
        b.stream(
            "S",
            input(r),
            vec![
                OpSpec::Window(WindowSpec::Tumbling {
                    size: 1_000_000_000,
                }),
                OpSpec::Enrich(EnrichSpec {
                    connector: 0,
                    key: field(0),
                    fields: vec!["tier".into()],
                    input_width: 2,
                    slots: vec![2],
                    status_slot: 3,
                    latency_slot: 4,
                    schema: out,
                    cache_ttl: None,
                    timeout: 1_000_000_000,
                    fallback: Some(Value::str("none")),
                }),
                OpSpec::Emit(EmitSpec {
                    items: None,
                    schema: out,
                }),
            ],
            out,
        );
        Engine::new(b.build()).expect("loads")
    }

    #[test]
    fn a_window_release_is_one_lookup_batch_answered_in_order() {
        let batches = Arc::new(Mutex::new(Vec::new()));
        let mut e = engine();
        e.set_enricher(Box::new(Fake(batches.clone())));
        let mut out = Vec::new();
        for (t, k) in [(0, "b"), (100, "x"), (200, "a")] {
            e.push_into(
                event(0, t * 1_000_000, vec![Value::str(k), Value::Int(t)]),
                &mut out,
            );
        }
        let mut absent = event(0, 300_000_000, vec![]);
        absent.fields = vec![None, Some(Value::Int(3))];
        e.push_into(absent, &mut out);
        e.push_into(
            event(0, 2_000_000_000, vec![Value::str("c"), Value::Int(9)]),
            &mut out,
        );
        out.extend(e.finish());
        assert_eq!(
            render(&out),
            [
                "S@0{k=\"b\",v=0,tier=\"t-b\",enrich_status=\"ok\",enrich_latency_ms=2}",
                "S@100000000{k=\"x\",v=100,tier=\"none\",enrich_status=\"timeout\",enrich_latency_ms=9}",
                "S@200000000{k=\"a\",v=200,tier=\"t-a\",enrich_status=\"ok\",enrich_latency_ms=2}",
                "S@300000000{v=3,tier=\"none\",enrich_status=\"error\",enrich_latency_ms=0}",
                "S@2000000000{k=\"c\",v=9,tier=\"t-c\",enrich_status=\"ok\",enrich_latency_ms=2}",
            ]
        );
        let b = batches.lock().expect("lock");
        assert_eq!(
            *b,
            [
                vec![Value::str("b"), Value::str("x"), Value::str("a")],
                vec![Value::str("c")]
            ],
            "one call per release; an absent key is not asked"
        );
    }

    #[test]
    fn without_an_enricher_every_lookup_fails_with_the_fallback() {
        let mut e = engine();
        let mut out = Vec::new();
        e.push_into(event(0, 0, vec![Value::str("a"), Value::Int(1)]), &mut out);
        out.extend(e.finish());
        assert_eq!(
            render(&out),
            ["S@0{k=\"a\",v=1,tier=\"none\",enrich_status=\"error\",enrich_latency_ms=0}"]
        );
    }
}
