//! varpulis-vm
