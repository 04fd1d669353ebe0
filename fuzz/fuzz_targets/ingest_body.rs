//! An http ingest request body of any shape: split into one payload per event (one object,
//! an array of objects, or JSON lines), then each payload read as a JSON event, as the http
//! source and the host do. Every payload it accepts must be one JSON object, as text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use varpulis_connectors::http::source::split_body;
use varpulis_program::json::parse_json_event;

fuzz_target!(|data: &[u8]| {
    let Ok(items) = split_body(data) else {
        return;
    };
    for item in &items {
        let text = std::str::from_utf8(item).expect("split_body hands back UTF-8 it was given");
        // The splitter checks the syntax only (a number too large for an f64 is the event
        // reader's error, counted by the host), so the check here is the syntax too.
        assert!(
            text.starts_with('{')
                && serde_json::from_str::<&serde_json::value::RawValue>(text).is_ok(),
            "split_body accepted a payload that is not a JSON object: {text:?}"
        );
        let _ = parse_json_event(text);
    }
});
