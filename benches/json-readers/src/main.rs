//! A side-by-side trial of JSON readers (benches/json-readers.sh): the current one-pass reader
//! (serde_json), sonic-rs and simd-json, each reading flat JSON events into the same RawEvent,
//! over the same lines, in alternating rounds.
use std::time::Instant;
use varpulis_program::json::parse_json_event;
use varpulis_program::{RawEvent, Value};

fn scalar_sonic(v: &sonic_rs::Value) -> Value {
    use sonic_rs::JsonValueTrait;
    if let Some(i) = v.as_i64() {
        Value::Int(i)
    } else if let Some(f) = v.as_f64() {
        Value::Float(f)
    } else if let Some(s) = v.as_str() {
        Value::str(s)
    } else if let Some(b) = v.as_bool() {
        Value::Bool(b)
    } else {
        Value::Null
    }
}

fn sonic(text: &str) -> RawEvent {
    use sonic_rs::{JsonContainerTrait, JsonValueTrait};
    let v: sonic_rs::Value = sonic_rs::from_str(text).expect("json");
    let obj = v.as_object().expect("object");
    let mut event_type = String::new();
    let mut timestamp = None;
    let mut fields = Vec::with_capacity(obj.len());
    for (k, v) in obj.iter() {
        match k {
            "event_type" => event_type = v.as_str().unwrap_or_default().to_string(),
            "timestamp" => timestamp = v.as_i64().map(|ms| ms * 1_000_000),
            _ => fields.push((k.to_string(), scalar_sonic(v))),
        }
    }
    RawEvent {
        event_type,
        fields,
        timestamp,
    }
}

fn scalar_simd(v: &simd_json::BorrowedValue) -> Value {
    use simd_json::prelude::*;
    if let Some(i) = v.as_i64() {
        Value::Int(i)
    } else if let Some(f) = v.as_f64() {
        Value::Float(f)
    } else if let Some(s) = v.as_str() {
        Value::str(s)
    } else if let Some(b) = v.as_bool() {
        Value::Bool(b)
    } else {
        Value::Null
    }
}

fn simd(text: &str, buf: &mut Vec<u8>) -> RawEvent {
    use simd_json::prelude::*;
    buf.clear();
    buf.extend_from_slice(text.as_bytes());
    let v = simd_json::to_borrowed_value(buf).expect("json");
    let obj = v.as_object().expect("object");
    let mut event_type = String::new();
    let mut timestamp = None;
    let mut fields = Vec::with_capacity(obj.len());
    for (k, v) in obj.iter() {
        match k.as_ref() {
            "event_type" => event_type = v.as_str().unwrap_or_default().to_string(),
            "timestamp" => timestamp = v.as_i64().map(|ms| ms * 1_000_000),
            _ => fields.push((k.to_string(), scalar_simd(v))),
        }
    }
    RawEvent {
        event_type,
        fields,
        timestamp,
    }
}

fn main() {
    let path = std::env::args().nth(1).expect("input file");
    let text = std::fs::read_to_string(&path).expect("read");
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    // Agreement first.
    let mut buf = Vec::new();
    for l in &lines {
        let a = parse_json_event(l).expect("current reader");
        let b = sonic(l);
        let c = simd(l, &mut buf);
        assert_eq!(
            format!("{a:?}"),
            format!("{b:?}"),
            "sonic-rs differs on {l}"
        );
        assert_eq!(
            format!("{a:?}"),
            format!("{c:?}"),
            "simd-json differs on {l}"
        );
    }
    let mut best = [f64::MAX; 3];
    for _ in 0..5 {
        for (i, best) in best.iter_mut().enumerate() {
            let t = Instant::now();
            let mut n = 0usize;
            for l in &lines {
                n += match i {
                    0 => parse_json_event(l).expect("ok").fields.len(),
                    1 => sonic(l).fields.len(),
                    _ => simd(l, &mut buf).fields.len(),
                };
            }
            std::hint::black_box(n);
            *best = best.min(t.elapsed().as_secs_f64());
        }
    }
    let per = |s: f64| s * 1e9 / lines.len() as f64;
    println!(
        "{path}: {} lines; ns/line (best of 5): current {:.0}, sonic-rs {:.0} ({:.2}x), simd-json {:.0} ({:.2}x)",
        lines.len(),
        per(best[0]),
        per(best[1]),
        best[0] / best[1],
        per(best[2]),
        best[0] / best[2]
    );
}
