//! Whole-chain facts: would this chain work as a TLS *client* certificate (OpenSSL's `ssl_client`
//! purpose vs GnuTLS), does it lead to a public root (Mozilla's list, `webpki-roots`), and which
//! CA/Browser policy dates apply (docs/policy.md).

use super::{CertFacts, EkuClass};
use serde::Serialize;
use sha1::{Digest, Sha1};
use x509_parser::prelude::*;

/// The bundled public root store: Mozilla's roots as shipped by this crate version.
pub const ROOT_STORE: &str = "Mozilla (webpki-roots 1.0.10)";

/// Chrome Root Program policy 1.8: subscriber certificates issued on/after this date must be
/// serverAuth-only (unix seconds of 2027-03-15T00:00:00Z).
pub const CHROME_LEAF_SERVER_ONLY_FROM: i64 = 1_805_068_800;
/// Sub-CAs disclosed on/after 2026-06-15 must assert only serverAuth (unix seconds).
pub const CHROME_SUBCA_SERVER_ONLY_FROM: i64 = 1_781_481_600;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainClass {
    /// `client_capable`, `server_only_leaf`, `dual_eku_leaf_under_server_only_intermediate`,
    /// `leaf_without_client_eku` (EKU present, neither clientAuth nor anyEKU), `unparsed`.
    pub case: &'static str,
    pub leaf_eku_class: Option<EkuClass>,
    /// EKU class of every certificate after the leaf, in chain order.
    pub intermediates_eku: Vec<Option<EkuClass>>,
    /// OpenSSL `ssl_client` purpose: every certificate's EKU absent or containing clientAuth.
    pub openssl_client_ok: bool,
    /// GnuTLS (as used by Exim) does not check the client certificate's EKU.
    pub gnutls_client_ok: bool,
    /// `public` (leads to a root in the bundled store), `private` (ends in a self-signed certificate
    /// that is not in it), `unknown` (incomplete chain: the issuer is neither sent nor a public root).
    pub trust: &'static str,
    pub trust_anchor: Option<String>,
    pub root_store: &'static str,
    /// Policy flags (docs/policy.md) for public chains.
    pub policy_flags: Vec<String>,
    /// Days from the packet's time to the leaf's notAfter (when the leaf is public and dual-EKU:
    /// its replacement will lose clientAuth).
    pub days_until_leaf_expiry: Option<i64>,
}

fn has_client(c: &CertFacts) -> bool {
    match &c.eku {
        None => true, // no EKU extension: any purpose
        Some(e) => e.iter().any(|n| n == "clientAuth"),
    }
}

/// Content of a DER TLV (skipping tag and length).
fn der_content(der: &[u8]) -> Option<&[u8]> {
    let l0 = *der.get(1)?;
    let hdr = if l0 < 0x80 {
        2
    } else {
        2 + usize::from(l0 & 0x7f)
    };
    der.get(hdr..)
}

/// SHA-1 of the subjectPublicKey bits of an SPKI given without its outer SEQUENCE header
/// (the usual subjectKeyIdentifier, RFC 5280 §4.2.1.2 method 1).
fn key_id_of_spki_content(spki: &[u8]) -> Option<Vec<u8>> {
    let alg_len = {
        let l0 = *spki.get(1)?;
        if l0 < 0x80 {
            2 + usize::from(l0)
        } else {
            let n = usize::from(l0 & 0x7f);
            let mut len = 0usize;
            for k in 0..n {
                len = (len << 8) | usize::from(*spki.get(2 + k)?);
            }
            2 + n + len
        }
    };
    let bits = der_content(spki.get(alg_len..)?)?;
    Some(Sha1::digest(bits.get(1..)?).to_vec())
}

struct Parsed<'a> {
    issuer_raw: &'a [u8],
    subject_raw: &'a [u8],
    aki: Option<Vec<u8>>,
}

fn parse(der: &[u8]) -> Option<Parsed<'_>> {
    let (_, c) = X509Certificate::from_der(der).ok()?;
    let aki = c
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(a) => {
                a.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => None,
        });
    let issuer_raw = c.issuer().as_raw();
    let subject_raw = c.subject().as_raw();
    // borrow from `der`, not from the parsed certificate
    let off = |s: &[u8]| (s.as_ptr() as usize).checked_sub(der.as_ptr() as usize);
    let (io, so) = (off(issuer_raw)?, off(subject_raw)?);
    Some(Parsed {
        issuer_raw: der.get(io..io + issuer_raw.len())?,
        subject_raw: der.get(so..so + subject_raw.len())?,
        aki,
    })
}

/// The public root whose subject matches `name_raw` (a full Name TLV), checking the key
/// identifier when the certificate carries one.
fn public_root_for(name_raw: &[u8], aki: Option<&[u8]>) -> Option<String> {
    let content = der_content(name_raw)?;
    for root in webpki_roots::TLS_SERVER_ROOTS {
        if root.subject.as_ref() != content {
            continue;
        }
        if let Some(aki) = aki {
            if key_id_of_spki_content(root.subject_public_key_info.as_ref()).as_deref() != Some(aki)
            {
                continue;
            }
        }
        let mut full = vec![0x30];
        full.extend(der_len(content.len()));
        full.extend_from_slice(content);
        return Some(super::dn_from_der(&full).unwrap_or_default());
    }
    None
}

fn der_len(n: usize) -> Vec<u8> {
    match n {
        0..=0x7f => vec![n as u8],
        0x80..=0xff => vec![0x81, n as u8],
        _ => vec![0x82, (n >> 8) as u8, n as u8],
    }
}

/// Classifies a presented chain (DER certificates, leaf first, and their facts).
pub fn classify(ders: &[&[u8]], facts: &[CertFacts], at_unix_secs: i64) -> Option<ChainClass> {
    let leaf = facts.first()?;
    let openssl_client_ok = facts
        .iter()
        .all(|c| c.parse_error.is_none() && has_client(c));
    let leaf_class = leaf.eku_class;
    let inter: Vec<Option<EkuClass>> = facts.iter().skip(1).map(|c| c.eku_class).collect();
    let case = if leaf.parse_error.is_some() {
        "unparsed"
    } else if leaf_class == Some(EkuClass::ServerOnly) {
        "server_only_leaf"
    } else if !has_client(leaf) {
        "leaf_without_client_eku"
    } else if facts.iter().skip(1).any(|c| !has_client(c)) {
        "dual_eku_leaf_under_server_only_intermediate"
    } else {
        "client_capable"
    };
    // Trust: walk to the last certificate sent.
    let parsed: Vec<Option<Parsed<'_>>> = ders.iter().map(|d| parse(d)).collect();
    let (trust, anchor) = match parsed.last().and_then(|p| p.as_ref()) {
        None => ("unknown", None),
        Some(top) => {
            if let Some(r) =
                public_root_for(top.subject_raw, None).filter(|_| top.subject_raw == top.issuer_raw)
            {
                ("public", Some(r))
            } else if let Some(r) = public_root_for(top.issuer_raw, top.aki.as_deref()) {
                ("public", Some(r))
            } else if top.subject_raw == top.issuer_raw {
                ("private", facts.last().and_then(|f| f.subject.clone()))
            } else {
                ("unknown", None)
            }
        }
    };
    let mut flags = Vec::new();
    let mut days = None;
    if trust == "public" {
        let nb = |c: &CertFacts| {
            c.not_before
                .as_deref()
                .and_then(|t| {
                    ::time::OffsetDateTime::parse(
                        t,
                        &::time::format_description::well_known::Rfc3339,
                    )
                    .ok()
                })
                .map(|t| t.unix_timestamp())
        };
        let na = leaf
            .not_after
            .as_deref()
            .and_then(|t| {
                ::time::OffsetDateTime::parse(t, &::time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .map(|t| t.unix_timestamp());
        let leaf_client = leaf
            .eku
            .as_ref()
            .is_some_and(|e| e.iter().any(|n| n == "clientAuth"));
        if leaf_client && nb(leaf).is_some_and(|t| t >= CHROME_LEAF_SERVER_ONLY_FROM) {
            flags.push("leaf_client_auth_issued_after_2027_03_15".to_string());
        }
        if leaf_class == Some(EkuClass::ServerAndClient) {
            flags.push("dual_eku_replacement_will_lose_client_auth".to_string());
            days = na.map(|t| (t - at_unix_secs).div_euclid(86_400));
        }
        if facts.iter().skip(1).any(|c| {
            c.eku
                .as_ref()
                .is_some_and(|e| e.iter().any(|n| n == "clientAuth"))
                && nb(c).is_some_and(|t| t >= CHROME_SUBCA_SERVER_ONLY_FROM)
        }) {
            flags.push("subca_client_auth_created_after_2026_06_15".to_string());
        }
    }
    Some(ChainClass {
        case,
        leaf_eku_class: leaf_class,
        intermediates_eku: inter,
        openssl_client_ok,
        gnutls_client_ok: true,
        trust,
        trust_anchor: anchor,
        root_store: ROOT_STORE,
        policy_flags: flags,
        days_until_leaf_expiry: days,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_dates() {
        let d = |s: &str| {
            ::time::OffsetDateTime::parse(s, &::time::format_description::well_known::Rfc3339)
                .unwrap()
                .unix_timestamp()
        };
        assert_eq!(CHROME_LEAF_SERVER_ONLY_FROM, d("2027-03-15T00:00:00Z"));
        assert_eq!(CHROME_SUBCA_SERVER_ONLY_FROM, d("2026-06-15T00:00:00Z"));
    }

    #[test]
    fn root_store_version_matches_the_lock_file() {
        let lock = include_str!("../../../Cargo.lock");
        let v = lock
            .split("name = \"webpki-roots\"\nversion = \"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap();
        assert!(ROOT_STORE.contains(v), "ROOT_STORE names webpki-roots {v}");
    }

    #[test]
    fn a_public_root_is_found_by_name_and_key_id() {
        let root = &webpki_roots::TLS_SERVER_ROOTS[0];
        let mut name = vec![0x30];
        name.extend(der_len(root.subject.as_ref().len()));
        name.extend_from_slice(root.subject.as_ref());
        let kid = key_id_of_spki_content(root.subject_public_key_info.as_ref()).unwrap();
        assert!(public_root_for(&name, Some(&kid)).is_some());
        assert!(
            public_root_for(&name, Some(&[0u8; 20])).is_none(),
            "wrong key id"
        );
        assert!(public_root_for(&name, None).is_some());
    }
}
