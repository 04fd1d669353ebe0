//! `varpulis server`: a long-running host for many pipelines (a pipeline is one VPL program
//! with its connectors and state), managed through a REST API with a status page, on the
//! process's one HTTP stack (docs/SERVER.md).
//!
//! Deployed pipelines persist in the state directory (`pipelines/<name>/pipeline.json`, their
//! checkpoints beside it) and come back after a restart from their checkpoints. A pipeline
//! that fails (a broken connector, a checkpoint of another program) is marked failed with its
//! reason; the others keep running.

pub mod api;
pub mod config;
mod metrics_merge;
pub mod openapi;
pub mod pipeline;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use varpulis_compiler::{render, Compiler, Severity};
use varpulis_http::{HttpConfig, Server as Listener};
use varpulis_program::Program;

pub use config::ServerConfig;
use pipeline::{Pipeline, RunSettings, State};

/// The longest pipeline name (it is a directory name).
const MAX_NAME: usize = 64;

/// What a pipeline's directory keeps besides its checkpoints.
#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    name: String,
    source: String,
    /// Per-pipeline connector settings (`[connectors.NAME]` as JSON), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    connectors: Option<Value>,
    /// Engine workers it runs on, when its deployment set them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    workers: Option<usize>,
    /// Seconds since the Unix epoch.
    deployed_at: u64,
}

/// A program the compiler refused, with its diagnostics as `varpulis check --format json`
/// prints them.
#[derive(Debug)]
pub struct Rejected {
    /// What is wrong, in one line.
    pub message: String,
    /// The diagnostics.
    pub diagnostics: Vec<Value>,
}

/// Checks `text` as the program of pipeline `name`: its diagnostics, and the program when
/// it has no errors. Imports are refused: a deployed program stands alone.
pub fn compile(name: &str, text: &str) -> (Vec<Value>, Option<Program>) {
    let file = format!("{name}.vpl");
    let mut compiler = Compiler::new();
    compiler.set_file(&file, text.to_string());
    let mut diags = compiler.check(&file);
    let imports = compiler.imports(&file);
    let mut values = render::json::to_values(&file, text, &diags);
    if !imports.is_empty() {
        values.push(serde_json::json!({
            "severity": "error",
            "message": format!(
                "a deployed pipeline cannot import files (it imports {}): put the declarations in its program",
                imports.join(", ")
            ),
            "file": file,
        }));
        return (values, None);
    }
    if diags.iter().any(|d| d.severity == Severity::Error) {
        return (values, None);
    }
    match compiler.program(&file) {
        Ok(program) => (values, Some(program)),
        Err(errors) => {
            diags = errors;
            (render::json::to_values(&file, text, &diags), None)
        }
    }
}

/// Whether `name` can name a pipeline: letters, digits, `_`, `-`, `.`, starting with a letter
/// or digit, at most 64 characters.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// The pipelines of a server and where they live.
pub struct Pipelines {
    state_dir: PathBuf,
    settings: ServerConfig,
    map: Mutex<BTreeMap<String, Pipeline>>,
}

/// Why a deployment was refused.
#[derive(Debug)]
pub enum DeployError {
    /// The name is not usable.
    BadName(String),
    /// A pipeline of that name exists.
    Exists(String),
    /// No pipeline of that name.
    Unknown(String),
    /// The program has errors.
    Rejected(Rejected),
    /// Its connector settings do not fit the program.
    BadSettings(String),
    /// Its directory could not be written.
    Io(anyhow::Error),
    /// The running pipeline could not switch now (a sink could not confirm its records, a
    /// slow checkpoint); the old program still runs. Retrying later may work.
    Unavailable(String),
}

/// The engine workers a pipeline runs on: its `workers` setting, else the program's
/// `.concurrent(workers: N)`; `None`: one engine, outputs in arrival order.
pub fn effective_workers(program: &Program, setting: Option<usize>) -> Option<usize> {
    setting.or(program.workers.map(|n| n as usize))
}

/// Compiles `source` and applies the connector settings and the server's default key bound
/// (`[defaults] max_keys`): the program to run. A program that cannot run on the pipeline's
/// workers is refused.
fn prepare(
    name: &str,
    source: &str,
    connectors: Option<&Value>,
    max_keys: Option<u64>,
    workers: Option<usize>,
) -> Result<Program, DeployError> {
    let (diagnostics, program) = compile(name, source);
    let Some(mut program) = program else {
        return Err(DeployError::Rejected(Rejected {
            message: format!("the program of `{name}` has errors"),
            diagnostics,
        }));
    };
    if let Some(settings) = connectors {
        let table: toml::Table = serde_json::from_value(settings.clone()).map_err(|e| {
            DeployError::BadSettings(format!(
                "`connectors` must be an object of connector settings ({{\"connectors\": {{\"NAME\": {{\"param\": value}}}}}}): {e}"
            ))
        })?;
        let wrapped: toml::Table = [("connectors".to_string(), toml::Value::Table(table))]
            .into_iter()
            .collect();
        crate::overrides::apply(&mut program, &wrapped)
            .map_err(|e| DeployError::BadSettings(format!("{e:#}")))?;
    }
    if let Some(n) = max_keys {
        crate::limits::default_max_keys(&mut program, n);
    }
    match effective_workers(&program, workers) {
        Some(n) if n == 0 || n > crate::parallel::MAX_WORKERS => {
            return Err(DeployError::BadSettings(format!(
                "`workers` must be between 1 and {}, got {n}",
                crate::parallel::MAX_WORKERS
            )))
        }
        Some(n) if n > 1 => {
            if let Err(r) = crate::parallel::plan(&program) {
                return Err(DeployError::BadSettings(format!(
                    "{} cannot run on {n} workers: {}; deploy it with \"workers\": 1",
                    r.what, r.why
                )));
            }
        }
        _ => {}
    }
    Ok(program)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn epoch_secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Pipelines {
    fn new(settings: &ServerConfig) -> Pipelines {
        Pipelines {
            state_dir: settings.state_dir.clone(),
            settings: settings.clone(),
            map: Mutex::new(BTreeMap::new()),
        }
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.state_dir.join("pipelines").join(name)
    }

    fn run_settings(&self, name: &str) -> RunSettings {
        RunSettings {
            state_dir: self.dir(name).join("state"),
            checkpoint_interval: self.settings.checkpoint_interval,
            checkpoint_timeout: self.settings.checkpoint_timeout,
            max_future_skew: self.settings.max_future_skew,
            idle_timeout: self.settings.idle_timeout,
            base_dir: std::env::current_dir().unwrap_or_default(),
        }
    }

    /// Names of the deployed pipelines.
    pub fn names(&self) -> Vec<String> {
        lock(&self.map).keys().cloned().collect()
    }

    /// Runs `f` on pipeline `name`, if deployed.
    pub fn with<R>(&self, name: &str, f: impl FnOnce(&Pipeline) -> R) -> Option<R> {
        lock(&self.map).get(name).map(f)
    }

    /// Runs `f` on every pipeline, in name order.
    pub fn each<R>(&self, mut f: impl FnMut(&Pipeline) -> R) -> Vec<R> {
        lock(&self.map).values().map(&mut f).collect()
    }

    /// The largest program accepted.
    pub fn max_program_bytes(&self) -> usize {
        self.settings.max_program_bytes
    }

    /// Compiles, stores and starts a new pipeline; `connectors` overrides its connectors'
    /// parameters (`{"NAME": {"param": value}}`); `workers` sets its engine workers (else
    /// the program's `.concurrent(workers: N)`, else one engine).
    pub fn deploy(
        &self,
        name: &str,
        source: &str,
        connectors: Option<&Value>,
        workers: Option<usize>,
    ) -> Result<(), DeployError> {
        if !valid_name(name) {
            return Err(DeployError::BadName(name.to_string()));
        }
        if lock(&self.map).contains_key(name) {
            return Err(DeployError::Exists(name.to_string()));
        }
        let program = prepare(name, source, connectors, self.settings.max_keys, workers)?;
        let deployed_at = SystemTime::now();
        self.store(name, source, connectors, workers, deployed_at)
            .map_err(DeployError::Io)?;
        let mut map = lock(&self.map);
        if map.contains_key(name) {
            return Err(DeployError::Exists(name.to_string()));
        }
        let mut pipeline = Pipeline::start(
            name,
            source.to_string(),
            deployed_at,
            program,
            workers,
            self.run_settings(name),
        );
        pipeline.connectors = connectors.cloned();
        map.insert(name.to_string(), pipeline);
        Ok(())
    }

    /// Replaces a pipeline's program. The running pipeline stops (its sources stop after a
    /// final checkpoint), and the new program starts on the same state: streams whose
    /// definition did not change keep their state, the others start empty. Replaying sources
    /// (files, Kafka) resume where the checkpoint left them. Returns the state report, stream
    /// by stream. Another number of workers restarts the pipeline, and its state, split by
    /// key among the old workers, is not kept.
    pub fn update(
        &self,
        name: &str,
        source: &str,
        connectors: Option<&Value>,
        workers: Option<usize>,
    ) -> Result<Value, DeployError> {
        let Some((kept, kept_workers)) = self.with(name, |p| (p.connectors.clone(), p.workers))
        else {
            return Err(DeployError::Unknown(name.to_string()));
        };
        // Without new settings the pipeline keeps the ones it was deployed with.
        let connectors = connectors.cloned().or(kept);
        let workers = workers.or(kept_workers);
        let program = match prepare(
            name,
            source,
            connectors.as_ref(),
            self.settings.max_keys,
            workers,
        ) {
            Ok(p) => p,
            Err(DeployError::Rejected(r)) => {
                return Err(DeployError::Rejected(Rejected {
                    message: format!("{}; the running one is unchanged", r.message),
                    diagnostics: r.diagnostics,
                }))
            }
            Err(e) => return Err(e),
        };
        // In place when the sources stay the same: they keep running, nothing is re-read.
        let old_stored = self.with(name, |p| {
            (p.source.clone(), p.connectors.clone(), p.deployed_at)
        });
        let Some((old_source, old_connectors, old_deployed_at)) = old_stored else {
            return Err(DeployError::Unknown(name.to_string()));
        };
        let restore_old = || {
            let _ = self.store(
                name,
                &old_source,
                old_connectors.as_ref(),
                kept_workers,
                old_deployed_at,
            );
        };
        let deployed_at = SystemTime::now();
        self.store(name, source, connectors.as_ref(), workers, deployed_at)
            .map_err(DeployError::Io)?;
        let streams: Vec<String> = program.streams.iter().map(|s| s.name.to_string()).collect();
        let in_place = {
            let map = lock(&self.map);
            match map.get(name) {
                // The map lock is held while the run switches (bounded by the checkpoint
                // timeout): no other request can stop or replace the pipeline meanwhile.
                Some(p) => p.update(program.clone(), effective_workers(&program, workers)),
                None => Err(pipeline::UpdateRefused::NotRunning),
            }
        };
        let restart_reason = match in_place {
            Ok(report) => {
                if let Some(p) = lock(&self.map).get_mut(name) {
                    p.source = source.to_string();
                    p.connectors = connectors.clone();
                    p.deployed_at = deployed_at;
                    p.streams = streams;
                    p.program = Some(program);
                    p.workers = workers;
                }
                return Ok(serde_json::json!({
                    "streams": report.streams,
                    "removed": report.removed,
                    "sources": "kept",
                }));
            }
            Err(pipeline::UpdateRefused::Failed(why)) => {
                restore_old();
                return Err(DeployError::Unavailable(why));
            }
            Err(pipeline::UpdateRefused::Busy) => {
                restore_old();
                return Err(DeployError::Unavailable(
                    "the pipeline did not take the update in time (a checkpoint is slow); the running program is unchanged, try again".to_string(),
                ));
            }
            Err(pipeline::UpdateRefused::Restart(why)) => why,
            Err(pipeline::UpdateRefused::NotRunning) => "it was not running".to_string(),
        };
        let Some(mut old) = lock(&self.map).remove(name) else {
            return Err(DeployError::Unknown(name.to_string()));
        };
        old.stop();
        let settings = self.run_settings(name);
        if crate::groups::is_partitioned(&program) {
            // Each partition's checkpoint is restored when the group assigns it (with the
            // same carry rules); nothing is opened here, so no member's lease is disturbed.
            let mut pipeline = Pipeline::start(
                name,
                source.to_string(),
                deployed_at,
                program.clone(),
                workers,
                settings,
            );
            pipeline.connectors = connectors;
            lock(&self.map).insert(name.to_string(), pipeline);
            return Ok(serde_json::json!({
                "streams": program.streams.iter().map(|s| serde_json::json!({
                    "name": s.name.to_string(),
                    "state": "per_partition",
                    "reason": "each partition's checkpoint is restored when the group assigns it; unchanged streams keep their state",
                })).collect::<Vec<_>>(),
                "removed": [],
                "sources": "restarted",
                "restart_reason": restart_reason,
            }));
        }
        let report = crate::checkpoint::Checkpointer::open(
            &settings.state_dir,
            settings.checkpoint_interval,
            Duration::from_secs(10),
        )
        .and_then(|c| c.preview(&program, effective_workers(&program, workers).unwrap_or(1)));
        let report = match report {
            Ok(Some(r)) => serde_json::json!({ "streams": r.streams, "removed": r.removed }),
            Ok(None) => serde_json::json!({
                "streams": program.streams.iter().map(|s| serde_json::json!({
                    "name": s.name.to_string(), "state": "empty", "reason": "no checkpoint yet",
                })).collect::<Vec<_>>(),
                "removed": [],
            }),
            Err(e) => serde_json::json!({ "error": format!("{e:#}") }),
        };
        let mut pipeline = Pipeline::start(
            name,
            source.to_string(),
            deployed_at,
            program,
            workers,
            settings,
        );
        pipeline.connectors = connectors;
        lock(&self.map).insert(name.to_string(), pipeline);
        let mut report = report;
        if let Some(r) = report.as_object_mut() {
            r.insert("sources".into(), Value::String("restarted".into()));
            r.insert("restart_reason".into(), Value::String(restart_reason));
        }
        Ok(report)
    }

    /// Stops and forgets a pipeline, with its state. A pipeline with per-partition state
    /// keeps its partitions' state: it is shared with the other servers of its group.
    pub fn delete(&self, name: &str) -> Result<(), DeployError> {
        let Some(mut pipeline) = lock(&self.map).remove(name) else {
            return Err(DeployError::Unknown(name.to_string()));
        };
        pipeline.stop();
        let shared = pipeline
            .program
            .as_ref()
            .is_some_and(crate::groups::is_partitioned);
        drop(pipeline);
        if shared {
            let stored = self.dir(name).join("pipeline.json");
            return std::fs::remove_file(&stored)
                .with_context(|| format!("cannot remove `{}`", stored.display()))
                .map_err(DeployError::Io);
        }
        std::fs::remove_dir_all(self.dir(name))
            .with_context(|| format!("cannot remove `{}`", self.dir(name).display()))
            .map_err(DeployError::Io)
    }

    fn store(
        &self,
        name: &str,
        source: &str,
        connectors: Option<&Value>,
        workers: Option<usize>,
        deployed_at: SystemTime,
    ) -> anyhow::Result<()> {
        let dir = self.dir(name);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create `{}`", dir.display()))?;
        let stored = Stored {
            name: name.to_string(),
            source: source.to_string(),
            connectors: connectors.cloned(),
            workers,
            deployed_at: epoch_secs(deployed_at),
        };
        let tmp = dir.join("pipeline.json.tmp");
        let text = serde_json::to_vec_pretty(&stored).context("encoding the pipeline")?;
        std::fs::write(&tmp, text).with_context(|| format!("cannot write `{}`", tmp.display()))?;
        let file = std::fs::File::open(&tmp)?;
        file.sync_all()?;
        std::fs::rename(&tmp, dir.join("pipeline.json"))
            .with_context(|| format!("cannot write `{}`", dir.join("pipeline.json").display()))
    }

    /// Starts every stored pipeline. One that cannot be read or compiled is kept as failed
    /// with its reason, so the API shows it.
    fn restore(&self) -> anyhow::Result<usize> {
        let root = self.state_dir.join("pipelines");
        std::fs::create_dir_all(&root)
            .with_context(|| format!("cannot create the state directory `{}`", root.display()))?;
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&root)
            .with_context(|| format!("cannot read `{}`", root.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.join("pipeline.json").is_file())
            .collect();
        entries.sort();
        let mut restored = 0;
        for dir in entries {
            let path = dir.join("pipeline.json");
            let stored: Stored = match std::fs::read(&path)
                .map_err(anyhow::Error::from)
                .and_then(|b| serde_json::from_slice(&b).map_err(anyhow::Error::from))
            {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("server: warning: skipping `{}`: {e}", path.display());
                    continue;
                }
            };
            let deployed_at = SystemTime::UNIX_EPOCH + Duration::from_secs(stored.deployed_at);
            let mut pipeline = match prepare(
                &stored.name,
                &stored.source,
                stored.connectors.as_ref(),
                self.settings.max_keys,
                stored.workers,
            ) {
                Ok(program) => Pipeline::start(
                    &stored.name,
                    stored.source.clone(),
                    deployed_at,
                    program,
                    stored.workers,
                    self.run_settings(&stored.name),
                ),
                Err(e) => Pipeline::failed(
                    &stored.name,
                    stored.source.clone(),
                    deployed_at,
                    format!(
                        "it cannot start with this version ({}); update it with PUT",
                        api::describe(&e)
                    ),
                ),
            };
            pipeline.connectors = stored.connectors.clone();
            pipeline.workers = stored.workers;
            lock(&self.map).insert(stored.name.clone(), pipeline);
            restored += 1;
        }
        Ok(restored)
    }

    fn stop_all(&self) {
        let pipelines: Vec<Pipeline> = std::mem::take(&mut *lock(&self.map))
            .into_values()
            .collect();
        // Stop them side by side: each waits for its sources and final checkpoint.
        std::thread::scope(|scope| {
            for mut p in pipelines {
                scope.spawn(move || p.stop());
            }
        });
    }

    /// The pipelines that are not running, with their state (empty: ready).
    pub fn ready(&self) -> Vec<(String, String)> {
        let limit = self.settings.checkpoint_failures_unready;
        self.each(|p| {
            let status = p.shared.status();
            let failing = status.detail["checkpoints"]["consecutive_failures"]
                .as_u64()
                .unwrap_or(0);
            (p.name.clone(), status.state, failing)
        })
        .into_iter()
        .filter_map(|(n, s, failing)| {
            if s != State::Running {
                Some((n, s.name().to_string()))
            } else if limit > 0 && failing >= limit {
                Some((
                    n,
                    format!("running, but its last {failing} checkpoints failed"),
                ))
            } else {
                None
            }
        })
        .collect()
    }
}

/// Starts the server and runs until Ctrl-C or SIGTERM.
pub fn run(config: ServerConfig) -> anyhow::Result<ExitCode> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::AcqRel) {
            eprintln!("server: interrupted twice: exiting without stopping pipelines");
            std::process::exit(130);
        }
    })
    .context("cannot install the Ctrl-C handler")?;
    std::fs::create_dir_all(&config.state_dir).with_context(|| {
        format!(
            "cannot create the state directory `{}`",
            config.state_dir.display()
        )
    })?;
    let pipelines = Arc::new(Pipelines::new(&config));
    let restored = pipelines.restore()?;
    for boot in &config.pipelines {
        if pipelines.with(&boot.name, |_| ()).is_some() {
            continue;
        }
        let source = std::fs::read_to_string(&boot.file).with_context(|| {
            format!(
                "pipeline `{}`: cannot read `{}`",
                boot.name,
                boot.file.display()
            )
        })?;
        let settings = match &boot.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| {
                    format!("pipeline `{}`: cannot read `{}`", boot.name, path.display())
                })?;
                let table: toml::Table = toml::from_str(&text)
                    .with_context(|| format!("`{}` is not valid TOML", path.display()))?;
                let connectors = table
                    .get("connectors")
                    .cloned()
                    .unwrap_or(toml::Value::Table(Default::default()));
                Some(serde_json::to_value(connectors).context("encoding connector settings")?)
            }
            None => None,
        };
        match pipelines.deploy(&boot.name, &source, settings.as_ref(), boot.workers) {
            Ok(()) => eprintln!(
                "server: deployed `{}` from `{}`",
                boot.name,
                boot.file.display()
            ),
            Err(e) => anyhow::bail!(
                "pipeline `{}` from `{}`: {}",
                boot.name,
                boot.file.display(),
                api::describe(&e)
            ),
        }
    }
    let mut http = HttpConfig::new("server", config.listen.clone());
    http.tls = config.tls.clone();
    http.limits = config.limits;
    http.keys = (!config.keys.is_empty()).then(|| config.keys.clone());
    http.public_paths = api::PUBLIC_PATHS.iter().map(|p| p.to_string()).collect();
    let state = Arc::new(api::AppState {
        pipelines: pipelines.clone(),
        started: Instant::now(),
        listener: Mutex::new(None),
    });
    let mut listener = Listener::start(http, api::router(state.clone()))?;
    eprintln!(
        "server: listening on {} (API {}/api/v1, status page {}/), state in `{}`, {} pipelines restored",
        listener.url(),
        listener.url(),
        listener.url(),
        config.state_dir.display(),
        restored
    );
    if config.key_names.is_empty() {
        eprintln!("server: no API keys: every request is allowed (loopback only)");
    } else {
        eprintln!("server: API keys: {}", config.key_names.join(", "));
    }
    *lock(&state.listener) = Some(listener.stats_handle());
    while !stop.load(Ordering::Acquire) {
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("server: stopping");
    listener.shutdown();
    pipelines.stop_all();
    eprintln!("server: stopped");
    Ok(ExitCode::SUCCESS)
}
