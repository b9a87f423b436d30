//! The CertificateRequest message: TLS ≤ 1.2 (RFC 5246 §7.4.4) and TLS 1.3 (RFC 8446 §4.3.2,
//! with the `certificate_authorities` and `oid_filters` extensions, which `tls-parser` does not
//! cover). A session keeps the message as its wire body ([`HeldCr`], checked when it came); the
//! names are built only for the event.

use super::codec::{raw_extensions, u16_list, vec16_items, Decoded, Reader};
use super::facts::{CertificateRequestFacts, Evidence};
use super::names::{cert_type_name, sig_alg_name, ExtensionType};
use crate::x509;

/// CA names kept from a CertificateRequest; the rest are counted.
pub const MAX_CA_NAMES: usize = 256;

/// Which wire shape a CertificateRequest body has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrShape {
    Tls13,
    /// TLS 1.2: with signature algorithms.
    Tls12,
    /// TLS ≤ 1.1: without.
    Tls11,
    /// Did not parse: present, no details.
    Malformed,
}

impl CrShape {
    /// The shapes to try for a negotiated version (none known: 1.2, then ≤ 1.1).
    pub fn candidates(version: Option<u16>) -> &'static [CrShape] {
        match version {
            Some(0x0304) => &[CrShape::Tls13],
            Some(0x0303) => &[CrShape::Tls12],
            Some(_) => &[CrShape::Tls11],
            None => &[CrShape::Tls12, CrShape::Tls11],
        }
    }

    fn parse(self, body: &[u8]) -> Decoded<RawCr<'_>> {
        match self {
            CrShape::Tls13 => RawCr::parse13(body),
            CrShape::Tls12 | CrShape::Malformed => RawCr::parse12(body, true),
            CrShape::Tls11 => RawCr::parse12(body, false),
        }
    }
}

/// A CertificateRequest as held until the event: its body as received, checked when it came.
#[derive(Debug)]
pub struct HeldCr {
    pub evidence: Evidence,
    pub shape: CrShape,
    pub body: Box<[u8]>,
}

impl HeldCr {
    /// Checks a CertificateRequest body against the shapes `version` allows; the flag says
    /// whether CA names beyond [`MAX_CA_NAMES`] will be dropped. A body that fits no shape is
    /// held as `Malformed` (present, no details) with the first shape's error.
    pub fn check(body: &[u8], version: Option<u16>, evidence: Evidence) -> (HeldCr, CrCheck) {
        let shapes = CrShape::candidates(version);
        let mut first_err = None;
        for &shape in shapes {
            match shape.parse(body) {
                Ok(raw) => {
                    let held = HeldCr {
                        evidence,
                        shape,
                        body: body.into(),
                    };
                    let check = if raw.ca_names_dropped() {
                        CrCheck::TooManyCaNames
                    } else {
                        CrCheck::Ok
                    };
                    return (held, check);
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        let held = HeldCr {
            evidence,
            shape: CrShape::Malformed,
            body: Box::default(),
        };
        (held, CrCheck::Malformed(first_err.map(|e| e.field())))
    }

    pub fn facts(&self) -> CertificateRequestFacts {
        let raw = match self.shape {
            CrShape::Malformed => None,
            shape => shape.parse(&self.body).ok(),
        };
        let mut f = match raw {
            Some(r) => r.facts(),
            None => CertificateRequestFacts::bare(Some(true), self.evidence),
        };
        f.evidence = self.evidence;
        f
    }
}

/// What checking a CertificateRequest found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrCheck {
    Ok,
    TooManyCaNames,
    /// Fits no shape; the field where the first shape failed.
    Malformed(Option<&'static str>),
}

/// A CertificateRequest body split into its lists, every list's structure checked (so building
/// the facts from it cannot fail). Nothing is allocated.
#[derive(Debug, Default, Clone, Copy)]
struct RawCr<'a> {
    certificate_types: &'a [u8],
    signature_algorithms: &'a [u8],
    signature_algorithms_cert: &'a [u8],
    /// DistinguishedName entries, each a 16-bit length and DER.
    ca_names: &'a [u8],
    /// TLS 1.3 oid_filters entries.
    oid_filters: &'a [u8],
}

impl<'a> RawCr<'a> {
    /// TLS ≤ 1.2 (RFC 5246 §7.4.4; without signature algorithms before 1.2).
    fn parse12(body: &'a [u8], with_sig_algs: bool) -> Decoded<Self> {
        let mut c = Reader::new(body);
        let mut r = RawCr {
            certificate_types: c.vec8("certificate_types")?,
            ..RawCr::default()
        };
        if with_sig_algs {
            r.signature_algorithms = c.vec16("supported_signature_algorithms")?;
        }
        r.ca_names = c.vec16("certificate_authorities")?;
        vec16_items(r.ca_names, "distinguished_name")?;
        c.end("certificate_request")?;
        Ok(r)
    }

    /// TLS 1.3 (RFC 8446 §4.3.2): context + extensions.
    fn parse13(body: &'a [u8]) -> Decoded<Self> {
        let mut c = Reader::new(body);
        c.vec8("certificate_request_context")?;
        let exts = c.vec16("extensions")?;
        c.end("certificate_request")?;
        let mut r = RawCr::default();
        for (ty, data) in raw_extensions(exts) {
            let mut d = Reader::new(data);
            match ExtensionType::from(ty) {
                ExtensionType::SignatureAlgorithms => {
                    r.signature_algorithms = d.vec16("signature_algorithms")?
                }
                ExtensionType::SignatureAlgorithmsCert => {
                    r.signature_algorithms_cert = d.vec16("signature_algorithms_cert")?
                }
                ExtensionType::CertificateAuthorities => {
                    r.ca_names = d.vec16("certificate_authorities")?;
                    vec16_items(r.ca_names, "distinguished_name")?;
                }
                ExtensionType::OidFilters => {
                    r.oid_filters = d.vec16("oid_filters")?;
                    let mut l = Reader::new(r.oid_filters);
                    while !l.is_empty() {
                        l.vec8("certificate_extension_oid")?;
                        l.vec16("certificate_extension_values")?;
                    }
                }
                _ => {}
            }
        }
        Ok(r)
    }

    /// More CA names than are kept ([`MAX_CA_NAMES`]).
    fn ca_names_dropped(&self) -> bool {
        vec16_items(self.ca_names, "distinguished_name").unwrap_or(0) > MAX_CA_NAMES
    }

    fn facts(&self) -> CertificateRequestFacts {
        let mut names = Reader::new(self.ca_names);
        let mut ca_names = Vec::new();
        while let (Ok(dn), true) = (names.vec16("dn"), ca_names.len() < MAX_CA_NAMES) {
            ca_names.push(x509::dn_from_der(dn).unwrap_or_else(|| format!("#{}", hex::encode(dn))));
        }
        let mut oid_filters = Vec::new();
        let mut l = Reader::new(self.oid_filters);
        while let (Ok(oid), Ok(values)) = (l.vec8("oid"), l.vec16("values")) {
            oid_filters.push(oid_filter_desc(oid, values));
        }
        let names = |b: &[u8]| u16_list(b).into_iter().map(sig_alg_name).collect();
        CertificateRequestFacts {
            present: Some(true),
            evidence: Evidence::Plaintext,
            ca_names,
            signature_algorithms: names(self.signature_algorithms),
            certificate_types: self
                .certificate_types
                .iter()
                .map(|&t| cert_type_name(t))
                .collect(),
            oid_filters,
            signature_algorithms_cert: names(self.signature_algorithms_cert),
        }
    }
}

/// TLS ≤ 1.2 CertificateRequest → (facts, whether CA names were dropped).
pub fn parse_cr12(body: &[u8], with_sig_algs: bool) -> Option<(CertificateRequestFacts, bool)> {
    let r = RawCr::parse12(body, with_sig_algs).ok()?;
    Some((r.facts(), r.ca_names_dropped()))
}

/// TLS 1.3 CertificateRequest → (facts, whether CA names were dropped).
pub fn parse_cr13(body: &[u8]) -> Option<(CertificateRequestFacts, bool)> {
    let r = RawCr::parse13(body).ok()?;
    Some((r.facts(), r.ca_names_dropped()))
}

/// `oid=values`, EKU OIDs named (e.g. `extendedKeyUsage=clientAuth`).
fn oid_filter_desc(oid: &[u8], values: &[u8]) -> String {
    // RFC 8446 says "DER-encoded": seen both as bare OID content and as a full TLV (tshark's form).
    let oid = match x509::oid::der_next(oid) {
        Some((0x06, content, [])) => content,
        _ => oid,
    };
    let name = x509::oid::dotted(oid).unwrap_or_else(|| format!("#{}", hex::encode(oid)));
    if name == x509::oid::EXTENDED_KEY_USAGE {
        // values: DER SEQUENCE OF KeyPurposeId
        let mut purposes = Vec::new();
        if let Some(inner) = x509::oid::der_tlv(values, 0x30) {
            let mut rest = inner;
            while let Some((tag, v, r)) = x509::oid::der_next(rest) {
                if tag == 0x06 {
                    if let Some(s) = x509::oid::dotted(v) {
                        purposes.push(x509::oid::eku_name(&s).map_or(s, String::from));
                    }
                }
                rest = r;
            }
        }
        return format!("extendedKeyUsage={}", purposes.join("+"));
    }
    format!("{name}=#{}", hex::encode(values))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cr13_with_oid_filters_and_ca_names() {
        // extensions: signature_algorithms [0x0403], certificate_authorities [one DN],
        // oid_filters [EKU = clientAuth]
        let dn =
            hex::decode("3013311130 0f0603550403 0c084c616220524f4f54".replace(' ', "")).unwrap();
        let mut ca = Vec::new();
        ca.extend_from_slice(&(dn.len() as u16).to_be_bytes());
        ca.extend_from_slice(&dn);
        let mut ca_ext = (ca.len() as u16).to_be_bytes().to_vec();
        ca_ext.extend_from_slice(&ca);
        let eku_val = hex::decode("300a06082b06010505070302").unwrap();
        let mut filter = vec![3, 0x55, 0x1d, 0x25];
        filter.extend_from_slice(&(eku_val.len() as u16).to_be_bytes());
        filter.extend_from_slice(&eku_val);
        let mut of_ext = (filter.len() as u16).to_be_bytes().to_vec();
        of_ext.extend_from_slice(&filter);
        let mut exts = Vec::new();
        for (t, d) in [(13u16, vec![0, 2, 4, 3]), (47, ca_ext), (48, of_ext)] {
            exts.extend_from_slice(&t.to_be_bytes());
            exts.extend_from_slice(&(d.len() as u16).to_be_bytes());
            exts.extend_from_slice(&d);
        }
        let mut body = vec![0];
        body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
        body.extend_from_slice(&exts);
        let (f, dropped) = parse_cr13(&body).unwrap();
        assert!(!dropped);
        assert_eq!(f.signature_algorithms, vec!["ecdsa_secp256r1_sha256"]);
        assert_eq!(f.ca_names, vec!["CN=Lab ROOT"]);
        assert_eq!(f.oid_filters, vec!["extendedKeyUsage=clientAuth"]);
        for n in 0..body.len() {
            let _ = parse_cr13(&body[..n]);
        }
        // A cut body is held as malformed, and the check names where it broke.
        let (held, check) =
            HeldCr::check(&body[..body.len() - 3], Some(0x0304), Evidence::Decrypted);
        assert_eq!(held.shape, CrShape::Malformed);
        assert_eq!(check, CrCheck::Malformed(Some("extensions")));
    }

    #[test]
    fn cr12_shapes() {
        // types [rsa_sign, ecdsa_sign], sig algs [0x0401], no CA names
        let body = [2, 1, 64, 0, 2, 4, 1, 0, 0];
        let (f, _) = parse_cr12(&body, true).unwrap();
        assert_eq!(f.certificate_types, vec!["rsa_sign", "ecdsa_sign"]);
        assert_eq!(f.signature_algorithms, vec!["rsa_pkcs1_sha256"]);
        assert!(f.ca_names.is_empty());
        assert!(parse_cr12(&body, false).is_none());
        for n in 0..body.len() {
            assert!(parse_cr12(&body[..n], true).is_none());
        }
        // Unknown version: 1.2's shape first, then ≤ 1.1's.
        let (held, check) = HeldCr::check(&body, None, Evidence::Plaintext);
        assert_eq!((held.shape, check), (CrShape::Tls12, CrCheck::Ok));
    }
}
