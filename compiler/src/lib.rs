//! varpulis-compiler
