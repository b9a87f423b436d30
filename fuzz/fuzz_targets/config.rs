//! Configuration parsing: any text gives a configuration or a one-line error.
//! The body lives in `ekuwatch::fuzzing::config`, so `cargo test` replays saved inputs
//! (fuzz/regressions/config/) through the same code.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ekuwatch::fuzzing::config(data));
