//! Handshake messages across records, one direction: whole messages are handed on where they lie;
//! a message's start that continues in a later record is kept (at most one message,
//! [`MAX_HANDSHAKE_MSG`]). A larger claimed message is refused, never allocated.

/// Largest handshake message accepted (a certificate chain of a few dozen certificates).
pub const MAX_HANDSHAKE_MSG: usize = 256 * 1024;

/// A handshake message claimed more than [`MAX_HANDSHAKE_MSG`] bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLarge;

/// Handshake-layer bytes of one direction. `held` is the partial message from earlier records;
/// `on_msg` gets each whole message (4-byte header included) and returns false when the rest of
/// the bytes must not be read as plaintext handshake messages (the direction switched to
/// encryption or was lost): they are then dropped.
pub fn reassemble(
    held: &mut Vec<u8>,
    data: &[u8],
    mut on_msg: impl FnMut(&[u8]) -> bool,
) -> Result<(), TooLarge> {
    if held.len() + data.len() > MAX_HANDSHAKE_MSG + 4 {
        *held = Vec::new();
        return Err(TooLarge);
    }
    if held.is_empty() {
        let used = drain(data, &mut on_msg).inspect_err(|_| *held = Vec::new())?;
        if let Some(rest) = data.get(used..).filter(|r| !r.is_empty()) {
            *held = rest.to_vec();
        }
        return Ok(());
    }
    held.extend_from_slice(data);
    match drain(held, &mut on_msg) {
        Ok(used) if used < held.len() => {
            held.drain(..used);
            Ok(())
        }
        Ok(_) => {
            *held = Vec::new();
            Ok(())
        }
        Err(e) => {
            *held = Vec::new();
            Err(e)
        }
    }
}

/// Hands on the whole messages at the start of `hs`; returns the bytes they took (all of them
/// when `on_msg` said stop).
fn drain(hs: &[u8], on_msg: &mut impl FnMut(&[u8]) -> bool) -> Result<usize, TooLarge> {
    let mut rest = hs;
    while let [_, l0, l1, l2, ..] = *rest {
        let len = (usize::from(l0) << 16) | (usize::from(l1) << 8) | usize::from(l2);
        if len > MAX_HANDSHAKE_MSG {
            return Err(TooLarge);
        }
        let Some((msg, after)) = rest.split_at_checked(4 + len) else {
            break;
        };
        rest = after;
        if !on_msg(msg) {
            return Ok(hs.len());
        }
    }
    Ok(hs.len() - rest.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_across_records() {
        let stream = [&[1u8, 0, 0, 2, 7, 7][..], &[2, 0, 0, 0], &[11, 0, 0, 1, 5]].concat();
        for split in 0..stream.len() {
            let mut held = Vec::new();
            let mut got = Vec::new();
            for part in [&stream[..split], &stream[split..]] {
                reassemble(&mut held, part, |m| {
                    got.push(m.to_vec());
                    true
                })
                .unwrap();
            }
            assert_eq!(got.len(), 3, "split {split}");
            assert!(held.is_empty());
        }
    }

    #[test]
    fn huge_claims_are_refused_and_stop_drops_the_rest() {
        let mut held = Vec::new();
        assert_eq!(
            reassemble(&mut held, &[11, 0xff, 0xff, 0xff], |_| true),
            Err(TooLarge)
        );
        let mut n = 0;
        reassemble(&mut held, &[2, 0, 0, 0, 8, 0, 0], |_| {
            n += 1;
            false
        })
        .unwrap();
        assert_eq!((n, held.len()), (1, 0));
    }
}
