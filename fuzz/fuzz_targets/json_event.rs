//! One JSON event of any shape, as sources deliver them: the one-pass reader (with and
//! without a topic's default type) and the reader over parsed JSON must agree on what is an
//! event and read the same one, and what they read is decoded and run through the fixture
//! program.
#![no_main]

use libfuzzer_sys::fuzz_target;
use varpulis_program::json::{parse_json_event, parse_json_event_or, raw_event_from_json};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let direct = parse_json_event(text);
    let _ = parse_json_event_or(text, Some("Reading"));
    if let Ok(tree) = serde_json::from_str::<serde_json::Value>(text) {
        let via_tree = raw_event_from_json(&tree);
        assert_eq!(
            direct.is_ok(),
            via_tree.is_ok(),
            "the two JSON readers disagree: {direct:?} vs {via_tree:?}"
        );
        // And on the event itself: the one-pass reader's scan of flat objects and its
        // own decimals read the same values as serde_json's tree.
        if let (Ok(a), Ok(b)) = (&direct, &via_tree) {
            assert_eq!(a, b, "the two JSON readers read different events");
        }
    }
    if let Ok(raw) = direct {
        let mut engine = varpulis_fuzz::engine();
        varpulis_fuzz::run(&mut engine, [(&raw, None)]);
    }
});
