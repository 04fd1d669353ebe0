//! Builders for hand-made programs (tests and benches).
