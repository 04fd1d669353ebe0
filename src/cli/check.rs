//! `varpulis check FILE...`: parse and check; print diagnostics; exit 1 on errors.

use std::path::PathBuf;
use std::process::ExitCode;

use varpulis_compiler::{render, Compiler, Diagnostic, Severity};

/// How diagnostics are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Rendered with source excerpts on stderr, and a summary line.
    Human {
        /// Use ANSI colours.
        color: bool,
    },
    /// One JSON array of every file's diagnostics on stdout.
    Json,
}

/// Checks every file; exit 1 when any has an error (warnings do not fail).
pub fn run(files: &[PathBuf], format: Format) -> anyhow::Result<ExitCode> {
    let mut compiler = Compiler::new();
    let mut loaded = Vec::new();
    for file in files {
        loaded.push(crate::job::load_with_imports(&mut compiler, file)?);
    }
    let mut errors = 0usize;
    let mut warnings = 0usize;
    let mut json = Vec::new();
    for name in &loaded {
        let diags: Vec<Diagnostic> = compiler.check_and_lower(name);
        errors += diags
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count();
        warnings += diags
            .iter()
            .filter(|d| d.severity == Severity::Warning)
            .count();
        if !diags.iter().any(Diagnostic::is_error) {
            for line in connectors_not_built(&compiler, name) {
                warnings += 1;
                eprintln!("{line}");
            }
        }
        let text = compiler.text(name).unwrap_or_default();
        match format {
            Format::Human { color } => {
                if !diags.is_empty() {
                    eprint!("{}", render::terminal::render(name, text, &diags, color));
                }
            }
            Format::Json => json.extend(render::json::to_values(name, text, &diags)),
        }
    }
    match format {
        Format::Human { .. } => eprintln!("{}", summary(loaded.len(), errors, warnings)),
        Format::Json => println!("{}", serde_json::Value::Array(json)),
    }
    Ok(if errors > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// One `warning:` line per connector whose kind this binary was built without (`kafka` in a
/// default build). The program is valid VPL, so `check` still passes (and agrees with the
/// language server and with other builds); but `run` and `simulate` will refuse the connector,
/// so the warning says so now, with the rebuild that fixes it. Printed on stderr in both
/// formats: the JSON array on stdout holds the compiler's diagnostics only.
fn connectors_not_built(compiler: &Compiler, name: &str) -> Vec<String> {
    let Ok(program) = compiler.program(name) else {
        return Vec::new();
    };
    program
        .connectors
        .iter()
        .filter_map(|def| {
            let feature = varpulis_connectors::missing_feature(&def.kind)?;
            let error = varpulis_connectors::ConfigError::NotBuilt {
                connector: def.name.to_string(),
                role: "connector",
                kind: def.kind.to_string(),
                feature,
            };
            let place = program
                .span_table
                .location(def.span)
                .unwrap_or_else(|| name.to_string());
            Some(format!(
                "warning: {place}: {error}; until then `varpulis run` cannot open it"
            ))
        })
        .collect()
}

/// The closing line: `ok: 2 files checked` or `3 errors, 1 warning in 2 files`.
fn summary(files: usize, errors: usize, warnings: usize) -> String {
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    match (errors, warnings) {
        (0, 0) => format!("ok: {} checked", plural(files, "file")),
        (0, w) => format!(
            "ok: {} checked, {}",
            plural(files, "file"),
            plural(w, "warning")
        ),
        (e, 0) => format!(
            "failed: {} in {}",
            plural(e, "error"),
            plural(files, "file")
        ),
        (e, w) => format!(
            "failed: {}, {} in {}",
            plural(e, "error"),
            plural(w, "warning"),
            plural(files, "file")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::summary;

    #[test]
    fn summary_counts_files_errors_and_warnings() {
        assert_eq!(summary(1, 0, 0), "ok: 1 file checked");
        assert_eq!(summary(2, 0, 1), "ok: 2 files checked, 1 warning");
        assert_eq!(summary(1, 3, 0), "failed: 3 errors in 1 file");
        assert_eq!(summary(2, 1, 2), "failed: 1 error, 2 warnings in 2 files");
    }
}
