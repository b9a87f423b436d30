//! ekuwatch: passive observer of SMTP STARTTLS traffic — who requests TLS client certificates and
//! which certificates (by Extended Key Usage) each side presents.
//!
//! Layers, one module each (see ARCHITECTURE.md):
//! `capture` (pcap/pcapng) → `decode` (L2–L4) → `flow` (5-tuple table, roles) → `tcp` (reassembly)
//! → `smtp` (STARTTLS state machine) → `tls` (handshake) → `x509` (certificate facts) → `event`
//! (one per connection) → `peers` (aggregation) → `sink` (JSONL, reports). `cli` is the edge.
//!
//! Analyzers are sans-IO: bytes + direction + timestamp in, facts out. They never log or print.
//!
//! # No panics on input
//!
//! Nothing that reads captured bytes, key logs or configuration may panic, whatever the input:
//! library code outside tests is built with `unwrap_used`, `expect_used`, `indexing_slicing` and
//! `panic` denied (below; the test command runs clippy with `-D warnings`). Wire bytes are read
//! through bounds-checked accessors — `tls::codec::Reader`, slice patterns, `get`,
//! `split_at_checked` — and per-direction pairs through [`Dir::of`]. The few `allow`s are local and
//! state their reason. Arithmetic on lengths is bounded by the caps each layer declares (records,
//! messages, lines, queues), so it cannot overflow.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

#[macro_use]
mod macros;

pub mod anomaly;
pub mod capture;
pub mod cli;
pub mod config;
pub mod decode;
#[cfg(feature = "ebpf")]
pub mod ebpf;
pub mod event;
#[cfg(feature = "live")]
pub mod exporter;
pub mod flow;
pub mod fuzzing;
#[cfg(feature = "live")]
pub mod live;
pub mod metrics;
pub mod peers;
pub mod pipeline;
pub mod sink;
pub mod smtp;
pub mod tcp;
pub mod tls;
pub mod x509;

/// What this binary was built from and with (`ekuwatch_build_info`, `--version`).
pub mod build {
    /// The crate version.
    pub const VERSION: &str = env!("CARGO_PKG_VERSION");
    /// The git commit built (12 hex digits), or `unknown`.
    pub const REVISION: &str = env!("EKUWATCH_REVISION");
    /// The optional features compiled in, comma-separated (empty: none).
    pub const FEATURES: &str = if cfg!(feature = "ebpf") {
        "live,ebpf"
    } else if cfg!(feature = "live") {
        "live"
    } else {
        ""
    };
}

/// Direction of bytes on a connection, relative to the roles (client = who opened it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dir {
    ToServer,
    ToClient,
}

impl Dir {
    /// This direction's element of a per-direction pair `[to server, to client]`.
    pub fn of<T>(self, pair: &[T; 2]) -> &T {
        let [to_server, to_client] = pair;
        match self {
            Dir::ToServer => to_server,
            Dir::ToClient => to_client,
        }
    }

    /// This direction's element of a per-direction pair, mutably.
    pub fn of_mut<T>(self, pair: &mut [T; 2]) -> &mut T {
        let [to_server, to_client] = pair;
        match self {
            Dir::ToServer => to_server,
            Dir::ToClient => to_client,
        }
    }

    pub fn flip(self) -> Dir {
        match self {
            Dir::ToServer => Dir::ToClient,
            Dir::ToClient => Dir::ToServer,
        }
    }
}
