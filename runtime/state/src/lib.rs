//! varpulis-state
