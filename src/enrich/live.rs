//! Live `.enrich` lookups: a pool of worker threads asks the stores
//! concurrently, each lookup bounded by the site's `timeout`, with a bounded
//! LRU cache in front (`cache_ttl`). The engine thread waits for the answers
//! of one batch (never longer than the timeout), so outputs keep their
//! input order; an answer arriving after its deadline is dropped.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};
use varpulis_program::{Program, Value};
use varpulis_vm::enrich::{EnrichStatus, Enricher, Lookup, LookupRequest};

use super::cache::{Answer, Cache};
use super::key_text;
use super::record::Recorder;
use super::EnrichMetrics;

/// A store that answers lookups.
pub trait Backend: Send + Sync {
    /// Looks up `keys`; one result per key, in order (`Ok(None)`: the store
    /// holds no such key).
    fn fetch(&self, keys: &[String]) -> Vec<Result<Answer, String>>;

    /// Whether one request serves many keys (redis MGET, one SQL query)
    /// rather than one key per request (http).
    fn batches(&self) -> bool;
}

/// The answers of a store that answers a whole batch in one request: each
/// key's answer, or the request's error for every key.
pub fn per_key(batch: Result<Vec<Answer>, String>, keys: &[String]) -> Vec<Result<Answer, String>> {
    match batch {
        Ok(a) => a.into_iter().map(Ok).collect(),
        Err(e) => keys.iter().map(|_| Err(e.clone())).collect(),
    }
}

/// Default worker threads per connector.
pub const DEFAULT_WORKERS: usize = 8;
/// Default cache capacity per connector.
pub const DEFAULT_CACHE_SIZE: usize = 10_000;
/// Lookups waiting for a worker, per connector, beyond which new ones fail.
const QUEUE_PER_WORKER: usize = 64;

/// The answers of one unit of work, one per key.
type Answers = Vec<Result<Answer, String>>;

/// One unit of work: some keys of one connector, and where the answers go.
struct Job {
    keys: Vec<String>,
    reply: Sender<Answers>,
}

/// The workers of one connector.
struct Pool {
    jobs: Sender<Job>,
    backend: Arc<dyn Backend>,
    cache: Cache,
}

impl Pool {
    fn new(backend: Arc<dyn Backend>, workers: usize, cache_size: usize) -> Pool {
        let (tx, rx) = bounded::<Job>(workers * QUEUE_PER_WORKER);
        for _ in 0..workers.max(1) {
            let rx: Receiver<Job> = rx.clone();
            let backend = backend.clone();
            // The threads end when the pool (the only sender) is dropped.
            std::thread::spawn(move || {
                while let Ok(job) = rx.recv() {
                    let answers = backend.fetch(&job.keys);
                    let _ = job.reply.send(answers);
                }
            });
        }
        Pool {
            jobs: tx,
            backend,
            cache: Cache::new(cache_size),
        }
    }
}

/// The `run` enricher: real lookups.
pub struct LiveEnricher {
    pools: HashMap<u32, Pool>,
    metrics: Arc<EnrichMetrics>,
    recorder: Option<Arc<Mutex<Recorder>>>,
    /// Failures already reported, by connector and message (each is
    /// reported once; the metrics count every one).
    reported: std::collections::HashSet<(u32, String)>,
    warnings: Arc<Mutex<Vec<String>>>,
}

impl LiveEnricher {
    /// An enricher for the `.enrich` sites of `program`; a connector whose
    /// configuration is wrong is an error.
    pub fn new(
        program: &Program,
        metrics: Arc<EnrichMetrics>,
        recorder: Option<Arc<Mutex<Recorder>>>,
        warnings: Arc<Mutex<Vec<String>>>,
    ) -> anyhow::Result<LiveEnricher> {
        let mut pools = HashMap::new();
        for (id, timeout) in super::sites(program) {
            let Some(def) = program.connectors.get(id as usize) else {
                continue;
            };
            if pools.contains_key(&id) {
                continue;
            }
            let backend = super::backend(def, timeout)?;
            let workers =
                super::int_param(def, "workers").map_or(DEFAULT_WORKERS, |n| n.clamp(1, 256));
            let cache = super::int_param(def, "cache_size").unwrap_or(DEFAULT_CACHE_SIZE);
            pools.insert(id, Pool::new(backend, workers, cache));
        }
        Ok(LiveEnricher {
            pools,
            metrics,
            recorder,
            reported: std::collections::HashSet::new(),
            warnings,
        })
    }

    fn warn(&self, message: String) {
        let mut w = self.warnings.lock().unwrap_or_else(|e| e.into_inner());
        if w.len() < 100 {
            w.push(varpulis_connectors::redact::redact(&message));
        }
    }
}

impl Enricher for LiveEnricher {
    fn lookup(&mut self, request: &LookupRequest<'_>, keys: &[Value]) -> Vec<Lookup> {
        let start = Instant::now();
        let texts: Vec<String> = keys.iter().map(key_text).collect();
        let mut out: Vec<Option<Lookup>> = vec![None; keys.len()];
        let Some(pool) = self.pools.get_mut(&request.connector) else {
            if self.reported.insert((request.connector, String::new())) {
                self.warn(format!(
                    "warning: `.enrich` on connector `{}` has no lookup backend; lookups fail",
                    request.name
                ));
            }
            return keys
                .iter()
                .map(|_| Lookup::failed(EnrichStatus::Error, 0))
                .collect();
        };
        // Cache hits first.
        let ttl = request
            .cache_ttl
            .map(|ns| Duration::from_nanos(u64::try_from(ns).unwrap_or(0)));
        let mut misses: Vec<usize> = Vec::new();
        for (i, k) in texts.iter().enumerate() {
            match ttl.and_then(|t| pool.cache.get(request.connector, k, t, start)) {
                Some(answer) => {
                    out[i] = Some(Lookup {
                        fields: answer,
                        status: EnrichStatus::Cached,
                        latency_ms: 0,
                    });
                }
                None => misses.push(i),
            }
        }
        // The same key twice in a batch is asked once.
        let mut unique: Vec<String> = Vec::new();
        let mut index: HashMap<&str, usize> = HashMap::new();
        for &i in &misses {
            let k = texts[i].as_str();
            if !index.contains_key(k) {
                index.insert(k, unique.len());
                unique.push(k.to_string());
            }
        }
        let groups: Vec<Vec<usize>> = if pool.backend.batches() {
            if unique.is_empty() {
                Vec::new()
            } else {
                vec![(0..unique.len()).collect()]
            }
        } else {
            (0..unique.len()).map(|u| vec![u]).collect()
        };
        let timeout = Duration::from_nanos(u64::try_from(request.timeout).unwrap_or(0));
        let deadline = start + timeout;
        let mut pending: Vec<(Vec<usize>, Receiver<Answers>)> = Vec::new();
        let mut results: Vec<Option<(Result<Answer, String>, bool)>> = vec![None; unique.len()];
        for g in groups {
            let (reply, rx) = bounded(1);
            let job = Job {
                keys: g.iter().map(|&u| unique[u].clone()).collect(),
                reply,
            };
            match pool.jobs.try_send(job) {
                Ok(()) => pending.push((g, rx)),
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                    for u in g {
                        results[u] = Some((Err("too many lookups waiting".into()), false));
                    }
                }
            }
        }
        for (g, rx) in pending {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(answers) => {
                    // A store that gave up at the deadline (the client's
                    // own timeout) timed out rather than failed.
                    let late = Instant::now() >= deadline;
                    for (u, a) in g.into_iter().zip(answers) {
                        let timed_out = late && a.is_err();
                        results[u] = Some((a, timed_out));
                    }
                }
                Err(_) => {
                    for u in g {
                        results[u] = Some((Err("timed out".into()), true));
                    }
                }
            }
        }
        let latency = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
        let now = Instant::now();
        let mut first_error: Option<String> = None;
        for (u, k) in unique.iter().enumerate() {
            if let Some((Ok(answer), _)) = &results[u] {
                pool.cache.put(request.connector, k, answer.clone(), now);
            }
        }
        for &i in &misses {
            let u = index[texts[i].as_str()];
            let lookup = match &results[u] {
                Some((Ok(answer), _)) => Lookup {
                    fields: answer.clone(),
                    status: EnrichStatus::Ok,
                    latency_ms: latency,
                },
                Some((Err(_), true)) | None => Lookup::failed(EnrichStatus::Timeout, latency),
                Some((Err(e), false)) => {
                    first_error.get_or_insert_with(|| e.clone());
                    Lookup::failed(EnrichStatus::Error, latency)
                }
            };
            out[i] = Some(lookup);
        }
        if let Some(e) = first_error.filter(|e| {
            self.reported.len() < 100 && self.reported.insert((request.connector, e.clone()))
        }) {
            self.warn(format!(
                "warning: `.enrich` lookup on connector `{}` failed: {e}",
                request.name
            ));
        }
        let out: Vec<Lookup> = out
            .into_iter()
            .map(|l| l.unwrap_or_else(|| Lookup::failed(EnrichStatus::Error, 0)))
            .collect();
        for l in &out {
            self.metrics.count(request.name, l);
        }
        self.metrics.batches.fetch_add(1, Ordering::Relaxed);
        if let Some(r) = &self.recorder {
            let mut r = r.lock().unwrap_or_else(|e| e.into_inner());
            for (k, l) in keys.iter().zip(&out) {
                r.record(request.name, k, l);
            }
        }
        out
    }
}
