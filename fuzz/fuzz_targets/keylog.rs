//! Key log parsing: any bytes, never a panic; malformed lines are counted.
//! The body lives in `ekuwatch::fuzzing::keylog`, so `cargo test` replays saved inputs
//! (fuzz/regressions/keylog/) through the same code.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ekuwatch::fuzzing::keylog(data));
