//! Embeds the explanation pages `docs/errors/<CODE>.md` into the compiler so
//! that `varpulis explain CODE` works without the source tree.

use std::fmt::Write as _;
use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let dir = manifest.join("../docs/errors");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut pages: Vec<(String, PathBuf)> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "md"))
                .filter_map(|p| {
                    let stem = p.file_stem()?.to_str()?.to_string();
                    Some((stem, p))
                })
                .collect()
        })
        .unwrap_or_default();
    pages.sort();
    let mut out =
        String::from("/// Explanation pages by code.\nconst ERROR_PAGES: &[(&str, &str)] = &[\n");
    for (code, path) in pages {
        println!("cargo:rerun-if-changed={}", path.display());
        let _ = writeln!(
            out,
            "    ({code:?}, include_str!({:?})),",
            path.display().to_string()
        );
    }
    out.push_str("];\n");
    let dest =
        PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo")).join("error_pages.rs");
    std::fs::write(dest, out).expect("OUT_DIR is writable");
}
