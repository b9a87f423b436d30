//! The Certificate message (RFC 5246 §7.4.2, RFC 8446 §4.4.2 with its request context and
//! per-entry extensions). A session holds each side's chain as [`HeldCert`]: the chain's facts are
//! shared with the chain cache and judged at the message's time only when the event is built.

use super::codec::{Decoded, Reader};
use super::facts::{CertStatus, CertificateFacts, Evidence};
use crate::x509;

/// Certificates parsed per chain; the rest are counted (weird `tls_chain_too_long`).
pub const MAX_CHAIN: usize = 16;

/// A Certificate message's list: the DER certificates (at most [`MAX_CHAIN`]), how many there
/// were, and the bytes of certificate data.
#[derive(Debug, PartialEq, Eq)]
pub struct CertificateList<'a> {
    pub certs: Vec<&'a [u8]>,
    pub total: usize,
    pub size: usize,
}

/// Reads a Certificate message body.
pub fn read_certificate_list(body: &[u8], tls13: bool) -> Decoded<CertificateList<'_>> {
    let mut c = Reader::new(body);
    if tls13 {
        c.vec8("certificate_request_context")?;
    }
    let mut list = Reader::new(c.vec24("certificate_list")?);
    let mut out = CertificateList {
        certs: Vec::new(),
        total: 0,
        size: 0,
    };
    while !list.is_empty() {
        let der = list.vec24("cert_data")?;
        if tls13 {
            list.vec16("certificate_entry_extensions")?;
        }
        out.total += 1;
        out.size += der.len();
        if out.certs.len() < MAX_CHAIN {
            out.certs.push(der);
        }
    }
    Ok(out)
}

/// Certificate message body → (DER certificates (at most MAX_CHAIN), total count, bytes of cert data).
pub fn parse_certificate_list(body: &[u8], tls13: bool) -> Option<(Vec<&[u8]>, usize, usize)> {
    let l = read_certificate_list(body, tls13).ok()?;
    Some((l.certs, l.total, l.size))
}

/// A Certificate message as held until the event is built.
#[derive(Debug)]
pub struct HeldCert {
    pub status: CertStatus,
    pub evidence: Evidence,
    pub size_bytes: Option<u32>,
    pub chain: Option<x509::cache::Shared>,
    /// Unix seconds of the packet that carried it (validity is judged then).
    pub at: i64,
}

impl HeldCert {
    pub fn facts(&self) -> CertificateFacts {
        let (chain, chain_class) = match &self.chain {
            Some(shared) => x509::cache::retime(shared, self.at),
            None => Default::default(),
        };
        CertificateFacts {
            status: self.status,
            evidence: self.evidence,
            chain,
            chain_class,
            size_bytes: self.size_bytes.map(|n| n as usize),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_lists() {
        assert_eq!(
            parse_certificate_list(&[0, 0, 0], false),
            Some((vec![], 0, 0))
        );
        assert_eq!(
            parse_certificate_list(&[0, 0, 0, 0], true),
            Some((vec![], 0, 0))
        );
        let body = [0, 0, 8, 0, 0, 2, 0xaa, 0xbb, 0, 0, 0];
        let (c, n, s) = parse_certificate_list(&body, false).unwrap();
        assert_eq!((c, n, s), (vec![&[0xaa, 0xbb][..], &[][..]], 2, 2));
        assert!(parse_certificate_list(&[0, 0, 9, 0], false).is_none());
        assert_eq!(
            read_certificate_list(&[0, 0, 4, 0, 0, 9, 0], false).map(|_| ()),
            Err(super::super::codec::DecodeError::Truncated { field: "cert_data" })
        );
    }
}
