//! TLS handshake analyzer (1.2 and 1.3 shapes, with a key log so decryption paths run) on
//! arbitrary two-way byte streams, plus the hand-written message parsers directly.
#![no_main]

use ekuwatch::tls::keylog::KeyLog;
use ekuwatch::tls::{parse_certificate_list, parse_cr12, parse_cr13, TlsSession};
use ekuwatch::Dir;
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;

fuzz_target!(|data: &[u8]| {
    let _ = parse_cr12(data, true);
    let _ = parse_cr12(data, false);
    let _ = parse_cr13(data);
    let _ = parse_certificate_list(data, true);
    let _ = parse_certificate_list(data, false);
    let mut kl = KeyLog::default();
    kl.add(format!("CLIENT_HANDSHAKE_TRAFFIC_SECRET {} {}\n", "00".repeat(32), "11".repeat(32)).as_bytes());
    let mut t = TlsSession::with_keys(Arc::new(kl));
    t.want_app_data(true);
    let mut i = 0;
    while i < data.len() {
        let ctl = data[i];
        i += 1;
        let n = (usize::from(ctl & 0x7f) * 4).min(data.len() - i);
        let dir = if ctl & 0x80 == 0 { Dir::ToServer } else { Dir::ToClient };
        t.feed(dir, &data[i..i + n], 1_700_000_000_000_000_000);
        let _ = t.take_app_plaintext();
        i += n;
        if ctl == 0xff {
            t.on_close(dir);
        }
    }
    let _ = t.facts();
});
