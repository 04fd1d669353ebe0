//! End to end: starts the real server binary and speaks JSON-RPC to it over
//! stdio as an editor does, snapshotting every answer.
//!
//! Every wait is bounded: a reader thread turns the server's stdout into
//! messages on a channel, and each expectation waits at most a few seconds.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The bound of every wait: generous, since the tests that hold a check
/// open wait for that check too, on a machine shared with other builds.
const WAIT: Duration = Duration::from_secs(30);
const MAIN: &str = "file:///workspace/alerts.vpl";
const SCRATCH: &str = "file:///workspace/scratch.vpl";

/// The program an editor opens: `tmp` is a typo for `temp`. The `"zoné"`
/// string puts a non-ASCII character before `avg_temp` on its line, so the
/// positions after it test UTF-16 columns.
const PROGRAM: &str = "# Zone temperature alerts
connector Alerts = console ()

const THRESHOLD = 25.0

event Reading:
    zone: str
    sensor: str
    temp: float

stream ZoneAverage = Reading
    .partition_by(zone)
    .window(5m)
    .aggregate(avg_temp: avg(tmp), readings: count())
    .emit(zone: zone, label: \"zoné\", avg_temp: avg_temp, readings: readings)

stream HotZone = ZoneAverage
    .where(avg_temp > THRESHOLD)
    .emit(zone: zone, avg_temp: avg_temp)
    .to(Alerts)
";

const SCRATCH_TEXT: &str = "event Reading:
    zone: str
    temp: float

stream S = Reading
    .where(temp > 1)
    .

stream T = Reading
    .where(";

struct Server {
    child: Child,
    stdin: Option<ChildStdin>,
    rx: Receiver<Value>,
    next_id: i64,
    /// Notifications received while waiting for a response.
    pending: Vec<Value>,
}

fn read_message(r: &mut impl BufRead) -> Option<Value> {
    let mut len = None;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some(v) = line.strip_prefix("Content-Length: ") {
            len = v.parse::<usize>().ok();
        }
    }
    let mut body = vec![0; len?];
    r.read_exact(&mut body).ok()?;
    serde_json::from_slice(&body).ok()
}

impl Server {
    fn start() -> Server {
        Server::start_with(&[])
    }

    fn start_with(args: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_varpulis-lsp"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the server binary starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            while let Some(msg) = read_message(&mut r) {
                if tx.send(msg).is_err() {
                    break;
                }
            }
        });
        Server {
            stdin: child.stdin.take(),
            child,
            rx,
            next_id: 1,
            pending: Vec::new(),
        }
    }

    fn send(&mut self, msg: &Value) {
        let body = msg.to_string();
        let stdin = self.stdin.as_mut().expect("stdin is open");
        write!(stdin, "Content-Length: {}\r\n\r\n{body}", body.len()).expect("server reads");
        stdin.flush().expect("server reads");
    }

    fn notify(&mut self, method: &str, params: Value) {
        self.send(&json!({"jsonrpc": "2.0", "method": method, "params": params}));
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(msg) if msg["id"] == json!(id) => return msg,
                Ok(msg) => self.pending.push(msg),
                Err(e) => panic!("no response to {method}: {e:?}"),
            }
        }
    }

    /// The next notification `method` for `uri`.
    fn notification(&mut self, method: &str, uri: &str) -> Value {
        if let Some(i) = self
            .pending
            .iter()
            .position(|m| m["method"] == method && m["params"]["uri"] == uri)
        {
            return self.pending.remove(i);
        }
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(m) if m["method"] == method && m["params"]["uri"] == uri => return m,
                Ok(m) => self.pending.push(m),
                Err(e) => panic!("no {method} for {uri}: {e:?}"),
            }
        }
    }

    /// The server's `varpulis/stats` counters.
    fn stats(&mut self) -> Value {
        let r = self.request("varpulis/stats", Value::Null);
        assert!(r.get("error").is_none(), "{r}");
        r["result"].clone()
    }

    /// Waits until the counter `name` of `varpulis/stats` reaches `value`
    /// (bounded by `WAIT`), and answers all the counters then.
    fn wait_for_stat(&mut self, name: &str, value: u64) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let stats = self.stats();
            if stats[name] == json!(value) {
                return stats;
            }
            assert!(
                Instant::now() < deadline,
                "{name} never reached {value}: {stats}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until a diagnostics run is computing.
    fn wait_for_running_check(&mut self) {
        self.wait_for_stat("running", 1);
    }

    /// Whether a `publishDiagnostics` for `uri` arrived while waiting for
    /// responses.
    fn saw_diagnostics(&self, uri: &str) -> bool {
        self.pending
            .iter()
            .any(|m| m["method"] == "textDocument/publishDiagnostics" && m["params"]["uri"] == uri)
    }

    fn initialize(&mut self) {
        let init = self.request(
            "initialize",
            json!({"processId": null, "rootUri": null, "capabilities": {}}),
        );
        assert!(init.get("error").is_none(), "{init}");
        self.notify("initialized", json!({}));
    }

    /// Every message arriving within `d`.
    fn drain(&mut self, d: Duration) -> Vec<Value> {
        let deadline = Instant::now() + d;
        let mut out = std::mem::take(&mut self.pending);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(m) => out.push(m),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return out,
            }
        }
    }

    /// Closes stdin (after `exit`) and waits for the process to end.
    fn finish(mut self) -> std::process::ExitStatus {
        drop(self.stdin.take());
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("process state") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the server did not exit after its stdin closed");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A failed test must not leave the server running.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The LSP position (UTF-16 column) of the `nth` occurrence of `needle`,
/// plus `delta` characters.
fn pos(text: &str, needle: &str, nth: usize, delta: usize) -> Value {
    let off = text
        .match_indices(needle)
        .nth(nth)
        .map(|(i, _)| i)
        .expect("needle in text");
    let before = &text[..off];
    let line = before.matches('\n').count();
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col: usize = text[line_start..off].chars().map(char::len_utf16).sum();
    json!({"line": line, "character": col + delta})
}

fn at(uri: &str, p: Value) -> Value {
    json!({"textDocument": {"uri": uri}, "position": p})
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).expect("JSON prints")
}

/// Completion answers are long, and the tables of operators and built-ins
/// grow: keep what identifies the first `n` candidates.
fn completion_summary(v: &Value, n: usize) -> String {
    v["result"]["items"]
        .as_array()
        .expect("a completion list")
        .iter()
        .take(n)
        .map(|i| {
            format!(
                "{} kind={} insert={}",
                i["label"].as_str().unwrap_or_default(),
                i["kind"],
                i["textEdit"]["newText"]
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn main_text_fixed() -> String {
    PROGRAM.replace("avg(tmp)", "avg(temp)")
}

#[test]
fn an_editor_session_over_stdio() {
    let mut s = Server::start();
    let init = s.request(
        "initialize",
        json!({"processId": null, "rootUri": null, "capabilities": {}}),
    );
    insta::assert_snapshot!("initialize", pretty(&init["result"]));
    s.notify("initialized", json!({}));

    // Open a program with an error: diagnostics are pushed at once.
    s.notify(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": MAIN, "languageId": "vpl", "version": 1, "text": PROGRAM}}),
    );
    let diags = s.notification("textDocument/publishDiagnostics", MAIN);
    insta::assert_snapshot!("diagnostics_open", pretty(&diags["params"]));
    let diag = diags["params"]["diagnostics"][0].clone();

    // The did-you-mean fix is offered as a quick fix.
    let actions = s.request(
        "textDocument/codeAction",
        json!({"textDocument": {"uri": MAIN}, "range": diag["range"], "context": {"diagnostics": [diag]}}),
    );
    insta::assert_snapshot!("code_action", pretty(&actions["result"]));

    // Fix it with an incremental edit: diagnostics become empty.
    let start = pos(PROGRAM, "tmp", 0, 0);
    let end = pos(PROGRAM, "tmp", 0, 3);
    s.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": MAIN, "version": 2},
               "contentChanges": [{"range": {"start": start, "end": end}, "text": "temp"}]}),
    );
    let diags = s.notification("textDocument/publishDiagnostics", MAIN);
    assert_eq!(diags["params"]["version"], 2);
    assert_eq!(diags["params"]["diagnostics"], json!([]));

    // Two quick edits: only the latest version is checked and published.
    s.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": MAIN, "version": 3},
               "contentChanges": [{"text": PROGRAM}]}),
    );
    let fixed = main_text_fixed();
    s.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": MAIN, "version": 4},
               "contentChanges": [{"text": fixed}]}),
    );
    let published: Vec<Value> = s
        .drain(Duration::from_millis(400))
        .into_iter()
        .filter(|m| m["method"] == "textDocument/publishDiagnostics")
        .map(|m| m["params"]["version"].clone())
        .collect();
    assert_eq!(
        published,
        [json!(4)],
        "stale versions must not be published"
    );

    let text = fixed.as_str();
    // Hover after a non-ASCII character: the range is in UTF-16 columns.
    let p = pos(text, "avg_temp, readings: readings", 0, 2);
    let hover = s.request("textDocument/hover", at(MAIN, p));
    insta::assert_snapshot!("hover_field_after_non_ascii", pretty(&hover["result"]));
    let expected = pos(text, "avg_temp, readings: readings", 0, 0);
    assert_eq!(hover["result"]["range"]["start"], expected);
    let hover = s.request("textDocument/hover", at(MAIN, pos(text, "avg(", 0, 1)));
    insta::assert_snapshot!("hover_aggregate", pretty(&hover["result"]));
    let hover = s.request(
        "textDocument/hover",
        at(MAIN, pos(text, "ZoneAverage\n", 0, 3)),
    );
    insta::assert_snapshot!("hover_stream", pretty(&hover["result"]));

    // Completion in a document being typed.
    s.notify(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": SCRATCH, "languageId": "vpl", "version": 1, "text": SCRATCH_TEXT}}),
    );
    let after_dot = s.request(
        "textDocument/completion",
        at(SCRATCH, pos(SCRATCH_TEXT, "    .\n", 0, 5)),
    );
    let all = completion_summary(&after_dot, usize::MAX);
    assert!(
        all.contains("aggregate kind=2") && all.contains("to kind=2"),
        "{all}"
    );
    insta::assert_snapshot!("completion_after_dot", completion_summary(&after_dot, 8));
    let in_where = s.request(
        "textDocument/completion",
        at(SCRATCH, pos(SCRATCH_TEXT, ".where(", 1, 7)),
    );
    let all = completion_summary(&in_where, usize::MAX);
    assert!(all.contains("\nand kind=14"), "{all}");
    insta::assert_snapshot!("completion_in_where", completion_summary(&in_where, 4));

    let sig = s.request(
        "textDocument/signatureHelp",
        at(MAIN, pos(text, "THRESHOLD)", 0, 0)),
    );
    insta::assert_snapshot!("signature_help", pretty(&sig["result"]));

    let def = s.request(
        "textDocument/definition",
        at(MAIN, pos(text, "Alerts)", 0, 1)),
    );
    insta::assert_snapshot!("definition", pretty(&def["result"]));

    let refs = s.request(
        "textDocument/references",
        json!({"textDocument": {"uri": MAIN}, "position": pos(text, "avg_temp", 0, 1),
               "context": {"includeDeclaration": true}}),
    );
    insta::assert_snapshot!("references", pretty(&refs["result"]));

    let prep = s.request(
        "textDocument/prepareRename",
        at(MAIN, pos(text, "ZoneAverage", 1, 0)),
    );
    insta::assert_snapshot!("prepare_rename", pretty(&prep["result"]));
    let rename = s.request(
        "textDocument/rename",
        json!({"textDocument": {"uri": MAIN}, "position": pos(text, "ZoneAverage", 1, 0), "newName": "ZoneMean"}),
    );
    insta::assert_snapshot!("rename", pretty(&rename["result"]));
    let bad = s.request(
        "textDocument/rename",
        json!({"textDocument": {"uri": MAIN}, "position": pos(text, "ZoneAverage", 1, 0), "newName": "not valid"}),
    );
    assert_eq!(bad["error"]["code"], -32602, "{bad}");

    let syms = s.request(
        "textDocument/documentSymbol",
        json!({"textDocument": {"uri": MAIN}}),
    );
    insta::assert_snapshot!("document_symbols", pretty(&syms["result"]));
    let ws = s.request("workspace/symbol", json!({"query": "zone"}));
    insta::assert_snapshot!("workspace_symbols", pretty(&ws["result"]));
    let tokens = s.request(
        "textDocument/semanticTokens/full",
        json!({"textDocument": {"uri": MAIN}}),
    );
    insta::assert_snapshot!(
        "semantic_tokens",
        decode_tokens(text, &tokens["result"]["data"])
    );
    let folds = s.request(
        "textDocument/foldingRange",
        json!({"textDocument": {"uri": MAIN}}),
    );
    insta::assert_snapshot!("folding_ranges", pretty(&folds["result"]));
    let fmt = s.request(
        "textDocument/formatting",
        json!({"textDocument": {"uri": MAIN}, "options": {"tabSize": 4, "insertSpaces": true}}),
    );
    assert!(fmt["result"].is_array(), "{fmt}");

    // Client mistakes are answered, never fatal.
    let unknown = s.request(
        "textDocument/hover",
        at("file:///nowhere.vpl", json!({"line": 0, "character": 0})),
    );
    assert_eq!(unknown["result"], Value::Null);
    for p in [
        json!({"line": 9999, "character": 0}),
        json!({"line": 3, "character": 9999}),
    ] {
        let r = s.request("textDocument/completion", at(MAIN, p.clone()));
        assert!(r.get("error").is_none(), "{r}");
        let r = s.request("textDocument/hover", at(MAIN, p));
        assert!(r.get("error").is_none(), "{r}");
    }

    let shutdown = s.request("shutdown", Value::Null);
    assert_eq!(shutdown["result"], Value::Null);
    s.notify("exit", Value::Null);
    let status = s.finish();
    assert!(status.success(), "{status:?}");
}

/// Semantic tokens decoded to `line:col text type mods`, one per line.
fn decode_tokens(text: &str, data: &Value) -> String {
    let lines: Vec<&str> = text.split('\n').collect();
    let types = [
        "struct",
        "variable",
        "function",
        "interface",
        "namespace",
        "type",
        "property",
        "parameter",
        "method",
        "keyword",
        "comment",
        "string",
        "number",
        "operator",
        "event",
    ];
    let nums: Vec<u64> = data
        .as_array()
        .expect("token data")
        .iter()
        .map(|v| v.as_u64().expect("a number"))
        .collect();
    let (mut line, mut col) = (0u64, 0u64);
    let mut out = Vec::new();
    for t in nums.chunks(5) {
        let [dl, dc, len, ty, mods] = t else {
            panic!("tokens come in fives")
        };
        line += dl;
        col = if *dl == 0 { col + dc } else { *dc };
        let l: Vec<u16> = lines[line as usize].encode_utf16().collect();
        let word = String::from_utf16_lossy(&l[col as usize..(col + len) as usize]);
        out.push(format!(
            "{line}:{col} {word:?} {} {mods}",
            types[*ty as usize]
        ));
    }
    out.join("\n")
}

/// A valid program of at least `lines` lines: blocks of an event type, an
/// aggregating stream and an alerting stream (as in the benchmark).
fn large_program(lines: usize) -> String {
    let mut s = String::from("connector Alerts = console ()\n\nconst THRESHOLD = 25.0\n\n");
    let mut i = 0;
    while s.lines().count() < lines {
        s.push_str(&format!(
            "event Reading{i}:\n    zone: str\n    temp: float\n\n\
             stream Avg{i} = Reading{i}\n    .where(temp > {i}.0)\n    .partition_by(zone)\n    \
             .window(5m)\n    .aggregate(avg_temp: avg(temp), readings: count())\n\n\
             stream Hot{i} = Avg{i}\n    .where(avg_temp > THRESHOLD)\n    .to(Alerts)\n\n"
        ));
        i += 1;
    }
    s
}

/// A check of a large file is held open (the test knob makes it last six
/// seconds): hover and completion on that file answer while it runs, before
/// its diagnostics are published.
#[test]
fn hover_and_completion_answer_while_a_check_runs() {
    const BIG: &str = "file:///workspace/big.vpl";
    let text = large_program(5_000);
    assert!(text.lines().count() >= 5_000);
    let mut s = Server::start_with(&["--test-check-delay-ms", "6000"]);
    s.initialize();
    s.notify(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": BIG, "languageId": "vpl", "version": 1, "text": text}}),
    );
    s.wait_for_running_check();

    let hover = s.request(
        "textDocument/hover",
        at(BIG, pos(&text, "temp > 130.0", 0, 1)),
    );
    assert!(
        hover["result"]["contents"]["value"]
            .as_str()
            .is_some_and(|v| v.contains("temp")),
        "{hover}"
    );
    let completion = s.request(
        "textDocument/completion",
        at(BIG, pos(&text, "temp > 130.0", 0, 0)),
    );
    let all = completion_summary(&completion, usize::MAX);
    assert!(all.contains("zone kind=5"), "{all}");
    assert!(
        !s.saw_diagnostics(BIG),
        "the answers must not wait for the check"
    );
    assert_eq!(s.stats()["running"], 1, "the check is still running");

    let diags = s.notification("textDocument/publishDiagnostics", BIG);
    assert_eq!(diags["params"]["version"], 1);
    assert_eq!(diags["params"]["diagnostics"], json!([]));
    // Counted once the notification is sent, so possibly after it arrived.
    let stats = s.wait_for_stat("published", 1);
    assert_eq!(stats["cancelled"], 0, "{stats}");
}

/// An edit while the check of the previous version runs cancels that check:
/// only the newest version's diagnostics are published.
#[test]
fn an_edit_cancels_the_running_check() {
    let mut s = Server::start_with(&["--test-check-delay-ms", "2000"]);
    s.initialize();
    s.notify(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": MAIN, "languageId": "vpl", "version": 1, "text": PROGRAM}}),
    );
    s.wait_for_running_check();
    s.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": MAIN, "version": 2},
               "contentChanges": [{"text": main_text_fixed()}]}),
    );
    // Had the check not stopped, it would have run its two seconds and been
    // counted as stale, not cancelled.
    let stats = s.wait_for_stat("cancelled", 1);
    assert_eq!(stats["published"], 0, "{stats}");
    assert_eq!(stats["stale"], 0, "{stats}");

    let diags = s.notification("textDocument/publishDiagnostics", MAIN);
    assert_eq!(diags["params"]["version"], 2);
    assert_eq!(diags["params"]["diagnostics"], json!([]));
    let later: Vec<Value> = s
        .drain(Duration::from_millis(300))
        .into_iter()
        .filter(|m| m["method"] == "textDocument/publishDiagnostics")
        .collect();
    assert_eq!(later, Vec::<Value>::new(), "nothing else is published");
    let stats = s.wait_for_stat("published", 1);
    assert_eq!(stats["cancelled"], 1, "{stats}");
    assert_eq!(stats["running"], 0, "{stats}");

    let shutdown = s.request("shutdown", Value::Null);
    assert_eq!(shutdown["result"], Value::Null);
    s.notify("exit", Value::Null);
    let status = s.finish();
    assert!(status.success(), "{status:?}");
}
