//! A standalone `varpulis-lsp` binary (the same server as `varpulis lsp`),
//! used by the end-to-end tests.
//!
//! `--test-check-delay-ms N` makes every diagnostics run last at least `N`
//! ms (polling for cancellation), so that the tests can hold a check open
//! while they send requests and edits.

use std::time::Duration;

use anyhow::Context as _;

fn main() -> anyhow::Result<()> {
    let mut options = varpulis_lsp::Options::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--test-check-delay-ms" => {
                let ms: u64 = args
                    .next()
                    .context("--test-check-delay-ms needs a number of milliseconds")?
                    .parse()
                    .context("--test-check-delay-ms needs a number of milliseconds")?;
                options.check_delay = Duration::from_millis(ms);
            }
            other => anyhow::bail!("unknown argument {other:?}"),
        }
    }
    varpulis_lsp::run_stdio_with(options)
}
