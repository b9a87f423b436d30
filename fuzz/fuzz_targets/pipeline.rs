//! The whole offline pipeline, pcap or pcapng bytes in: any input ends without a panic.
//! The body lives in `ekuwatch::fuzzing::pipeline`, so `cargo test` replays saved inputs
//! (fuzz/regressions/pipeline/) through the same code.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ekuwatch::fuzzing::pipeline(data));
