//! NSS key log files (RFC 9850): `LABEL <client_random hex> <secret hex>` per line. Comments (`#`),
//! blank lines, CRLF and either hex case are accepted; malformed lines are counted, never fatal.
//! Secrets never appear in logs or events (`Debug` is redacted).

use std::collections::HashMap;

/// Secrets of one TLS session, by key log label.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secrets {
    pub client_handshake: Option<Vec<u8>>,
    pub server_handshake: Option<Vec<u8>>,
    pub client_traffic0: Option<Vec<u8>>,
    pub server_traffic0: Option<Vec<u8>>,
    /// TLS ≤ 1.2 master secret (`CLIENT_RANDOM`).
    pub master: Option<Vec<u8>>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let has = |o: &Option<Vec<u8>>| if o.is_some() { "set" } else { "-" };
        write!(
            f,
            "Secrets {{ client_hs: {}, server_hs: {}, client_ap0: {}, server_ap0: {}, master: {} }} (values redacted)",
            has(&self.client_handshake),
            has(&self.server_handshake),
            has(&self.client_traffic0),
            has(&self.server_traffic0),
            has(&self.master)
        )
    }
}

#[derive(Clone, Default, Debug)]
pub struct KeyLog {
    sessions: HashMap<[u8; 32], Secrets>,
    /// Lines that were not comments/blank and did not parse.
    pub malformed: u64,
    /// Lines with a label we do not use (early data, exporter secrets, ...).
    pub ignored: u64,
}

impl KeyLog {
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    pub fn get(&self, client_random: &[u8; 32]) -> Option<&Secrets> {
        self.sessions.get(client_random)
    }

    /// Adds every line of a key log (file contents or a pcapng Decryption Secrets Block).
    pub fn add(&mut self, text: &[u8]) {
        for raw in text.split(|&b| b == b'\n') {
            let line = String::from_utf8_lossy(raw);
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut parts = line.split_ascii_whitespace();
            let (Some(label), Some(random), Some(secret), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                self.malformed += 1;
                continue;
            };
            let (Ok(random), Ok(secret)) = (hex::decode(random), hex::decode(secret)) else {
                self.malformed += 1;
                continue;
            };
            let Ok(random) = <[u8; 32]>::try_from(random.as_slice()) else {
                self.malformed += 1;
                continue;
            };
            if secret.is_empty() || secret.len() > 64 {
                self.malformed += 1;
                continue;
            }
            if !matches!(
                label,
                "CLIENT_HANDSHAKE_TRAFFIC_SECRET"
                    | "SERVER_HANDSHAKE_TRAFFIC_SECRET"
                    | "CLIENT_TRAFFIC_SECRET_0"
                    | "SERVER_TRAFFIC_SECRET_0"
                    | "CLIENT_RANDOM"
            ) {
                self.ignored += 1;
                continue;
            }
            let s = self.sessions.entry(random).or_default();
            let slot = match label {
                "CLIENT_HANDSHAKE_TRAFFIC_SECRET" => &mut s.client_handshake,
                "SERVER_HANDSHAKE_TRAFFIC_SECRET" => &mut s.server_handshake,
                "CLIENT_TRAFFIC_SECRET_0" => &mut s.client_traffic0,
                "SERVER_TRAFFIC_SECRET_0" => &mut s.server_traffic0,
                _ => &mut s.master,
            };
            *slot = Some(secret);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_labels_comments_crlf_and_case() {
        let r = "ab".repeat(32);
        let text = format!(
            "# comment\r\n\r\nCLIENT_HANDSHAKE_TRAFFIC_SECRET {r} {}\r\nSERVER_HANDSHAKE_TRAFFIC_SECRET {} {}\nCLIENT_RANDOM {r} {}\nEXPORTER_SECRET {r} 00\n",
            "11".repeat(32),
            r.to_uppercase(),
            "22".repeat(48),
            "33".repeat(48)
        );
        let mut k = KeyLog::default();
        k.add(text.as_bytes());
        assert_eq!((k.sessions(), k.malformed, k.ignored), (1, 0, 1));
        let s = k.get(&[0xab; 32]).unwrap();
        assert_eq!(s.client_handshake.as_deref(), Some(&[0x11; 32][..]));
        assert_eq!(s.server_handshake.as_deref(), Some(&[0x22; 48][..]));
        assert_eq!(s.master.as_deref(), Some(&[0x33; 48][..]));
        assert!(!format!("{s:?}").contains("1111"), "secrets are redacted");
    }

    #[test]
    fn garbage_lines_are_counted() {
        let mut k = KeyLog::default();
        k.add(b"CLIENT_RANDOM zz 00\nCLIENT_RANDOM 0011 00\njust words\nCLIENT_RANDOM\n\xff\xfe\n");
        assert_eq!(k.malformed, 5);
        assert!(k.is_empty());
    }
}
