//! X.509 facts for one certificate, from DER, with `x509-parser`.
//!
//! EKU classification (`eku_class`), the question this tool exists for:
//! - `none`: no EKU extension (usable for any purpose as far as EKU goes),
//! - `any`: anyExtendedKeyUsage present,
//! - `server_and_client`: serverAuth and clientAuth,
//! - `server_only`: serverAuth without clientAuth (what public CAs issue from 2026/2027),
//! - `client_only`: clientAuth without serverAuth,
//! - `other`: an EKU extension with neither (e.g. emailProtection only).

pub mod cache;
pub mod chain;
pub mod oid;

pub use oid::eku_oid;

use serde::Serialize;
use sha2::{Digest, Sha256};
use x509_parser::prelude::*;

named_enum! {
    /// A certificate's EKU class (docs/policy.md).
    pub enum EkuClass {
        /// serverAuth without clientAuth.
        ServerOnly = "server_only",
        ClientOnly = "client_only",
        ServerAndClient = "server_and_client",
        /// anyExtendedKeyUsage.
        Any = "any",
        /// No EKU extension.
        None = "none",
        /// An EKU without serverAuth or clientAuth.
        Other = "other",
    }
}

named_enum! {
    /// A certificate's validity at the time of the packet that carried it.
    pub enum Validity {
        Valid = "valid",
        Expired = "expired",
        NotYetValid = "not_yet_valid",
    }
}

/// Facts about one certificate (the event's `CERT` object).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertFacts {
    pub subject: Option<String>,
    pub issuer: Option<String>,
    pub serial: Option<String>,
    pub not_before: Option<String>,
    pub not_after: Option<String>,
    /// Judged at the time of the packet that carried the certificate.
    pub validity: Option<Validity>,
    pub san_dns: Vec<String>,
    /// EKU names (`serverAuth`, `clientAuth`, ...) or dotted OIDs for others; null without the extension.
    pub eku: Option<Vec<String>>,
    pub eku_class: Option<EkuClass>,
    pub sha256: String,
    pub key: Option<String>,
    /// public / private / unknown: judged against a root store in a later version; `unknown` now.
    pub trust: &'static str,
    pub size_bytes: usize,
    /// Set when the DER could not be parsed; the other fields are then null.
    pub parse_error: Option<String>,
    /// (notBefore, notAfter) in unix seconds, for judging validity at another time.
    #[serde(skip)]
    pub validity_window: Option<(i64, i64)>,
}

/// Validity of a certificate valid from `nb` to `na` (unix seconds) at `at`.
pub fn validity_at(nb: i64, na: i64, at: i64) -> Validity {
    if at < nb {
        Validity::NotYetValid
    } else if at > na {
        Validity::Expired
    } else {
        Validity::Valid
    }
}

const OID_EC_P256: &str = "1.2.840.10045.3.1.7";
const OID_EC_P384: &str = "1.3.132.0.34";
const OID_EC_P521: &str = "1.3.132.0.35";

/// Parses one DER certificate. Never fails: a certificate that does not parse is reported as such.
pub fn cert_facts(der: &[u8], at_unix_secs: i64) -> CertFacts {
    let sha256 = hex::encode(Sha256::digest(der));
    let mut f = CertFacts {
        subject: None,
        issuer: None,
        serial: None,
        not_before: None,
        not_after: None,
        validity: None,
        san_dns: Vec::new(),
        eku: None,
        eku_class: None,
        sha256,
        key: None,
        trust: "unknown",
        size_bytes: der.len(),
        parse_error: None,
        validity_window: None,
    };
    let cert = match X509Certificate::from_der(der) {
        Ok((_, c)) => c,
        Err(e) => {
            f.parse_error = Some(e.to_string());
            return f;
        }
    };
    f.subject = Some(rfc4514(cert.subject()));
    f.issuer = Some(rfc4514(cert.issuer()));
    f.serial = Some(hex::encode_upper(cert.raw_serial()));
    let v = cert.validity();
    f.not_before = Some(rfc3339(v.not_before.timestamp()));
    f.not_after = Some(rfc3339(v.not_after.timestamp()));
    let window = (v.not_before.timestamp(), v.not_after.timestamp());
    f.validity_window = Some(window);
    f.validity = Some(validity_at(window.0, window.1, at_unix_secs));
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            if let GeneralName::DNSName(d) = n {
                f.san_dns.push((*d).to_string());
            }
        }
    }
    match cert.extended_key_usage() {
        Ok(Some(eku)) => {
            let e = eku.value;
            let mut names = Vec::new();
            // x509-parser's flags, in the order of the crate's EKU table (oid::EKU).
            let flags = [
                e.server_auth,
                e.client_auth,
                e.code_signing,
                e.email_protection,
                e.time_stamping,
                e.ocsp_signing,
                e.any,
            ];
            for ((name, _), set) in oid::EKU.iter().zip(flags) {
                if set {
                    names.push((*name).to_string());
                }
            }
            names.extend(e.other.iter().map(|o| o.to_id_string()));
            f.eku_class = Some(classify(e.server_auth, e.client_auth, e.any));
            f.eku = Some(names);
        }
        Ok(None) => f.eku_class = Some(EkuClass::None),
        Err(err) => f.parse_error = Some(format!("extendedKeyUsage: {err}")),
    }
    f.key = Some(key_desc(cert.public_key()));
    f
}

pub fn classify(server_auth: bool, client_auth: bool, any: bool) -> EkuClass {
    match (any, server_auth, client_auth) {
        (true, _, _) => EkuClass::Any,
        (false, true, true) => EkuClass::ServerAndClient,
        (false, true, false) => EkuClass::ServerOnly,
        (false, false, true) => EkuClass::ClientOnly,
        (false, false, false) => EkuClass::Other,
    }
}

fn key_desc(spki: &SubjectPublicKeyInfo<'_>) -> String {
    let alg = spki.algorithm.algorithm.to_id_string();
    match alg.as_str() {
        "1.2.840.113549.1.1.1" => {
            let bits = match spki.parsed() {
                Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => {
                    let mut m = rsa.modulus;
                    while let [0, rest @ ..] = m {
                        m = rest; // leading zero bytes
                    }
                    m.first()
                        .map_or(0, |&b| (m.len() - 1) * 8 + (8 - b.leading_zeros() as usize))
                }
                _ => 0,
            };
            format!("rsa-{bits}")
        }
        "1.2.840.10045.2.1" => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.to_id_string())
                .unwrap_or_default();
            match curve.as_str() {
                OID_EC_P256 => "ec-p256".into(),
                OID_EC_P384 => "ec-p384".into(),
                OID_EC_P521 => "ec-p521".into(),
                "" => "ec".into(),
                other => format!("ec-{other}"),
            }
        }
        "1.3.101.112" => "ed25519".into(),
        "1.3.101.113" => "ed448".into(),
        "1.2.840.10040.4.1" => "dsa".into(),
        other => other.to_string(),
    }
}

fn rfc3339(unix: i64) -> String {
    ::time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&::time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

/// RFC 4514 string of a distinguished name: RDNs in reverse (most specific first), `type=value`
/// joined by `,`, multi-valued RDNs by `+`, special characters escaped, non-string values as `#hex`.
pub fn rfc4514(name: &X509Name<'_>) -> String {
    let rdns: Vec<_> = name.iter_rdn().collect();
    let mut parts = Vec::with_capacity(rdns.len());
    for rdn in rdns.iter().rev() {
        let attrs: Vec<String> = rdn
            .iter()
            .map(|a| {
                let oid = a.attr_type().to_id_string();
                let short = attr_short_name(&oid).map(str::to_string).unwrap_or(oid);
                let value = match a.as_str() {
                    Ok(s) => escape_4514(s),
                    Err(_) => match a.attr_value().tag() {
                        // BMPString / UniversalString / TeletexString: best effort text
                        x509_parser::der_parser::asn1_rs::Tag::BmpString => {
                            let d = a.attr_value().data;
                            let u: Vec<u16> = d
                                .as_chunks::<2>()
                                .0
                                .iter()
                                .map(|&c| u16::from_be_bytes(c))
                                .collect();
                            escape_4514(&String::from_utf16_lossy(&u))
                        }
                        x509_parser::der_parser::asn1_rs::Tag::T61String => {
                            escape_4514(&String::from_utf8_lossy(a.attr_value().data))
                        }
                        _ => format!("#{}", hex::encode(a.attr_value().data)),
                    },
                };
                format!("{short}={value}")
            })
            .collect();
        parts.push(attrs.join("+"));
    }
    parts.join(",")
}

/// Short names RFC 4514 defines, plus the usual extras.
pub fn attr_short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "STREET",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        "1.2.840.113549.1.9.1" => "emailAddress",
        "2.5.4.5" => "serialNumber",
        _ => return None,
    })
}

fn escape_4514(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let n = s.chars().count();
    for (i, c) in s.chars().enumerate() {
        let special = matches!(c, '"' | '+' | ',' | ';' | '<' | '>' | '\\')
            || (i == 0 && (c == '#' || c == ' '))
            || (i + 1 == n && c == ' ');
        if c == '\0' {
            out.push_str("\\00");
        } else if c.is_control() {
            out.push_str(&format!("\\{:02x}", c as u32 & 0xff));
        } else {
            if special {
                out.push('\\');
            }
            out.push(c);
        }
    }
    out
}

/// RFC 4514 form of a DER-encoded DistinguishedName (as carried in CertificateRequest).
pub fn dn_from_der(der: &[u8]) -> Option<String> {
    X509Name::from_der(der).ok().map(|(_, n)| rfc4514(&n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert_eq!(classify(true, false, false), EkuClass::ServerOnly);
        assert_eq!(classify(true, true, false), EkuClass::ServerAndClient);
        assert_eq!(classify(false, true, false), EkuClass::ClientOnly);
        assert_eq!(classify(false, false, false), EkuClass::Other);
        assert_eq!(classify(true, true, true), EkuClass::Any);
    }

    #[test]
    fn garbage_is_reported_not_dropped() {
        let f = cert_facts(b"\x30\x03\x02\x01\x01", 0);
        assert!(f.parse_error.is_some());
        assert_eq!(f.size_bytes, 5);
        assert_eq!(f.sha256.len(), 64);
        for n in 0..40 {
            let _ = cert_facts(&vec![0x30; n], 0);
        }
    }

    #[test]
    fn escaping() {
        assert_eq!(escape_4514("a,b"), "a\\,b");
        assert_eq!(escape_4514(" lead#"), "\\ lead#");
        assert_eq!(escape_4514("#x "), "\\#x\\ ");
    }

    #[test]
    fn dn_order_is_reversed() {
        // SEQUENCE { SET { C=US } SET { O=Lab } SET { CN=Lab Root CA } }
        let der = hex::decode(concat!(
            "3033",
            "310b3009",
            "0603550406",
            "13025553",
            "310c300a",
            "060355040a",
            "0c034c6162",
            "3116301406035504030c0d",
            "4c616220526f6f742043412031"
        ))
        .unwrap();
        let s = dn_from_der(&der);
        assert_eq!(s.as_deref(), Some("CN=Lab Root CA 1,O=Lab,C=US"));
    }
}
