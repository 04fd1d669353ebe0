//! varpulis-program
