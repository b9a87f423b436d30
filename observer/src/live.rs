//! Live observation (feature `live`): packets from an interface — libpcap, or the eBPF program
//! (feature `ebpf`, see [`crate::ebpf`]) — feeding the same pipeline as offline analysis, and a small HTTP exporter: `/metrics` (Prometheus text), `/peers` (the full
//! per-peer JSON, no cardinality limit), `/healthz`. Events are written as each connection's outcome
//! is known. SIGINT/SIGTERM stop the capture cleanly: the last events are flushed and the final
//! counters stay served until exit.

use crate::exporter::{Exporter, Limits, Published, Web};
use crate::flow::FlowConfig;
use crate::metrics::Metrics;
use crate::peers::{peer_name, registered_domain, PeerBook};
use crate::pipeline::Pipeline;
use crate::sink::{json_report, JsonlSink};
use ipnet::IpNet;
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// The interface could not be opened (the message says whether a capability is missing:
    /// [`open_error`]).
    #[error("interface {0}: {1}")]
    Open(String, String),
    /// No interface of that name (in this network namespace); the second field lists those there are.
    #[error("interface {0}: no such interface (interfaces here: {1})")]
    NoInterface(String, String),
    #[error("capture filter {0:?}: {1}")]
    Filter(String, String),
    #[error("cannot listen on {0}: {1}")]
    Listen(SocketAddr, std::io::Error),
    #[error("capture: {0}")]
    Capture(String),
    #[error("events: {0}")]
    Events(std::io::Error),
    #[error("cannot switch to user {0}: {1}")]
    User(String, String),
    #[cfg(feature = "ebpf")]
    #[error(transparent)]
    Ebpf(#[from] crate::ebpf::EbpfError),
    #[error("{0}")]
    Usage(String),
}

/// Where packets come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// libpcap: every packet of the watched ports is copied to user space.
    Pcap,
    /// The eBPF program: packets only until each connection's handshake outcome is known.
    Ebpf,
}

pub struct LiveConfig {
    pub interface: String,
    /// TLS and basic auth on the exporter.
    pub web: Web,
    pub filter: Option<String>,
    pub ports: Vec<u16>,
    pub listen: SocketAddr,
    pub local_nets: Vec<IpNet>,
    pub events: Option<Box<dyn Write + Send>>,
    pub top_peers: usize,
    pub watch: Vec<String>,
    /// How long the final counters stay served after SIGINT/SIGTERM.
    pub linger: Duration,
    /// User to switch to after opening the capture (None: `nobody` when root; `-`: stay).
    pub user: Option<String>,
    /// Flow-table limits (from the configuration file).
    pub flow: FlowConfig,
    pub backend: Backend,
    /// eBPF: per-direction payload bytes the kernel forwards at most per connection.
    pub ebpf_budget: u64,
    /// eBPF: ring buffer size in bytes.
    pub ebpf_ring_bytes: u32,
}

/// The interfaces of this network namespace, by name ("none" when they cannot be listed).
fn interface_names() -> String {
    let names: Vec<String> = nix::net::if_::if_nameindex()
        .map(|l| {
            l.iter()
                .map(|i| i.name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// libpcap could not open an existing interface: the capability hint only when the error is a
/// permission error (not for an interface that is down, a bad link type, ...).
fn open_error(interface: &str, error: String) -> LiveError {
    let lower = error.to_ascii_lowercase();
    let message = if lower.contains("permission") || lower.contains("not permitted") {
        format!("{error} (capturing needs root or CAP_NET_RAW: setcap cap_net_raw+ep ekuwatch)")
    } else {
        error
    };
    LiveError::Open(interface.to_owned(), message)
}

/// Kernel buffer of the libpcap capture: ~0.5 s of a saturated gigabit link, so a busy moment in
/// the analysis does not drop packets (libpcap's default, 2 MB, does at a few hundred Mbit/s).
const PCAP_BUFFER_BYTES: i32 = 64 << 20;

/// An open capture.
enum Source {
    Pcap {
        cap: pcap::Capture<pcap::Active>,
        linktype: u32,
        /// (kernel, interface) drops, as last read.
        drops: (u64, u64),
    },
    #[cfg(feature = "ebpf")]
    Ebpf { cap: Box<crate::ebpf::EbpfCapture> },
}

impl Source {
    fn open(cfg: &LiveConfig, ports: &[u16]) -> Result<(Source, String), LiveError> {
        // libpcap's own message for a missing interface depends on the privileges (as non-root it
        // reports the missing permission first), so the name is checked before anything is opened.
        let any = cfg.backend == Backend::Pcap && cfg.interface == "any";
        if !any && nix::net::if_::if_nametoindex(cfg.interface.as_str()).is_err() {
            return Err(LiveError::NoInterface(
                cfg.interface.clone(),
                interface_names(),
            ));
        }
        match cfg.backend {
            Backend::Pcap => {
                // Non-blocking: the loop also serves signals and publishes counters when no packet
                // arrives (libpcap's TPACKET_V3 read may otherwise wait past its timeout).
                let mut cap = pcap::Capture::from_device(cfg.interface.as_str())
                    .and_then(|c| {
                        c.immediate_mode(true)
                            .buffer_size(PCAP_BUFFER_BYTES)
                            .snaplen(65535)
                            .promisc(false)
                            .timeout(100)
                            .open()
                    })
                    .and_then(|c| c.setnonblock())
                    .map_err(|e| open_error(&cfg.interface, e.to_string()))?;
                let filter = cfg.filter.clone().unwrap_or_else(|| default_filter(ports));
                cap.filter(&filter, true)
                    .map_err(|e| LiveError::Filter(filter.clone(), e.to_string()))?;
                let linktype = cap.get_datalink().0 as u32;
                let source = Source::Pcap {
                    cap,
                    linktype,
                    drops: (0, 0),
                };
                Ok((source, format!("pcap, filter {filter:?}")))
            }
            #[cfg(feature = "ebpf")]
            Backend::Ebpf => {
                if cfg.filter.is_some() {
                    return Err(LiveError::Usage(
                        "a capture filter applies to the pcap backend; the eBPF backend watches the ports (--port)".into(),
                    ));
                }
                let cap = crate::ebpf::EbpfCapture::open(&crate::ebpf::EbpfOptions {
                    interface: cfg.interface.clone(),
                    ports: ports.to_vec(),
                    budget: cfg.ebpf_budget,
                    ring_bytes: cfg.ebpf_ring_bytes,
                })?;
                let source = Source::Ebpf { cap: Box::new(cap) };
                Ok((source, format!("ebpf, ports {ports:?}")))
            }
            #[cfg(not(feature = "ebpf"))]
            Backend::Ebpf => Err(LiveError::Usage(
                "this ekuwatch was built without the eBPF backend: cargo build --release --features ebpf"
                    .into(),
            )),
        }
    }

    /// Reads what is there (waiting a little when nothing is) into the pipeline.
    fn read(&mut self, pipe: &mut Pipeline) -> Result<(), LiveError> {
        match self {
            Source::Pcap { cap, linktype, .. } => match cap.next_packet() {
                Ok(p) => {
                    let ts = p.header.ts;
                    #[allow(
                        clippy::useless_conversion,
                        reason = "time_t and suseconds_t are i64 here but narrower on other targets"
                    )]
                    let ts_ns = i64::from(ts.tv_sec) * 1_000_000_000 + i64::from(ts.tv_usec) * 1000;
                    pipe.frame(ts_ns, *linktype, p.data);
                    Ok(())
                }
                Err(pcap::Error::TimeoutExpired) => {
                    std::thread::sleep(Duration::from_millis(1));
                    Ok(())
                }
                Err(e) => Err(LiveError::Capture(e.to_string())),
            },
            #[cfg(feature = "ebpf")]
            Source::Ebpf { cap } => {
                cap.poll_with(Duration::from_millis(100), &mut |ts, lt, data, _, hint| {
                    pipe.kernel_frame(ts, lt, data, hint)
                })?;
                // Connections that are not SMTP/TLS: the kernel stops forwarding them.
                let done = pipe.flows.take_finished_analysis();
                if !done.is_empty() {
                    cap.mark_done(&done);
                }
                // TLS directions past their outcome: the kernel follows their record headers.
                let arms = pipe.flows.take_arm_requests();
                if !arms.is_empty() {
                    cap.arm(&arms);
                }
                Ok(())
            }
        }
    }

    /// Capture counters into the metrics; returns the packets dropped so far (all reasons).
    fn publish(&mut self, pipe: &Pipeline, metrics: &mut Metrics) -> u64 {
        let (source, drops) = match self {
            Source::Pcap { cap, drops, .. } => {
                if let Ok(st) = cap.stats() {
                    *drops = (u64::from(st.dropped), u64::from(st.if_dropped));
                }
                ("pcap", vec![("kernel", drops.0), ("interface", drops.1)])
            }
            #[cfg(feature = "ebpf")]
            Source::Ebpf { cap, .. } => {
                metrics.set_ebpf(&cap.counters().0, cap.marks(), cap.arms());
                ("ebpf", vec![("ring_buffer", cap.lost())])
            }
        };
        metrics.set_capture_bytes(source, pipe.stats.bytes);
        metrics.set_capture(
            source,
            pipe.stats.packets,
            &drops,
            pipe.flows.active_flows(),
            &pipe.stats.parse_errors,
        );
        drops.iter().map(|(_, n)| n).sum()
    }
}

/// The drop ratio over the last measuring window (30 s): what `/healthz` judges. Cumulative
/// counters would let a burst of drops an hour ago fail the check forever, or hide a new one.
#[derive(Debug)]
struct DropWindow {
    start: Instant,
    at_start: (u64, u64),
    last_ratio: f64,
}

impl Default for DropWindow {
    fn default() -> Self {
        DropWindow {
            start: Instant::now(),
            at_start: (0, 0),
            last_ratio: 0.0,
        }
    }
}

impl DropWindow {
    const WINDOW: Duration = Duration::from_secs(30);

    /// Cumulative packets received and dropped in; the ratio of the last whole window out.
    fn update(&mut self, received: u64, dropped: u64) -> f64 {
        let (r0, d0) = self.at_start;
        let (r, d) = (received.saturating_sub(r0), dropped.saturating_sub(d0));
        let ratio = if r + d == 0 {
            0.0
        } else {
            d as f64 / (r + d) as f64
        };
        if self.start.elapsed() >= Self::WINDOW {
            self.last_ratio = ratio;
            self.start = Instant::now();
            self.at_start = (received, dropped);
        }
        // A window under way already past the limit counts at once.
        self.last_ratio.max(ratio)
    }
}

/// The default capture filter: SMTP ports (25, 465, 587 and configured ones), TCP only.
pub fn default_filter(ports: &[u16]) -> String {
    let mut all = vec![25u16, 465, 587];
    for p in ports {
        if !all.contains(p) {
            all.push(*p);
        }
    }
    let ports: Vec<String> = all.iter().map(|p| format!("tcp port {p}")).collect();
    ports.join(" or ")
}

/// Addresses of the interface, as /32 and /128 local nets (the direction default).
pub fn interface_nets(interface: &str) -> Vec<IpNet> {
    pcap::Device::list()
        .unwrap_or_default()
        .into_iter()
        .filter(|d| d.name == interface)
        .flat_map(|d| d.addresses.into_iter().map(|a| IpNet::from(a.addr)))
        .collect()
}

/// Once the capture handle and the listening socket are open, root is no longer needed: switch to
/// an unprivileged user (default `nobody`), groups first. Not root: nothing to do.
fn drop_privileges(user: Option<&str>) -> Result<(), LiveError> {
    use nix::unistd::{setgid, setgroups, setuid, Uid, User};
    if !Uid::effective().is_root() || user == Some("-") {
        return Ok(());
    }
    let name = user.unwrap_or("nobody");
    let err = |e: String| LiveError::User(name.to_string(), e);
    let u = User::from_name(name)
        .map_err(|e| err(e.to_string()))?
        .ok_or_else(|| err("no such user".into()))?;
    setgroups(&[]).map_err(|e| err(e.to_string()))?;
    setgid(u.gid).map_err(|e| err(e.to_string()))?;
    setuid(u.uid).map_err(|e| err(e.to_string()))?;
    tracing::info!(user = name, "privileges dropped");
    Ok(())
}

/// The live loop's state: the pipeline and the capture feeding it, and the sinks of its events.
struct Observer {
    pipe: Pipeline,
    source: Source,
    metrics: Metrics,
    book: PeerBook,
    sink: Option<JsonlSink<Box<dyn Write + Send>>>,
    drops: DropWindow,
    /// What the exporter serves.
    shared: Arc<Mutex<Published>>,
}

impl Observer {
    /// Completed events to the peer book, the metrics and the events file (flushed per event).
    fn drain(&mut self) -> Result<(), LiveError> {
        for ev in self.pipe.drain_events() {
            self.book.add(&ev);
            self.metrics
                .observe(&ev, &registered_domain(&peer_name(&ev)));
            if let Some(s) = self.sink.as_mut() {
                s.write(&ev)
                    .and_then(|_| s.flush())
                    .map_err(LiveError::Events)?;
            }
        }
        Ok(())
    }

    /// Counters, verdicts, the peer report and the capture's health to the exporter.
    fn publish(&mut self, error: Option<String>) {
        let dropped = self.source.publish(&self.pipe, &mut self.metrics);
        self.metrics.set_verdicts(&self.book);
        let text = self.metrics.render();
        let peers = json_report(&self.book, &self.pipe.stats, &self.pipe.flows.stats).to_string();
        let drop_ratio = self.drops.update(self.pipe.stats.packets, dropped);
        let mut sh = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        sh.metrics = text;
        sh.peers = peers;
        sh.health.started = true;
        sh.health.last_loop = Instant::now();
        sh.health.drop_ratio = drop_ratio;
        if error.is_some() {
            sh.health.capture_error = error;
        }
    }
}

/// Runs until SIGINT/SIGTERM (or the interface goes away).
pub fn run(mut cfg: LiveConfig) -> Result<(), LiveError> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register(sig, Arc::clone(&stop));
    }
    let mut smtp_ports = vec![25, 465, 587];
    for p in &cfg.ports {
        if !smtp_ports.contains(p) {
            smtp_ports.push(*p);
        }
    }
    let (source, what) = Source::open(&cfg, &smtp_ports)?;
    let listener = TcpListener::bind(cfg.listen).map_err(|e| LiveError::Listen(cfg.listen, e))?;
    tracing::info!(interface = %cfg.interface, backend = %what, listen = %cfg.listen, "capturing");

    if cfg.local_nets.is_empty() {
        cfg.local_nets = interface_nets(&cfg.interface);
    }
    drop_privileges(cfg.user.as_deref())?;
    let pipe = Pipeline::new(FlowConfig {
        local_nets: cfg.local_nets.clone(),
        smtp_ports,
        report_done: cfg.backend == Backend::Ebpf,
        ..cfg.flow.clone()
    });
    let shared = Arc::new(Mutex::new(Published::default()));
    let exporter = Exporter::start(
        listener,
        Arc::clone(&shared),
        Limits::default(),
        cfg.web.clone(),
    )
    .map_err(|e| LiveError::Listen(cfg.listen, e))?;
    let mut obs = Observer {
        metrics: Metrics::new(cfg.top_peers, cfg.watch.clone()),
        book: PeerBook::default(),
        sink: cfg.events.take().map(JsonlSink::new),
        drops: DropWindow::default(),
        pipe,
        source,
        shared,
    };
    let mut last_publish = Instant::now() - Duration::from_secs(10);
    let mut result = Ok(());
    while !stop.load(Ordering::Relaxed) {
        if let Err(e) = obs.source.read(&mut obs.pipe) {
            tracing::error!("{e}");
            obs.publish(Some(e.to_string()));
            result = Err(e);
            break;
        }
        let publish = last_publish.elapsed() >= Duration::from_millis(500);
        if publish {
            // Live packet timestamps are wall-clock time: on a quiet link the flow table's clock
            // moves on anyway (flows waiting on time end without another packet).
            obs.pipe.flows.advance_clock(wall_clock_ns());
        }
        obs.drain()?;
        if publish {
            obs.publish(None);
            last_publish = Instant::now();
        }
    }
    // Clean shutdown: flows still open are reported, counters published once more.
    obs.pipe.finish();
    obs.drain()?;
    obs.publish(result.as_ref().err().map(ToString::to_string));
    // Keep serving the final counters for a last scrape.
    std::thread::sleep(cfg.linger);
    exporter.shutdown();
    let pipe = obs.pipe;
    tracing::info!(
        packets = pipe.stats.packets,
        events = pipe.flows.stats.events,
        "stopped"
    );
    result
}

/// Nanoseconds since the Unix epoch, as live packet timestamps count them.
fn wall_clock_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}
