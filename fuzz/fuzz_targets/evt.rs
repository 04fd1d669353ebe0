//! `.evt` text of any shape: the line reader (offsets, `BATCH`, quoted strings, nested
//! arrays up to `MAX_NESTING`), then each record decoded and run through the fixture program
//! like `varpulis simulate` does.
#![no_main]

use libfuzzer_sys::fuzz_target;
use varpulis_program::evt::parse_evt;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (records, _errors) = parse_evt(text);
    let mut engine = varpulis_fuzz::engine();
    varpulis_fuzz::run(
        &mut engine,
        records.iter().map(|r| (&r.event, Some(r.event_time(0)))),
    );
});
