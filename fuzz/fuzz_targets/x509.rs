//! Certificate facts and whole-chain classification on arbitrary DER.
//! The body lives in `ekuwatch::fuzzing::x509`, so `cargo test` replays saved inputs
//! (fuzz/regressions/x509/) through the same code.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ekuwatch::fuzzing::x509(data));
