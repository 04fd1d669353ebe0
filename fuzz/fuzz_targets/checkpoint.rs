//! Checkpoint bytes of any shape, read the way a restart reads them: written as the newest
//! generation file of a state directory, opened with `FileStore::open` (header, checksum,
//! tables), then loaded into an engine running the fixture program, strictly (a restart) and
//! stream by stream (a hot update). Every path must end in an error or a usable engine,
//! never a panic, an abort or an allocation the bytes ask for; a restored engine must take
//! more input and checkpoint again.
//!
//! The first byte chooses the framing: even, the rest is the whole file as found on disk;
//! odd, the rest is the payload and gets a valid header and checksum (a fuzzer cannot forge
//! SHA-256, and the payload is where the engine's state is).
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};
use varpulis_state::FileStore;
use varpulis_vm::Compat;

/// One state directory per fuzzing process, rewritten for each input.
fn state_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir =
            std::env::temp_dir().join(format!("varpulis-fuzz-checkpoint-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a scratch state directory");
        dir
    })
}

/// `payload` as a generation file: magic, format version, length, SHA-256, payload.
fn framed(payload: &[u8]) -> Vec<u8> {
    let mut file = Vec::with_capacity(48 + payload.len());
    file.extend_from_slice(b"VPCK");
    file.extend_from_slice(&1u32.to_le_bytes());
    file.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    file.extend_from_slice(&Sha256::digest(payload));
    file.extend_from_slice(payload);
    file
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let file = if mode % 2 == 0 {
        rest.to_vec()
    } else {
        framed(rest)
    };
    let dir = state_dir();
    std::fs::write(dir.join("state.1.bin"), &file).expect("write the generation file");
    let Ok(store) = FileStore::open(dir) else {
        return;
    };
    let mut strict = varpulis_fuzz::engine();
    if strict.load_state(&store).is_ok() {
        varpulis_fuzz::replay_after_restore(&mut strict);
        if let Err(e) = strict.snapshot() {
            panic!("a restored engine cannot checkpoint again: {e}");
        }
    }
    let mut carried = varpulis_fuzz::engine();
    if carried.load_state_with(&store, Compat::Carry).is_ok() {
        varpulis_fuzz::replay_after_restore(&mut carried);
        if let Err(e) = carried.snapshot() {
            panic!("a restored engine cannot checkpoint again: {e}");
        }
    }
});
