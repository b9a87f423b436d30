//! Chain facts by content. The same chains come back all the time — a peer's MTA presents the same
//! certificates in every session — and parsing them is the costliest part of a handshake. The
//! cache keeps, per chain (found by a keyed hash of its DER certificates, confirmed by comparing
//! them byte for byte), the facts and the classification,
//! shared ([`Shared`]) with the connections that presented the chain until their events are built,
//! where what depends on time (validity, days to the leaf's expiry) is judged again ([`retime`]).
//! So a handshaking connection holds a pointer, not its own copy of a chain's facts.
//! Bounded: when full — `MAX_CHAINS` chains or `MAX_CACHED_DER` bytes of certificates — it starts
//! over (connections keep what they hold); a chain over `MAX_CACHED_CHAIN` bytes is not kept.

use super::chain::{self, ChainClass};
use super::{cert_facts, validity_at, CertFacts};
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;
use std::sync::{Arc, OnceLock};

/// A chain's facts and classification, judged at the time it was first seen.
pub type Shared = Arc<(Chain, Option<ChainClass>)>;

/// A chain's certificate facts as events carry them: shared — with the chain cache and with every
/// event that reports the same chain judged the same way — not copied per event. Reads as a slice
/// of [`CertFacts`]; serialised once, then written as that JSON (the same bytes every time).
#[derive(Clone, Default)]
pub struct Chain(Option<Arc<ChainData>>);

struct ChainData {
    certs: Vec<CertFacts>,
    json: OnceLock<Option<Box<RawValue>>>,
}

impl Chain {
    pub fn new(certs: Vec<CertFacts>) -> Self {
        if certs.is_empty() {
            return Chain(None);
        }
        Chain(Some(Arc::new(ChainData {
            certs,
            json: OnceLock::new(),
        })))
    }
}

impl From<Vec<CertFacts>> for Chain {
    fn from(certs: Vec<CertFacts>) -> Self {
        Chain::new(certs)
    }
}

impl std::ops::Deref for Chain {
    type Target = [CertFacts];
    fn deref(&self) -> &[CertFacts] {
        self.0.as_deref().map_or(&[], |d| &d.certs)
    }
}

impl PartialEq for Chain {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for Chain {}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Serialize for Chain {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let Some(d) = &self.0 else {
            return self.iter().collect::<Vec<_>>().serialize(s);
        };
        match d
            .json
            .get_or_init(|| serde_json::value::to_raw_value(&d.certs).ok())
        {
            Some(raw) => raw.serialize(s),
            None => d.certs.serialize(s),
        }
    }
}

/// Chains kept (each a few KB of facts).
pub const MAX_CHAINS: usize = 4096;
/// Bytes of DER kept across the cached chains (for the comparison).
pub const MAX_CACHED_DER: usize = 16 << 20;
/// A chain larger than this is judged afresh each time rather than kept.
pub const MAX_CACHED_CHAIN: usize = 64 << 10;

#[derive(Default)]
pub struct ChainCache {
    chains: hashbrown::HashTable<Cached>,
    /// Keyed with random per-process keys (the chains come from whoever connects).
    hasher: ahash::RandomState,
    der_bytes: usize,
    pub hits: u64,
    pub misses: u64,
}

struct Cached {
    hash: u64,
    certs: Box<[Box<[u8]>]>,
    shared: Shared,
}

impl std::fmt::Debug for ChainCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainCache")
            .field("chains", &self.chains.len())
            .field("der_bytes", &self.der_bytes)
            .field("hits", &self.hits)
            .field("misses", &self.misses)
            .finish()
    }
}

impl ChainCache {
    /// The facts of a presented chain (DER certificates, leaf first) and its classification, as
    /// judged at `at_unix_secs`.
    pub fn chain(&mut self, certs: &[&[u8]], at_unix_secs: i64) -> (Chain, Option<ChainClass>) {
        retime(&self.shared(certs, at_unix_secs), at_unix_secs)
    }

    /// The shared facts of a presented chain; [`retime`] them to the time of use.
    pub fn shared(&mut self, certs: &[&[u8]], at_unix_secs: i64) -> Shared {
        let hash = self.hasher.hash_one(certs);
        let same = |c: &Cached| {
            c.hash == hash
                && c.certs.len() == certs.len()
                && c.certs.iter().zip(certs).all(|(a, b)| **a == **b)
        };
        if let Some(c) = self.chains.find(hash, same) {
            self.hits += 1;
            return c.shared.clone();
        }
        self.misses += 1;
        let (facts, class) = compute(certs, at_unix_secs);
        let computed = Arc::new((Chain::new(facts), class));
        let size: usize = certs.iter().map(|c| c.len()).sum();
        if size <= MAX_CACHED_CHAIN {
            if self.chains.len() >= MAX_CHAINS || self.der_bytes + size > MAX_CACHED_DER {
                self.chains.clear();
                self.der_bytes = 0;
            }
            self.der_bytes += size;
            self.chains.insert_unique(
                hash,
                Cached {
                    hash,
                    certs: certs.iter().map(|c| Box::<[u8]>::from(*c)).collect(),
                    shared: computed.clone(),
                },
                |c| c.hash,
            );
        }
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

/// Shared facts as judged at `at`: what depends on the time of the packet, judged again. The
/// chain stays shared unless a certificate's validity differs at `at` (then it is a copy).
pub fn retime(shared: &(Chain, Option<ChainClass>), at: i64) -> (Chain, Option<ChainClass>) {
    let (chain, class) = shared;
    let judged = |f: &CertFacts| f.validity_window.map(|(nb, na)| validity_at(nb, na, at));
    let same = chain
        .iter()
        .all(|f| f.validity_window.is_none() || judged(f) == f.validity);
    let chain = if same {
        chain.clone()
    } else {
        let mut certs = chain.to_vec();
        for f in &mut certs {
            if let Some(v) = judged(f) {
                f.validity = Some(v);
            }
        }
        Chain::new(certs)
    };
    let mut class = class.clone();
    if let (Some(c), Some(leaf)) = (&mut class, chain.first()) {
        if c.days_until_leaf_expiry.is_some() {
            c.days_until_leaf_expiry = leaf
                .validity_window
                .map(|(_, na)| (na - at).div_euclid(86_400));
        }
    }
    (chain, class)
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
            let (chain, class) = cache.chain(&certs, at);
            assert_eq!((chain.to_vec(), class), compute(&certs, at), "at {at}");
            // Serialised (the first time, and from the kept JSON) as the facts themselves.
            for _ in 0..2 {
                assert_eq!(
                    serde_json::to_string(&chain).unwrap(),
                    serde_json::to_string(&compute(&certs, at).0).unwrap()
                );
            }
        }
        assert_eq!((cache.hits, cache.misses), (3, 1));
        // A different chain is not a hit.
        let _ = cache.chain(&certs[..1], 0);
        assert_eq!(cache.misses, 2);
    }

    /// Chains are told apart by every byte; a chain too large to keep is judged each time.
    #[test]
    fn exact_and_bounded() {
        let mut cache = ChainCache::default();
        let a = vec![7u8; 600];
        let mut b = a.clone();
        b[599] = 8;
        let _ = cache.shared(&[&a], 0);
        let _ = cache.shared(&[&b], 0);
        let _ = cache.shared(&[&a], 0);
        assert_eq!((cache.hits, cache.misses, cache.chains.len()), (1, 2, 2));
        let big = vec![1u8; MAX_CACHED_CHAIN + 1];
        let _ = cache.shared(&[&big], 0);
        let _ = cache.shared(&[&big], 0);
        assert_eq!((cache.misses, cache.chains.len()), (4, 2));
        // Splitting the same bytes differently is another chain.
        let _ = cache.shared(&[&a[..300], &a[300..]], 0);
        assert_eq!((cache.misses, cache.der_bytes), (5, 1800));
    }
}
