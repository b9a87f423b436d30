//! RFC 8879 CompressedCertificate (TLS 1.3, handshake type 25): a Certificate message compressed
//! with zlib (1), brotli (2) or zstd (3), sent instead of it when both ends offered the
//! `compress_certificate` extension (BoringSSL, rustls, OpenSSL ≥ 3.2 built with a compressor).
//! It is encrypted like the Certificate, so only a key log reveals it; decompressed, it is parsed
//! as the Certificate it stands for.
//!
//! The declared length is bounded ([`MAX_HANDSHAKE_MSG`]) before anything is allocated, and the
//! decompressor is never read past it: a decompression bomb yields an error, not memory.

use super::codec::{DecodeError, Reader};
use super::handshake::MAX_HANDSHAKE_MSG;
use std::io::Read;

/// Why a CompressedCertificate gave no Certificate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompressedCertError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("unknown compression algorithm {0}")]
    UnknownAlgorithm(u16),
    #[error("declared length {0} exceeds the handshake message cap")]
    TooLarge(usize),
    #[error("{0} data does not decompress to the declared length")]
    Corrupt(&'static str),
}

/// The Certificate message body a CompressedCertificate body stands for.
pub fn decompress_certificate(body: &[u8]) -> Result<Vec<u8>, CompressedCertError> {
    let mut r = Reader::new(body);
    let algorithm = r.u16("algorithm")?;
    let len = r.u24("uncompressed_length")?;
    let data = r.vec24("compressed_certificate_message")?;
    r.end("compressed_certificate")?;
    if len > MAX_HANDSHAKE_MSG {
        return Err(CompressedCertError::TooLarge(len));
    }
    match algorithm {
        1 => inflate("zlib", flate2::read::ZlibDecoder::new(data), len),
        2 => inflate(
            "brotli",
            brotli_decompressor::Decompressor::new(data, 4096),
            len,
        ),
        3 => match ruzstd::decoding::StreamingDecoder::new(data) {
            Ok(d) => inflate("zstd", d, len),
            Err(_) => Err(CompressedCertError::Corrupt("zstd")),
        },
        a => Err(CompressedCertError::UnknownAlgorithm(a)),
    }
}

/// Exactly `len` bytes out of `d` (one more, or fewer, or a read error: corrupt).
fn inflate(name: &'static str, d: impl Read, len: usize) -> Result<Vec<u8>, CompressedCertError> {
    let mut out = Vec::with_capacity(len);
    let limit = u64::try_from(len).unwrap_or(u64::MAX).saturating_add(1);
    match d.take(limit).read_to_end(&mut out) {
        Ok(n) if n == len => Ok(out),
        _ => Err(CompressedCertError::Corrupt(name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn message(algorithm: u16, len: usize, data: &[u8]) -> Vec<u8> {
        let mut m = algorithm.to_be_bytes().to_vec();
        m.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
        m.extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
        m.extend_from_slice(data);
        m
    }

    fn zlib(b: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(b).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn zlib_round_trip_and_length_checks() {
        let cert = b"\x00\x00\x00\x05hello".repeat(50);
        let z = zlib(&cert);
        assert_eq!(
            decompress_certificate(&message(1, cert.len(), &z)),
            Ok(cert.clone())
        );
        // declared one byte short or long: corrupt, never truncated or padded
        assert_eq!(
            decompress_certificate(&message(1, cert.len() - 1, &z)),
            Err(CompressedCertError::Corrupt("zlib"))
        );
        assert_eq!(
            decompress_certificate(&message(1, cert.len() + 1, &z)),
            Err(CompressedCertError::Corrupt("zlib"))
        );
    }

    #[test]
    fn zstd_round_trip() {
        // No stack on this machine sends zstd (OpenSSL ≥ 3.2 may): ruzstd's own encoder makes it.
        let cert = b"\x00\x00\x00\x05hello".repeat(50);
        let z = ruzstd::encoding::compress_to_vec(
            &cert[..],
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        assert_eq!(
            decompress_certificate(&message(3, cert.len(), &z)),
            Ok(cert)
        );
    }

    #[test]
    fn bombs_unknown_algorithms_and_garbage() {
        // 100 MB of zeros compress to ~100 KB; the declared length caps the work.
        let bomb = zlib(&vec![0u8; 4 << 20]);
        assert_eq!(
            decompress_certificate(&message(1, 1000, &bomb)),
            Err(CompressedCertError::Corrupt("zlib"))
        );
        assert_eq!(
            decompress_certificate(&message(1, MAX_HANDSHAKE_MSG + 1, &bomb)),
            Err(CompressedCertError::TooLarge(MAX_HANDSHAKE_MSG + 1))
        );
        assert_eq!(
            decompress_certificate(&message(9, 10, b"x")),
            Err(CompressedCertError::UnknownAlgorithm(9))
        );
        for alg in 1..=3 {
            assert!(decompress_certificate(&message(alg, 10, b"not compressed")).is_err());
        }
        assert!(decompress_certificate(&[0, 1, 0]).is_err());
    }
}
