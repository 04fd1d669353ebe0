//! Inputs that once made the parser loop forever. Each must parse (with
//! errors) within a bounded time; a hang fails the test instead of blocking
//! the suite.

use std::sync::mpsc;
use std::time::Duration;

fn parses_in_bounded_time(text: &'static str) {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let parse = varpulis_syntax::parse(text);
        let _ = tx.send(parse.errors.len());
    });
    match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(errors) => assert!(errors > 0, "the input is invalid and must report an error"),
        Err(_) => panic!("parse did not finish within 10 s: {text:?}"),
    }
}

#[test]
fn config_entry_without_colon_does_not_hang() {
    parses_in_bounded_time("config m {\n    port 1883,\n}\n");
}

#[test]
fn stray_closer_in_block_lambda_does_not_hang() {
    parses_in_bounded_time("let f = (v) => { let out = if v <) lo then 1 else 2\n out }\n");
}

#[test]
fn stray_closers_everywhere_do_not_hang() {
    parses_in_bounded_time(
        "fn f(x: int) -> int:\n    let y = { ) ] }\n    return y\nconfig c { ) a: 1, ]: 2 }\n",
    );
}
