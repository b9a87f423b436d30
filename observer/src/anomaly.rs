//! The one anomaly registry ("weirds", Zeek's term) for every layer.
//!
//! Each anomaly is declared once below with its name (a contract: it appears in events and as the
//! `kind` label of `ekuwatch_weirds_total`), its layer and a one-line meaning. Everything else comes
//! from this table: the analyzers record [`Anomaly`] values in an [`AnomalySet`] (a bitset, one
//! word per connection); the event writes their names (TCP/TLS/X.509 ones in `weirds`, SMTP ones in
//! `smtp.anomalies`); the metrics pre-initialise one counter per entry; the table in
//! `docs/events.md` is checked against [`markdown_table`] by a test.
//!
//! Adding one: a line in the table (kept in name order: a test checks it), then record it where it
//! happens. Nothing else.

use serde::{Serialize, Serializer};

/// Which layer records an anomaly (and so where an event carries it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Layer {
    /// Flow table and TCP reassembly.
    Tcp,
    /// The SMTP dialogue (reported in the event's `smtp.anomalies`).
    Smtp,
    /// TLS records and handshake messages.
    Tls,
    /// Certificates.
    X509,
}

impl Layer {
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Tcp => "tcp",
            Layer::Smtp => "smtp",
            Layer::Tls => "tls",
            Layer::X509 => "x509",
        }
    }
}

macro_rules! anomalies {
    ($($variant:ident = $name:literal, $layer:ident, $meaning:literal;)*) => {
        /// An anomaly, as declared in the registry.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Anomaly {
            $(#[doc = $meaning] $variant,)*
        }

        impl Anomaly {
            /// Every anomaly, in registry (name) order.
            pub const ALL: &'static [Anomaly] = &[$(Anomaly::$variant,)*];

            /// The name used in events and metric labels.
            pub fn name(self) -> &'static str {
                match self {
                    $(Anomaly::$variant => $name,)*
                }
            }

            pub fn layer(self) -> Layer {
                match self {
                    $(Anomaly::$variant => Layer::$layer,)*
                }
            }

            /// One line for the documentation.
            pub fn meaning(self) -> &'static str {
                match self {
                    $(Anomaly::$variant => $meaning,)*
                }
            }
        }
    };
}

anomalies! {
    ContentGap = "content_gap", Tcp,
        "bytes missing from a stream (capture loss; also bytes missing before a FIN/RST, and with the eBPF backend a connection cut by its byte budget)";
    EbpfSummaryMismatch = "ebpf_summary_mismatch", Tls,
        "the eBPF program's record summary disagreed with user space on where a TLS record starts (the direction stops being parsed)";
    MemcapExceeded = "memcap_exceeded", Tcp,
        "the global reassembly memory cap forced this flow's queued data out as gaps";
    MidStreamStart = "mid_stream_start", Tcp,
        "the connection's start (SYN) was not captured";
    ReassemblyBufferOverflow = "reassembly_buffer_overflow", Tcp,
        "the out-of-order queue hit its cap; a gap was forced";
    RstByClient = "rst_by_client", Tcp,
        "the client reset the connection";
    RstByServer = "rst_by_server", Tcp,
        "the server reset the connection";
    SmtpBadReply = "smtp_bad_reply", Smtp,
        "a server line without a three-digit reply code (skipped)";
    SmtpGap = "smtp_gap", Tcp,
        "a gap inside the SMTP dialogue (the partial line is dropped, parsing resumes at the next line)";
    SmtpLineTooLong = "smtp_line_too_long", Smtp,
        "a line longer than 1024 bytes (cut; an unterminated line at the end counts too)";
    SmtpTooManyPipelinedCommands = "smtp_too_many_pipelined_commands", Smtp,
        "more than 64 commands awaiting replies; later ones are not paired with replies";
    StarttlsContinuedPlaintext = "starttls_continued_plaintext", Smtp,
        "plaintext followed a 220 reply to STARTTLS instead of TLS";
    StarttlsPipelinedData = "starttls_pipelined_data", Smtp,
        "client bytes sent after STARTTLS before its reply (never parsed as TLS)";
    TcpOverlapConflict = "tcp_overlap_conflict", Tcp,
        "overlapping segments carried different bytes (the first copy is kept)";
    Tls13ClientFlightUnrecognised = "tls13_client_flight_unrecognised", Tls,
        "the TLS 1.3 client flight did not match a known record pattern (facts `unknown`)";
    TlsBadAlert = "tls_bad_alert", Tls,
        "a plaintext alert record whose body is not two bytes";
    TlsBadCertificateMessage = "tls_bad_certificate_message", Tls,
        "a malformed Certificate message";
    TlsBadCertificateRequest = "tls_bad_certificate_request", Tls,
        "a malformed CertificateRequest (reported present, without details)";
    TlsBadClientHello = "tls_bad_client_hello", Tls,
        "a malformed ClientHello";
    TlsBadCompressedCertificate = "tls_bad_compressed_certificate", Tls,
        "a CompressedCertificate (RFC 8879) that did not decompress: unknown algorithm, bad data, or not the length it declared (certificate `unknown`)";
    TlsBadExtensions = "tls_bad_extensions", Tls,
        "a ClientHello whose extension block does not parse";
    TlsBadRecordHeader = "tls_bad_record_header", Tls,
        "a record header with an unknown type, version or a length over 18 KiB (the direction stops being parsed)";
    TlsBadServerHello = "tls_bad_server_hello", Tls,
        "a malformed ServerHello";
    TlsChainTooLong = "tls_chain_too_long", Tls,
        "more than 16 certificates in a chain (the first 16 are kept)";
    TlsDecryptFailed = "tls_decrypt_failed", Tls,
        "a key from the key log did not decrypt a record (wrong key; facts fall back to inference)";
    TlsDecryptUnsupportedSuite = "tls_decrypt_unsupported_suite", Tls,
        "keys present, but the cipher suite is not one we decrypt (CBC, CCM)";
    TlsEmptyRecord = "tls_empty_record", Tls,
        "a handshake or alert record of length zero";
    TlsHandshakeTooLarge = "tls_handshake_too_large", Tls,
        "a handshake message over 256 KiB was claimed (the direction stops being parsed)";
    TlsLostSyncAfterGap = "tls_lost_sync_after_gap", Tls,
        "a gap the TLS record layer could not skip (the direction stops being parsed)";
    TlsRenegotiation = "tls_renegotiation", Tls,
        "a TLS ≤ 1.2 renegotiation (encrypted handshake records after the handshake): without keys what it asked and sent is unknown";
    TlsTooManyAlerts = "tls_too_many_alerts", Tls,
        "more than 8 alerts in a session (the first 8 are kept)";
    TlsTooManyCaNames = "tls_too_many_ca_names", Tls,
        "more than 256 CA names in a CertificateRequest (the first 256 are kept)";
    TlsUnexpectedKeyUpdate = "tls_unexpected_key_update", Tls,
        "a decrypted KeyUpdate before the sender's Finished, in TLS 1.2, or not followed (that direction is no longer decrypted)";
    TlsWithoutStarttls = "tls_without_starttls", Smtp,
        "a ClientHello sent instead of an SMTP command (followed as TLS)";
    TruncatedPacket = "truncated_packet", Tcp,
        "a frame was cut by the snaplen";
    X509ParseError = "x509_parse_error", X509,
        "a certificate did not parse (reported with its `parse_error`)";
}

// The set is one u64.
const _: () = assert!(Anomaly::ALL.len() <= 64);

/// Which anomalies occurred: one bit per registry entry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct AnomalySet(u64);

impl AnomalySet {
    pub const EMPTY: AnomalySet = AnomalySet(0);

    pub fn insert(&mut self, a: Anomaly) {
        self.0 |= 1 << a as u32;
    }

    pub fn contains(self, a: Anomaly) -> bool {
        self.0 & (1 << a as u32) != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Both sets' anomalies.
    pub fn union(self, other: AnomalySet) -> AnomalySet {
        AnomalySet(self.0 | other.0)
    }

    /// Only the anomalies of these layers.
    pub fn of_layers(self, layers: &[Layer]) -> AnomalySet {
        let mut out = AnomalySet::EMPTY;
        for a in self.iter().filter(|a| layers.contains(&a.layer())) {
            out.insert(a);
        }
        out
    }

    /// In registry order, which is name order.
    pub fn iter(self) -> impl Iterator<Item = Anomaly> {
        Anomaly::ALL
            .iter()
            .copied()
            .filter(move |a| self.contains(*a))
    }

    pub fn names(self) -> impl Iterator<Item = &'static str> {
        self.iter().map(Anomaly::name)
    }
}

impl FromIterator<Anomaly> for AnomalySet {
    fn from_iter<I: IntoIterator<Item = Anomaly>>(it: I) -> Self {
        let mut s = AnomalySet::EMPTY;
        for a in it {
            s.insert(a);
        }
        s
    }
}

/// Serialised as the list of names, sorted (registry order).
impl Serialize for AnomalySet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.names())
    }
}

/// The table of `docs/events.md` ("Weirds"), as the registry gives it.
pub fn markdown_table() -> String {
    let mut t = String::from("| weird | layer | meaning |\n|---|---|---|\n");
    for a in Anomaly::ALL {
        t.push_str(&format!(
            "| `{}` | {} | {} |\n",
            a.name(),
            a.layer().as_str(),
            a.meaning()
        ));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names are unique and in order (the set's iteration order is then the sorted order events
    /// promise), snake_case, and fit a metric label.
    #[test]
    fn registry_is_sorted_unique_and_labels_are_plain() {
        let names: Vec<_> = Anomaly::ALL.iter().map(|a| a.name()).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(names, sorted, "declare anomalies in name order, once each");
        for n in names {
            assert!(
                n.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{n}"
            );
        }
    }

    #[test]
    fn set_serialises_names_in_order() {
        let s: AnomalySet = [Anomaly::X509ParseError, Anomaly::ContentGap]
            .into_iter()
            .collect();
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"["content_gap","x509_parse_error"]"#
        );
        assert!(s.contains(Anomaly::ContentGap) && !s.contains(Anomaly::SmtpGap));
        assert_eq!(
            s.of_layers(&[Layer::X509]).names().collect::<Vec<_>>(),
            ["x509_parse_error"]
        );
    }

    /// docs/events.md carries the registry's table as it is.
    #[test]
    fn events_doc_has_the_registry_table() {
        let doc = include_str!("../../docs/events.md");
        let table = markdown_table();
        assert!(
            doc.contains(&table),
            "docs/events.md must contain, under \"## Weirds\", exactly:\n\n{table}"
        );
    }
}
