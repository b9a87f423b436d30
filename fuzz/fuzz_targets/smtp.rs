//! SMTP session analyzer on arbitrary two-way byte streams (first byte of each chunk picks the
//! direction and length).
#![no_main]

use ekuwatch::smtp::{PostTlsTracker, SmtpSession};
use ekuwatch::Dir;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut s = SmtpSession::new();
    let mut t = PostTlsTracker::default();
    let mut i = 0;
    while i < data.len() {
        let ctl = data[i];
        i += 1;
        let n = usize::from(ctl & 0x7f).min(data.len() - i);
        let dir = if ctl & 0x80 == 0 { Dir::ToServer } else { Dir::ToClient };
        let _ = s.feed(dir, &data[i..i + n]);
        t.feed(dir, &data[i..i + n]);
        i += n;
    }
    let f = s.facts();
    assert!(f.banner.as_ref().is_none_or(|b| b.chars().count() <= 255));
});
