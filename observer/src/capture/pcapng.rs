//! pcapng (IETF draft-ietf-opsawg-pcapng): section headers in either byte order, interface
//! description blocks with `if_tsresol`, enhanced and simple packet blocks, and Decryption Secrets
//! Blocks (TLS key logs embedded in the capture). Everything else is skipped by its length.

use super::{
    ts_to_ns, u16_of, u32_of, u32s, CaptureError, CaptureReader, Format, Item, Packet, MAX_BLOCK,
    MAX_REUSED_BUFFER,
};
use std::io::BufRead;

pub(super) const PCAPNG_SHB: u32 = 0x0A0D_0D0A;
pub(super) const PCAPNG_IDB: u32 = 1;
pub(super) const PCAPNG_SPB: u32 = 3;
pub(super) const PCAPNG_EPB: u32 = 6;
pub(super) const PCAPNG_DSB: u32 = 10;

#[derive(Clone, Copy)]
pub(super) struct Interface {
    pub linktype: u32,
    /// Timestamp units per second.
    pub units_per_sec: u64,
}

impl<R: BufRead> CaptureReader<R> {
    /// Section header block after its 4-byte type: length, byte-order magic, version, options.
    pub(super) fn read_shb_rest(&mut self) -> Result<(), CaptureError> {
        let mut head = [[0u8; 4]; 2];
        self.read_exact(head.as_flattened_mut(), "pcapng section header")?;
        let [len, bom] = head;
        let big_endian = match u32::from_le_bytes(bom) {
            0x1A2B_3C4D => false,
            0x4D3C_2B1A => true,
            _ => return Err(self.malformed("bad pcapng byte-order magic")),
        };
        let len = u32_of(len, big_endian) as usize;
        if !(28..=MAX_BLOCK).contains(&len) || !len.is_multiple_of(4) {
            return Err(self.malformed(format!("bad section header length {len}")));
        }
        let mut rest = vec![0u8; len - 12];
        self.read_exact(&mut rest, "pcapng section header")?;
        self.format = Format::PcapNg {
            big_endian,
            interfaces: Vec::new(),
        };
        Ok(())
    }

    pub(super) fn next_pcapng(&mut self) -> Result<Option<Item>, CaptureError> {
        loop {
            let Format::PcapNg { big_endian, .. } = self.format else {
                return Ok(None);
            };
            let mut hdr = [[0u8; 4]; 2];
            if !self.read_header(hdr.as_flattened_mut(), "pcapng block header")? {
                return Ok(None);
            }
            let [block_type, len_bytes] = hdr;
            let block_type = u32_of(block_type, big_endian);
            if block_type == PCAPNG_SHB {
                // New section: re-read byte order. We already consumed type+length; rewind logically.
                self.offset -= 4;
                let mut bom = [0u8; 4];
                self.read_exact(&mut bom, "pcapng section header")?;
                let be = match u32::from_le_bytes(bom) {
                    0x1A2B_3C4D => false,
                    0x4D3C_2B1A => true,
                    _ => return Err(self.malformed("bad pcapng byte-order magic")),
                };
                let len = u32_of(len_bytes, be) as usize;
                if !(28..=MAX_BLOCK).contains(&len) || !len.is_multiple_of(4) {
                    return Err(self.malformed(format!("bad section header length {len}")));
                }
                let mut rest = vec![0u8; len - 12];
                self.read_exact(&mut rest, "pcapng section header")?;
                self.format = Format::PcapNg {
                    big_endian: be,
                    interfaces: Vec::new(),
                };
                continue;
            }
            let len = u32_of(len_bytes, big_endian) as usize;
            if !(12..=MAX_BLOCK).contains(&len) || !len.is_multiple_of(4) {
                return Err(self.malformed(format!("bad block length {len}")));
            }
            let mut block = std::mem::take(&mut self.block);
            block.clear();
            block.resize(len - 8, 0);
            let r = self.read_exact(&mut block, "pcapng block body");
            let item = r.and_then(|()| self.pcapng_block(block_type, big_endian, &block));
            if block.capacity() <= MAX_REUSED_BUFFER {
                self.block = block;
            }
            match item? {
                Some(item) => return Ok(Some(item)),
                None => continue,
            }
        }
    }

    /// One pcapng block other than a section header: `block` is its body and trailing length.
    /// `Ok(None)` for a block that yields nothing (interface description, unknown types).
    pub(super) fn pcapng_block(
        &mut self,
        block_type: u32,
        big_endian: bool,
        block: &[u8],
    ) -> Result<Option<Item>, CaptureError> {
        // (the caller's length check leaves at least the trailing length copy)
        let Some((body, _trailing_len)) = block.split_last_chunk::<4>() else {
            return Err(self.malformed("short pcapng block"));
        };
        let Format::PcapNg { interfaces, .. } = &mut self.format else {
            return Ok(None);
        };
        match block_type {
            PCAPNG_IDB => {
                // link type (2 bytes), reserved (2), snaplen (4), options
                let Some((&[l0, l1, ..], opts)) = body.split_first_chunk::<8>() else {
                    return Err(self.malformed("short interface description block"));
                };
                let linktype = u16_of([l0, l1], big_endian) as u32;
                let units_per_sec = idb_tsresol(opts, big_endian);
                interfaces.push(Interface {
                    linktype,
                    units_per_sec,
                });
            }
            PCAPNG_EPB => {
                let Some(([iface, ts_high, ts_low, caplen, orig_len], rest)) =
                    u32s::<5>(body, big_endian)
                else {
                    return Err(self.malformed("short enhanced packet block"));
                };
                let iface = iface as usize;
                let Some(&ifc) = interfaces.get(iface) else {
                    return Err(self.malformed(format!("packet for undeclared interface {iface}")));
                };
                let ts = (u64::from(ts_high) << 32) | u64::from(ts_low);
                let Some(data) = rest.get(..caplen as usize) else {
                    return Err(
                        self.malformed("enhanced packet block shorter than its captured length")
                    );
                };
                let mut copy = self.packet_buf(0);
                copy.extend_from_slice(data);
                return Ok(Some(Item::Packet(Packet {
                    ts_ns: ts_to_ns(ts, ifc.units_per_sec),
                    linktype: ifc.linktype,
                    data: copy,
                    orig_len,
                })));
            }
            PCAPNG_SPB => {
                let Some(&ifc) = interfaces.first() else {
                    return Err(self.malformed("simple packet block without an interface"));
                };
                let Some(([orig_len], rest)) = u32s::<1>(body, big_endian) else {
                    return Err(self.malformed("short simple packet block"));
                };
                // the packet, cut to the block when it claims more
                let data = rest.get(..orig_len as usize).unwrap_or(rest);
                let mut copy = self.packet_buf(0);
                copy.extend_from_slice(data);
                return Ok(Some(Item::Packet(Packet {
                    ts_ns: 0,
                    linktype: ifc.linktype,
                    data: copy,
                    orig_len,
                })));
            }
            PCAPNG_DSB => {
                let Some(([secrets_type, slen], rest)) = u32s::<2>(body, big_endian) else {
                    return Err(self.malformed("short decryption secrets block"));
                };
                let Some(data) = rest.get(..slen as usize) else {
                    return Err(self.malformed("decryption secrets block shorter than its length"));
                };
                return Ok(Some(Item::Secrets {
                    secrets_type,
                    data: data.to_vec(),
                }));
            }
            _ => {} // statistics, name resolution, custom blocks: not needed
        }
        Ok(None)
    }
}

/// `if_tsresol` option (code 9) of an interface description block; default microseconds.
pub(super) fn idb_tsresol(mut opts: &[u8], be: bool) -> u64 {
    while let Some((&[c0, c1, l0, l1], rest)) = opts.split_first_chunk::<4>() {
        let code = u16_of([c0, c1], be);
        let len = u16_of([l0, l1], be) as usize;
        let padded = (len + 3) & !3;
        let Some(val) = rest.get(..len) else {
            break;
        };
        if code == 0 {
            break;
        }
        if let (9, Some(&v)) = (code, val.first()) {
            let exp = u32::from(v & 0x7f);
            let base: u64 = if v & 0x80 != 0 { 2 } else { 10 };
            return base
                .checked_pow(exp)
                .filter(|&u| u > 0)
                .unwrap_or(1_000_000);
        }
        opts = rest.get(padded..).unwrap_or(&[]);
    }
    1_000_000
}
