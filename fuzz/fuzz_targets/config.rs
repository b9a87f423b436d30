//! Configuration parsing: any text gives a config or a one-line error.
#![no_main]

use ekuwatch::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        match Config::parse(text) {
            Ok(c) => {
                let _ = c.flow_config();
            }
            Err(e) => assert!(!e.contains('\n')),
        }
    }
});
