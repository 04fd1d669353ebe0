//! `varpulis healthcheck [URL]`: exit 0 when `GET URL` answers 2xx, else 1.
//!
//! The container image has no shell and no curl (it is built `FROM scratch`), so its
//! `HEALTHCHECK` and a Kubernetes exec probe run the binary itself. Without a URL it asks the
//! server of the same container: `http://<VARPULIS_LISTEN>/healthz`, with a wildcard host
//! (`0.0.0.0`, `[::]`) replaced by the loopback address.

use std::process::ExitCode;
use std::time::Duration;

/// The address `varpulis server` listens on by default.
const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// Asks `url` (or the local server's `/healthz`) once, within `timeout`.
pub fn run(url: Option<&str>, timeout: Duration) -> anyhow::Result<ExitCode> {
    let url = match url {
        Some(u) => u.to_string(),
        None => default_url(std::env::var("VARPULIS_LISTEN").ok().as_deref()),
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .user_agent(format!(
            "varpulis-healthcheck/{}",
            env!("CARGO_PKG_VERSION")
        ))
        .build()
        .into();
    match agent.get(&url).call() {
        Ok(answer) if answer.status().is_success() => {
            println!("healthy: {url} answered {}", answer.status());
            Ok(ExitCode::SUCCESS)
        }
        Ok(answer) => {
            eprintln!("unhealthy: {url} answered {}", answer.status());
            Ok(ExitCode::FAILURE)
        }
        Err(e) => {
            eprintln!("unhealthy: {url}: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `http://HOST:PORT/healthz` for a listen address; wildcard hosts become loopback.
fn default_url(listen: Option<&str>) -> String {
    let listen = listen
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .unwrap_or(DEFAULT_LISTEN);
    let (host, port) = listen.rsplit_once(':').unwrap_or((listen, "8080"));
    let host = match host {
        "" | "0.0.0.0" => "127.0.0.1",
        "[::]" | "::" => "[::1]",
        other => other,
    };
    format!("http://{host}:{port}/healthz")
}

#[cfg(test)]
mod tests {
    use super::default_url;

    #[test]
    fn the_default_url_asks_the_local_server() {
        assert_eq!(default_url(None), "http://127.0.0.1:8080/healthz");
        assert_eq!(
            default_url(Some("0.0.0.0:9000")),
            "http://127.0.0.1:9000/healthz"
        );
        assert_eq!(default_url(Some("[::]:8080")), "http://[::1]:8080/healthz");
        assert_eq!(
            default_url(Some("10.0.0.5:8080")),
            "http://10.0.0.5:8080/healthz"
        );
        assert_eq!(default_url(Some(" ")), "http://127.0.0.1:8080/healthz");
    }
}
