//! Key log parsing: any bytes, never a panic; malformed lines are counted.
#![no_main]

use ekuwatch::tls::keylog::KeyLog;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut k = KeyLog::default();
    k.add(data);
    let _ = k.get(&[0u8; 32]);
});
