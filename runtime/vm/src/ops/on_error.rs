//! `.on_error(Conn)` ([`varpulis_program::ErrorRoute`]): every runtime error
//! an operator of the stream raises also becomes an error record for the
//! connector, next to the error counters that count it anyway.
//!
//! The engine asks the interpreter to keep a copy of the errors raised while
//! one record passes one operator ([`crate::interp::Vm::captured`]), so each
//! record carries the event that caused it; the error reports the host reads
//! are capped, the routed records are not.

use crate::engine::{output_of, Output, SideOutput};
use crate::error::RuntimeError;
use std::sync::Arc;
use varpulis_program::{ConfigValue, ConnectorId, ErrorRoute, Event, Program, Value};

/// The `event_type` of error records.
pub const ERROR_EVENT_TYPE: &str = "RuntimeError";

/// Where a stream's runtime errors go.
pub struct ErrorSink {
    connector: ConnectorId,
    topic: Option<Arc<str>>,
    params: Vec<(Arc<str>, ConfigValue)>,
}

impl ErrorSink {
    /// The sink of `route`; the site's `topic` wins over the connector's.
    pub fn new(program: &Program, route: &ErrorRoute) -> ErrorSink {
        let topic = route
            .params
            .iter()
            .chain(
                program
                    .connectors
                    .get(route.connector as usize)
                    .map_or(&[][..], |c| c.params.as_slice()),
            )
            .find(|(k, _)| &**k == "topic")
            .and_then(|(_, v)| v.as_text())
            .map(Arc::from);
        ErrorSink {
            connector: route.connector,
            topic,
            params: route.params.clone(),
        }
    }

    /// One sink record per error raised in stream `stream` while it
    /// processed `ev` (`None` when a timer fired without an event); an
    /// error that names the event its expression read carries that one.
    pub fn route(
        &self,
        program: &Program,
        stream: &Arc<str>,
        errors: Vec<(RuntimeError, Option<Event>)>,
        ev: Option<&Event>,
        time: i64,
        side: &mut Vec<SideOutput>,
    ) {
        let as_value = |e: &Event| {
            let named = output_of(program, stream, e.type_id, e);
            Value::map(named.fields.into_iter().collect())
        };
        for (e, read) in errors {
            let source = read.as_ref().or(ev);
            let event = source.map(as_value);
            let mut fields: Vec<(Arc<str>, Value)> = vec![
                (Arc::from("stream_name"), Value::Str(stream.clone())),
                (Arc::from("code"), Value::str(e.kind.code())),
                (Arc::from("error"), Value::str(e.kind.message())),
            ];
            if !e.detail.is_empty() {
                fields.push((Arc::from("detail"), Value::str(&e.detail)));
            }
            if let Some(l) = program.span_table.location(e.span) {
                fields.push((Arc::from("location"), Value::str(l)));
            }
            if let Some(ev) = &event {
                fields.push((Arc::from("event"), ev.clone()));
            }
            side.push(SideOutput::Sink {
                connector: self.connector,
                topic: self.topic.clone(),
                params: self.params.clone(),
                output: Output {
                    stream: stream.clone(),
                    event_type: Arc::from(ERROR_EVENT_TYPE),
                    time: source.map_or(time, |e| e.time),
                    fields,
                },
            });
        }
    }
}
