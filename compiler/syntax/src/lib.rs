//! varpulis-syntax
