//! TLS handshake analyzer (1.2 and 1.3, decryption paths) and the hand-written message parsers.
//! The body lives in `ekuwatch::fuzzing::tls`, so `cargo test` replays saved inputs
//! (fuzz/regressions/tls/) through the same code.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ekuwatch::fuzzing::tls(data));
