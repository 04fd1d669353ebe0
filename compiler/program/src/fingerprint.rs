//! Fingerprints of a program's streams: what a checkpoint's state belongs to.
//!
//! A stream's fingerprint hashes its lowered plan (operators, bytecode, the ids of the types
//! and streams it refers to) together with every event type, function and global of the
//! program, with source positions left out so that moving a declaration within the file
//! changes nothing. Two programs give a stream the same fingerprint exactly when its state
//! means the same thing in both, so state is carried over by fingerprint, never by name: a
//! changed window under the same stream name starts empty instead of decoding the old
//! window's state (docs/DESIGN.md, "State across program changes").
//!
//! Bounds on state size (`StreamPlan::bounds`) are left out too: a new limit applies to the
//! state that is there (trimming it on the next key), so changing one keeps the state.
//!
//! The hash is FNV-1a over canonical JSON: stable across runs, platforms and versions of
//! this crate as long as the artifact's serde shape is.

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::{Program, SchemaOrigin};

/// The fingerprints of a program.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprints {
    /// Stream names, in program order.
    pub names: Vec<String>,
    /// One per stream, in program order.
    pub streams: Vec<u64>,
    /// The event types (their layouts).
    pub events: u64,
    /// Top-level variables and constants.
    pub globals: u64,
}

fn fnv(bytes: &[u8], mut hash: u64) -> u64 {
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

const SEED: u64 = 0xcbf2_9ce4_8422_2325;

/// JSON of `value` with every source position (`span`, `spans`) and every state bound
/// (`bounds`) removed.
fn canonical<T: Serialize>(value: &T) -> Vec<u8> {
    fn strip(v: &mut Json) {
        match v {
            Json::Object(map) => {
                map.remove("span");
                map.remove("spans");
                map.remove("bounds");
                map.values_mut().for_each(strip);
            }
            Json::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut json = serde_json::to_value(value).unwrap_or(Json::Null);
    strip(&mut json);
    serde_json::to_vec(&json).unwrap_or_default()
}

impl Program {
    /// The fingerprints of this program's streams (see the module docs).
    pub fn fingerprints(&self) -> Fingerprints {
        let events: Vec<_> = self
            .schemas
            .iter()
            .filter(|s| !matches!(s.origin, SchemaOrigin::Stream))
            .collect();
        let events = fnv(&canonical(&events), SEED);
        let globals = fnv(&canonical(&self.globals), SEED);
        let shared = fnv(
            &canonical(&self.functions),
            fnv(&events.to_le_bytes(), globals),
        );
        Fingerprints {
            names: self.streams.iter().map(|s| s.name.to_string()).collect(),
            streams: self
                .streams
                .iter()
                .map(|s| fnv(&canonical(s), shared))
                .collect(),
            events,
            globals,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn fingerprints_ignore_positions_and_see_definitions() {
        let p = crate::tests::sample();
        let before = p.fingerprints();
        assert_eq!(before.streams.len(), 1);
        assert_eq!(before, p.clone().fingerprints(), "stable");
        let mut moved = p.clone();
        moved.streams[0].span = crate::SpanId(42);
        assert_eq!(
            moved.fingerprints().streams,
            before.streams,
            "positions do not count"
        );
        let mut changed = p.clone();
        changed.streams[0].visible = !changed.streams[0].visible;
        assert_ne!(changed.fingerprints().streams, before.streams);
        let mut bounded = p.clone();
        bounded.streams[0].bounds.push(crate::StateBound {
            op: 0,
            max_keys: Some(10),
            ..crate::StateBound::default()
        });
        assert_eq!(
            bounded.fingerprints().streams,
            before.streams,
            "a state bound keeps the state"
        );
    }
}
