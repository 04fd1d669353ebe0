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
    /// Print the syntax tree of a file (for debugging the parser).
    Parse {
        /// The file to parse.
        file: PathBuf,
    },
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
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
