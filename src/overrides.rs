//! Per-environment connector settings: `varpulis run rules.vpl --config prod.toml` (and a
//! server pipeline's `config`) override the parameters of a program's connectors by name, so
//! one rules file runs in dev and prod.
//!
//! ```toml
//! [connectors.Trades]            # `connector Trades = kafka (...)` in the program
//! brokers = ["kafka-1.prod:9092", "kafka-2.prod:9092"]
//! group_id = "varpulis-prod"
//!
//! [connectors.Alerts]
//! url = "https://alerts.prod.example.com/hook"
//! headers = ["Authorization: Bearer ${ALERT_TOKEN}"]
//! ```
//!
//! A table names a declared connector (`[sources.X]` and `[sinks.X]` are accepted as well);
//! each key replaces that parameter or adds it. `type`, if given, must be the connector's kind.
//! Strings keep their `${ENV}` references for the connector to expand; a string spelt as a
//! duration (`"5s"`) is a duration. Connectors check the result as they check the program's own
//! parameters, so a misspelt key is reported with its place.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use varpulis_program::{ConfigValue, Program};

/// Applies the overrides of the TOML file at `path` to `program`'s connectors.
pub fn apply_file(program: &mut Program, path: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the configuration `{}`", path.display()))?;
    let table: toml::Table =
        toml::from_str(&text).with_context(|| format!("`{}` is not valid TOML", path.display()))?;
    apply(program, &table).with_context(|| format!("in `{}`", path.display()))
}

/// Applies overrides given as a TOML table (the file's, or a server pipeline's).
pub fn apply(program: &mut Program, table: &toml::Table) -> anyhow::Result<()> {
    for (section, value) in table {
        if !matches!(section.as_str(), "connectors" | "sources" | "sinks") {
            bail!("unknown section `{section}`: connector settings go in `[connectors.NAME]`");
        }
        let toml::Value::Table(connectors) = value else {
            bail!("`{section}` must be a table of connectors, e.g. `[{section}.Trades]`");
        };
        for (name, settings) in connectors {
            let toml::Value::Table(settings) = settings else {
                bail!("`{section}.{name}` must be a table of parameters");
            };
            let Some(def) = program.connectors.iter_mut().find(|c| &*c.name == name) else {
                let known: Vec<&str> = program.connectors.iter().map(|c| &*c.name).collect();
                let hint = known
                    .iter()
                    .map(|k| (strsim::jaro_winkler(name, k), *k))
                    .filter(|(s, _)| *s >= 0.8)
                    .max_by(|a, b| a.0.total_cmp(&b.0))
                    .map_or_else(
                        || format!("the program declares: {}", known.join(", ")),
                        |(_, k)| format!("did you mean `{k}`?"),
                    );
                bail!("`{section}.{name}`: the program has no connector `{name}`; {hint}");
            };
            for (key, value) in settings {
                if key == "type" || key == "kind" {
                    match value.as_str() {
                        Some(kind) if kind == &*def.kind => continue,
                        _ => bail!(
                            "`{section}.{name}.{key}`: connector `{name}` is a `{}` connector; its kind cannot change here",
                            def.kind
                        ),
                    }
                }
                let converted =
                    config_value(value).with_context(|| format!("`{section}.{name}.{key}`"))?;
                match def.params.iter_mut().find(|(k, _)| &**k == key) {
                    Some((_, v)) => *v = converted,
                    None => def.params.push((Arc::from(key.as_str()), converted)),
                }
            }
        }
    }
    Ok(())
}

fn config_value(value: &toml::Value) -> anyhow::Result<ConfigValue> {
    Ok(match value {
        toml::Value::String(s) => match crate::duration::parse(s) {
            Ok(d) if s.trim() != "0" => {
                ConfigValue::Duration(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
            }
            _ => ConfigValue::Str(Arc::from(s.as_str())),
        },
        toml::Value::Integer(i) => ConfigValue::Int(*i),
        toml::Value::Float(f) => ConfigValue::Float(*f),
        toml::Value::Boolean(b) => ConfigValue::Bool(*b),
        toml::Value::Array(items) => ConfigValue::Array(
            items
                .iter()
                .map(config_value)
                .collect::<anyhow::Result<Vec<_>>>()?,
        ),
        toml::Value::Datetime(d) => ConfigValue::Str(Arc::from(d.to_string().as_str())),
        toml::Value::Table(_) => bail!("a table is not a connector parameter value"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use varpulis_program::ConnectorDef;

    fn program() -> Program {
        let mut p = Program::default();
        p.connectors.push(ConnectorDef {
            name: "Trades".into(),
            kind: "kafka".into(),
            params: vec![("topic".into(), ConfigValue::Str("trades".into()))],
            span: varpulis_program::SpanId::NONE,
        });
        p
    }

    fn check(text: &str) -> anyhow::Result<Program> {
        let mut p = program();
        let table: toml::Table = toml::from_str(text)?;
        apply(&mut p, &table)?;
        Ok(p)
    }

    #[test]
    fn parameters_are_replaced_and_added_by_connector_name() {
        let p = check(
            "[connectors.Trades]\ntopic = \"trades-prod\"\nbrokers = [\"a:9092\", \"b:9092\"]\nsession_timeout = \"6s\"\ntype = \"kafka\"\n",
        )
        .expect("overrides");
        let params = &p.connectors[0].params;
        assert_eq!(
            params[0],
            ("topic".into(), ConfigValue::Str("trades-prod".into()))
        );
        assert_eq!(
            params[1].1,
            ConfigValue::Array(vec![
                ConfigValue::Str("a:9092".into()),
                ConfigValue::Str("b:9092".into())
            ])
        );
        assert_eq!(params[2].1, ConfigValue::Duration(6_000_000_000));
    }

    #[test]
    fn unknown_connectors_sections_and_kind_changes_are_named() {
        let e = check("[connectors.Trade]\ntopic = \"x\"\n").expect_err("unknown");
        assert!(format!("{e:#}").contains("did you mean `Trades`?"), "{e:#}");
        let e = check("[connector.Trades]\n").expect_err("section");
        assert!(
            format!("{e:#}").contains("unknown section `connector`"),
            "{e:#}"
        );
        let e = check("[connectors.Trades]\ntype = \"mqtt\"\n").expect_err("kind");
        assert!(format!("{e:#}").contains("kind cannot change"), "{e:#}");
    }
}
