//! The TLS wire codec: one [`Reader`] over a byte slice. Every read is bounds-checked and names
//! the field it reads, so a failure says where a message broke ([`DecodeError`]). No read panics
//! and none allocates.

use thiserror::Error;

/// Why a message did not decode, and at which field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The field (or its declared length) runs past the end of its enclosing structure.
    #[error("{field}: truncated")]
    Truncated { field: &'static str },
    /// Bytes left over after the last field of a structure.
    #[error("{field}: trailing bytes")]
    Trailing { field: &'static str },
}

impl DecodeError {
    /// The field that failed.
    pub fn field(self) -> &'static str {
        match self {
            DecodeError::Truncated { field } | DecodeError::Trailing { field } => field,
        }
    }
}

pub type Decoded<T> = Result<T, DecodeError>;

/// A cursor over wire bytes (big-endian integers, length-prefixed vectors).
#[derive(Debug, Clone, Copy)]
pub struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    pub fn new(b: &'a [u8]) -> Self {
        Reader(b)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// What is left.
    pub fn rest(&self) -> &'a [u8] {
        self.0
    }

    pub fn take(&mut self, n: usize, field: &'static str) -> Decoded<&'a [u8]> {
        let (a, b) = self
            .0
            .split_at_checked(n)
            .ok_or(DecodeError::Truncated { field })?;
        self.0 = b;
        Ok(a)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Decoded<[u8; N]> {
        let b = self.take(N, field)?;
        <[u8; N]>::try_from(b).map_err(|_| DecodeError::Truncated { field })
    }

    pub fn u8(&mut self, field: &'static str) -> Decoded<u8> {
        let [b] = self.array(field)?;
        Ok(b)
    }

    pub fn u16(&mut self, field: &'static str) -> Decoded<u16> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }

    pub fn u24(&mut self, field: &'static str) -> Decoded<usize> {
        let [a, b, c] = self.array(field)?;
        Ok((usize::from(a) << 16) | (usize::from(b) << 8) | usize::from(c))
    }

    /// A vector with an 8-bit length.
    pub fn vec8(&mut self, field: &'static str) -> Decoded<&'a [u8]> {
        let n = usize::from(self.u8(field)?);
        self.take(n, field)
    }

    /// A vector with a 16-bit length.
    pub fn vec16(&mut self, field: &'static str) -> Decoded<&'a [u8]> {
        let n = usize::from(self.u16(field)?);
        self.take(n, field)
    }

    /// A vector with a 24-bit length.
    pub fn vec24(&mut self, field: &'static str) -> Decoded<&'a [u8]> {
        let n = self.u24(field)?;
        self.take(n, field)
    }

    /// The structure ends here.
    pub fn end(&self, field: &'static str) -> Decoded<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::Trailing { field })
        }
    }
}

/// Big-endian 16-bit values (a trailing odd byte is ignored).
pub fn u16_list(b: &[u8]) -> Vec<u16> {
    b.chunks_exact(2)
        .filter_map(|c| <[u8; 2]>::try_from(c).ok())
        .map(u16::from_be_bytes)
        .collect()
}

/// Entries of a list of 16-bit-length-prefixed items (CA names).
pub fn vec16_items(b: &[u8], field: &'static str) -> Decoded<usize> {
    let mut r = Reader::new(b);
    let mut n = 0;
    while !r.is_empty() {
        r.vec16(field)?;
        n += 1;
    }
    Ok(n)
}

/// Extensions as (type, data), in wire order. Stops at the first malformed one.
pub fn raw_extensions(b: &[u8]) -> Vec<(u16, &[u8])> {
    let mut r = Reader::new(b);
    let mut out = Vec::new();
    while !r.is_empty() {
        let (Ok(t), Ok(d)) = (r.u16("extension_type"), r.vec16("extension_data")) else {
            break;
        };
        out.push((t, d));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_field() {
        let mut r = Reader::new(&[0, 5, 1, 2]);
        assert_eq!(
            r.vec16("certificate_authorities"),
            Err(DecodeError::Truncated {
                field: "certificate_authorities"
            })
        );
        let mut r = Reader::new(&[1, 9, 7]);
        assert_eq!(r.vec8("context"), Ok(&[9][..]));
        assert_eq!(
            r.end("certificate_request").map_err(DecodeError::field),
            Err("certificate_request")
        );
        assert_eq!(Reader::new(&[1, 2, 3]).u24("len"), Ok(0x010203));
        assert_eq!(u16_list(&[1, 2, 3, 4, 5]), vec![0x0102, 0x0304]);
    }

    proptest::proptest! {
        /// No read of any input panics, and what is read plus what is left is the input.
        #[test]
        fn reads_never_panic(b in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let mut r = Reader::new(&b);
            let mut used = 0;
            loop {
                let before = r;
                match r.vec8("v") {
                    Ok(v) => used += 1 + v.len(),
                    Err(_) => {
                        r = before;
                        break;
                    }
                }
            }
            proptest::prop_assert_eq!(used + r.rest().len(), b.len());
            let _ = raw_extensions(&b);
            let _ = vec16_items(&b, "names");
        }
    }
}
