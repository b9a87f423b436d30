//! TCP reassembly under arbitrary operation sequences: no panic, memory within the cap, and
//! delivered bytes never exceed what was offered.
#![no_main]

use ekuwatch::tcp::{Chunk, Reassembler};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let cap = 4096;
    let mut r = Reassembler::new(cap);
    let mut delivered = 0u64;
    let mut offered = 0u64;
    let mut i = 0;
    while i + 4 <= data.len() {
        let op = data[i];
        let seq = u32::from_le_bytes([data[i + 1], data[i + 2], data[i + 3], op]);
        let len = usize::from(data[i + 2] % 64);
        i += 4;
        let payload = &data[i..(i + len).min(data.len())];
        i += payload.len();
        let mut out = |c: Chunk<'_>| {
            if let Chunk::Data(d) = c {
                delivered += d.len() as u64;
            }
        };
        match op % 5 {
            0 => r.on_syn(seq),
            1 | 2 => {
                offered += payload.len() as u64;
                r.on_data(seq, payload, &mut out)
            }
            3 => r.on_peer_ack(seq, &mut out),
            _ => r.flush(&mut out),
        }
        assert!(r.buffered() <= cap + 64, "queue {} over cap", r.buffered());
    }
    assert!(delivered <= offered);
});
