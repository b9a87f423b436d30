//! JA4 and JA4S fingerprints (FoxIO JA4 specification, TCP), written into fixed arrays without
//! building their text: they are computed for every hello.

use super::names::is_grease;
use sha2::{Digest, Sha256};

/// JA4's two version characters.
fn ja4_version(v: u16) -> &'static [u8; 2] {
    match v {
        0x0304 => b"13",
        0x0303 => b"12",
        0x0302 => b"11",
        0x0301 => b"10",
        0x0300 => b"s3",
        0x0002 => b"s2",
        _ => b"00",
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The lower-case hex digit of the low four bits.
fn hex_digit(n: u8) -> u8 {
    HEX.get(usize::from(n & 0xf)).copied().unwrap_or(b'0')
}

/// JA4's two ALPN characters: first and last character when both are alphanumeric, else the
/// first and last hex digit of the value; `00` without ALPN.
fn alpn_chars(a: Option<&[u8]>) -> [u8; 2] {
    match a {
        Some([f, .., l]) | Some([f @ l]) => {
            if f.is_ascii_alphanumeric() && l.is_ascii_alphanumeric() {
                [*f, *l]
            } else {
                [hex_digit(f >> 4), hex_digit(*l)]
            }
        }
        _ => *b"00",
    }
}

/// Two decimal digits of a count capped at 99.
fn two_digits(n: usize) -> [u8; 2] {
    let n = n.min(99) as u8; // <= 99
    [b'0' + n / 10, b'0' + n % 10]
}

/// JA4's hash of lists of values: SHA-256 of the text `0a0b,1301,...` (four lowercase hex digits
/// per value, comma-separated, lists joined by `_`), first 6 bytes as 12 hex digits;
/// `000000000000` when the text is empty. The text is hashed as it is written, never built.
fn hash12(lists: &[&[u16]]) -> [u8; 12] {
    if lists.iter().all(|l| l.is_empty()) {
        return *b"000000000000";
    }
    let mut h = Sha256::new();
    for (i, list) in lists.iter().enumerate() {
        if i > 0 {
            h.update(b"_");
        }
        for (j, x) in list.iter().enumerate() {
            let digits = [12, 8, 4, 0].map(|shift| hex_digit((x >> shift) as u8));
            if j > 0 {
                h.update(b",");
            }
            h.update(digits);
        }
    }
    let d = h.finalize();
    let mut out = [0u8; 12];
    for (pair, b) in out.chunks_exact_mut(2).zip(d.iter()) {
        pair.copy_from_slice(&[hex_digit(b >> 4), hex_digit(*b)]);
    }
    out
}

/// The values JA4 is made of, as the specification selects them from a ClientHello.
struct Ja4Lists {
    /// Cipher suites without GREASE, sorted.
    ciphers: Vec<u16>,
    /// Extensions without GREASE (SNI and ALPN included).
    ext_count: usize,
    /// Extensions without GREASE, SNI and ALPN, sorted.
    exts: Vec<u16>,
    /// Signature algorithms without GREASE, in wire order.
    sig_algs: Vec<u16>,
}

impl Ja4Lists {
    fn new(ciphers: &[u16], exts: &[(u16, &[u8])], sig_algs: &[u16]) -> Self {
        let mut cs: Vec<u16> = ciphers.iter().copied().filter(|c| !is_grease(*c)).collect();
        cs.sort_unstable();
        let ext_codes: Vec<u16> = exts
            .iter()
            .map(|e| e.0)
            .filter(|e| !is_grease(*e))
            .collect();
        let ext_count = ext_codes.len();
        let mut es: Vec<u16> = ext_codes
            .into_iter()
            .filter(|e| *e != 0x0000 && *e != 0x0010)
            .collect();
        es.sort_unstable();
        Ja4Lists {
            ciphers: cs,
            ext_count,
            exts: es,
            sig_algs: sig_algs
                .iter()
                .copied()
                .filter(|s| !is_grease(*s))
                .collect(),
        }
    }
}

/// JA4 (FoxIO, TCP): 36 ASCII characters, `a_b_c`.
pub fn ja4(
    version: u16,
    sni: bool,
    ciphers: &[u16],
    exts: &[(u16, &[u8])],
    sig_algs: &[u16],
    alpn: Option<&[u8]>,
) -> [u8; 36] {
    let l = Ja4Lists::new(ciphers, exts, sig_algs);
    let mut out = [b'_'; 36];
    out[0] = b't';
    out[1..3].copy_from_slice(ja4_version(version));
    out[3] = if sni { b'd' } else { b'i' };
    out[4..6].copy_from_slice(&two_digits(l.ciphers.len()));
    out[6..8].copy_from_slice(&two_digits(l.ext_count));
    out[8..10].copy_from_slice(&alpn_chars(alpn));
    out[11..23].copy_from_slice(&hash12(&[&l.ciphers]));
    let c: &[&[u16]] = if l.exts.is_empty() {
        &[]
    } else if l.sig_algs.is_empty() {
        &[&l.exts]
    } else {
        &[&l.exts, &l.sig_algs]
    };
    out[24..36].copy_from_slice(&hash12(c));
    out
}

/// JA4S (FoxIO, TCP): 25 ASCII characters, `a_b_c`.
pub fn ja4s(version: u16, cipher: u16, exts: &[(u16, &[u8])], alpn: Option<&[u8]>) -> [u8; 25] {
    let codes: Vec<u16> = exts.iter().map(|e| e.0).collect();
    let mut out = [b'_'; 25];
    out[0] = b't';
    out[1..3].copy_from_slice(ja4_version(version));
    out[3..5].copy_from_slice(&two_digits(codes.len()));
    out[5..7].copy_from_slice(&alpn_chars(alpn));
    out[8..12].copy_from_slice(&[12, 8, 4, 0].map(|shift| hex_digit((cipher >> shift) as u8)));
    out[13..25].copy_from_slice(&hash12(&[&codes]));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// JA4/JA4S written as the specification reads (format strings, text built then hashed):
    /// the reference the allocation-free versions are checked against.
    mod reference {
        use super::super::{ja4_version, Ja4Lists};
        use sha2::{Digest, Sha256};

        fn alpn_chars(a: Option<&[u8]>) -> String {
            match a {
                Some(a) if !a.is_empty() => {
                    let (f, l) = (a[0], a[a.len() - 1]);
                    if f.is_ascii_alphanumeric() && l.is_ascii_alphanumeric() {
                        format!("{}{}", f as char, l as char)
                    } else {
                        let h = hex::encode(a);
                        format!("{}{}", &h[..1], &h[h.len() - 1..])
                    }
                }
                _ => "00".into(),
            }
        }

        pub fn hash12(s: &str) -> String {
            if s.is_empty() {
                return "000000000000".into();
            }
            hex::encode(&Sha256::digest(s.as_bytes())[..6])
        }

        pub fn hex_list(v: &[u16]) -> String {
            v.iter()
                .map(|x| format!("{x:04x}"))
                .collect::<Vec<_>>()
                .join(",")
        }

        /// (Selecting the values is shared, `Ja4Lists`; what is checked here is the text
        /// and its hashing.)
        pub fn ja4(
            version: u16,
            sni: bool,
            ciphers: &[u16],
            exts: &[(u16, &[u8])],
            sig_algs: &[u16],
            alpn: Option<&[u8]>,
        ) -> String {
            let l = Ja4Lists::new(ciphers, exts, sig_algs);
            let a = format!(
                "t{}{}{:02}{:02}{}",
                std::str::from_utf8(ja4_version(version)).unwrap(),
                if sni { 'd' } else { 'i' },
                l.ciphers.len().min(99),
                l.ext_count.min(99),
                alpn_chars(alpn)
            );
            let b = hash12(&hex_list(&l.ciphers));
            let c_in = if l.exts.is_empty() {
                String::new()
            } else if l.sig_algs.is_empty() {
                hex_list(&l.exts)
            } else {
                format!("{}_{}", hex_list(&l.exts), hex_list(&l.sig_algs))
            };
            format!("{a}_{b}_{}", hash12(&c_in))
        }

        pub fn ja4s(
            version: u16,
            cipher: u16,
            exts: &[(u16, &[u8])],
            alpn: Option<&[u8]>,
        ) -> String {
            let codes: Vec<u16> = exts.iter().map(|e| e.0).collect();
            format!(
                "t{}{:02}{}_{:04x}_{}",
                std::str::from_utf8(ja4_version(version)).unwrap(),
                codes.len().min(99),
                alpn_chars(alpn),
                cipher,
                hash12(&hex_list(&codes))
            )
        }
    }

    #[test]
    fn hash12_as_ja4_writes_it() {
        assert_eq!(&hash12(&[]), b"000000000000");
        assert_eq!(&hash12(&[&[], &[]]), b"000000000000");
        // SHA-256("0a0b,1301,0000,ffff"), as the reference computes it.
        let text = reference::hex_list(&[0x0a0b, 0x1301, 0, 0xffff]);
        assert_eq!(text, "0a0b,1301,0000,ffff");
        assert_eq!(
            std::str::from_utf8(&hash12(&[&[0x0a0b, 0x1301, 0, 0xffff]])).unwrap(),
            reference::hash12(&text)
        );
        // SHA-256("abc") = ba7816bf8f01... (FIPS 180-2 test vector) through the reference.
        assert_eq!(reference::hash12("abc"), "ba7816bf8f01");
    }

    proptest::proptest! {
        /// The allocation-free JA4/JA4S equal the specification-shaped reference on any hello.
        #[test]
        fn ja4_equals_reference(
            version in proptest::prop_oneof![proptest::strategy::Just(0x0304u16), proptest::strategy::Just(0x0303u16), proptest::num::u16::ANY],
            sni: bool,
            ciphers in proptest::collection::vec(proptest::num::u16::ANY, 0..120),
            ext_types in proptest::collection::vec(proptest::prop_oneof![proptest::strategy::Just(0u16), proptest::strategy::Just(16u16), proptest::strategy::Just(0x0a0au16), proptest::num::u16::ANY], 0..110),
            sigs in proptest::collection::vec(proptest::num::u16::ANY, 0..20),
            alpn in proptest::option::of(proptest::collection::vec(proptest::num::u8::ANY, 0..5)),
            cipher: u16,
        ) {
            let exts: Vec<(u16, &[u8])> = ext_types.iter().map(|&t| (t, &[][..])).collect();
            let a = alpn.as_deref();
            let fast = ja4(version, sni, &ciphers, &exts, &sigs, a);
            proptest::prop_assert_eq!(std::str::from_utf8(&fast).unwrap(), reference::ja4(version, sni, &ciphers, &exts, &sigs, a));
            let fast = ja4s(version, cipher, &exts, a);
            proptest::prop_assert_eq!(std::str::from_utf8(&fast).unwrap(), reference::ja4s(version, cipher, &exts, a));
        }
    }
}
