//! `varpulis fmt [--check] FILE...`: rewrite programs in the canonical
//! layout (docs/FORMAT.md).
//!
//! Files are rewritten in place; `-` reads stdin and writes stdout. With
//! `--check` nothing is written: each file that would change is shown as a
//! unified diff on stdout and the command fails (exit code one). Files with
//! syntax errors are never rewritten: their errors go to stderr and the
//! command fails.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use varpulis_syntax::format::{format, FormatError};

/// Lines of unchanged context around each change in `--check` diffs.
const CONTEXT: usize = 3;

/// Formats `files` (or checks them with `check`); exit 1 when a file has
/// syntax errors or, with `check`, would change.
pub fn run(files: &[PathBuf], check: bool) -> anyhow::Result<ExitCode> {
    let mut failed = false;
    for file in files {
        let is_stdin = file.as_os_str() == "-";
        let text = if is_stdin {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("cannot read stdin")?;
            text
        } else {
            super::read_text(file)?
        };
        let formatted = match format(&text) {
            Ok(formatted) => formatted,
            Err(FormatError::Syntax(errors)) => {
                for err in &errors {
                    let (line, col) = line_col(&text, err.span.start as usize);
                    eprintln!(
                        "{}:{line}:{col}: error[{}]: {}",
                        file.display(),
                        err.code,
                        err.message
                    );
                }
                eprintln!(
                    "{}: not formatted: fix the syntax errors first",
                    file.display()
                );
                failed = true;
                continue;
            }
            Err(err @ FormatError::Unstable(_)) => {
                eprintln!("{}: {err}", file.display());
                failed = true;
                continue;
            }
        };
        if check {
            if formatted != text {
                print!("{}", unified_diff(file, &text, &formatted));
                failed = true;
            }
        } else if is_stdin {
            std::io::stdout()
                .write_all(formatted.as_bytes())
                .context("cannot write stdout")?;
        } else if formatted != text {
            write_file(file, &formatted)?;
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn write_file(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write `{}`", path.display()))
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// One line of an edit script.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Edit {
    Keep(usize, usize),
    Delete(usize),
    Insert(usize),
}

/// The line edits turning `old` into `new` (longest common subsequence;
/// past a size limit, the whole file is one change).
fn edits(old: &[&str], new: &[&str]) -> Vec<Edit> {
    let (n, m) = (old.len(), new.len());
    if n.saturating_mul(m) > 16_000_000 {
        let mut out: Vec<Edit> = (0..n).map(Edit::Delete).collect();
        out.extend((0..m).map(Edit::Insert));
        return out;
    }
    // lcs[i][j]: length of the LCS of old[i..] and new[j..].
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if old[i] == new[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::with_capacity(n + m);
    while i < n || j < m {
        if i < n && j < m && old[i] == new[j] {
            out.push(Edit::Keep(i, j));
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            // Deletions first, as `diff -u` shows them.
            out.push(Edit::Delete(i));
            i += 1;
        } else {
            out.push(Edit::Insert(j));
            j += 1;
        }
    }
    out
}

/// A unified diff (`--- a/file`, `+++ b/file`, `@@` hunks) from `old` to
/// `new`.
fn unified_diff(path: &Path, old: &str, new: &str) -> String {
    let old_lines: Vec<&str> = old.lines().collect();
    let new_lines: Vec<&str> = new.lines().collect();
    let script = edits(&old_lines, &new_lines);
    let mut out = format!("--- a/{0}\n+++ b/{0}\n", path.display());
    let changed: Vec<usize> = script
        .iter()
        .enumerate()
        .filter(|(_, e)| !matches!(e, Edit::Keep(..)))
        .map(|(k, _)| k)
        .collect();
    let mut k = 0;
    while k < changed.len() {
        // Grow a hunk while the next change is within twice the context.
        let start = changed[k].saturating_sub(CONTEXT);
        let mut last = changed[k];
        while k + 1 < changed.len() && changed[k + 1] <= last + 2 * CONTEXT {
            k += 1;
            last = changed[k];
        }
        let end = (last + CONTEXT + 1).min(script.len());
        let hunk = &script[start..end];
        let old_start = position(&script[..start], true) + 1;
        let new_start = position(&script[..start], false) + 1;
        let old_len = hunk
            .iter()
            .filter(|e| !matches!(e, Edit::Insert(_)))
            .count();
        let new_len = hunk
            .iter()
            .filter(|e| !matches!(e, Edit::Delete(_)))
            .count();
        out.push_str(&format!(
            "@@ -{old_start},{old_len} +{new_start},{new_len} @@\n"
        ));
        for e in hunk {
            match *e {
                Edit::Keep(i, _) => out.push_str(&format!(" {}\n", old_lines[i])),
                Edit::Delete(i) => out.push_str(&format!("-{}\n", old_lines[i])),
                Edit::Insert(j) => out.push_str(&format!("+{}\n", new_lines[j])),
            }
        }
        k += 1;
    }
    out
}

/// How many old (or new) lines an edit prefix covers.
fn position(prefix: &[Edit], old: bool) -> usize {
    prefix
        .iter()
        .filter(|e| match e {
            Edit::Keep(..) => true,
            Edit::Delete(_) => old,
            Edit::Insert(_) => !old,
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diffs_show_changed_lines_with_context() {
        let diff = unified_diff(
            Path::new("a.vpl"),
            "let a=1\nlet b = 2\n",
            "let a = 1\nlet b = 2\n",
        );
        assert_eq!(
            diff,
            "--- a/a.vpl\n+++ b/a.vpl\n@@ -1,2 +1,2 @@\n-let a=1\n+let a = 1\n let b = 2\n"
        );
    }

    #[test]
    fn error_positions_are_one_based() {
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
        assert_eq!(line_col("", 0), (1, 1));
    }
}
