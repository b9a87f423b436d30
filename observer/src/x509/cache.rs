//! Chain facts by content. The same chains come back all the time — a peer's MTA presents the same
//! certificates in every session — and parsing them is the costliest part of a handshake. The
//! cache keeps, per chain (SHA-256 over its DER certificates), the facts and the classification,
//! shared ([`Shared`]) with the connections that presented the chain until their events are built,
//! where what depends on time (validity, days to the leaf's expiry) is judged again ([`retime`]).
//! So a handshaking connection holds a pointer, not its own copy of a chain's facts.
//! Bounded: when full it starts over (`MAX_CHAINS`; connections keep what they hold).

use super::chain::{self, ChainClass};
use super::{cert_facts, validity_at, CertFacts};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;

/// A chain's facts and classification, judged at the time it was first seen.
pub type Shared = Arc<(Vec<CertFacts>, Option<ChainClass>)>;

/// Chains kept (each a few KB of facts).
pub const MAX_CHAINS: usize = 4096;

#[derive(Debug, Default)]
pub struct ChainCache {
    chains: HashMap<[u8; 32], Shared>,
    pub hits: u64,
    pub misses: u64,
}

impl ChainCache {
    /// The facts of a presented chain (DER certificates, leaf first) and its classification, as
    /// judged at `at_unix_secs`.
    pub fn chain(
        &mut self,
        certs: &[&[u8]],
        at_unix_secs: i64,
    ) -> (Vec<CertFacts>, Option<ChainClass>) {
        retime(&self.shared(certs, at_unix_secs), at_unix_secs)
    }

    /// The shared facts of a presented chain; [`retime`] them to the time of use.
    pub fn shared(&mut self, certs: &[&[u8]], at_unix_secs: i64) -> Shared {
        let mut h = Sha256::new();
        for c in certs {
            h.update((c.len() as u64).to_be_bytes());
            h.update(c);
        }
        let key: [u8; 32] = h.finalize().into();
        if let Some(shared) = self.chains.get(&key) {
            self.hits += 1;
            return shared.clone();
        }
        self.misses += 1;
        let computed = Arc::new(compute(certs, at_unix_secs));
        if self.chains.len() >= MAX_CHAINS {
            self.chains.clear();
        }
        self.chains.insert(key, computed.clone());
        computed
    }
}

/// Without a cache: parse and classify.
pub fn compute(certs: &[&[u8]], at_unix_secs: i64) -> (Vec<CertFacts>, Option<ChainClass>) {
    let mut facts: Vec<CertFacts> = certs
        .iter()
        .map(|der| cert_facts(der, at_unix_secs))
        .collect();
    let class = chain::classify(certs, &facts, at_unix_secs);
    if let Some(c) = &class {
        for f in &mut facts {
            f.trust = c.trust;
        }
    }
    (facts, class)
}

/// Shared facts as judged at `at`: what depends on the time of the packet, judged again.
pub fn retime(
    shared: &(Vec<CertFacts>, Option<ChainClass>),
    at: i64,
) -> (Vec<CertFacts>, Option<ChainClass>) {
    let (mut facts, mut class) = shared.clone();
    for f in &mut facts {
        if let Some((nb, na)) = f.validity_window {
            f.validity = Some(validity_at(nb, na, at));
        }
    }
    if let (Some(c), Some(leaf)) = (&mut class, facts.first()) {
        if c.days_until_leaf_expiry.is_some() {
            c.days_until_leaf_expiry = leaf
                .validity_window
                .map(|(_, na)| (na - at).div_euclid(86_400));
        }
    }
    (facts, class)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cached answer equals a fresh one, at any time (validity and days re-judged).
    #[test]
    fn cached_equals_fresh_at_any_time() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../captures/pki");
        let pem = |n: &str| std::fs::read_to_string(dir.join(n)).unwrap();
        let der = |p: String| {
            let b64: String = p.lines().filter(|l| !l.starts_with("-----")).collect();
            base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b64).unwrap()
        };
        let leaf = der(pem("client-both.cert.pem"));
        let inter = der(pem("inter.cert.pem"));
        let certs: Vec<&[u8]> = vec![&leaf, &inter];
        let mut cache = ChainCache::default();
        for at in [0, 1_700_000_000, 1_800_000_000, 4_000_000_000] {
            assert_eq!(cache.chain(&certs, at), compute(&certs, at), "at {at}");
        }
        assert_eq!((cache.hits, cache.misses), (3, 1));
        // A different chain is not a hit.
        let _ = cache.chain(&certs[..1], 0);
        assert_eq!(cache.misses, 2);
    }
}
