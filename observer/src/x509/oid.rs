//! OIDs: the crate's one table of Extended Key Usage purposes (RFC 5280 §4.2.1.12), and the few DER
//! reads the TLS layer needs outside a certificate (`oid_filters` in a TLS 1.3 CertificateRequest).
//! Certificates themselves are read by `x509-parser`. These reads are by hand because they are
//! three small bounds-checked functions over bytes that arrive outside any certificate, and their
//! output (a dotted OID for any content, even one `asn1-rs` would refuse) is part of the event.

/// id-ce-extKeyUsage.
pub const EXTENDED_KEY_USAGE: &str = "2.5.29.37";

/// EKU purposes by name and dotted OID (names as OpenSSL and the event write them).
pub const EKU: &[(&str, &str)] = &[
    ("serverAuth", "1.3.6.1.5.5.7.3.1"),
    ("clientAuth", "1.3.6.1.5.5.7.3.2"),
    ("codeSigning", "1.3.6.1.5.5.7.3.3"),
    ("emailProtection", "1.3.6.1.5.5.7.3.4"),
    ("timeStamping", "1.3.6.1.5.5.7.3.8"),
    ("OCSPSigning", "1.3.6.1.5.5.7.3.9"),
    ("anyExtendedKeyUsage", "2.5.29.37.0"),
];

/// The name of an EKU purpose given as a dotted OID.
pub fn eku_name(oid: &str) -> Option<&'static str> {
    EKU.iter().find(|(_, o)| *o == oid).map(|(n, _)| *n)
}

/// The dotted OID of an EKU purpose name (other text is returned as it is).
pub fn eku_oid(name: &str) -> String {
    EKU.iter()
        .find(|(n, _)| *n == name)
        .map_or(name, |(_, o)| o)
        .to_string()
}

/// One DER TLV: (tag, value, rest). Definite lengths up to 3 length bytes.
pub fn der_next(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, b) = b.split_first()?;
    let (&l0, b) = b.split_first()?;
    let (len, b) = if l0 < 0x80 {
        (usize::from(l0), b)
    } else {
        let n = usize::from(l0 & 0x7f);
        if n == 0 || n > 3 {
            return None;
        }
        let (len_bytes, b) = b.split_at_checked(n)?;
        let len = len_bytes
            .iter()
            .fold(0usize, |acc, &x| (acc << 8) | usize::from(x));
        (len, b)
    };
    let (v, rest) = b.split_at_checked(len)?;
    Some((tag, v, rest))
}

/// The value of a DER TLV with this tag.
pub fn der_tlv(b: &[u8], tag: u8) -> Option<&[u8]> {
    let (t, v, _) = der_next(b)?;
    (t == tag).then_some(v)
}

/// Dotted form of DER OID content bytes.
pub fn dotted(b: &[u8]) -> Option<String> {
    let (&first, rest) = b.split_first()?;
    let top = u64::from(first / 40).min(2);
    let mut parts = vec![top, u64::from(first) - top * 40];
    let mut acc: u64 = 0;
    for &x in rest {
        acc = acc.checked_mul(128)? | u64::from(x & 0x7f);
        if x & 0x80 == 0 {
            parts.push(acc);
            acc = 0;
        }
    }
    Some(
        parts
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join("."),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oid_strings() {
        assert_eq!(
            dotted(&[0x55, 0x1d, 0x25]).as_deref(),
            Some(EXTENDED_KEY_USAGE)
        );
        assert_eq!(
            dotted(&[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02]).as_deref(),
            Some("1.3.6.1.5.5.7.3.2")
        );
        assert_eq!(dotted(&[]), None);
    }

    #[test]
    fn eku_table_both_ways() {
        for (name, oid) in EKU {
            assert_eq!(eku_name(oid), Some(*name));
            assert_eq!(eku_oid(name), *oid);
        }
        assert_eq!(eku_name("1.2.3"), None);
        // x509::certificate_facts pairs x509-parser's flags with the table in this order.
        let names: Vec<_> = EKU.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "serverAuth",
                "clientAuth",
                "codeSigning",
                "emailProtection",
                "timeStamping",
                "OCSPSigning",
                "anyExtendedKeyUsage"
            ]
        );
        assert_eq!(eku_oid("1.2.3"), "1.2.3");
    }

    #[test]
    fn der_reads_are_bounded() {
        assert_eq!(
            der_next(&[0x06, 0x01, 0x2a, 0xff]),
            Some((6, &[0x2a][..], &[0xff][..]))
        );
        assert_eq!(der_next(&[0x30, 0x82, 0x01]), None);
        assert_eq!(der_next(&[0x30, 0x81, 0x05, 1, 2]), None);
        assert_eq!(der_next(&[0x30, 0x80]), None);
    }
}
