//! The `varpulis` command line.
fn main() {}
