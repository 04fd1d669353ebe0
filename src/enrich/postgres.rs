//! `.enrich` over a `postgres` (or `database`) connector: one query per
//! batch. With `table` and `key_column` it reads every column of the rows
//! whose key column (as text) is one of the batch's keys; with `query` it
//! runs that query with the keys as `$1` (a text array) and reads
//! `key_column` (default `key`) from each row. Rows become JSON objects in
//! the database (`row_to_json`), so every column type maps to a field. A
//! key with no row is an answer without fields. Connections (no TLS) are
//! kept in a small pool (`application_name` `varpulis-enrich`) and dropped on
//! errors; a pooled one the server closed is replaced once.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use varpulis_program::ConnectorDef;

use super::cache::Answer;
use super::live::Backend;

/// A PostgreSQL lookup table.
pub struct PostgresBackend {
    config: postgres::Config,
    sql: String,
    key_column: String,
    timeout: Duration,
    idle: Mutex<Vec<postgres::Client>>,
}

impl PostgresBackend {
    /// The backend of connector `def`.
    pub fn new(def: &ConnectorDef, timeout: Duration) -> anyhow::Result<PostgresBackend> {
        let name = &def.name;
        let url = super::text_param(def, "url")?.ok_or_else(|| {
            anyhow::anyhow!(
                "connector `{name}`: `.enrich` needs `url: \"postgres://user@host/db\"`"
            )
        })?;
        let mut config = postgres::Config::from_str(&url)
            .map_err(|e| anyhow::anyhow!("connector `{name}`: `url`: {e}"))?;
        config.connect_timeout(timeout);
        if config.get_application_name().is_none() {
            // So `pg_stat_activity` shows whose connections these are.
            config.application_name("varpulis-enrich");
        }
        let key_column = super::text_param(def, "key_column")?.unwrap_or_else(|| "key".into());
        let sql = match (
            super::text_param(def, "query")?,
            super::text_param(def, "table")?,
        ) {
            (Some(q), _) => format!("SELECT row_to_json(q)::text FROM ({q}) AS q"),
            (None, Some(table)) => format!(
                "SELECT row_to_json(t)::text FROM {} AS t WHERE {}::text = ANY($1)",
                quote_path(&table),
                quote_ident(&key_column)
            ),
            (None, None) => anyhow::bail!(
                "connector `{name}`: `.enrich` needs `table:` and `key_column:`, or `query:`"
            ),
        };
        Ok(PostgresBackend {
            config,
            sql,
            key_column,
            timeout,
            idle: Mutex::new(Vec::new()),
        })
    }

    fn connect(&self) -> Result<postgres::Client, String> {
        let mut c = self
            .config
            .connect(postgres::NoTls)
            .map_err(|e| e.to_string())?;
        // The server gives up on a query the engine no longer waits for.
        let ms = self.timeout.as_millis().max(1);
        c.batch_execute(&format!("SET statement_timeout = {ms}"))
            .map_err(|e| e.to_string())?;
        Ok(c)
    }

    fn run(&self, keys: &[String]) -> Result<Vec<Answer>, String> {
        let pooled = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let (mut client, reused) = match pooled {
            Some(c) => (c, true),
            None => (self.connect()?, false),
        };
        let rows = match client.query(self.sql.as_str(), &[&keys]) {
            Ok(rows) => rows,
            // A pooled connection the server closed while idle: once more
            // on a fresh one.
            Err(_) if reused && client.is_closed() => {
                client = self.connect()?;
                client
                    .query(self.sql.as_str(), &[&keys])
                    .map_err(|e| e.to_string())?
            }
            Err(e) => return Err(e.to_string()),
        };
        let mut by_key: HashMap<String, Answer> = HashMap::new();
        for row in rows {
            let text: String = row.try_get(0).map_err(|e| e.to_string())?;
            let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
            let key = match json.get(&self.key_column) {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(serde_json::Value::Null) | None => {
                    return Err(format!("a row has no column `{}`", self.key_column))
                }
                Some(other) => other.to_string(),
            };
            // The first row of a key wins.
            if let std::collections::hash_map::Entry::Vacant(slot) = by_key.entry(key) {
                slot.insert(Some(super::object_fields(&json)?));
            }
        }
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(client);
        Ok(keys
            .iter()
            .map(|k| by_key.get(k).cloned().flatten())
            .collect())
    }
}

impl Backend for PostgresBackend {
    fn fetch(&self, keys: &[String]) -> Vec<Result<Answer, String>> {
        super::live::per_key(self.run(keys), keys)
    }

    fn batches(&self) -> bool {
        true
    }
}

/// `name` as a quoted SQL identifier.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `schema.table` with each part quoted.
fn quote_path(path: &str) -> String {
    path.split('.')
        .map(quote_ident)
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_path("crm.owners"), "\"crm\".\"owners\"");
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
    }
}
