//! `varpulis explain CODE`: print the page of a diagnostic code.

use std::process::ExitCode;

/// Prints the explanation of `code`; exit 1 when the code is unknown.
pub fn run(code: &str) -> anyhow::Result<ExitCode> {
    let normalized = code.trim().to_ascii_uppercase();
    match varpulis_compiler::codes::explain(&normalized) {
        Some(page) => {
            println!("{}", page.trim_end());
            Ok(ExitCode::SUCCESS)
        }
        None => {
            eprintln!("error: unknown diagnostic code `{code}`");
            eprintln!("help: codes look like E0101, E0301 or W0101; `varpulis check` prints them");
            Ok(ExitCode::FAILURE)
        }
    }
}
