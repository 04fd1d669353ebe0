//! A rough speed check (ignored by default; run with
//! `cargo test --release -p varpulis-syntax --test perf -- --ignored --nocapture`).
//! A 10,000-line program should lex and parse in well under 50 ms in
//! release mode. No timed assertion: machines differ.

#[test]
#[ignore]
fn ten_thousand_lines_parse_quickly() {
    let unit = include_str!("programs/sources.vpl");
    let mut text = String::new();
    let mut lines = 0;
    let mut k = 0;
    while lines < 10_000 {
        // Rename declarations so the program stays meaningful.
        text.push_str(&unit.replace("stream ", &format!("stream V{k}_")));
        text.push('\n');
        lines += unit.lines().count() + 1;
        k += 1;
    }
    let start = std::time::Instant::now();
    let runs = 20;
    for _ in 0..runs {
        let parse = varpulis_syntax::parse(&text);
        assert!(parse.errors.is_empty());
    }
    let per = start.elapsed() / runs;
    println!("{lines} lines, {} bytes: {per:?} per parse", text.len());
}
