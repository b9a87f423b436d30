//! Record lengths the rules compare with: the encrypted Finished and alert, and the per-record
//! overhead of application data (TLS 1.3 and TLS 1.2 AEAD/CBC suites).

/// Encrypted Finished record: hash-length verify_data + 4 (header) + 1 (inner type) + 16 (tag).
pub fn finished_len(cipher: Option<u16>) -> Option<u16> {
    match cipher? {
        0x1301 | 0x1303 | 0x1304 | 0x1305 => Some(32 + 21),
        0x1302 => Some(48 + 21),
        _ => None,
    }
}

/// Encrypted alert record: 2 bytes + inner type + AEAD tag (8 bytes for TLS_AES_128_CCM_8_SHA256).
pub fn alert_len(cipher: Option<u16>) -> usize {
    match cipher {
        Some(0x1305) => 2 + 1 + 8,
        _ => 2 + 1 + 16,
    }
}

/// Encrypted KeyUpdate record: the 5-byte message (4-byte header + `request_update`) + inner type
/// + AEAD tag.
pub fn key_update_len(cipher: Option<u16>) -> usize {
    alert_len(cipher) + 3
}

/// Per-record overhead of an application-data record (inner content type, explicit nonce, AEAD
/// tag) and whether it is exact: AEAD suites yes (TLS 1.3 padding assumed absent); CBC suites
/// only a lower bound (IV 16 + MAC 20 + 1 byte of padding).
pub fn app_overhead(tls13: bool, cipher: Option<u16>) -> (u16, bool) {
    if tls13 {
        return (
            if cipher == Some(0x1305) {
                1 + 8
            } else {
                1 + 16
            },
            true,
        );
    }
    // TLS 1.2 AEAD suites by code (IANA registry): no name lookup per record
    match cipher.unwrap_or(0) {
        // CCM_8
        0xC0A0..=0xC0A3 | 0xC0A8..=0xC0AB | 0xC0AE | 0xC0AF => (8 + 8, true),
        // GCM (RSA/DH/DHE/PSK, ECDHE), CCM, ARIA-GCM, Camellia-GCM
        0x009C..=0x00AD
        | 0xC02B..=0xC032
        | 0xC09C..=0xC09F
        | 0xC0A4..=0xC0A7
        | 0xC0AC
        | 0xC0AD
        | 0xC050..=0xC071
            if is_gcm_or_ccm(cipher) =>
        {
            (8 + 16, true)
        }
        // ChaCha20-Poly1305
        0xCCA8..=0xCCAE => (16, true),
        _ => (16 + 20 + 1, false),
    }
}

/// ARIA/Camellia code points mix CBC and GCM suites: only the GCM ones (even codes from 0xC050).
fn is_gcm_or_ccm(cipher: Option<u16>) -> bool {
    match cipher.unwrap_or(0) {
        c @ 0xC050..=0xC071 => matches!(c, 0xC050..=0xC05F | 0xC06A..=0xC071),
        _ => true,
    }
}
