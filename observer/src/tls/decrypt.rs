//! Record decryption with keys from a key log: TLS 1.3 (HKDF-Expand-Label from traffic secrets;
//! AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305) and TLS 1.2 AEAD suites (PRF key expansion from the
//! master secret; AES-GCM and ChaCha20-Poly1305). RustCrypto crates do the cryptography.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes128Gcm, Aes256Gcm};
use chacha20poly1305::ChaCha20Poly1305;
use hmac::{Hmac, Mac};
use sha2::{Sha256, Sha384};

enum Cipher {
    Aes128(Box<Aes128Gcm>),
    Aes256(Box<Aes256Gcm>),
    ChaCha(Box<ChaCha20Poly1305>),
}

impl Cipher {
    fn new(kind: AeadKind, key: &[u8]) -> Option<Cipher> {
        Some(match kind {
            AeadKind::Aes128Gcm => Cipher::Aes128(Box::new(Aes128Gcm::new_from_slice(key).ok()?)),
            AeadKind::Aes256Gcm => Cipher::Aes256(Box::new(Aes256Gcm::new_from_slice(key).ok()?)),
            AeadKind::ChaCha20Poly1305 => {
                Cipher::ChaCha(Box::new(ChaCha20Poly1305::new_from_slice(key).ok()?))
            }
        })
    }

    fn open(&self, nonce: &[u8; 12], aad: &[u8], ct: &[u8]) -> Option<Vec<u8>> {
        let p = Payload { msg: ct, aad };
        match self {
            Cipher::Aes128(c) => c.decrypt(nonce.into(), p).ok(),
            Cipher::Aes256(c) => c.decrypt(nonce.into(), p).ok(),
            Cipher::ChaCha(c) => c.decrypt(nonce.into(), p).ok(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AeadKind {
    Aes128Gcm,
    Aes256Gcm,
    ChaCha20Poly1305,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashKind {
    Sha256,
    Sha384,
}

/// The AEAD and hash of a cipher suite we can decrypt (`None`: CBC, CCM, unknown).
pub fn suite(id: u16) -> Option<(AeadKind, HashKind, bool)> {
    // (aead, hash, tls13)
    Some(match id {
        0x1301 => (AeadKind::Aes128Gcm, HashKind::Sha256, true),
        0x1302 => (AeadKind::Aes256Gcm, HashKind::Sha384, true),
        0x1303 => (AeadKind::ChaCha20Poly1305, HashKind::Sha256, true),
        0xc02b | 0xc02f | 0x009c | 0x009e | 0x00a2 | 0x00a4 => {
            (AeadKind::Aes128Gcm, HashKind::Sha256, false)
        }
        0xc02c | 0xc030 | 0x009d | 0x009f | 0x00a3 | 0x00a5 => {
            (AeadKind::Aes256Gcm, HashKind::Sha384, false)
        }
        0xcca8..=0xccaa => (AeadKind::ChaCha20Poly1305, HashKind::Sha256, false),
        _ => return None,
    })
}

fn key_len(a: AeadKind) -> usize {
    match a {
        AeadKind::Aes128Gcm => 16,
        _ => 32,
    }
}

/// HKDF-Expand-Label (RFC 8446 §7.1).
pub fn hkdf_expand_label(
    hash: HashKind,
    secret: &[u8],
    label: &str,
    context: &[u8],
    len: usize,
) -> Option<Vec<u8>> {
    let full = format!("tls13 {label}");
    let mut info = Vec::with_capacity(4 + full.len() + context.len());
    info.extend_from_slice(&(len as u16).to_be_bytes());
    info.push(full.len() as u8);
    info.extend_from_slice(full.as_bytes());
    info.push(context.len() as u8);
    info.extend_from_slice(context);
    let mut out = vec![0u8; len];
    match hash {
        HashKind::Sha256 => hkdf::Hkdf::<Sha256>::from_prk(secret)
            .ok()?
            .expand(&info, &mut out)
            .ok()?,
        HashKind::Sha384 => hkdf::Hkdf::<Sha384>::from_prk(secret)
            .ok()?
            .expand(&info, &mut out)
            .ok()?,
    }
    Some(out)
}

/// TLS 1.2 PRF (RFC 5246 §5) with the suite's hash.
pub fn prf12(
    hash: HashKind,
    secret: &[u8],
    label: &str,
    seed: &[u8],
    len: usize,
) -> Option<Vec<u8>> {
    let mut ls = label.as_bytes().to_vec();
    ls.extend_from_slice(seed);
    fn hmac_of<M: Mac + KeyInit>(key: &[u8], parts: &[&[u8]]) -> Option<Vec<u8>> {
        let mut m = <M as Mac>::new_from_slice(key).ok()?;
        for p in parts {
            m.update(p);
        }
        Some(m.finalize().into_bytes().to_vec())
    }
    let h = |parts: &[&[u8]]| match hash {
        HashKind::Sha256 => hmac_of::<Hmac<Sha256>>(secret, parts),
        HashKind::Sha384 => hmac_of::<Hmac<Sha384>>(secret, parts),
    };
    let mut out = Vec::with_capacity(len + 48);
    let mut a = h(&[&ls])?;
    while out.len() < len {
        out.extend_from_slice(&h(&[&a, &ls])?);
        a = h(&[&a])?;
    }
    out.truncate(len);
    Some(out)
}

/// Decrypts one direction's records, counting sequence numbers from 0. Boxed: a TLS session keeps
/// four of these slots and most sessions (no key log) never fill them.
pub struct RecordDecryptor(Box<State>);

struct State {
    /// TLS 1.3: the suite and traffic secret the key came from (for KeyUpdate).
    secret: Option<(u16, Vec<u8>)>,
    cipher: Cipher,
    iv: [u8; 12],
    /// TLS 1.2 AES-GCM: 4-byte implicit salt + 8-byte explicit nonce in the record.
    explicit_nonce: bool,
    tls13: bool,
    seq: u64,
}

impl std::fmt::Debug for RecordDecryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RecordDecryptor {{ tls13: {}, seq: {} }}",
            self.0.tls13, self.0.seq
        )
    }
}

impl RecordDecryptor {
    /// From a TLS 1.3 traffic secret.
    pub fn tls13(suite_id: u16, secret: &[u8]) -> Option<Self> {
        let (aead, hash, tls13) = suite(suite_id)?;
        if !tls13 {
            return None;
        }
        let key = hkdf_expand_label(hash, secret, "key", &[], key_len(aead))?;
        let iv = hkdf_expand_label(hash, secret, "iv", &[], 12)?;
        Some(RecordDecryptor(Box::new(State {
            secret: Some((suite_id, secret.to_vec())),
            cipher: Cipher::new(aead, &key)?,
            iv: iv.try_into().ok()?,
            explicit_nonce: false,
            tls13: true,
            seq: 0,
        })))
    }

    /// The (client, server) decryptors of a TLS 1.2 AEAD session from its master secret.
    pub fn tls12_pair(
        suite_id: u16,
        master: &[u8],
        client_random: &[u8; 32],
        server_random: &[u8; 32],
    ) -> Option<(Self, Self)> {
        let (aead, hash, tls13) = suite(suite_id)?;
        if tls13 || master.len() != 48 {
            return None;
        }
        let k = key_len(aead);
        let iv_len = if aead == AeadKind::ChaCha20Poly1305 {
            12
        } else {
            4
        };
        let mut seed = server_random.to_vec();
        seed.extend_from_slice(client_random);
        let block = prf12(hash, master, "key expansion", &seed, 2 * k + 2 * iv_len)?;
        let (ck, rest) = block.split_at_checked(k)?;
        let (sk, rest) = rest.split_at_checked(k)?;
        let (civ, siv) = rest.split_at_checked(iv_len)?;
        let mk = |key: &[u8], iv: &[u8]| -> Option<Self> {
            let mut full = [0u8; 12];
            full.get_mut(..iv.len())?.copy_from_slice(iv);
            Some(RecordDecryptor(Box::new(State {
                secret: None,
                cipher: Cipher::new(aead, key)?,
                iv: full,
                explicit_nonce: aead != AeadKind::ChaCha20Poly1305,
                tls13: false,
                seq: 0,
            })))
        };
        Some((mk(ck, civ)?, mk(sk, siv)?))
    }

    /// TLS 1.3 KeyUpdate: move to the next traffic secret (`"traffic upd"`, RFC 8446 §7.2), its key
    /// and IV, and sequence number 0. False for TLS 1.2 decryptors (which have no KeyUpdate).
    pub fn next_secret(&mut self) -> bool {
        let Some((suite_id, secret)) = self.0.secret.as_ref() else {
            return false;
        };
        let Some((_, hash, _)) = suite(*suite_id) else {
            return false;
        };
        let next = hkdf_expand_label(hash, secret, "traffic upd", &[], secret.len())
            .and_then(|s| Self::tls13(*suite_id, &s));
        match next {
            Some(n) => {
                *self = n;
                true
            }
            None => false,
        }
    }

    /// A record of this direction passed by without decryption: keep the sequence number right.
    pub fn skip(&mut self) {
        self.0.seq += 1;
    }

    /// Decrypts one record (`header` = its 5 bytes). Returns (content type, plaintext) or None when
    /// the key is wrong or the record malformed. TLS 1.3 padding and inner type are removed.
    pub fn open(&mut self, header: &[u8; 5], body: &[u8]) -> Option<(u8, Vec<u8>)> {
        let s = &mut *self.0;
        let seq = s.seq;
        s.seq += 1;
        if s.tls13 {
            let nonce = seq_nonce(s.iv, seq);
            let mut pt = s.cipher.open(&nonce, header, body)?;
            while pt.last() == Some(&0) {
                pt.pop();
            }
            let ty = pt.pop()?;
            return Some((ty, pt));
        }
        let (nonce, ct) = if s.explicit_nonce {
            if body.len() < 8 + 16 {
                return None;
            }
            let (explicit, ct) = body.split_first_chunk::<8>()?;
            let mut n = s.iv;
            n[4..].copy_from_slice(explicit);
            (n, ct)
        } else {
            (seq_nonce(s.iv, seq), body)
        };
        let pt_len = ct.len().checked_sub(16)? as u16;
        let mut aad = seq.to_be_bytes().to_vec();
        aad.extend_from_slice(&header[..3]);
        aad.extend_from_slice(&pt_len.to_be_bytes());
        let pt = s.cipher.open(&nonce, &aad, ct)?;
        Some((header[0], pt))
    }
}

/// A record's nonce from the IV: the sequence number XORed into its last 8 bytes.
fn seq_nonce(iv: [u8; 12], seq: u64) -> [u8; 12] {
    let mut nonce = iv;
    for (n, s) in nonce[4..].iter_mut().zip(seq.to_be_bytes()) {
        *n ^= s;
    }
    nonce
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8448 §3 (Simple 1-RTT Handshake): server handshake traffic secret → write key and IV.
    #[test]
    fn hkdf_expand_label_rfc8448() {
        let secret =
            hex::decode("b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38")
                .unwrap();
        let key = hkdf_expand_label(HashKind::Sha256, &secret, "key", &[], 16).unwrap();
        let iv = hkdf_expand_label(HashKind::Sha256, &secret, "iv", &[], 12).unwrap();
        assert_eq!(hex::encode(key), "3fce516009c21727d0f2e4e86ee403bc");
        assert_eq!(hex::encode(iv), "5d313eb2671276ee13000b30");
    }

    /// RFC 8448 §3: the server's first encrypted record (EncryptedExtensions...) decrypts with that key.
    #[test]
    fn round_trip_with_rustcrypto() {
        let secret = [7u8; 32];
        let mut d = RecordDecryptor::tls13(0x1301, &secret).unwrap();
        let key = hkdf_expand_label(HashKind::Sha256, &secret, "key", &[], 16).unwrap();
        let iv = hkdf_expand_label(HashKind::Sha256, &secret, "iv", &[], 12).unwrap();
        let c = Aes128Gcm::new_from_slice(&key).unwrap();
        let inner = [&b"\x08\x00\x00\x02\x00\x00"[..], &[0x16], &[0, 0]].concat();
        let header = [23u8, 3, 3, 0, (inner.len() + 16) as u8];
        let nonce: [u8; 12] = iv.try_into().unwrap();
        let ct = c
            .encrypt(
                (&nonce).into(),
                Payload {
                    msg: &inner,
                    aad: &header,
                },
            )
            .unwrap();
        assert_eq!(
            d.open(&header, &ct),
            Some((0x16, b"\x08\x00\x00\x02\x00\x00".to_vec()))
        );
        // sequence number advanced: the same record no longer decrypts
        assert_eq!(d.open(&header, &ct), None);
    }

    /// KeyUpdate: the next decryptor is the one of HKDF-Expand-Label(secret, "traffic upd", "",
    /// Hash.length) (RFC 8446 §7.2), from sequence number 0; TLS 1.2 decryptors have none.
    #[test]
    fn key_update_moves_to_the_next_secret() {
        let secret = [9u8; 48];
        let next = hkdf_expand_label(HashKind::Sha384, &secret, "traffic upd", &[], 48).unwrap();
        let mut d = RecordDecryptor::tls13(0x1302, &secret).unwrap();
        d.skip();
        assert!(d.next_secret());
        let key = hkdf_expand_label(HashKind::Sha384, &next, "key", &[], 32).unwrap();
        let iv = hkdf_expand_label(HashKind::Sha384, &next, "iv", &[], 12).unwrap();
        let c = Aes256Gcm::new_from_slice(&key).unwrap();
        let header = [23u8, 3, 3, 0, 6 + 16];
        let nonce: [u8; 12] = iv.try_into().unwrap();
        let ct = c
            .encrypt(
                (&nonce).into(),
                Payload {
                    msg: b"DATA\r\x17",
                    aad: &header,
                },
            )
            .unwrap();
        assert_eq!(d.open(&header, &ct), Some((0x17, b"DATA\r".to_vec())));
        let (mut c12, _) =
            RecordDecryptor::tls12_pair(0xc02f, &[1; 48], &[2; 32], &[3; 32]).unwrap();
        assert!(!c12.next_secret());
    }

    #[test]
    fn unsupported_suites_are_none() {
        assert!(RecordDecryptor::tls13(0xc02f, &[0; 32]).is_none());
        assert!(RecordDecryptor::tls13(0x1305, &[0; 32]).is_none());
        assert!(RecordDecryptor::tls12_pair(0x002f, &[0; 48], &[0; 32], &[0; 32]).is_none());
    }
}
