//! Certificate facts and whole-chain classification on arbitrary DER.
#![no_main]

use ekuwatch::x509::{cert_facts, chain, dn_from_der};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = dn_from_der(data);
    let half = data.len() / 2;
    let ders: Vec<&[u8]> = vec![data, &data[..half], &data[half..]];
    let facts: Vec<_> = ders.iter().map(|d| cert_facts(d, 1_700_000_000)).collect();
    let _ = chain::classify(&ders, &facts, 1_700_000_000);
});
