//! The Grafana dashboard (`deploy/grafana/varpulis.json`) queries only metrics the binary
//! exports: a live `varpulis run` (a followed file source, a file sink, a state directory, so
//! every family is present) is scraped, and every metric name in the dashboard's PromQL must be
//! one of its families. A renamed or removed metric fails here instead of leaving a panel
//! silently blank.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn dashboard() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/grafana/varpulis.json");
    let text = std::fs::read_to_string(&path).expect("read deploy/grafana/varpulis.json");
    serde_json::from_str(&text).expect("the dashboard is valid JSON")
}

/// Every PromQL text in the dashboard: panel targets and the variables' queries.
fn queries(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr", Value::String(s)) | ("definition", Value::String(s)) => {
                        out.push(s.clone())
                    }
                    ("query", Value::String(s)) if s.contains("varpulis_") => out.push(s.clone()),
                    _ => queries(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| queries(v, out)),
        _ => {}
    }
}

/// The metric names a PromQL text reads: every `varpulis_...` identifier.
fn metric_names(query: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = query;
    while let Some(at) = rest.find("varpulis_") {
        let boundary = rest[..at]
            .chars()
            .next_back()
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'));
        let len = rest[at..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(rest.len() - at);
        if boundary {
            names.push(rest[at..at + len].to_string());
        }
        rest = &rest[at + len..];
    }
    names
}

/// The metric families a scrape declares (`# TYPE name kind`).
fn exported(scrape: &str) -> BTreeSet<String> {
    scrape
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// `GET path` on 127.0.0.1:port; the status and body.
fn get(port: u16, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the metrics port");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("set a read timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .expect("send the request");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read the answer");
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, body.to_string())
}

/// A live run, killed when the test ends (its directory is a temporary one).
struct Live(Child);

impl Drop for Live {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `varpulis run` with a followed file source, a file sink and a state directory, and
/// returns it with the port of its metrics endpoint (read from its `metrics:` line).
fn start_run(dir: &Path) -> (Live, u16) {
    let input = dir.join("in.jsonl");
    std::fs::write(
        &input,
        "{\"event_type\":\"Reading\",\"zone\":\"a\",\"temp\":31.5}\nnot json\n",
    )
    .expect("write the input");
    let program = format!(
        "connector In = file (path: {in:?}, follow: true, poll: 50ms)\n\
         connector Out = file (path: {out:?})\n\n\
         event Reading:\n    zone: str\n    temp: float\n\n\
         stream Hot = Reading.from(In)\n    .where(temp > 30.0)\n    .emit(zone: zone, temp: temp)\n    .to(Out)\n",
        in = input.display().to_string(),
        out = dir.join("out.jsonl").display().to_string(),
    );
    let rules: PathBuf = dir.join("rules.vpl");
    std::fs::write(&rules, program).expect("write the program");
    let mut child = Command::new(env!("CARGO_BIN_EXE_varpulis"))
        .arg("run")
        .arg(&rules)
        .args(["--metrics", "127.0.0.1:0", "--state-dir"])
        .arg(dir.join("state"))
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start varpulis run");
    let stderr = child.stderr.take().expect("piped stderr");
    let live = Live(child);
    // Read stderr to its end on a thread: a closed pipe would make the run's next line fail.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let port = line
                .strip_prefix("metrics: http://127.0.0.1:")
                .and_then(|rest| rest.strip_suffix("/metrics"))
                .and_then(|port| port.parse::<u16>().ok());
            let _ = tx.send((line, port));
        }
    });
    let mut seen = Vec::new();
    while let Ok((line, port)) = rx.recv_timeout(Duration::from_secs(20)) {
        if let Some(port) = port {
            return (live, port);
        }
        seen.push(line);
    }
    panic!("the run did not start its metrics endpoint: {seen:#?}");
}

#[test]
fn every_metric_the_dashboard_queries_is_exported_by_a_live_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_run, port) = start_run(dir.path());
    // The endpoint serves the latest snapshot, refreshed every tick: wait for the first events.
    let deadline = Instant::now() + Duration::from_secs(20);
    let scrape = loop {
        let (status, body) = get(port, "/metrics");
        assert_eq!(status, 200, "{body}");
        if body.contains("varpulis_outputs_total{stream=\"Hot\"} 1\n") {
            break body;
        }
        assert!(Instant::now() < deadline, "no output counted yet:\n{body}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let families = exported(&scrape);
    assert!(
        families.len() > 30,
        "a scrape with sources, sinks and checkpoints: {families:#?}"
    );

    let mut texts = Vec::new();
    queries(&dashboard(), &mut texts);
    assert!(texts.len() > 30, "the dashboard's queries: {texts:#?}");
    let mut used = BTreeSet::new();
    let mut problems = Vec::new();
    for query in &texts {
        let names = metric_names(query);
        if names.is_empty() {
            problems.push(format!("reads no varpulis metric: {query}"));
        }
        for name in names {
            // A histogram's series (`_bucket`, `_sum`, `_count`) belong to its family.
            let name = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| {
                    name.strip_suffix(suffix)
                        .filter(|base| families.contains(*base))
                        .map(str::to_string)
                })
                .unwrap_or(name);
            if !families.contains(&name) {
                problems.push(format!("`{name}` is not exported (in `{query}`)"));
            }
            used.insert(name);
        }
    }
    assert!(
        problems.is_empty(),
        "{}\nexported: {families:#?}",
        problems.join("\n")
    );
    // Everything a run exports is on the dashboard, so a new metric gets a panel too.
    let unused: Vec<&String> = families.difference(&used).collect();
    assert!(unused.is_empty(), "exported but on no panel: {unused:?}");
}

#[test]
fn every_panel_query_filters_by_the_pipeline_variable() {
    // With the `pipeline` label (varpulis server) the variable selects pipelines; without it
    // (varpulis run) `pipeline=~".*"` matches the unlabelled series, so one dashboard serves both.
    let mut texts = Vec::new();
    queries(&dashboard(), &mut texts);
    for query in texts.iter().filter(|q| !q.starts_with("label_values")) {
        let names = metric_names(query);
        let filters = query.matches("{pipeline=~\"$pipeline\"}").count();
        assert_eq!(
            filters,
            names.len(),
            "each metric selector filters by $pipeline: {query}"
        );
    }
    let dash = dashboard();
    let pipeline = dash["templating"]["list"]
        .as_array()
        .and_then(|l| l.iter().find(|v| v["name"] == "pipeline"))
        .expect("a pipeline variable");
    assert_eq!(pipeline["allValue"], ".*");
    assert_eq!(pipeline["includeAll"], true);
}

#[test]
fn metric_names_are_read_from_promql() {
    assert_eq!(
        metric_names(
            "time() - max by (pipeline) (varpulis_watermark_seconds{pipeline=~\"$p\"}) + x_varpulis_y"
        ),
        vec!["varpulis_watermark_seconds"]
    );
    assert_eq!(
        metric_names("sum(rate(varpulis_a_total[1m])) / sum(varpulis_b)"),
        vec!["varpulis_a_total", "varpulis_b"]
    );
}
