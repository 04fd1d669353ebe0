//! `varpulis parse FILE`: print the syntax tree and syntax errors (debugging aid).

use std::path::Path;
use std::process::ExitCode;

/// Prints every item's tree; exit 1 when there are syntax errors.
pub fn run(file: &Path) -> anyhow::Result<ExitCode> {
    let text = super::read_text(file)?;
    let parse = varpulis_syntax::parse(&text);
    for item in &parse.items {
        println!("{:#?}", item);
    }
    for err in &parse.errors {
        eprintln!(
            "{}: {} {} at bytes {}..{}",
            file.display(),
            err.code,
            err.message,
            err.span.start,
            err.span.end
        );
    }
    Ok(if parse.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
