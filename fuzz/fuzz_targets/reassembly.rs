//! TCP reassembly under arbitrary operation sequences: queue within its cap, no over-delivery.
//! The body lives in `ekuwatch::fuzzing::reassembly`, so `cargo test` replays saved inputs
//! (fuzz/regressions/reassembly/) through the same code.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ekuwatch::fuzzing::reassembly(data));
