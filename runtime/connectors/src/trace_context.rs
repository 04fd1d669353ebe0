//! W3C trace context: the `traceparent` a source finds on a message (an HTTP request header, a
//! Kafka record header, an MQTT 5 user property) and the one a sink puts on what that message caused, so a trace goes on
//! across services (docs/RUNTIME.md, "Traces").
//!
//! Only the `traceparent` of version `00` is understood, strictly: `00-<32 hex>-<16 hex>-<2
//! hex>`, lowercase, neither id all zeros. Anything else is ignored (and counted by the source,
//! [`crate::source::SourceCounters::trace_parent`]): a bad header never fails a message.

use std::fmt;

/// The header name, on HTTP requests and Kafka records alike, and the MQTT 5 user property.
pub const TRACEPARENT: &str = "traceparent";

/// A remote span: the trace it belongs to, its id and the trace flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    /// The trace id (never all zeros).
    pub trace_id: [u8; 16],
    /// The caller's span, the parent of ours (never all zeros).
    pub span_id: [u8; 8],
    /// Trace flags; bit 0 is "sampled".
    pub flags: u8,
}

impl TraceParent {
    /// Parses a `traceparent` header value; `None` when it is not a valid version-00 one.
    pub fn parse(text: &[u8]) -> Option<TraceParent> {
        // `00-` trace id `-` span id `-` flags: 2 + 1 + 32 + 1 + 16 + 1 + 2.
        if text.len() != 55 || !text.starts_with(b"00-") || text[35] != b'-' || text[52] != b'-' {
            return None;
        }
        let mut trace_id = [0u8; 16];
        hex(&text[3..35], &mut trace_id)?;
        let mut span_id = [0u8; 8];
        hex(&text[36..52], &mut span_id)?;
        let mut flags = [0u8; 1];
        hex(&text[53..55], &mut flags)?;
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(TraceParent {
            trace_id,
            span_id,
            flags: flags[0],
        })
    }

    /// Whether the caller records this trace (flag bit 0).
    pub fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }

    /// The same trace and flags under another span (ours).
    pub fn with_span(self, span_id: [u8; 8]) -> TraceParent {
        TraceParent { span_id, ..self }
    }
}

/// The header value, `00-<trace id>-<span id>-<flags>`.
impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("00-")?;
        for b in self.trace_id {
            write!(f, "{b:02x}")?;
        }
        f.write_str("-")?;
        for b in self.span_id {
            write!(f, "{b:02x}")?;
        }
        write!(f, "-{:02x}", self.flags)
    }
}

/// Lowercase hex digits into `out` (two per byte); `None` on anything else.
fn hex(digits: &[u8], out: &mut [u8]) -> Option<()> {
    fn nibble(d: u8) -> Option<u8> {
        match d {
            b'0'..=b'9' => Some(d - b'0'),
            b'a'..=b'f' => Some(d - b'a' + 10),
            _ => None,
        }
    }
    if digits.len() != out.len() * 2 {
        return None;
    }
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_header_round_trips() {
        let tp = TraceParent::parse(VALID.as_bytes()).expect("valid");
        assert_eq!(tp.trace_id[0], 0x4b);
        assert_eq!(tp.span_id[7], 0xb7);
        assert!(tp.sampled());
        assert_eq!(tp.to_string(), VALID);
        let child = tp.with_span([1; 8]);
        assert_eq!(
            child.to_string(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0101010101010101-01"
        );
    }

    #[test]
    fn anything_but_a_strict_version_00_header_is_refused() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473é-00f067aa0ba902b-01",
        ] {
            assert_eq!(TraceParent::parse(bad.as_bytes()), None, "{bad}");
        }
    }
}
