//! `.enrich` over an `http` connector: one GET per key on the connector's
//! `url` with `{key}` replaced by the key (percent-encoded), answered with a
//! JSON object whose members are the fields. 404 means the store holds no
//! such key; any other failure is an error.

use std::time::Duration;

use super::cache::Answer;
use super::live::Backend;
use varpulis_program::ConnectorDef;

/// Largest answer read, in bytes.
const MAX_BODY: u64 = 1 << 20;

/// An HTTP lookup endpoint.
pub struct HttpBackend {
    template: String,
    headers: Vec<(String, String)>,
    agent: ureq::Agent,
}

impl HttpBackend {
    /// The backend of connector `def`, whose `url` must contain `{key}`.
    pub fn new(def: &ConnectorDef, timeout: Duration) -> anyhow::Result<HttpBackend> {
        let template = super::text_param(def, "url")?.ok_or_else(|| {
            anyhow::anyhow!(
                "connector `{}`: `.enrich` needs `url: \"http://host/path/{{key}}\"`",
                def.name
            )
        })?;
        if !template.contains("{key}") {
            anyhow::bail!(
                "connector `{}`: its `url` has no `{{key}}` for `.enrich` to fill in",
                def.name
            );
        }
        let headers = super::header_params(def)?;
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .user_agent(format!("varpulis/{}", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Ok(HttpBackend {
            template,
            headers,
            agent,
        })
    }

    fn get(&self, key: &str) -> Result<Answer, String> {
        let url = self.template.replace("{key}", &percent_encode(key));
        let mut request = self.agent.get(&url);
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        let mut response = match request.call() {
            Ok(r) => r,
            Err(ureq::Error::StatusCode(404)) => return Ok(None),
            Err(e) => return Err(e.to_string()),
        };
        let text = response
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_string()
            .map_err(|e| e.to_string())?;
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("the answer is not JSON: {e}"))?;
        super::object_fields(&json).map(Some)
    }
}

impl Backend for HttpBackend {
    fn fetch(&self, keys: &[String]) -> Vec<Result<Answer, String>> {
        keys.iter().map(|k| self.get(k)).collect()
    }

    fn batches(&self) -> bool {
        false
    }
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use varpulis_program::Value;

    #[test]
    fn keys_are_percent_encoded_into_the_url() {
        assert_eq!(percent_encode("a b/c?d"), "a%20b%2Fc%3Fd");
        assert_eq!(percent_encode("user-1_x.~"), "user-1_x.~");
        assert_eq!(super::super::key_text(&Value::Int(42)), "42");
        assert_eq!(super::super::key_text(&Value::str("u1")), "u1");
    }
}
