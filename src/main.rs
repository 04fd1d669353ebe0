//! The `varpulis` command line: check, explain, simulate and run VPL programs.
//!
//! Exit codes: 0 success, 1 the program or input has errors, 2 usage or IO
//! problems (a file that cannot be read, a bad flag).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use varpulis::cli;

/// Varpulis: complex event processing with VPL.
#[derive(Parser, Debug)]
#[command(name = "varpulis", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// One value is built per process, when the command line is parsed: the size of its largest
// variant costs nothing worth boxing for.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
enum Command {
    /// Parse and check VPL files; print diagnostics; exit 1 on any error.
    Check {
        /// The files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Output format for diagnostics.
        #[arg(long, value_enum, default_value_t = DiagFormat::Human)]
        format: DiagFormat,
        /// Colour in human output (default: when stderr is a terminal).
        #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
        color: ColorChoice,
    },
    /// Print the explanation page of a diagnostic code, e.g. `varpulis explain E0301`.
    Explain {
        /// The code (E0101, W0101, ...).
        code: String,
    },
    /// Replay an event file (.evt or JSON lines) through a program on a virtual clock.
    Simulate {
        /// The program (or `-p/--program`).
        program: Option<PathBuf>,
        /// The events (or `-e/--events`).
        events: Option<PathBuf>,
        /// The program file.
        #[arg(short = 'p', long = "program", value_name = "FILE")]
        program_flag: Option<PathBuf>,
        /// The event file.
        #[arg(short = 'e', long = "events", value_name = "FILE")]
        events_flag: Option<PathBuf>,
        #[command(flatten)]
        run: RunFlags,
        /// Wait out the gaps between event times (same as `--speed 1`).
        #[arg(long, conflicts_with = "speed")]
        realtime: bool,
        /// Replay at this multiple of real time (e.g. 10 = ten times faster).
        #[arg(long, value_name = "X")]
        speed: Option<f64>,
        /// Accepted for compatibility with the reference; replay is always
        /// deterministic and as fast as possible unless paced.
        #[arg(long, hide = true)]
        immediate: bool,
        /// Accepted for compatibility and ignored: `simulate` always runs one
        /// engine; `run --input FILE --workers N` runs partition-parallel
        /// (docs/RUNTIME.md#workers).
        #[arg(short = 'w', long, hide = true, value_name = "N")]
        workers: Option<usize>,
    },
    /// Run a program: over its own connector sources (`Type.from(Conn)`) until they end or
    /// Ctrl-C, or over JSON lines from `--input` (a file or stdin) until end of input.
    Run {
        /// The program file.
        program: PathBuf,
        /// Input events: a .jsonl/.evt file, or `-` for stdin. Default: the program's connector
        /// sources when it declares some, else stdin.
        #[arg(short, long)]
        input: Option<PathBuf>,
        /// Where outputs go: a file, or `-` for stdout.
        #[arg(short, long, default_value = "-")]
        output: PathBuf,
        /// With connector sources: when no event arrives for this long, event time follows the
        /// wall clock so time windows close (`0` = only events move time).
        #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
        idle_timeout: std::time::Duration,
        /// With connector sources: append bad payloads (malformed, unknown type, wrong field
        /// types) to this JSON-lines file, with the error and the place.
        #[arg(long, value_name = "FILE")]
        dead_letter: Option<PathBuf>,
        /// With connector sources: serve Prometheus metrics at http://ADDR/metrics
        /// (e.g. `127.0.0.1:9464`). A non-loopback address needs --metrics-token or
        /// --metrics-tls-client-ca.
        #[arg(long, value_name = "ADDR")]
        metrics: Option<String>,
        /// Scrapers of --metrics must send `Authorization: Bearer TOKEN` (`/health` stays open).
        #[arg(
            long,
            value_name = "TOKEN",
            env = "VARPULIS_METRICS_TOKEN",
            hide_env_values = true
        )]
        metrics_token: Option<String>,
        /// Serve --metrics over TLS with this certificate chain (PEM; needs --metrics-tls-key).
        #[arg(long, value_name = "FILE", requires = "metrics_tls_key")]
        metrics_tls_cert: Option<PathBuf>,
        /// The private key (PEM) of --metrics-tls-cert.
        #[arg(long, value_name = "FILE", requires = "metrics_tls_cert")]
        metrics_tls_key: Option<PathBuf>,
        /// Require scrapers of --metrics to present a certificate signed by this CA (PEM; mTLS).
        #[arg(long, value_name = "FILE", requires = "metrics_tls_cert")]
        metrics_tls_client_ca: Option<PathBuf>,
        /// With connector sources: keep state in this directory; checkpoints are written there
        /// and a restart resumes from the last one (files and Kafka replay what it had not seen).
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
        /// Time between checkpoints (with --state-dir); one is also written when the run stops.
        #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
        checkpoint_interval: std::time::Duration,
        /// How long a checkpoint waits for every sink to confirm the records sent before it
        /// (delivered, written and synced, or dead-lettered); a sink that cannot fails the
        /// checkpoint, which is retried at the next interval.
        #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
        checkpoint_timeout: std::time::Duration,
        /// With connector sources: an event whose timestamp is further than this after its
        /// arrival is counted (`future_timestamp`), dead-lettered and skipped instead of moving
        /// event time past every other event (`0` = no limit).
        #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_duration)]
        max_future_skew: std::time::Duration,
        /// Per-environment connector settings (TOML, `[connectors.NAME]` tables) that override
        /// or add parameters of the program's connectors, so one rules file runs in dev and
        /// prod.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Bound every `.partition_by` that feeds a window or aggregate and declares no bound
        /// to this many keys (least recently used evicted first); bounds in the program win.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        max_keys: Option<u64>,
        /// With connector sources: export OpenTelemetry traces (spans `varpulis.run`,
        /// `varpulis.source.start`, `varpulis.batch`, `varpulis.checkpoint`, `varpulis.event`)
        /// over OTLP/HTTP protobuf to URL/v1/traces (e.g. `http://127.0.0.1:4318`). Default:
        /// `OTEL_EXPORTER_OTLP_ENDPOINT`; `OTEL_SERVICE_NAME` sets `service.name` (`varpulis`),
        /// `OTEL_RESOURCE_ATTRIBUTES` more resource attributes, `OTEL_EXPORTER_OTLP_HEADERS`
        /// the export requests' headers.
        #[arg(long, value_name = "URL")]
        otlp_endpoint: Option<String>,
        /// Write every `.enrich` lookup answer to this file (JSON lines), to be replayed by
        /// `simulate --enrich-replay` (docs/LANGUAGE.md#enrich).
        #[arg(long, value_name = "FILE", conflicts_with = "enrich_replay")]
        enrich_record: Option<PathBuf>,
        /// Run on N engine shards, routed by partition key, over connector sources or
        /// `--input` (the output is the same for every N, in a canonical order; a --state-dir
        /// restarts only with the N it was saved with: docs/RUNTIME.md#workers). Default: the
        /// program's `.concurrent(workers: N)`, else one engine in arrival order.
        #[arg(short = 'w', long, value_name = "N")]
        workers: Option<usize>,
        #[command(flatten)]
        run: RunFlags,
    },
    /// Run rule tests: programs with a `# expect:` block and events (NAME.evt or `# given:`).
    Test {
        /// Test files or directories (searched recursively).
        #[arg(default_value = ".")]
        paths: Vec<PathBuf>,
        /// Rewrite each failing test's `# expect:` block with the actual output.
        #[arg(long)]
        update: bool,
        /// Colour in diagnostics.
        #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
        color: ColorChoice,
    },
    /// Format programs in the canonical layout (docs/FORMAT.md); `-` formats stdin to stdout.
    Fmt {
        /// Files to format in place (`-` for stdin).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Write nothing; print a diff of each file that would change and exit 1.
        #[arg(long)]
        check: bool,
    },
    /// Write rules interactively against sample events (`:help` inside lists the commands).
    Repl {
        /// Rule files to load first.
        files: Vec<PathBuf>,
    },
    /// Start the language server on stdin/stdout (for editors).
    Lsp,
    /// Run a long-lived server for many pipelines, with a REST API (/api/v1), a status page
    /// (/), /metrics, /healthz and /readyz (docs/SERVER.md).
    Server {
        #[command(subcommand)]
        action: Option<ServerAction>,
        /// The configuration file (TOML: listen, tls, api_keys, defaults, pipelines).
        #[arg(long, value_name = "FILE", env = "VARPULIS_CONFIG")]
        config: Option<PathBuf>,
        /// Where to listen (default 127.0.0.1:8080). A non-loopback address needs an API key
        /// or client certificates.
        #[arg(long, value_name = "ADDR", env = "VARPULIS_LISTEN")]
        listen: Option<String>,
        /// Where deployed pipelines and their checkpoints live (default ./varpulis-state).
        #[arg(long, value_name = "DIR", env = "VARPULIS_STATE_DIR")]
        state_dir: Option<PathBuf>,
    },
    /// Print the syntax tree of a file (for debugging the parser).
    Parse {
        /// The file to parse.
        file: PathBuf,
    },
    /// Exit 0 when a health endpoint answers 2xx, else 1 (the container image's health check:
    /// it has no curl).
    Healthcheck {
        /// The URL to ask. Default: `/healthz` of the server at `VARPULIS_LISTEN`
        /// (127.0.0.1:8080), a wildcard host asked on loopback.
        url: Option<String>,
        /// Give up after this long.
        #[arg(long, default_value = "5s", value_parser = parse_duration)]
        timeout: std::time::Duration,
    },
}

/// Flags shared by `simulate` and `run`.
#[derive(clap::Args, Debug)]
struct RunFlags {
    /// Output format (default: table for simulate, jsonl for run).
    #[arg(long, value_enum)]
    format: Option<OutFormat>,
    /// Stop at the first malformed line, unknown event type or mistyped field.
    #[arg(long)]
    strict: bool,
    /// Do not fire open windows and timers at the end of input (REF behaviour).
    #[arg(long)]
    no_final_flush: bool,
    /// Do not open `.to(...)` connectors (their events are only counted).
    #[arg(long)]
    no_sinks: bool,
    /// Show a progress bar (default: when stderr is a terminal).
    #[arg(long, overrides_with = "no_progress")]
    progress: bool,
    /// Hide the progress bar.
    #[arg(long)]
    no_progress: bool,
    /// Colour in diagnostics.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    color: ColorChoice,
    /// Answer `.enrich` lookups from this file (JSON lines, as `run --enrich-record` writes)
    /// instead of the network; a key it lacks gets the fallback with status `error`.
    #[arg(long, value_name = "FILE")]
    enrich_replay: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum ServerAction {
    /// Print the hash of an API key, for `hash = "..."` in the configuration (the key is read
    /// from standard input when not given, so it stays out of the shell history).
    HashKey {
        /// The key.
        key: Option<String>,
    },
}

/// `varpulis server hash-key`.
fn hash_key(key: Option<String>) -> anyhow::Result<ExitCode> {
    let key = match key {
        Some(k) => k,
        None => {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            line.trim_end_matches(['\n', '\r']).to_string()
        }
    };
    if key.is_empty() {
        anyhow::bail!(
            "an empty key cannot protect anything: give a key, or one line on standard input"
        );
    }
    println!("{}", varpulis_http::hash_key(&key));
    Ok(ExitCode::SUCCESS)
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum OutFormat {
    /// A table per stream, printed at the end.
    Table,
    /// One JSON object per output event, as produced.
    Jsonl,
}

impl RunFlags {
    fn args(
        &self,
        program: PathBuf,
        input: Option<PathBuf>,
        output: Option<PathBuf>,
        default: OutFormat,
        pace: cli::simulate::Pace,
    ) -> cli::simulate::RunArgs {
        cli::simulate::RunArgs {
            program,
            input,
            live: cli::simulate::LiveSettings::default(),
            output,
            format: match self.format.unwrap_or(default) {
                OutFormat::Table => cli::simulate::OutputFormat::Table,
                OutFormat::Jsonl => cli::simulate::OutputFormat::Jsonl,
            },
            pace,
            progress: if self.no_progress {
                false
            } else {
                self.progress || cli::simulate::stderr_is_terminal()
            },
            color: self.color.enabled(),
            workers: None,
            job: varpulis::job::JobOptions {
                strict: self.strict,
                final_flush: !self.no_final_flush,
                sinks: !self.no_sinks,
                enrich: match &self.enrich_replay {
                    Some(f) => varpulis::enrich::EnrichMode::Replay(f.clone()),
                    None => varpulis::enrich::EnrichMode::Offline,
                },
                ..Default::default()
            },
        }
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum DiagFormat {
    /// Rendered for people, with source excerpts.
    Human,
    /// A JSON array of diagnostics, for tools.
    Json,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum ColorChoice {
    /// Colour when stderr is a terminal.
    Auto,
    /// Always colour.
    Always,
    /// Never colour.
    Never,
}

impl ColorChoice {
    fn enabled(self) -> bool {
        use std::io::IsTerminal;
        match self {
            ColorChoice::Auto => {
                std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
            }
            ColorChoice::Always => true,
            ColorChoice::Never => false,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check {
            files,
            format,
            color,
        } => cli::check::run(
            &files,
            match format {
                DiagFormat::Human => cli::check::Format::Human {
                    color: color.enabled(),
                },
                DiagFormat::Json => cli::check::Format::Json,
            },
        ),
        Command::Explain { code } => cli::explain::run(&code),
        Command::Parse { file } => cli::parse::run(&file),
        Command::Healthcheck { url, timeout } => cli::healthcheck::run(url.as_deref(), timeout),
        Command::Fmt { files, check } => cli::fmt::run(&files, check),
        Command::Repl { files } => varpulis_repl::run(varpulis_repl::Options { files }),
        Command::Lsp => varpulis_lsp::run_stdio().map(|()| ExitCode::SUCCESS),
        Command::Server {
            action: Some(ServerAction::HashKey { key }),
            ..
        } => hash_key(key),
        Command::Server {
            action: None,
            config,
            listen,
            state_dir,
        } => varpulis::server::config::load(
            config.as_deref(),
            listen,
            state_dir,
            env_setting("VARPULIS_ADMIN_KEY"),
        )
        .and_then(varpulis::server::run),
        Command::Test {
            paths,
            update,
            color,
        } => cli::test::run(&paths, update, color.enabled()),
        Command::Simulate {
            program,
            events,
            program_flag,
            events_flag,
            run,
            realtime,
            speed,
            ..
        } => {
            let pace = match (realtime, speed) {
                (true, _) => cli::simulate::Pace::Speed(1.0),
                (false, Some(x)) if x > 0.0 => cli::simulate::Pace::Speed(x),
                (false, Some(x)) => {
                    eprintln!("error: --speed must be positive, got {x}");
                    return ExitCode::from(2);
                }
                (false, None) => cli::simulate::Pace::Fast,
            };
            cli::simulate::pick(program, program_flag, "program file").and_then(|p| {
                let e = cli::simulate::pick(events, events_flag, "events file")?;
                cli::simulate::run(&run.args(p, Some(e), None, OutFormat::Table, pace))
            })
        }
        Command::Run {
            program,
            input,
            output,
            idle_timeout,
            dead_letter,
            metrics,
            metrics_token,
            metrics_tls_cert,
            metrics_tls_key,
            metrics_tls_client_ca,
            state_dir,
            checkpoint_interval,
            checkpoint_timeout,
            max_future_skew,
            config,
            max_keys,
            otlp_endpoint,
            enrich_record,
            workers,
            run,
        } => {
            let metrics = metrics.map(|address| varpulis::metrics::MetricsListen {
                address,
                token: metrics_token,
                tls: metrics_tls_cert.zip(metrics_tls_key).map(|(cert, key)| {
                    varpulis_http::TlsFiles {
                        cert,
                        key,
                        client_ca: metrics_tls_client_ca,
                    }
                }),
            });
            let mut args = run.args(
                program,
                input,
                Some(output),
                OutFormat::Jsonl,
                cli::simulate::Pace::Fast,
            );
            args.workers = workers;
            // `run` looks up for real unless a replay file is given.
            if run.enrich_replay.is_none() {
                args.job.enrich = varpulis::enrich::EnrichMode::Live {
                    record: enrich_record,
                };
            }
            args.live = cli::simulate::LiveSettings {
                idle_timeout: (!idle_timeout.is_zero()).then_some(idle_timeout),
                dead_letter,
                metrics,
                state_dir,
                checkpoint_interval,
                checkpoint_timeout,
                connectors_config: config,
                max_keys,
                max_future_skew: (!max_future_skew.is_zero()).then_some(max_future_skew),
                otlp: None,
            };
            match otlp_config(otlp_endpoint) {
                Ok(otlp) => {
                    args.live.otlp = otlp;
                    cli::simulate::run(&args)
                }
                Err(e) => Err(e),
            }
        }
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            let message = format!("{err:#}");
            eprintln!("error: {}", varpulis_connectors::redact::redact(&message));
            ExitCode::from(2)
        }
    }
}

/// A duration flag, in the language's spelling (`250ms`, `1s`, `2m`, `1h`, `1d`) or `0`.
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    varpulis::duration::parse(text)
}

/// Where traces go: `--otlp-endpoint` or `OTEL_EXPORTER_OTLP_ENDPOINT`, with
/// `OTEL_EXPORTER_OTLP_HEADERS` and the resource from `OTEL_SERVICE_NAME`
/// (which wins) and `OTEL_RESOURCE_ATTRIBUTES`.
fn otlp_config(endpoint: Option<String>) -> anyhow::Result<Option<varpulis::trace::ExportConfig>> {
    let Some(endpoint) = endpoint.or_else(|| env_setting("OTEL_EXPORTER_OTLP_ENDPOINT")) else {
        return Ok(None);
    };
    let headers = match env_setting("OTEL_EXPORTER_OTLP_HEADERS") {
        Some(text) => varpulis::trace::parse_headers(&text)?,
        None => Vec::new(),
    };
    let resource = match env_setting("OTEL_RESOURCE_ATTRIBUTES") {
        Some(text) => varpulis::trace::parse_resource_attributes(&text)?,
        None => Vec::new(),
    };
    let service_name = env_setting("OTEL_SERVICE_NAME")
        .or_else(|| {
            resource
                .iter()
                .find(|(k, _)| k == "service.name")
                .map(|(_, v)| v.clone())
        })
        .unwrap_or_else(|| "varpulis".to_string());
    Ok(Some(varpulis::trace::ExportConfig {
        endpoint,
        service_name,
        resource,
        headers,
    }))
}

/// A non-empty environment variable (the OpenTelemetry `OTEL_*` settings).
fn env_setting(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}
