//! `.enrich` end to end: a program runs in a [`Job`] whose lookups go to
//! real servers on 127.0.0.1 — an HTTP server inside the test, and Redis
//! from `scripts/brokers` (`VARPULIS_TEST_REDIS`; skipped with a message
//! when absent, unless `VARPULIS_REQUIRE_BROKERS=1`) — and through the
//! `varpulis` binary for replay files (`simulate --enrich-replay`,
//! `run --enrich-record`).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use varpulis::enrich::EnrichMode;
use varpulis::input::{InputFormat, Records};
use varpulis::job::{Job, JobOptions};
use varpulis::output::to_json;

/// An HTTP lookup server: `GET /accounts/KEY` answers
/// `{"tier": "t-KEY", "region": "eu"}`, except `slow` (after 2 s), `wNN`
/// (after NN ms), `boom` (500) and `missing` (404). Counts requests per key.
struct Server {
    port: u16,
    hits: Arc<Mutex<HashMap<String, usize>>>,
    /// Requests in flight now, and the most there ever were.
    inflight: Arc<Mutex<(usize, usize)>>,
}

impl Server {
    fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let hits: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let inflight: Arc<Mutex<(usize, usize)>> = Arc::default();
        let (h, f) = (hits.clone(), inflight.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (h, f) = (h.clone(), f.clone());
                std::thread::spawn(move || {
                    {
                        let mut n = f.lock().expect("lock");
                        n.0 += 1;
                        n.1 = n.1.max(n.0);
                    }
                    serve(stream, &h);
                    f.lock().expect("lock").0 -= 1;
                });
            }
        });
        Server {
            port,
            hits,
            inflight,
        }
    }

    fn hits(&self, key: &str) -> usize {
        self.hits
            .lock()
            .expect("lock")
            .get(key)
            .copied()
            .unwrap_or(0)
    }
}

fn serve(stream: TcpStream, hits: &Mutex<HashMap<String, usize>>) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    // Skip the headers.
    loop {
        let mut h = String::new();
        match reader.read_line(&mut h) {
            Ok(0) | Err(_) => break,
            Ok(_) if h == "\r\n" => break,
            Ok(_) => {}
        }
    }
    let path = line.split_whitespace().nth(1).unwrap_or("");
    let key = path.strip_prefix("/accounts/").unwrap_or("").to_string();
    *hits.lock().expect("lock").entry(key.clone()).or_default() += 1;
    let (status, body) = match key.as_str() {
        "slow" => {
            std::thread::sleep(Duration::from_secs(2));
            ("200 OK", "{\"tier\":\"late\"}".to_string())
        }
        "boom" => ("500 Internal Server Error", "oops".to_string()),
        // `wNN`: answers after NN ms, so concurrent lookups finish out of order.
        k if k.starts_with('w') && k[1..].parse::<u64>().is_ok() => {
            let ms = k[1..].parse::<u64>().unwrap_or(0);
            std::thread::sleep(Duration::from_millis(ms));
            ("200 OK", format!("{{\"tier\":\"t-{k}\"}}"))
        }
        "missing" => ("404 Not Found", String::new()),
        k => (
            "200 OK",
            format!("{{\"tier\":\"t-{k}\",\"region\":\"eu\"}}"),
        ),
    };
    let mut s = stream;
    let _ = write!(
        s,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = s.flush();
    let mut rest = Vec::new();
    let _ = reader.read_to_end(&mut rest);
}

fn compile(text: &str) -> varpulis_program::Program {
    let mut c = varpulis_compiler::Compiler::new();
    c.set_file("enrich.vpl", text);
    c.program("enrich.vpl").unwrap_or_else(|d| panic!("{d:#?}"))
}

/// Runs `.evt` lines through `text` with `mode`; outputs as JSON objects,
/// and the job's messages.
fn run(
    text: &str,
    events: &str,
    mode: EnrichMode,
) -> (Vec<serde_json::Map<String, serde_json::Value>>, Vec<String>) {
    let options = JobOptions {
        sinks: false,
        enrich: mode,
        ..JobOptions::default()
    };
    let mut job = Job::new(compile(text), options).expect("job");
    let mut outputs = Vec::new();
    for rec in Records::new(events.as_bytes(), InputFormat::Evt) {
        job.push_record(&rec, &mut outputs).expect("record");
    }
    job.finish(&mut outputs).expect("finish");
    let messages = job.take_messages();
    (outputs.iter().map(to_json).collect(), messages)
}

fn live() -> EnrichMode {
    EnrichMode::Live { record: None }
}

fn program(url: &str, args: &str) -> String {
    format!(
        "event Payment:\n    account: str\n    amount: float\n\n\
         connector Accounts = http (url: \"{url}\")\n\n\
         stream Enriched = Payment\n    .enrich(Accounts, key: account, fields: [tier, region]{args})\n    .emit()\n"
    )
}

fn field<'a>(o: &'a serde_json::Map<String, serde_json::Value>, f: &str) -> &'a serde_json::Value {
    o.get(f).unwrap_or(&serde_json::Value::Null)
}

#[test]
fn http_lookups_add_the_fields_in_input_order() {
    let server = Server::start();
    let url = format!("http://127.0.0.1:{}/accounts/{{key}}", server.port);
    let mut events = String::new();
    for i in 0..30 {
        events.push_str(&format!(
            "@{i}s Payment {{ account: \"a{}\", amount: {i}.0 }}\n",
            i % 7
        ));
    }
    let (out, _) = run(&program(&url, ""), &events, live());
    assert_eq!(out.len(), 30);
    for (i, o) in out.iter().enumerate() {
        assert_eq!(field(o, "amount"), &serde_json::json!(i as f64), "order");
        assert_eq!(
            field(o, "tier"),
            &serde_json::json!(format!("t-a{}", i % 7))
        );
        assert_eq!(field(o, "region"), &serde_json::json!("eu"));
        assert_eq!(field(o, "enrich_status"), &serde_json::json!("ok"));
        assert!(field(o, "enrich_latency_ms").is_u64());
    }
}

#[test]
fn a_batch_looked_up_concurrently_keeps_its_input_order() {
    let server = Server::start();
    let url = format!("http://127.0.0.1:{}/accounts/{{key}}", server.port);
    // One window closing releases eight events at once; the first key answers last.
    let text = format!(
        "event Payment:\n    account: str\n    amount: float\n\n\
         connector Accounts = http (url: \"{url}\")\n\n\
         stream Batched = Payment\n    .window(1m)\n    .enrich(Accounts, key: account, fields: [tier])\n    .emit()\n"
    );
    let mut events = String::new();
    for i in 0..8 {
        events.push_str(&format!(
            "@{i}s Payment {{ account: \"w{}\", amount: {i}.0 }}\n",
            (8 - i) * 40
        ));
    }
    let (out, _) = run(&text, &events, live());
    let keys: Vec<String> = out
        .iter()
        .map(|o| o["tier"].as_str().unwrap_or("?").to_string())
        .collect();
    let want: Vec<String> = (0..8).map(|i| format!("t-w{}", (8 - i) * 40)).collect();
    assert_eq!(keys, want, "input order");
    assert!(out.iter().all(|o| o["enrich_status"] == "ok"));
    let most = server.inflight.lock().expect("lock").1;
    assert!(
        most > 1,
        "the lookups of a batch run concurrently: at most {most} at once"
    );
}

#[test]
fn answers_within_cache_ttl_come_from_the_cache() {
    let server = Server::start();
    let url = format!("http://127.0.0.1:{}/accounts/{{key}}", server.port);
    let events = "@0s Payment { account: \"c1\", amount: 1.0 }\n\
                  @1s Payment { account: \"c1\", amount: 2.0 }\n\
                  @2s Payment { account: \"c1\", amount: 3.0 }\n";
    let (out, _) = run(&program(&url, ", cache_ttl: 1m"), events, live());
    let statuses: Vec<_> = out
        .iter()
        .map(|o| field(o, "enrich_status").clone())
        .collect();
    assert_eq!(statuses, ["ok", "cached", "cached"]);
    assert_eq!(field(&out[2], "tier"), &serde_json::json!("t-c1"));
    assert_eq!(server.hits("c1"), 1, "one request for three lookups");

    // Without cache_ttl every event asks again.
    let (out, _) = run(&program(&url, ""), events, live());
    assert!(out.iter().all(|o| field(o, "enrich_status") == "ok"));
    assert_eq!(server.hits("c1"), 4);
}

#[test]
fn a_slow_store_times_out_with_the_fallback() {
    let server = Server::start();
    let url = format!("http://127.0.0.1:{}/accounts/{{key}}", server.port);
    let events = "@0s Payment { account: \"slow\", amount: 1.0 }\n\
                  @1s Payment { account: \"a1\", amount: 2.0 }\n";
    let (out, _) = run(
        &program(&url, ", timeout: 200ms, fallback: \"unknown\""),
        events,
        live(),
    );
    assert_eq!(field(&out[0], "enrich_status"), "timeout");
    assert_eq!(field(&out[0], "tier"), "unknown");
    assert_eq!(field(&out[0], "region"), "unknown");
    assert!(field(&out[0], "enrich_latency_ms").as_u64() >= Some(200));
    assert_eq!(field(&out[1], "enrich_status"), "ok");
    assert_eq!(field(&out[1], "tier"), "t-a1");
}

#[test]
fn failures_and_unknown_keys_take_the_fallback() {
    let server = Server::start();
    let url = format!("http://127.0.0.1:{}/accounts/{{key}}", server.port);
    let events = "@0s Payment { account: \"boom\", amount: 1.0 }\n\
                  @1s Payment { account: \"missing\", amount: 2.0 }\n";
    let (out, messages) = run(&program(&url, ", fallback: \"none\""), events, live());
    assert_eq!(field(&out[0], "enrich_status"), "error");
    assert_eq!(field(&out[0], "tier"), "none");
    // The store answered that it holds no such key.
    assert_eq!(field(&out[1], "enrich_status"), "ok");
    assert_eq!(field(&out[1], "tier"), "none");
    assert!(
        messages.iter().any(|m| m.contains("`Accounts` failed")),
        "{messages:?}"
    );
    // No server at all: every lookup is an error, and the run goes on.
    let (out, _) = run(
        &program("http://127.0.0.1:1/accounts/{key}", ""),
        events,
        live(),
    );
    assert!(out.iter().all(|o| field(o, "enrich_status") == "error"));
    assert!(
        out.iter().all(|o| o.get("tier").is_none()),
        "no fallback: absent"
    );
}

#[test]
fn lookups_are_counted_in_the_metrics() {
    let server = Server::start();
    let url = format!("http://127.0.0.1:{}/accounts/{{key}}", server.port);
    let options = JobOptions {
        sinks: false,
        enrich: live(),
        ..JobOptions::default()
    };
    let text = program(&url, ", cache_ttl: 1m");
    let mut job = Job::new(compile(&text), options).expect("job");
    let mut outputs = Vec::new();
    let events = "@0s Payment { account: \"m1\", amount: 1.0 }\n\
                  @1s Payment { account: \"m1\", amount: 1.0 }\n\
                  @2s Payment { account: \"boom\", amount: 1.0 }\n";
    for rec in Records::new(events.as_bytes(), InputFormat::Evt) {
        job.push_record(&rec, &mut outputs).expect("record");
    }
    let m = job.enrich_metrics();
    let c = m.get("Accounts").expect("counted");
    assert_eq!(c.by_status.get("ok"), Some(&1));
    assert_eq!(c.by_status.get("cached"), Some(&1));
    assert_eq!(c.by_status.get("error"), Some(&1));
    assert_eq!(c.buckets.iter().sum::<u64>(), 3);
}

/// The Redis server of `scripts/brokers`, with the test's keys written.
fn redis() -> Option<String> {
    let addr = std::env::var("VARPULIS_TEST_REDIS")
        .ok()
        .filter(|a| TcpStream::connect(a).is_ok());
    if addr.is_none() {
        assert!(
            std::env::var("VARPULIS_REQUIRE_BROKERS").map_or(true, |v| v != "1"),
            "VARPULIS_TEST_REDIS is not set or not reachable"
        );
        eprintln!("skipped: no Redis server (eval \"$(scripts/brokers env)\")");
    }
    addr
}

/// Sends one command to Redis and returns the first line of the reply.
fn redis_cmd(addr: &str, parts: &[&str]) -> String {
    let mut s = TcpStream::connect(addr).expect("redis");
    let mut cmd = format!("*{}\r\n", parts.len());
    for p in parts {
        cmd.push_str(&format!("${}\r\n{p}\r\n", p.len()));
    }
    s.write_all(cmd.as_bytes()).expect("write");
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).expect("read");
    if let Some(n) = line
        .strip_prefix('$')
        .and_then(|n| n.trim().parse::<usize>().ok())
    {
        let mut b = vec![0; n + 2];
        r.read_exact(&mut b).expect("bulk");
        return String::from_utf8_lossy(&b[..n]).to_string();
    }
    line.trim().to_string()
}

/// `calls=N` of `cmdstat_NAME` in `INFO commandstats`.
fn redis_calls(addr: &str, name: &str) -> u64 {
    let info = redis_cmd(addr, &["INFO", "commandstats"]);
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("cmdstat_{name}:calls=")))
        .and_then(|r| r.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
fn redis_answers_a_batch_with_one_mget() {
    let Some(addr) = redis() else { return };
    let tag = format!("t{}", std::process::id());
    for i in 0..5 {
        redis_cmd(
            &addr,
            &[
                "SET",
                &format!("{tag}:user:u{i}"),
                &format!("{{\"tier\":\"gold{i}\"}}"),
            ],
        );
    }
    redis_cmd(&addr, &["HSET", &format!("{tag}:h:u1"), "tier", "silver"]);
    // Five partitions close their windows at one watermark: one batch.
    let text = format!(
        "event Login:\n    user: str\n\n\
         connector Users = redis (url: \"redis://{addr}\", key_template: \"{tag}:user:{{key}}\")\n\
         connector Hashes = redis (url: \"redis://{addr}/0\", key_template: \"{tag}:h:{{key}}\", format: \"hash\")\n\n\
         stream PerUser = Login\n    .partition_by(user)\n    .window(1m)\n    .aggregate(user: last(user), n: count())\n    \
         .enrich(Users, key: user, fields: [tier])\n    .emit()\n\n\
         stream Hashed = Login\n    .enrich(Hashes, key: user, fields: [tier], fallback: \"none\")\n    .emit()\n"
    );
    let mut events = String::new();
    for i in 0..5 {
        events.push_str(&format!("@{i}s Login {{ user: \"u{i}\" }}\n"));
    }
    let before = redis_calls(&addr, "mget");
    let (out, messages) = run(&text, &events, live());
    let per_user: Vec<_> = out.iter().filter(|o| o["stream"] == "PerUser").collect();
    assert_eq!(per_user.len(), 5, "{out:?} {messages:?}");
    for o in &per_user {
        let user = o["user"].as_str().expect("user");
        let i = user.trim_start_matches('u');
        assert_eq!(o["tier"], serde_json::json!(format!("gold{i}")));
        assert_eq!(o["enrich_status"], "ok");
    }
    assert_eq!(
        redis_calls(&addr, "mget") - before,
        1,
        "one MGET for five keys"
    );
    let hashed: Vec<_> = out.iter().filter(|o| o["stream"] == "Hashed").collect();
    assert_eq!(hashed[1]["tier"], "silver");
    assert_eq!(hashed[0]["tier"], "none", "no such hash");
    assert_eq!(hashed[0]["enrich_status"], "ok");

    // The server drops the pooled connections while they are idle: the next
    // lookup reconnects instead of failing.
    let one = format!(
        "event Login:\n    user: str\n\n\
         connector Users = redis (url: \"redis://{addr}\", key_template: \"{tag}:user:{{key}}\")\n\n\
         stream S = Login\n    .enrich(Users, key: user, fields: [tier])\n    .emit()\n"
    );
    let mut job = Job::new(
        compile(&one),
        JobOptions {
            sinks: false,
            enrich: live(),
            ..JobOptions::default()
        },
    )
    .expect("job");
    let mut out = Vec::new();
    let push = |job: &mut Job, out: &mut Vec<varpulis_vm::Output>, t: u32| {
        let line = format!("@{t}s Login {{ user: \"u1\" }}\n");
        for rec in Records::new(line.as_bytes(), InputFormat::Evt) {
            job.push_record(&rec, out).expect("record");
        }
    };
    push(&mut job, &mut out, 0);
    redis_cmd(
        &addr,
        &["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"],
    );
    push(&mut job, &mut out, 1);
    let out: Vec<_> = out.iter().map(to_json).collect();
    assert_eq!(out.len(), 2);
    assert!(out.iter().all(|o| o["enrich_status"] == "ok"), "{out:?}");
    assert_eq!(out[1]["tier"], "gold1");
}

fn bin() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_varpulis"))
}

#[test]
fn recorded_lookups_replay_the_same_output_in_simulate() {
    let server = Server::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("http://127.0.0.1:{}/accounts/{{key}}", server.port);
    let vpl = dir.path().join("p.vpl");
    std::fs::write(&vpl, program(&url, ", fallback: \"?\"")).expect("write");
    let evt = dir.path().join("p.evt");
    std::fs::write(
        &evt,
        "@0s Payment { account: \"r1\", amount: 1.0 }\n\
         @1s Payment { account: \"boom\", amount: 2.0 }\n\
         @2s Payment { account: \"r2\", amount: 3.0 }\n",
    )
    .expect("write");
    let record = dir.path().join("lookups.jsonl");
    let live = bin()
        .arg("run")
        .arg(&vpl)
        .arg("--input")
        .arg(&evt)
        .arg("--enrich-record")
        .arg(&record)
        .output()
        .expect("run");
    assert!(
        live.status.success(),
        "{}",
        String::from_utf8_lossy(&live.stderr)
    );
    let replay = |extra: &[&str]| {
        let out = bin()
            .arg("simulate")
            .arg(&vpl)
            .arg(&evt)
            .args(["--format", "jsonl"])
            .args(extra)
            .output()
            .expect("simulate");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let record_arg = record.display().to_string();
    let (first, _) = replay(&["--enrich-replay", &record_arg]);
    let (second, _) = replay(&["--enrich-replay", &record_arg]);
    assert_eq!(first, second, "replays are deterministic");
    assert_eq!(
        first,
        String::from_utf8_lossy(&live.stdout),
        "same as the live run"
    );
    assert!(first.contains("\"tier\":\"t-r1\""), "{first}");
    assert!(first.contains("\"enrich_status\":\"error\""), "{first}");

    // A key the file lacks fails, with a warning naming it.
    std::fs::write(&record, "").expect("truncate");
    let (out, err) = replay(&["--enrich-replay", &record_arg]);
    assert!(out.contains("\"tier\":\"?\""), "{out}");
    assert!(err.contains("no answer for key \"r1\""), "{err}");
    // No replay file at all: simulate never uses the network, and says so.
    let (out, err) = replay(&[]);
    assert!(out.contains("\"enrich_status\":\"error\""), "{out}");
    assert!(err.contains("--enrich-replay"), "{err}");
    assert_eq!(
        server.hits("r2"),
        1,
        "only the recording run asked the server"
    );
}

/// The PostgreSQL server of `scripts/brokers`, as a client.
fn postgres() -> Option<(String, postgres::Client)> {
    let url = std::env::var("VARPULIS_TEST_POSTGRES").ok();
    let client = url
        .as_deref()
        .and_then(|u| postgres::Client::connect(u, postgres::NoTls).ok());
    match (url, client) {
        (Some(u), Some(c)) => Some((u, c)),
        _ => {
            assert!(
                std::env::var("VARPULIS_REQUIRE_BROKERS").map_or(true, |v| v != "1"),
                "VARPULIS_TEST_POSTGRES is not set or not reachable"
            );
            eprintln!("skipped: no PostgreSQL server (eval \"$(scripts/brokers env)\")");
            None
        }
    }
}

#[test]
fn postgres_answers_a_batch_with_one_query() {
    let Some((url, mut db)) = postgres() else {
        return;
    };
    let t = format!("owners_{}", std::process::id());
    db.batch_execute(&format!(
        "DROP TABLE IF EXISTS {t}; DROP SEQUENCE IF EXISTS {t}_calls;\n\
         CREATE TABLE {t} (account text PRIMARY KEY, owner text, limit_eur int);\n\
         CREATE SEQUENCE {t}_calls;\n\
         INSERT INTO {t} VALUES ('u0', 'ann', 100), ('u1', 'bob', 200), ('u2', 'cy', 300),\n\
         ('u3', 'dee', 400);"
    ))
    .expect("create the table");
    // `(SELECT nextval(...))` runs once per query: the rows of one batch share its value.
    let text = format!(
        "event Login:\n    user: str\n\n\
         connector Owners = postgres (url: \"{url}\", table: \"{t}\", key_column: \"account\")\n\
         connector Batched = database (url: \"{url}\", key_column: \"account\", query: \"SELECT o.*, (SELECT nextval('{t}_calls')) AS batch FROM {t} o WHERE o.account = ANY($1)\")\n\n\
         stream Direct = Login\n    .enrich(Owners, key: user, fields: [owner, limit_eur], fallback: \"?\")\n    .emit()\n\n\
         stream PerUser = Login\n    .partition_by(user)\n    .window(1m)\n    .aggregate(user: last(user), n: count())\n    \
         .enrich(Batched, key: user, fields: [owner, batch])\n    .emit()\n"
    );
    let mut events = String::new();
    for i in 0..5 {
        events.push_str(&format!("@{i}s Login {{ user: \"u{i}\" }}\n"));
    }
    let (out, messages) = run(&text, &events, live());
    let direct: Vec<_> = out.iter().filter(|o| o["stream"] == "Direct").collect();
    assert_eq!(direct.len(), 5, "{out:?} {messages:?}");
    assert_eq!(direct[1]["owner"], "bob");
    assert_eq!(direct[1]["limit_eur"], 200);
    assert_eq!(direct[1]["enrich_status"], "ok");
    assert_eq!(direct[4]["owner"], "?", "no row for u4");
    assert_eq!(direct[4]["enrich_status"], "ok");
    let batched: Vec<_> = out.iter().filter(|o| o["stream"] == "PerUser").collect();
    assert_eq!(batched.len(), 5, "{out:?}");
    let batches: std::collections::BTreeSet<String> = batched
        .iter()
        .filter_map(|o| o.get("batch").map(|b| b.to_string()))
        .collect();
    assert_eq!(
        batches.len(),
        1,
        "one query for the whole batch: {batched:?}"
    );
    assert!(batched.iter().any(|o| o["owner"] == "dee"));

    // The server ends the pooled connections while they are idle: the next
    // lookup reconnects instead of failing.
    let one = format!(
        "event Login:\n    user: str\n\n\
         connector Owners = postgres (url: \"{url}\", table: \"{t}\", key_column: \"account\")\n\n\
         stream S = Login\n    .enrich(Owners, key: user, fields: [owner])\n    .emit()\n"
    );
    let mut job = Job::new(
        compile(&one),
        JobOptions {
            sinks: false,
            enrich: live(),
            ..JobOptions::default()
        },
    )
    .expect("job");
    let mut out = Vec::new();
    for (t, kill) in [(0, true), (1, false)] {
        let line = format!("@{t}s Login {{ user: \"u2\" }}\n");
        for rec in Records::new(line.as_bytes(), InputFormat::Evt) {
            job.push_record(&rec, &mut out).expect("record");
        }
        if kill {
            db.batch_execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE application_name = 'varpulis-enrich'",
            )
            .expect("terminate");
        }
    }
    let out: Vec<_> = out.iter().map(to_json).collect();
    assert_eq!(out.len(), 2);
    assert!(out.iter().all(|o| o["enrich_status"] == "ok"), "{out:?}");
    assert_eq!(out[1]["owner"], "cy");
    db.batch_execute(&format!("DROP TABLE {t}; DROP SEQUENCE {t}_calls;"))
        .expect("drop");
}

#[test]
fn rule_tests_replay_lookups_from_the_file_beside_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let vpl = "# given:\n# @0s Payment { account: \"a1\", amount: 1.0 }\n\
               # @1s Payment { account: \"a2\", amount: 2.0 }\n# end\n\
               # expect:\n\
               # {\"stream\": \"Scored\", \"account\": \"a1\", \"tier\": \"gold\", \"enrich_status\": \"ok\", \"enrich_latency_ms\": 4}\n\
               # {\"stream\": \"Scored\", \"account\": \"a2\", \"tier\": \"none\", \"enrich_status\": \"timeout\", \"enrich_latency_ms\": 500}\n\
               # end\n\
               event Payment:\n    account: str\n    amount: float\n\n\
               connector Accounts = http (url: \"http://127.0.0.1:1/{key}\")\n\n\
               stream Scored = Payment\n    .enrich(Accounts, key: account, fields: [tier], fallback: \"none\")\n    \
               .emit(account, tier, enrich_status, enrich_latency_ms)\n";
    std::fs::write(dir.path().join("scored.vpl"), vpl).expect("write");
    std::fs::write(
        dir.path().join("scored.enrich.jsonl"),
        "{\"connector\":\"Accounts\",\"key\":\"a1\",\"fields\":{\"tier\":\"gold\"},\"latency_ms\":4}\n\
         {\"connector\":\"Accounts\",\"key\":\"a2\",\"status\":\"timeout\",\"latency_ms\":500}\n",
    )
    .expect("write");
    let out = bin()
        .arg("test")
        .arg(dir.path())
        .args(["--color", "never"])
        .output()
        .expect("test");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn partition_parallel_runs_refuse_enrich() {
    let dir = tempfile::tempdir().expect("tempdir");
    let vpl = dir.path().join("p.vpl");
    std::fs::write(&vpl, program("http://127.0.0.1:1/{key}", "")).expect("write");
    let evt = dir.path().join("p.evt");
    std::fs::write(&evt, "@0s Payment { account: \"a\", amount: 1.0 }\n").expect("write");
    let out = bin()
        .arg("run")
        .arg(&vpl)
        .arg("--input")
        .arg(&evt)
        .args(["--workers", "2"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`.enrich` waits for its lookups on one engine thread"),
        "{err}"
    );
}
