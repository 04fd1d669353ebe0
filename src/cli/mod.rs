//! One module per command. Each `run` returns the process exit code, or an
//! error for usage and IO problems (exit 2).

pub mod check;
pub mod explain;
pub mod healthcheck;
pub mod parse;

use std::path::Path;

use anyhow::Context;

/// Reads a program or event file given on the command line.
pub fn read_text(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read `{}`", path.display()))
}
pub mod fmt;
pub mod simulate;
pub mod test;
