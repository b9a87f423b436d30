//! ClientHello and ServerHello: parsed with `tls-parser`, reduced to the facts a session keeps
//! (names, versions, JA4/JA4S, what the key schedule needs).

use super::codec::{raw_extensions, u16_list, Reader};
use super::ja4::{ja4, ja4s};
use super::names::{is_grease, ExtensionType};
use tls_parser::{TlsMessage, TlsMessageHandshake};

/// The ServerHello random that marks a HelloRetryRequest (RFC 8446 §4.1.3).
const HRR_RANDOM: [u8; 32] = [
    0xCF, 0x21, 0xAD, 0x74, 0xE5, 0x9A, 0x61, 0x11, 0xBE, 0x1D, 0x8C, 0x02, 0x1E, 0x65, 0xB8, 0x91,
    0xC2, 0xA2, 0x11, 0x16, 0x7A, 0xBB, 0x8C, 0x5E, 0x07, 0x9E, 0x09, 0xE2, 0xC8, 0xA8, 0x33, 0x9C,
];

/// What a ClientHello says.
#[derive(Debug)]
pub struct ClientHello {
    pub random: Option<[u8; 32]>,
    pub session_id: Box<[u8]>,
    pub sni: Option<Box<str>>,
    pub offered_versions: Box<[u16]>,
    pub post_handshake_auth: bool,
    /// A TLS ≤ 1.2 session ticket offered for resumption (`session_ticket` extension, not empty).
    pub ticket: Option<Box<[u8]>>,
    /// The extension block did not parse (weird `tls_bad_extensions`).
    pub bad_extensions: bool,
    pub ja4: [u8; 36],
}

/// A whole ClientHello message (header included); None if it does not parse.
pub fn read_client_hello(msg: &[u8]) -> Option<ClientHello> {
    let Ok((_, TlsMessage::Handshake(TlsMessageHandshake::ClientHello(ch)))) =
        tls_parser::parse_tls_message_handshake(msg)
    else {
        return None;
    };
    let ciphers: Vec<u16> = ch.ciphers.iter().map(|c| c.0).collect();
    let exts = raw_extensions(ch.ext.unwrap_or(&[]));
    let mut hello = ClientHello {
        random: <[u8; 32]>::try_from(ch.random).ok(),
        session_id: ch.session_id.unwrap_or_default().into(),
        sni: None,
        offered_versions: Box::default(),
        post_handshake_auth: false,
        ticket: None,
        bad_extensions: exts.is_empty() && ch.ext.is_some_and(|e| !e.is_empty()),
        ja4: [0; 36],
    };
    let mut sig_algs: Vec<u16> = Vec::new();
    let mut first_alpn: Option<Vec<u8>> = None;
    for (ty, data) in &exts {
        match ExtensionType::from(*ty) {
            ExtensionType::ServerName => hello.sni = parse_sni(data).map(String::into_boxed_str),
            ExtensionType::SignatureAlgorithms => sig_algs = u16_list(data.get(2..).unwrap_or(&[])),
            ExtensionType::Alpn => first_alpn = parse_alpn(data).into_iter().next(),
            ExtensionType::SupportedVersions => {
                hello.offered_versions = data.get(1..).map(u16_list).unwrap_or_default().into()
            }
            ExtensionType::PostHandshakeAuth => hello.post_handshake_auth = true,
            ExtensionType::SessionTicket if !data.is_empty() => hello.ticket = Some((*data).into()),
            _ => {}
        }
    }
    let max_version = hello
        .offered_versions
        .iter()
        .copied()
        .filter(|v| !is_grease(*v))
        .max()
        .unwrap_or(ch.version.0);
    hello.ja4 = ja4(
        max_version,
        hello.sni.is_some(),
        &ciphers,
        &exts,
        &sig_algs,
        first_alpn.as_deref(),
    );
    Some(hello)
}

/// What a ServerHello says.
#[derive(Debug)]
pub enum ServerHello {
    /// A HelloRetryRequest: not the real ServerHello.
    RetryRequest,
    Hello(ServerHelloFacts),
}

#[derive(Debug)]
pub struct ServerHelloFacts {
    /// From `supported_versions`, else the legacy version field.
    pub version: u16,
    pub cipher: u16,
    pub random: Option<[u8; 32]>,
    pub session_id: Box<[u8]>,
    /// A PSK was accepted (TLS 1.3 resumption).
    pub psk: bool,
    /// The ALPN extension's first protocol: None without the extension, Some(None) when it
    /// named none.
    pub alpn: Option<Option<Box<str>>>,
    pub ja4s: [u8; 25],
}

/// A whole ServerHello message (header included); None if it does not parse.
pub fn read_server_hello(msg: &[u8]) -> Option<ServerHello> {
    let Ok((_, TlsMessage::Handshake(TlsMessageHandshake::ServerHello(sh)))) =
        tls_parser::parse_tls_message_handshake(msg)
    else {
        return None;
    };
    if sh.random == HRR_RANDOM {
        return Some(ServerHello::RetryRequest);
    }
    let exts = raw_extensions(sh.ext.unwrap_or(&[]));
    let mut version = sh.version.0;
    let mut psk = false;
    let mut alpn = None;
    for (ty, data) in &exts {
        match ExtensionType::from(*ty) {
            ExtensionType::SupportedVersions => {
                if let Ok(v) = <[u8; 2]>::try_from(*data) {
                    version = u16::from_be_bytes(v);
                }
            }
            ExtensionType::PreSharedKey => psk = true,
            ExtensionType::Alpn => {
                alpn = Some(
                    parse_alpn(data)
                        .into_iter()
                        .next()
                        .map(|a| String::from_utf8_lossy(&a).into()),
                )
            }
            _ => {}
        }
    }
    let ja4s = ja4s(
        version,
        sh.cipher.0,
        &exts,
        alpn.as_ref().and_then(|a| a.as_deref()).map(str::as_bytes),
    );
    Some(ServerHello::Hello(ServerHelloFacts {
        version,
        cipher: sh.cipher.0,
        random: <[u8; 32]>::try_from(sh.random).ok(),
        session_id: sh.session_id.unwrap_or(&[]).into(),
        psk,
        alpn,
        ja4s,
    }))
}

/// The host name of a `server_name` extension (first 255 characters).
fn parse_sni(d: &[u8]) -> Option<String> {
    let mut c = Reader::new(Reader::new(d).vec16("server_name_list").ok()?);
    while !c.is_empty() {
        let ty = c.u8("name_type").ok()?;
        let name = c.vec16("host_name").ok()?;
        if ty == 0 {
            return Some(String::from_utf8_lossy(name).chars().take(255).collect());
        }
    }
    None
}

/// The protocols of an ALPN extension.
fn parse_alpn(d: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let Ok(list) = Reader::new(d).vec16("protocol_name_list") else {
        return out;
    };
    let mut c = Reader::new(list);
    while let Ok(p) = c.vec8("protocol_name") {
        out.push(p.to_vec());
    }
    out
}
