//! Connector configuration as written in VPL, and typed access to its parameters.
//!
//! `connector Alerts = http (url: "https://...", retries: 5)` arrives here as a
//! [`ConnectorConfig`]; the CLI converts it from the compiled program so this crate does not
//! depend on the compiler. Each sink reads its parameters through `Params`, which checks value
//! kinds and, once the sink has read everything it knows, reports any parameter left over as
//! unknown, with a did-you-mean suggestion.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::ConfigError;

/// One connector declaration: `connector <name> = <kind> (<params>)`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectorConfig {
    /// The connector name (`Alerts`), used in errors and default file names.
    pub name: String,
    /// The connector kind (`file`, `http`, `console`, ...).
    pub kind: String,
    /// Parameters by name.
    pub params: BTreeMap<String, ConfigValue>,
}

impl ConnectorConfig {
    /// A configuration with no parameters.
    pub fn new(name: impl Into<String>, kind: impl Into<String>) -> Self {
        ConnectorConfig {
            name: name.into(),
            kind: kind.into(),
            params: BTreeMap::new(),
        }
    }

    /// Adds one parameter (builder style, handy in tests and the CLI).
    pub fn param(mut self, name: impl Into<String>, value: ConfigValue) -> Self {
        self.params.insert(name.into(), value);
        self
    }
}

/// A connector parameter value: VPL allows only literals, bare identifiers and arrays of those.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigValue {
    /// A string literal (body as written).
    Str(String),
    /// An integer literal.
    Int(i64),
    /// A float literal.
    Float(f64),
    /// `true` or `false`.
    Bool(bool),
    /// A duration literal, in nanoseconds.
    Duration(u64),
    /// A bare identifier.
    Ident(String),
    /// An array of config values.
    Array(Vec<ConfigValue>),
}

impl ConfigValue {
    /// How the value reads in an error message ("a string", "an integer", ...).
    pub fn kind_name(&self) -> &'static str {
        match self {
            ConfigValue::Str(_) => "a string",
            ConfigValue::Int(_) => "an integer",
            ConfigValue::Float(_) => "a float",
            ConfigValue::Bool(_) => "a boolean",
            ConfigValue::Duration(_) => "a duration",
            ConfigValue::Ident(_) => "an identifier",
            ConfigValue::Array(_) => "an array",
        }
    }
}

/// Typed, checked access to a connector's parameters.
///
/// Every getter marks the parameter as known; [`Params::finish`] then rejects the rest.
pub(crate) struct Params<'a> {
    config: &'a ConnectorConfig,
    /// `sink` or `source`, for error messages.
    role: &'static str,
    known: BTreeSet<&'static str>,
}

impl<'a> Params<'a> {
    /// Parameters of a connector used as a sink.
    pub(crate) fn new(config: &'a ConnectorConfig) -> Self {
        Params::for_role(config, "sink")
    }

    /// Parameters of a connector used as `role` (`sink` or `source`).
    pub(crate) fn for_role(config: &'a ConnectorConfig, role: &'static str) -> Self {
        Params {
            config,
            role,
            known: BTreeSet::new(),
        }
    }

    pub(crate) fn connector(&self) -> &'a str {
        &self.config.name
    }

    fn get(&mut self, name: &'static str) -> Option<&'a ConfigValue> {
        self.known.insert(name);
        self.config.params.get(name)
    }

    #[cfg(feature = "mqtt")]
    /// A parameter's value as written, for parameters that take several types (`protocol: 5`
    /// or `protocol: "3.1.1"`).
    pub(crate) fn value(&mut self, name: &'static str) -> Option<&'a ConfigValue> {
        self.get(name)
    }

    fn wrong_type(&self, name: &str, expected: &'static str, found: &ConfigValue) -> ConfigError {
        ConfigError::WrongType {
            connector: self.config.name.clone(),
            param: name.to_string(),
            expected,
            found: found.kind_name(),
        }
    }

    pub(crate) fn invalid(&self, name: &str, reason: impl Into<String>) -> ConfigError {
        ConfigError::InvalidValue {
            connector: self.config.name.clone(),
            param: name.to_string(),
            reason: reason.into(),
        }
    }

    /// A string parameter; bare identifiers are accepted too (`method: PUT`).
    pub(crate) fn string(&mut self, name: &'static str) -> Result<Option<&'a str>, ConfigError> {
        match self.get(name) {
            None => Ok(None),
            Some(ConfigValue::Str(s) | ConfigValue::Ident(s)) => Ok(Some(s)),
            Some(other) => Err(self.wrong_type(name, "a string", other)),
        }
    }

    pub(crate) fn required_string(
        &mut self,
        name: &'static str,
        help: &'static str,
    ) -> Result<&'a str, ConfigError> {
        self.string(name)?.ok_or_else(|| ConfigError::MissingParam {
            connector: self.config.name.clone(),
            param: name,
            help,
        })
    }

    pub(crate) fn bool(&mut self, name: &'static str, default: bool) -> Result<bool, ConfigError> {
        Ok(self.optional_bool(name)?.unwrap_or(default))
    }

    /// A boolean parameter, `None` when it is not given.
    pub(crate) fn optional_bool(
        &mut self,
        name: &'static str,
    ) -> Result<Option<bool>, ConfigError> {
        match self.get(name) {
            None => Ok(None),
            Some(ConfigValue::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(self.wrong_type(name, "`true` or `false`", other)),
        }
    }

    /// A non-negative integer no smaller than `min`.
    pub(crate) fn count(
        &mut self,
        name: &'static str,
        default: u64,
        min: u64,
    ) -> Result<u64, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(ConfigValue::Int(i)) => match u64::try_from(*i) {
                Ok(v) if v >= min => Ok(v),
                _ => Err(self.invalid(name, format!("must be at least {min}, found {i}"))),
            },
            Some(other) => Err(self.wrong_type(name, "an integer", other)),
        }
    }

    pub(crate) fn optional_count(
        &mut self,
        name: &'static str,
        min: u64,
    ) -> Result<Option<u64>, ConfigError> {
        if self.config.params.contains_key(name) {
            self.count(name, 0, min).map(Some)
        } else {
            self.known.insert(name);
            Ok(None)
        }
    }

    /// A duration literal such as `5s` or `250ms`.
    pub(crate) fn duration(
        &mut self,
        name: &'static str,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(ConfigValue::Duration(ns)) => Ok(Duration::from_nanos(*ns)),
            Some(other) => Err(self.wrong_type(name, "a duration such as `5s` or `250ms`", other)),
        }
    }

    /// An array of strings.
    pub(crate) fn strings(&mut self, name: &'static str) -> Result<Vec<&'a str>, ConfigError> {
        match self.get(name) {
            None => Ok(Vec::new()),
            Some(ConfigValue::Array(items)) => items
                .iter()
                .map(|item| match item {
                    ConfigValue::Str(s) => Ok(s.as_str()),
                    other => Err(self.wrong_type(name, "an array of strings", other)),
                })
                .collect(),
            Some(other) => Err(self.wrong_type(name, "an array of strings", other)),
        }
    }

    /// A string or an array of strings, as a list (empty when the parameter is absent).
    #[cfg(feature = "websocket")]
    pub(crate) fn string_or_strings(
        &mut self,
        name: &'static str,
    ) -> Result<Vec<&'a str>, ConfigError> {
        match self.config.params.get(name) {
            Some(ConfigValue::Array(_)) => self.strings(name),
            _ => Ok(self.string(name)?.into_iter().collect()),
        }
    }

    /// A file path, resolved against `base_dir` when relative.
    pub(crate) fn path(
        &mut self,
        name: &'static str,
        default: impl FnOnce() -> String,
        base_dir: &Path,
    ) -> Result<PathBuf, ConfigError> {
        let raw = match self.string(name)? {
            Some("") => return Err(self.invalid(name, "the path is empty")),
            Some(s) => s.to_string(),
            None => default(),
        };
        Ok(resolve(&raw, base_dir))
    }

    /// A path parameter without a default, resolved like [`Params::path`].
    pub(crate) fn optional_path(
        &mut self,
        name: &'static str,
        base_dir: &Path,
    ) -> Result<Option<PathBuf>, ConfigError> {
        match self.string(name)? {
            None => Ok(None),
            Some("") => Err(self.invalid(name, "the path is empty")),
            Some(s) => Ok(Some(resolve(s, base_dir))),
        }
    }

    /// Accepts `names` without reading them: parameters the connector's other role uses (a
    /// `kafka` connector read by `.from` and written by `.to` carries both roles' parameters).
    pub(crate) fn tolerate(&mut self, names: &[&'static str]) {
        self.known.extend(names.iter().copied());
    }

    /// Rejects parameters that no getter asked for, suggesting the closest known name.
    pub(crate) fn finish(self) -> Result<(), ConfigError> {
        for param in self.config.params.keys() {
            if !self.known.contains(param.as_str()) {
                return Err(ConfigError::UnknownParam {
                    connector: self.config.name.clone(),
                    role: self.role,
                    kind: self.config.kind.clone(),
                    param: param.clone(),
                    suggestion: closest(param, self.known.iter().copied()),
                });
            }
        }
        Ok(())
    }
}

/// `raw` relative to `base_dir`.
fn resolve(raw: &str, base_dir: &Path) -> PathBuf {
    // Relative to the working directory: keep the path as written, so messages quote it the
    // way the user wrote it.
    if base_dir.as_os_str().is_empty() || base_dir == Path::new(".") {
        return PathBuf::from(raw);
    }
    base_dir.join(raw)
}

/// The candidate closest to `word`, if it is close enough to be a plausible typo.
pub(crate) fn closest<'c>(word: &str, candidates: impl Iterator<Item = &'c str>) -> Option<String> {
    candidates
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c.to_string())
}

/// Why [`substitute`] could not expand a text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubstituteError {
    /// `${` without its `}`.
    #[error("unterminated `${{` in \"{0}\"")]
    Unterminated(String),
    /// `${NAME}` names an unset variable.
    #[error("uses `${{{0}}}` but the environment variable `{0}` is not set")]
    MissingVar(String),
    /// `${file:PATH}` names a file that cannot be read (or is over 1 MiB).
    #[error("uses `${{file:{path}}}` but the file cannot be read: {reason}")]
    File {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

/// The largest secret file `${file:...}` reads.
const MAX_SECRET_FILE: u64 = 1 << 20;

/// Expands `${NAME}` (an environment variable) and `${file:PATH}` (a file's content without
/// its trailing newline: Kubernetes and Docker secrets) in `text`. Nothing else is special:
/// `$x` stays as it is. Every expanded value is registered as a secret
/// ([`crate::redact::register_secret`]), so messages never show it.
pub fn substitute(text: &str) -> Result<String, SubstituteError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(SubstituteError::Unterminated(text.to_string()));
        };
        let reference = &after[..end];
        let value = if let Some(path) = reference.strip_prefix("file:") {
            read_secret(path)?
        } else {
            std::env::var(reference)
                .map_err(|_| SubstituteError::MissingVar(reference.to_string()))?
        };
        // Whatever came from the environment or a secret file is never printed again.
        crate::redact::register_secret(&value);
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn read_secret(path: &str) -> Result<String, SubstituteError> {
    use std::io::Read;
    let failed = |reason: String| SubstituteError::File {
        path: path.to_string(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(|e| failed(e.to_string()))?;
    let mut text = String::new();
    file.take(MAX_SECRET_FILE + 1)
        .read_to_string(&mut text)
        .map_err(|e| failed(e.to_string()))?;
    if text.len() as u64 > MAX_SECRET_FILE {
        return Err(failed("it is larger than 1 MiB".into()));
    }
    let trimmed = text.trim_end_matches(['\n', '\r']).len();
    text.truncate(trimmed);
    Ok(text)
}

/// [`substitute`] for a connector parameter: errors name the connector and the parameter.
pub(crate) fn expand_env(connector: &str, param: &str, text: &str) -> Result<String, ConfigError> {
    substitute(text).map_err(|e| match e {
        SubstituteError::MissingVar(var) => ConfigError::MissingEnvVar {
            connector: connector.to_string(),
            param: param.to_string(),
            var,
        },
        other => ConfigError::InvalidValue {
            connector: connector.to_string(),
            param: param.to_string(),
            reason: other.to_string(),
        },
    })
}

#[cfg(any(feature = "mqtt", feature = "websocket"))]
/// `idempotency_field`: the name of a field sinks without headers add to each record, holding
/// its idempotency key (`<pipeline>/<connector>:<seq>`), so receivers can drop replayed copies.
pub(crate) fn idempotency_field(p: &mut Params<'_>) -> Result<Option<String>, ConfigError> {
    match p.string("idempotency_field")? {
        None => Ok(None),
        Some(name) if name.trim().is_empty() => Err(p.invalid(
            "idempotency_field",
            "must name a field, such as \"_idempotency_key\"",
        )),
        Some(name) => Ok(Some(name.to_string())),
    }
}

#[cfg(any(feature = "mqtt", feature = "websocket"))]
/// `record` with its idempotency key in `field`, when both exist.
pub(crate) fn add_idempotency_field(record: crate::Record, field: Option<&str>) -> crate::Record {
    match (field, record.id().map(ToString::to_string)) {
        (Some(field), Some(id)) => record.with_field(field, &id),
        _ => record,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(params: &[(&str, ConfigValue)]) -> ConnectorConfig {
        params
            .iter()
            .fold(ConnectorConfig::new("Out", "file"), |c, (k, v)| {
                c.param(*k, v.clone())
            })
    }

    #[test]
    fn leftover_parameter_is_reported_with_suggestion() {
        let c = config(&[("pathh", ConfigValue::Str("x".into()))]);
        let mut p = Params::new(&c);
        assert_eq!(p.string("path").expect("absent is fine"), None);
        let err = p.finish().expect_err("pathh is unknown");
        assert_eq!(
            err.to_string(),
            "connector `Out`: unknown parameter `pathh` for a file sink; did you mean `path`?"
        );
    }

    #[test]
    fn duration_parameter_rejects_plain_integers() {
        let c = config(&[("timeout", ConfigValue::Int(5))]);
        let err = Params::new(&c)
            .duration("timeout", Duration::from_secs(1))
            .expect_err("int is not a duration");
        assert_eq!(
            err.to_string(),
            "connector `Out`: parameter `timeout` must be a duration such as `5s` or `250ms`, found an integer"
        );
    }

    #[test]
    fn negative_count_is_invalid() {
        let c = config(&[("retries", ConfigValue::Int(-1))]);
        let err = Params::new(&c)
            .count("retries", 3, 0)
            .expect_err("negative");
        assert!(err.to_string().contains("must be at least 0"), "{err}");
    }

    #[test]
    fn env_references_expand_and_missing_ones_are_named() {
        let path = std::env::var("PATH").unwrap_or_default();
        assert_eq!(
            expand_env("Hook", "headers", "a ${PATH} b $x").expect("PATH is set"),
            format!("a {path} b $x")
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let secret = dir.path().join("token");
        std::fs::write(&secret, "s3cret\n").expect("write secret");
        assert_eq!(
            expand_env(
                "Hook",
                "headers",
                &format!("Bearer ${{file:{}}}", secret.display())
            )
            .expect("file reference"),
            "Bearer s3cret"
        );
        let missing =
            expand_env("Hook", "headers", "${file:/surely/not/here}").expect_err("missing file");
        assert!(
            missing.to_string().contains("/surely/not/here"),
            "{missing}"
        );
        let err = expand_env(
            "Hook",
            "headers",
            "Bearer ${VARPULIS_TEST_SURELY_UNSET_VAR}",
        )
        .expect_err("unset");
        assert_eq!(
            err.to_string(),
            "connector `Hook`: parameter `headers` uses `${VARPULIS_TEST_SURELY_UNSET_VAR}` but the environment variable `VARPULIS_TEST_SURELY_UNSET_VAR` is not set"
        );
    }
}
