//! `varpulis server` configuration: a TOML file, flags and the environment.
//!
//! Precedence, highest first: flags (`--listen`, `--state-dir`), the environment
//! (`VARPULIS_LISTEN`, `VARPULIS_STATE_DIR`, read by the flags), the file, defaults. Every
//! string value of the file may use `${ENV}` and `${file:/run/secrets/x}`; a bootstrap admin
//! key comes from `VARPULIS_ADMIN_KEY`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use serde::Deserialize;
use varpulis_http::{Keys, Limits, Role, TlsFiles};

/// The default address: loopback only, so a server started without thought is not exposed.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// The default state directory, relative to the working directory.
pub const DEFAULT_STATE_DIR: &str = "varpulis-state";

/// What the server runs with, resolved.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// `HOST:PORT` of the API, the status page and the metrics.
    pub listen: String,
    /// Where deployed pipelines and their checkpoints live.
    pub state_dir: PathBuf,
    /// TLS for the listener.
    pub tls: Option<TlsFiles>,
    /// API keys (hashed); empty means no authentication (loopback only).
    pub keys: Keys,
    /// Names of the keys, for the startup line.
    pub key_names: Vec<String>,
    /// Limits of the HTTP listener.
    pub limits: Limits,
    /// Time between checkpoints of every pipeline.
    pub checkpoint_interval: Duration,
    /// How long a checkpoint waits for the sinks to confirm their records.
    pub checkpoint_timeout: Duration,
    /// How far ahead of its arrival an event's timestamp may be (`None`: no limit).
    pub max_future_skew: Option<Duration>,
    /// Quiet time after which a pipeline's event time follows the wall clock.
    pub idle_timeout: Option<Duration>,
    /// The largest VPL program the API accepts, in bytes.
    pub max_program_bytes: usize,
    /// Consecutive checkpoint failures after which a pipeline counts as not ready (`/readyz`);
    /// 0 never.
    pub checkpoint_failures_unready: u64,
    /// The key bound (LRU) of every `.partition_by` feeding state that declares none
    /// (`[defaults] max_keys`).
    pub max_keys: Option<u64>,
    /// Pipelines deployed at start when not deployed yet.
    pub pipelines: Vec<BootPipeline>,
}

/// A pipeline named in the configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootPipeline {
    /// Its name.
    pub name: String,
    /// Its program file.
    pub file: PathBuf,
    /// Its connector settings (a TOML file with `[connectors.NAME]` tables), if any.
    pub config: Option<PathBuf>,
    /// Its engine workers (`workers = N`), if set.
    pub workers: Option<usize>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    state_dir: Option<PathBuf>,
    tls: Option<TlsSection>,
    #[serde(default)]
    api_keys: Vec<KeySection>,
    #[serde(default)]
    defaults: Defaults,
    #[serde(default)]
    limits: LimitsSection,
    #[serde(default)]
    pipelines: Vec<PipelineSection>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsSection {
    cert: PathBuf,
    key: PathBuf,
    client_ca: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeySection {
    name: String,
    role: String,
    hash: Option<String>,
    key: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Defaults {
    checkpoint_interval: Option<String>,
    checkpoint_timeout: Option<String>,
    max_future_skew: Option<String>,
    idle_timeout: Option<String>,
    max_program_bytes: Option<usize>,
    checkpoint_failures_unready: Option<u64>,
    max_keys: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LimitsSection {
    max_body: Option<u64>,
    max_connections: Option<usize>,
    header_timeout: Option<String>,
    body_timeout: Option<String>,
    idle_timeout: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PipelineSection {
    name: String,
    file: PathBuf,
    config: Option<PathBuf>,
    workers: Option<usize>,
}

/// Expands `${ENV}` and `${file:...}` in every string of `value`, naming the key on failure.
fn substitute_all(value: &mut toml::Value, path: &str) -> anyhow::Result<()> {
    match value {
        toml::Value::String(s) => {
            *s = varpulis_connectors::substitute(s).map_err(|e| anyhow::anyhow!("`{path}` {e}"))?;
        }
        toml::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                substitute_all(item, &format!("{path}[{i}]"))?;
            }
        }
        toml::Value::Table(table) => {
            for (k, v) in table.iter_mut() {
                let key = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                substitute_all(v, &key)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn duration(text: Option<&str>, key: &str, default: Duration) -> anyhow::Result<Duration> {
    match text {
        None => Ok(default),
        Some(t) => crate::duration::parse(t).map_err(|e| anyhow::anyhow!("`{key}`: {e}")),
    }
}

/// Reads the file, if any, and applies flags and the environment.
pub fn load(
    file: Option<&Path>,
    listen: Option<String>,
    state_dir: Option<PathBuf>,
    admin_key: Option<String>,
) -> anyhow::Result<ServerConfig> {
    let parsed: FileConfig = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the configuration `{}`", path.display()))?;
            let mut value: toml::Value = toml::from_str(&text)
                .with_context(|| format!("`{}` is not valid TOML", path.display()))?;
            substitute_all(&mut value, "").with_context(|| format!("in `{}`", path.display()))?;
            value
                .try_into_config()
                .with_context(|| format!("in `{}`", path.display()))?
        }
        None => FileConfig::default(),
    };
    let base = file
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let relative = |p: PathBuf| if p.is_relative() { base.join(p) } else { p };
    let mut keys = Keys::new();
    let mut key_names = Vec::new();
    for (i, k) in parsed.api_keys.iter().enumerate() {
        let role: Role = k
            .role
            .parse()
            .map_err(|e: String| anyhow::anyhow!("api_keys[{i}] (`{}`): {e}", k.name))?;
        match (&k.hash, &k.key) {
            (Some(hash), None) => keys
                .add_hash(&k.name, hash, role)
                .map_err(|e| anyhow::anyhow!("api_keys[{i}] (`{}`): {e}", k.name))?,
            (None, Some(key)) if !key.is_empty() => keys.add_token(&k.name, key, role),
            _ => bail!(
                "api_keys[{i}] (`{}`): give exactly one of `hash` (sha256:..., from `varpulis server hash-key`) or `key` (e.g. \"${{file:/run/secrets/key}}\")",
                k.name
            ),
        }
        key_names.push(format!("{} ({})", k.name, role.as_str()));
    }
    if let Some(admin) = admin_key.filter(|k| !k.is_empty()) {
        keys.add_token("VARPULIS_ADMIN_KEY", &admin, Role::Admin);
        key_names.push("VARPULIS_ADMIN_KEY (admin)".into());
    }
    let defaults = Limits::default();
    let l = &parsed.limits;
    let limits = Limits {
        max_body: l.max_body.unwrap_or(defaults.max_body),
        max_connections: l.max_connections.unwrap_or(defaults.max_connections),
        header_timeout: duration(
            l.header_timeout.as_deref(),
            "limits.header_timeout",
            defaults.header_timeout,
        )?,
        body_timeout: duration(
            l.body_timeout.as_deref(),
            "limits.body_timeout",
            defaults.body_timeout,
        )?,
        idle_timeout: duration(
            l.idle_timeout.as_deref(),
            "limits.idle_timeout",
            defaults.idle_timeout,
        )?,
        ..defaults
    };
    let d = &parsed.defaults;
    let idle = duration(
        d.idle_timeout.as_deref(),
        "defaults.idle_timeout",
        Duration::from_secs(1),
    )?;
    Ok(ServerConfig {
        listen: listen
            .or(parsed.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.to_string()),
        state_dir: state_dir
            .or(parsed.state_dir.map(relative))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR)),
        tls: parsed.tls.map(|t| TlsFiles {
            cert: relative(t.cert),
            key: relative(t.key),
            client_ca: t.client_ca.map(relative),
        }),
        keys,
        key_names,
        limits,
        checkpoint_interval: duration(
            d.checkpoint_interval.as_deref(),
            "defaults.checkpoint_interval",
            Duration::from_secs(10),
        )?,
        checkpoint_timeout: duration(
            d.checkpoint_timeout.as_deref(),
            "defaults.checkpoint_timeout",
            Duration::from_secs(10),
        )?,
        max_future_skew: Some(duration(
            d.max_future_skew.as_deref(),
            "defaults.max_future_skew",
            Duration::from_secs(3600),
        )?)
        .filter(|d| !d.is_zero()),
        idle_timeout: (!idle.is_zero()).then_some(idle),
        max_program_bytes: d.max_program_bytes.unwrap_or(1 << 20),
        checkpoint_failures_unready: d.checkpoint_failures_unready.unwrap_or(3),
        max_keys: match d.max_keys {
            Some(0) => bail!("`defaults.max_keys` must be at least 1 (leave it out for no bound)"),
            n => n,
        },
        pipelines: parsed
            .pipelines
            .into_iter()
            .map(|p| BootPipeline {
                name: p.name,
                file: relative(p.file),
                config: p.config.map(relative),
                workers: p.workers,
            })
            .collect(),
    })
}

trait IntoConfig {
    fn try_into_config(self) -> anyhow::Result<FileConfig>;
}

impl IntoConfig for toml::Value {
    fn try_into_config(self) -> anyhow::Result<FileConfig> {
        Ok(self.try_into()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> anyhow::Result<ServerConfig> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("varpulis.toml");
        std::fs::write(&path, text).expect("write config");
        load(Some(&path), None, None, None)
    }

    #[test]
    fn files_flags_and_defaults_combine() {
        let c = load(None, None, None, None).expect("defaults");
        assert_eq!(c.listen, DEFAULT_LISTEN);
        assert!(c.keys.is_empty());
        let c = check("listen = \"0.0.0.0:9000\"\n[defaults]\ncheckpoint_interval = \"2s\"\n")
            .expect("config");
        assert_eq!(c.listen, "0.0.0.0:9000");
        assert_eq!(c.checkpoint_interval, Duration::from_secs(2));
        assert_eq!(c.max_keys, None);
        let c = check("[defaults]\nmax_keys = 100000\n").expect("config");
        assert_eq!(c.max_keys, Some(100_000));
        let e = check("[defaults]\nmax_keys = 0\n").expect_err("zero");
        assert!(format!("{e:#}").contains("defaults.max_keys"), "{e:#}");
        let c =
            check("[[pipelines]]\nname = \"p\"\nfile = \"p.vpl\"\nworkers = 4\n").expect("config");
        assert_eq!(c.pipelines[0].workers, Some(4));
        assert_eq!(c.pipelines[0].config, None);
        let c = load(None, Some("127.0.0.1:1".into()), None, Some("k".into())).expect("flags");
        assert_eq!(c.listen, "127.0.0.1:1");
        assert_eq!(c.keys.verify("k"), Some(Role::Admin));
    }

    #[test]
    fn keys_come_hashed_or_from_secrets() {
        let dir = tempfile::tempdir().expect("tempdir");
        let secret = dir.path().join("reader");
        std::fs::write(&secret, "read-me\n").expect("secret");
        let text = format!(
            "[[api_keys]]\nname = \"ops\"\nrole = \"admin\"\nhash = \"{}\"\n\n[[api_keys]]\nname = \"prom\"\nrole = \"read\"\nkey = \"${{file:{}}}\"\n",
            varpulis_http::hash_key("admin-me"),
            secret.display()
        );
        let c = check(&text).expect("config");
        assert_eq!(c.keys.verify("admin-me"), Some(Role::Admin));
        assert_eq!(c.keys.verify("read-me"), Some(Role::Read));
        assert_eq!(c.key_names, ["ops (admin)", "prom (read)"]);
    }

    #[test]
    fn mistakes_are_named() {
        let e = check("lisen = \"x\"\n").expect_err("unknown key");
        assert!(format!("{e:#}").contains("lisen"), "{e:#}");
        let e =
            check("[[api_keys]]\nname = \"a\"\nrole = \"root\"\nkey = \"x\"\n").expect_err("role");
        assert!(format!("{e:#}").contains("unknown role `root`"), "{e:#}");
        let e = check("[[api_keys]]\nname = \"a\"\nrole = \"read\"\n").expect_err("no key");
        assert!(format!("{e:#}").contains("exactly one of"), "{e:#}");
        let e = check("listen = \"${VARPULIS_SURELY_UNSET}\"\n").expect_err("env");
        assert!(format!("{e:#}").contains("`listen`"), "{e:#}");
        let e = check("[defaults]\ncheckpoint_interval = \"5\"\n").expect_err("duration");
        assert!(format!("{e:#}").contains("needs a unit"), "{e:#}");
    }
}
