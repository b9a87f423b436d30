//! eBPF capture backend (feature `ebpf`): loads the kernel program built from `ebpf/`, attaches it
//! with TC on ingress and egress of one interface, reads the packets it forwards from one BPF ring
//! buffer, and tells it which connections need no more packets (their handshake outcome is known)
//! through the `DONE` map. The kernel then forwards only their FIN/RST.
//!
//! The ring is read in batches: the kernel wakes the reader only when `wake_bytes` wait (a wake-up
//! per packet costs more than the packet), and the reader polls every `POLL` otherwise.
//!
//! What the kernel program skipped, and what the ring had no room for, are counters
//! ([`KernelCounters`]) exported as metrics.

use crate::capture::Packet;
use crate::flow::ArmRequest;
use crate::pipeline::{KernelHint, RecordHeaders};
use aya::maps::{Array, HashMap, MapData, PerCpuArray, RingBuf};
use aya::programs::{SchedClassifier, TcAttachType};
use aya::{Ebpf, EbpfLoader};
use ekuwatch_ebpf_common::{counter, kind, Config, FlowKey, PacketMeta, RecordHeader, MAX_PORTS};
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::time::Duration;

/// The classifiers: ingress, egress.
const PROGRAMS: [&str; 2] = ["ekuwatch_ingress", "ekuwatch_egress"];

/// Connections the kernel tracks (`FLOWS`, LRU) and half-open ones (`HALF_OPEN`, LRU: SYN seen,
/// no ACK or payload yet), as docs/ebpf.md says.
pub const FLOWS_MAX: u32 = 65_536;
pub const HALF_OPEN_MAX: u32 = 65_536;

/// One end of a connection: address and port.
pub type Endpoint = (IpAddr, u16);

/// Receives each frame read from the ring: `(ts_ns, linktype, bytes, orig_len, hint)`.
pub type OnFrame<'a> = dyn FnMut(i64, u32, &[u8], u32, &KernelHint) + 'a;

/// The kernel object compiled by build.rs.
static OBJECT: &[u8] = include_bytes!(env!("EKUWATCH_EBPF_OBJECT"));

#[derive(Debug, thiserror::Error)]
pub enum EbpfError {
    #[error("loading the eBPF program: {0} (needs root or CAP_BPF + CAP_NET_ADMIN + CAP_PERFMON)")]
    Load(String),
    #[error("attaching to {0}: {1}")]
    Attach(String, String),
    #[error("eBPF map {0}: {1}")]
    Map(&'static str, String),
    #[error("too many ports for the eBPF backend ({0}; at most {MAX_PORTS})")]
    Ports(usize),
    #[error("interface {0}: {1}")]
    Interface(String, String),
    #[error("ring buffer: {0}")]
    Ring(String),
}

pub struct EbpfOptions {
    pub interface: String,
    /// TCP ports whose connections the kernel tracks.
    pub ports: Vec<u16>,
    /// Per-direction payload bytes a connection may forward before the kernel stops on its own.
    pub budget: u64,
    /// Size of the ring buffer in bytes (a power of two, at least a page).
    pub ring_bytes: u32,
}

/// Longest the reader sleeps between drains when the kernel has not woken it, while packets flow
/// (the sooner a connection's outcome is read, the sooner the kernel stops forwarding it)...
const POLL: Duration = Duration::from_millis(1);
/// ... and after a second without any (an idle observer should not wake a thousand times a second).
const POLL_IDLE: Duration = Duration::from_millis(50);

/// Kernel counters, summed over CPUs, by name (`ekuwatch_ebpf_common::counter::NAMES`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelCounters(pub Vec<(&'static str, u64)>);

impl KernelCounters {
    pub fn get(&self, name: &str) -> u64 {
        self.0
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(0, |(_, v)| *v)
    }
}

pub struct EbpfCapture {
    // Dropping `Ebpf` detaches the programs.
    bpf: Ebpf,
    ring: RingBuf<MapData>,
    done: HashMap<MapData, FlowKey, u32>,
    arm: HashMap<MapData, FlowKey, ekuwatch_ebpf_common::ArmRequest>,
    counters: PerCpuArray<MapData, u64>,
    linktype: u32,
    /// CLOCK_REALTIME − CLOCK_MONOTONIC: kernel timestamps to wall time.
    mono_to_real_ns: i64,
    /// Samples shorter than their header claims (never seen; counted, not trusted).
    malformed: u64,
    marked: u64,
    mark_failed: u64,
    armed: u64,
    arm_failed: u64,
    last_packet: std::time::Instant,
}

/// Times the verifier is asked again when it gave up because a signal reached the loading thread
/// (`EAGAIN`: the kernel aborts verification on a pending signal and expects a retry, as libbpf
/// does; seen once in CI while other tests ran beside the load).
const LOAD_ATTEMPTS: u32 = 5;

fn load_program(prog: &mut SchedClassifier) -> Result<(), EbpfError> {
    let mut attempt = 1;
    loop {
        match prog.load() {
            Ok(()) => return Ok(()),
            Err(aya::programs::ProgramError::LoadError { io_error, .. })
                if io_error.raw_os_error() == Some(nix::errno::Errno::EAGAIN as i32)
                    && attempt < LOAD_ATTEMPTS =>
            {
                attempt += 1;
            }
            Err(e) => return Err(EbpfError::Load(e.to_string())),
        }
    }
}

fn map_err(name: &'static str) -> impl Fn(aya::maps::MapError) -> EbpfError {
    move |e| EbpfError::Map(name, e.to_string())
}

/// Ethernet (and loopback, which carries a zero Ethernet header) or raw IP.
fn link_layer(interface: &str) -> Result<(u32, u32), EbpfError> {
    let path = format!("/sys/class/net/{interface}/type");
    let ty = std::fs::read_to_string(&path)
        .map_err(|e| EbpfError::Interface(interface.into(), e.to_string()))?;
    match ty.trim() {
        // ARPHRD_ETHER, ARPHRD_LOOPBACK: 14-byte Ethernet header, LINKTYPE_ETHERNET.
        "1" | "772" => Ok((14, 1)),
        // ARPHRD_NONE (tun, wireguard), ARPHRD_IPGRE...: packets start at the IP header.
        _ => Ok((0, 101)),
    }
}

fn clock_offset() -> i64 {
    use nix::time::{clock_gettime, ClockId};
    let ns = |c| {
        clock_gettime(c)
            .map(|t| t.tv_sec() * 1_000_000_000 + t.tv_nsec())
            .unwrap_or(0)
    };
    ns(ClockId::CLOCK_REALTIME) - ns(ClockId::CLOCK_MONOTONIC)
}

/// The kernel's key for a connection.
pub fn flow_key(a: Endpoint, b: Endpoint) -> FlowKey {
    let bytes = |ip: IpAddr| match ip {
        IpAddr::V4(v) => ekuwatch_ebpf_common::mapped_v4(v.octets()),
        IpAddr::V6(v) => v.octets(),
    };
    FlowKey::canonical(bytes(a.0), a.1, bytes(b.0), b.1).0
}

/// The kernel's direction of packets from `a` to `b` (0: `a` is the canonical key's first end).
fn flow_key_dir(a: Endpoint, b: Endpoint) -> usize {
    let bytes = |ip: IpAddr| match ip {
        IpAddr::V4(v) => ekuwatch_ebpf_common::mapped_v4(v.octets()),
        IpAddr::V6(v) => v.octets(),
    };
    FlowKey::canonical(bytes(a.0), a.1, bytes(b.0), b.1).1
}

/// Splits one ring sample into its metadata, what the kernel says about it, and the frame bytes
/// (for a summary: the frame's headers only). None: a sample too short for what its header
/// claims (counted by the caller).
pub fn parse_sample(sample: &[u8]) -> Option<(PacketMeta, KernelHint, &[u8])> {
    const META: usize = std::mem::size_of::<PacketMeta>();
    const RECORD: usize = std::mem::size_of::<RecordHeader>();
    let (h, rest) = sample.split_at_checked(META)?;
    // ktime_ns (8 bytes), then len, caplen, egress, kind, unsent, in_order_to (4 each)
    let (&ktime_ns, h) = h.split_first_chunk::<8>()?;
    let &[len, caplen, egress, k, unsent, to] = h.as_chunks::<4>().0.first_chunk::<6>()?;
    let meta = PacketMeta {
        ktime_ns: u64::from_ne_bytes(ktime_ns),
        len: u32::from_ne_bytes(len),
        caplen: u32::from_ne_bytes(caplen),
        egress: u32::from_ne_bytes(egress),
        kind: u32::from_ne_bytes(k),
        unsent: u32::from_ne_bytes(unsent),
        in_order_to: u32::from_ne_bytes(to),
    };
    let mut hint = KernelHint {
        in_order_to: (meta.kind & kind::IN_ORDER != 0).then_some(meta.in_order_to),
        following: meta.kind & kind::FOLLOWING != 0,
        unsent: meta.unsent,
        summary: None,
    };
    let rest = if meta.kind & kind::SUMMARY != 0 {
        // count, payload length (4 bytes each), `count` records — offset (4), bytes (5),
        // padding (3) — then the frame's headers
        let (&count, rest) = rest.split_first_chunk::<4>()?;
        let (&payload_len, rest) = rest.split_first_chunk::<4>()?;
        let count = u32::from_ne_bytes(count) as usize;
        if count == 0 || count > RecordHeaders::MAX {
            return None;
        }
        let (records, rest) = rest.split_at_checked(count * RECORD)?;
        let mut headers = RecordHeaders::default();
        headers.payload_len = u32::from_ne_bytes(payload_len);
        for r in records.chunks_exact(RECORD) {
            let (&offset, r) = r.split_first_chunk::<4>()?;
            let &bytes = r.first_chunk::<5>()?;
            headers.push(u32::from_ne_bytes(offset), bytes);
        }
        hint.summary = Some(headers);
        rest
    } else {
        rest
    };
    let data = rest.get(..meta.caplen as usize)?;
    Some((meta, hint, data))
}

impl EbpfCapture {
    /// Loads, configures and attaches the kernel program, and opens one perf buffer per CPU.
    pub fn open(opts: &EbpfOptions) -> Result<Self, EbpfError> {
        let mut cap = Self::load(opts)?;
        cap.attach(&opts.interface)?;
        Ok(cap)
    }

    /// Loads and configures the kernel program (through the verifier) without attaching it; the
    /// link layer is the interface's. Tests drive it with [`EbpfCapture::test_run`].
    pub fn load(opts: &EbpfOptions) -> Result<Self, EbpfError> {
        Self::load_with_map_sizes(opts, FLOWS_MAX, HALF_OPEN_MAX)
    }

    /// [`EbpfCapture::load`] with other sizes for the connection maps (`FLOWS`, `HALF_OPEN`):
    /// tests fill them on purpose.
    pub fn load_with_map_sizes(
        opts: &EbpfOptions,
        flows: u32,
        half_open: u32,
    ) -> Result<Self, EbpfError> {
        if opts.ports.len() > MAX_PORTS {
            return Err(EbpfError::Ports(opts.ports.len()));
        }
        let (l2_len, linktype) = link_layer(&opts.interface)?;
        if !opts.ring_bytes.is_power_of_two() || opts.ring_bytes < 4096 {
            return Err(EbpfError::Ring(format!(
                "size {} is not a power of two of at least 4096",
                opts.ring_bytes
            )));
        }
        let cpus =
            aya::util::nr_cpus().map_err(|(what, e)| EbpfError::Ring(format!("{what}: {e}")))?;
        let mut bpf = EbpfLoader::new()
            .map_max_entries("PACKETS", opts.ring_bytes)
            .map_max_entries("SCRATCH", cpus as u32)
            .map_max_entries("FLOWS", flows)
            .map_max_entries("HALF_OPEN", half_open)
            .load(OBJECT)
            .map_err(|e| EbpfError::Load(e.to_string()))?;

        let mut cfg = Config {
            nports: opts.ports.len() as u32,
            l2_len,
            budget: opts.budget,
            wake_bytes: u64::from(opts.ring_bytes / 8),
            ..Config::default()
        };
        // (at most MAX_PORTS, checked above)
        for (slot, &port) in cfg.ports.iter_mut().zip(&opts.ports) {
            *slot = port;
        }
        let mut config: Array<_, Config> = bpf
            .map_mut("CONFIG")
            .ok_or(EbpfError::Map("CONFIG", "missing".into()))?
            .try_into()
            .map_err(map_err("CONFIG"))?;
        config.set(0, cfg, 0).map_err(map_err("CONFIG"))?;

        let ring: RingBuf<MapData> = bpf
            .take_map("PACKETS")
            .ok_or(EbpfError::Map("PACKETS", "missing".into()))?
            .try_into()
            .map_err(map_err("PACKETS"))?;
        let done: HashMap<MapData, FlowKey, u32> = bpf
            .take_map("DONE")
            .ok_or(EbpfError::Map("DONE", "missing".into()))?
            .try_into()
            .map_err(map_err("DONE"))?;
        let arm: HashMap<MapData, FlowKey, ekuwatch_ebpf_common::ArmRequest> = bpf
            .take_map("ARM")
            .ok_or(EbpfError::Map("ARM", "missing".into()))?
            .try_into()
            .map_err(map_err("ARM"))?;
        let counters: PerCpuArray<MapData, u64> = bpf
            .take_map("COUNTERS")
            .ok_or(EbpfError::Map("COUNTERS", "missing".into()))?
            .try_into()
            .map_err(map_err("COUNTERS"))?;

        for name in PROGRAMS {
            let prog: &mut SchedClassifier = bpf
                .program_mut(name)
                .ok_or_else(|| EbpfError::Load(format!("program {name} missing")))?
                .try_into()
                .map_err(|e: aya::programs::ProgramError| EbpfError::Load(e.to_string()))?;
            load_program(prog)?;
        }
        Ok(EbpfCapture {
            bpf,
            ring,
            done,
            arm,
            counters,
            linktype,
            mono_to_real_ns: clock_offset(),
            malformed: 0,
            marked: 0,
            mark_failed: 0,
            armed: 0,
            arm_failed: 0,
            last_packet: std::time::Instant::now(),
        })
    }

    /// Attaches the programs with TC: ingress and egress of `interface`.
    pub fn attach(&mut self, interface: &str) -> Result<(), EbpfError> {
        let tcx = aya::util::KernelVersion::current()
            .is_ok_and(|v| v >= aya::util::KernelVersion::new(6, 6, 0));
        if !tcx {
            // Before TCX, TC programs hang off a clsact qdisc (already there is fine).
            let _ = aya::programs::tc::qdisc_add_clsact(interface);
        }
        for (name, at) in PROGRAMS
            .into_iter()
            .zip([TcAttachType::Ingress, TcAttachType::Egress])
        {
            let attach_err = |e: String| EbpfError::Attach(interface.to_string(), e);
            let prog: &mut SchedClassifier = self
                .bpf
                .program_mut(name)
                .ok_or_else(|| attach_err(format!("program {name} missing")))?
                .try_into()
                .map_err(|e: aya::programs::ProgramError| attach_err(e.to_string()))?;
            prog.attach(interface, at)
                .map_err(|e| attach_err(e.to_string()))?;
        }
        Ok(())
    }

    /// Runs the ingress (or egress) program once on `frame` with `BPF_PROG_TEST_RUN`, as if the
    /// frame had crossed the interface; returns the program's verdict. Forwarded packets land in
    /// the perf buffers as usual ([`EbpfCapture::poll`]).
    pub fn test_run(&self, frame: &[u8], egress: bool) -> Result<i32, EbpfError> {
        Ok(self.run(frame, egress, 1)?.return_value as i32)
    }

    /// The program's average run time on `frame` over `repeat` runs (BPF_PROG_TEST_RUN), for the
    /// benchmarks: what one packet costs in the kernel.
    pub fn time_run(&self, frame: &[u8], egress: bool, repeat: u32) -> Result<Duration, EbpfError> {
        Ok(self.run(frame, egress, repeat)?.duration)
    }

    fn run(
        &self,
        frame: &[u8],
        egress: bool,
        repeat: u32,
    ) -> Result<aya::programs::TestRunResult, EbpfError> {
        use aya::programs::{TestRun, TestRunOptions};
        let [ingress_program, egress_program] = PROGRAMS;
        let name = if egress {
            egress_program
        } else {
            ingress_program
        };
        let prog: &SchedClassifier = self
            .bpf
            .program(name)
            .ok_or_else(|| EbpfError::Load(format!("program {name} missing")))?
            .try_into()
            .map_err(|e: aya::programs::ProgramError| EbpfError::Load(e.to_string()))?;
        let opts = TestRunOptions {
            data_in: Some(frame),
            repeat,
            ..TestRunOptions::new()
        };
        prog.test_run(opts)
            .map_err(|e| EbpfError::Load(format!("test run: {e:?}")))
    }

    /// Appends everything the ring holds to `out`; when it is empty, first waits up to `timeout`
    /// (at most [`POLL`], or [`POLL_IDLE`] when idle) for the kernel's wake-up.
    pub fn poll(
        &mut self,
        timeout: Duration,
        out: &mut Vec<(Packet, KernelHint)>,
    ) -> Result<(), EbpfError> {
        self.poll_with(timeout, &mut |ts_ns, linktype, data, orig_len, hint| {
            let p = Packet {
                ts_ns,
                linktype,
                data: data.to_vec(),
                orig_len,
            };
            out.push((p, hint.clone()))
        })
    }

    /// Like [`EbpfCapture::poll`], handing each frame to `f(ts_ns, linktype, bytes, orig_len)`
    /// straight from the ring (no copy). Returns after the ring was drained once.
    pub fn poll_with(&mut self, timeout: Duration, f: &mut OnFrame<'_>) -> Result<(), EbpfError> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        if self.drain(f) == 0 && !timeout.is_zero() {
            let mut fds = [PollFd::new(self.ring.as_fd(), PollFlags::POLLIN)];
            let idle = self.last_packet.elapsed() > Duration::from_secs(1);
            let wait = timeout.min(if idle { POLL_IDLE } else { POLL });
            let t = PollTimeout::try_from(wait).unwrap_or(PollTimeout::MAX);
            match poll(&mut fds, t) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(EbpfError::Ring(e.to_string())),
            }
            self.drain(f);
        }
        Ok(())
    }

    fn drain(&mut self, f: &mut OnFrame<'_>) -> usize {
        let mut n = 0;
        let linktype = self.linktype;
        while let Some(item) = self.ring.next() {
            match parse_sample(&item) {
                Some((meta, hint, data)) => {
                    let ts = (meta.ktime_ns as i64).saturating_add(self.mono_to_real_ns);
                    f(ts, linktype, data, meta.len, &hint);
                    n += 1;
                }
                None => self.malformed += 1,
            }
        }
        if n > 0 {
            self.last_packet = std::time::Instant::now();
        }
        n
    }

    /// Tells the kernel these connections need no more packets (but their FIN/RST).
    pub fn mark_done(&mut self, flows: &[(Endpoint, Endpoint)]) {
        for (a, b) in flows {
            match self.done.insert(flow_key(*a, *b), 1, 0) {
                Ok(()) => self.marked += 1,
                Err(_) => self.mark_failed += 1,
            }
        }
    }

    /// Asks the kernel to follow these connections' TLS record headers (from the next header of
    /// each direction named) and, with `summarise`, to send summaries instead of their packets.
    pub fn arm(&mut self, requests: &[ArmRequest]) {
        for r in requests {
            let key = flow_key(r.client, r.server);
            // The kernel's direction 0 is the canonical key's first endpoint.
            let client_is_a = flow_key_dir(r.client, r.server) == 0;
            let mut req = ekuwatch_ebpf_common::ArmRequest {
                summarise: u32::from(r.summarise),
                ..Default::default()
            };
            let [to_server, to_client] = r.next_header_seq;
            let (d_server, d_client) = if client_is_a { (0, 1) } else { (1, 0) };
            for (d, seq) in [(d_server, to_server), (d_client, to_client)] {
                if let (Some(seq), Some(slot)) = (seq, req.hdr.get_mut(d)) {
                    *slot = seq;
                    req.dirs |= 1 << d;
                }
            }
            match self.arm.insert(key, req, 0) {
                Ok(()) => self.armed += 1,
                Err(_) => self.arm_failed += 1,
            }
        }
    }

    /// Arm requests written (and refused by the map).
    pub fn arms(&self) -> (u64, u64) {
        (self.armed, self.arm_failed)
    }

    /// Samples lost: the ring was full (kernel counter), or a sample was malformed.
    pub fn lost(&self) -> u64 {
        self.counters().get("ring_full") + self.malformed
    }

    /// Connections marked done in the kernel (and marks the kernel map refused).
    pub fn marks(&self) -> (u64, u64) {
        (self.marked, self.mark_failed)
    }

    /// The kernel program's counters, summed over CPUs.
    pub fn counters(&self) -> KernelCounters {
        let mut v = Vec::with_capacity(counter::NAMES.len());
        for (i, name) in counter::NAMES.iter().enumerate() {
            let sum = self
                .counters
                .get(&(i as u32), 0)
                .map(|per_cpu| per_cpu.iter().copied().sum())
                .unwrap_or(0);
            v.push((*name, sum));
        }
        KernelCounters(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_key_is_canonical() {
        let a = ("10.0.0.1".parse().unwrap(), 40000);
        let b = ("10.0.0.2".parse().unwrap(), 25);
        assert_eq!(flow_key(a, b), flow_key(b, a));
        let k = flow_key(a, b);
        assert_eq!(k.addr_a[10..], [0xff, 0xff, 10, 0, 0, 1]);
        assert_eq!((k.port_a, k.port_b), (40000, 25));
    }

    proptest::proptest! {
        /// Ring samples are parsed without trusting them: any bytes give a sample or None, and
        /// a summary never claims more headers than it holds.
        #[test]
        fn any_sample_bytes_are_safe(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            if let Some((meta, hint, data)) = parse_sample(&bytes) {
                proptest::prop_assert_eq!(data.len(), meta.caplen as usize);
                if let Some(h) = hint.summary {
                    proptest::prop_assert!(h.iter().count() <= RecordHeaders::MAX);
                }
            }
        }
    }

    #[test]
    fn summary_sizes_agree() {
        assert_eq!(
            ekuwatch_ebpf_common::MAX_SUMMARY_RECORDS,
            RecordHeaders::MAX,
            "the kernel's summaries and user space's RecordHeaders hold as many headers"
        );
    }

    #[test]
    fn summaries_carry_their_record_headers() {
        let mut s = vec![0u8; 32];
        s[12..16].copy_from_slice(&4u32.to_ne_bytes()); // caplen: 4 header bytes
        s[20..24].copy_from_slice(&(kind::SUMMARY | kind::IN_ORDER).to_ne_bytes());
        s[24..28].copy_from_slice(&3u32.to_ne_bytes()); // 3 packets not sent before it
        s[28..32].copy_from_slice(&77u32.to_ne_bytes()); // in order up to 77
        let mut sum = vec![0u8; 8 + 2 * 12];
        sum[0..4].copy_from_slice(&2u32.to_ne_bytes());
        sum[4..8].copy_from_slice(&1500u32.to_ne_bytes());
        sum[8..12].copy_from_slice(&100u32.to_ne_bytes());
        sum[12..17].copy_from_slice(&[23, 3, 3, 0x40, 0x11]);
        sum[20..24].copy_from_slice(&7u32.to_ne_bytes());
        sum[24..29].copy_from_slice(&[21, 3, 3, 0, 19]);
        s.extend_from_slice(&sum);
        s.extend_from_slice(&[1, 2, 3, 4]);
        let (_, hint, d) = parse_sample(&s).unwrap();
        assert_eq!(d, [1, 2, 3, 4]);
        assert_eq!(hint.in_order_to, Some(77));
        assert_eq!(hint.unsent, 3);
        let summary = hint.summary.unwrap();
        assert_eq!(summary.payload_len, 1500);
        let h: Vec<_> = summary.iter().copied().collect();
        assert_eq!(h, [(100, [23, 3, 3, 0x40, 0x11]), (7, [21, 3, 3, 0, 19])]);
        // A count the kernel never writes is refused, not trusted.
        let n = s.len();
        s[32..36].copy_from_slice(&(RecordHeaders::MAX as u32 + 1).to_ne_bytes());
        assert!(parse_sample(&s).is_none());
        assert!(parse_sample(&s[..n - 5]).is_none());
    }

    #[test]
    fn samples_shorter_than_claimed_are_refused() {
        let mut s = vec![0u8; 32];
        s[12..16].copy_from_slice(&10u32.to_ne_bytes());
        assert!(parse_sample(&s).is_none());
        s.extend_from_slice(&[7; 12]); // 10 bytes + kernel padding
        let (m, hint, d) = parse_sample(&s).unwrap();
        assert_eq!((m.caplen, d.len()), (10, 10));
        assert_eq!(hint, KernelHint::default());
        assert!(parse_sample(&s[..5]).is_none());
    }
}
