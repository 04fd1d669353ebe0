//! A standalone `varpulis-lsp` binary (the same server as `varpulis lsp`),
//! used by the end-to-end tests.

fn main() -> anyhow::Result<()> {
    varpulis_lsp::run_stdio()
}
