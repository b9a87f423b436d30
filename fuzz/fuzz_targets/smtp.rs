//! SMTP STARTTLS state machine and post-TLS reply tracker on arbitrary two-way byte streams.
//! The body lives in `ekuwatch::fuzzing::smtp`, so `cargo test` replays saved inputs
//! (fuzz/regressions/smtp/) through the same code.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ekuwatch::fuzzing::smtp(data));
