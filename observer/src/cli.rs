//! Command line (the edge: `anyhow` lives here and only here).

use crate::capture::expand_paths;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::peers::PeerBook;
use crate::pipeline::Pipeline;
use crate::sink::{csv_report, html_report, json_report, markdown_report, text_report, JsonlSink};
use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use ipnet::IpNet;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "ekuwatch",
    version,
    about = "Who asks our MTAs for TLS client certificates, and which certificates (by EKU) each side presents"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Analyze pcap/pcapng files or directories of them.
    Analyze(AnalyzeArgs),
    /// Check a configuration file (unknown keys are errors) and exit.
    CheckConfig {
        /// The TOML file.
        file: PathBuf,
    },
    /// Capture live on an interface (libpcap) and export metrics (build with `--features live`).
    #[cfg(feature = "live")]
    Live(LiveArgs),
}

#[cfg(feature = "live")]
#[derive(clap::Args, Debug)]
pub struct LiveArgs {
    /// Configuration file (TOML; flags extend or override it).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Interface to capture on (or `interface` in the configuration file).
    #[arg(long, value_name = "IF")]
    pub interface: Option<String>,
    /// Capture backend: pcap (libpcap copies every packet of the SMTP ports) or ebpf (a kernel
    /// program forwards each connection's packets only until its handshake outcome is known;
    /// build with `--features ebpf`).
    #[arg(long, default_value = "pcap", value_parser = ["pcap", "ebpf"])]
    pub backend: String,
    /// eBPF: payload bytes per connection and direction the kernel forwards at most (a backstop
    /// for connections whose outcome never becomes known).
    #[arg(long, value_name = "BYTES", default_value_t = 64 * 1024)]
    pub ebpf_budget: u64,
    /// eBPF: size of the ring buffer to user space, in MiB (a power of two).
    #[arg(long, value_name = "MIB", default_value_t = 16, value_parser = ring_mib)]
    pub ebpf_ring_mib: u32,
    /// BPF capture filter (default: TCP on ports 25, 465, 587 and every --port).
    #[arg(long, value_name = "BPF")]
    pub filter: Option<String>,
    /// Extra SMTP ports to watch (repeatable).
    #[arg(long = "port", value_name = "PORT")]
    pub ports: Vec<u16>,
    /// Address of the exporter (/metrics, /peers, /healthz; default 127.0.0.1:9967).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
    /// Our own hosts (default: the interface's addresses).
    #[arg(long = "local-net", value_name = "CIDR")]
    pub local_net: Vec<IpNet>,
    /// Write events as JSON Lines, flushed per connection ("-" for standard output).
    #[arg(long, value_name = "FILE")]
    pub events: Option<PathBuf>,
    #[command(flatten)]
    pub labels: PeerLabelArgs,
    /// User to switch to once the capture and the exporter socket are open (when started as root;
    /// default `nobody`). `-` keeps the current user.
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// Seconds the final counters stay served after SIGINT/SIGTERM.
    #[arg(long, default_value_t = 2)]
    pub linger: u64,
}

#[cfg(feature = "live")]
fn ring_mib(s: &str) -> std::result::Result<u32, String> {
    match s.parse::<u32>() {
        Ok(n) if n.is_power_of_two() && n <= 1024 => Ok(n),
        _ => Err("a power of two, at most 1024".into()),
    }
}

#[cfg(feature = "live")]
fn live(a: LiveArgs) -> Result<()> {
    let events: Option<Box<dyn Write + Send>> = match &a.events {
        None => None,
        // Buffered: an event is serialised in many small pieces; live mode flushes per event.
        Some(p) if p.as_os_str() == "-" => {
            Some(Box::new(std::io::BufWriter::new(std::io::stdout())))
        }
        Some(p) => Some(Box::new(std::io::BufWriter::new(
            std::fs::File::create(p)
                .with_context(|| format!("cannot write events to {}", p.display()))?,
        ))),
    };
    let file = match &a.config {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    let Some(interface) = a.interface.or(file.interface.clone()) else {
        anyhow::bail!("no interface: give --interface or `interface` in the configuration file");
    };
    let mut local_nets = file.nets().map_err(anyhow::Error::msg)?;
    local_nets.extend(a.local_net);
    let (top_peers, watch) = a.labels.resolve(&file);
    let web = crate::exporter::Web::load(&file.web).map_err(|e| anyhow::anyhow!("[web]: {e}"))?;
    crate::live::run(crate::live::LiveConfig {
        interface,
        web,
        filter: a.filter.or(file.filter.clone()),
        ports: file.ports.iter().chain(&a.ports).copied().collect(),
        listen: a
            .listen
            .or(file.listen)
            .unwrap_or(([127, 0, 0, 1], 9967).into()),
        local_nets,
        events,
        top_peers,
        watch,
        user: a.user.or(file.user.clone()),
        flow: file.flow_config(),
        linger: std::time::Duration::from_secs(a.linger),
        backend: if a.backend == "ebpf" {
            crate::live::Backend::Ebpf
        } else {
            crate::live::Backend::Pcap
        },
        ebpf_budget: a.ebpf_budget,
        ebpf_ring_bytes: a.ebpf_ring_mib << 20,
    })?;
    Ok(())
}

/// Which peers get their own `peer` metric label (shared by `analyze` and `live`).
#[derive(clap::Args, Debug)]
pub struct PeerLabelArgs {
    /// Peers that get their own `peer` label in metrics (besides the watch-list; default 100).
    #[arg(long = "top-peers", value_name = "N")]
    pub top_peers: Option<usize>,
    /// Registered domains that always get their own `peer` label (repeatable).
    #[arg(long = "watch", value_name = "DOMAIN")]
    pub watch: Vec<String>,
}

impl PeerLabelArgs {
    /// (top-N, watch-list): flags override / extend the configuration file.
    fn resolve(&self, file: &Config) -> (usize, Vec<String>) {
        let top = self.top_peers.or(file.top_peers).unwrap_or(100);
        (top, file.watch.iter().chain(&self.watch).cloned().collect())
    }
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportFormat {
    Text,
    Json,
    Markdown,
    Html,
    Csv,
    None,
}

#[derive(clap::Args, Debug)]
pub struct AnalyzeArgs {
    /// Write one JSON object per connection to FILE ("-" for standard output).
    #[arg(long, value_name = "FILE")]
    pub events: Option<PathBuf>,
    /// TLS key log (NSS format, e.g. SSLKEYLOGFILE) to decrypt TLS 1.3 handshakes and the SMTP replies
    /// after STARTTLS (repeatable). Secrets are never printed.
    #[arg(long = "keylog", value_name = "FILE")]
    pub keylog: Vec<PathBuf>,
    /// CIDR of our own hosts (repeatable): sets each session's direction (outbound/inbound).
    #[arg(long = "local-net", value_name = "CIDR")]
    pub local_net: Vec<IpNet>,
    /// Per-peer report on standard output (default: text; none when --events is "-").
    #[arg(long, value_enum)]
    pub report: Option<ReportFormat>,
    /// Extra SMTP server ports (25, 465, 587 are always SMTP); used to call implicit TLS SMTP.
    #[arg(long = "port", value_name = "PORT")]
    pub ports: Vec<u16>,
    /// Configuration file (TOML; flags extend or override it).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Write the metrics as timestamped OpenMetrics (one snapshot per minute of packet time) for
    /// `promtool tsdb create-blocks-from openmetrics FILE DATA_DIR`.
    #[arg(long, value_name = "FILE")]
    pub openmetrics: Option<PathBuf>,
    #[command(flatten)]
    pub labels: PeerLabelArgs,
    /// pcap/pcapng files or directories.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("EKUWATCH_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let r = match cli.command {
        Command::Analyze(a) => analyze(a),
        Command::CheckConfig { file } => Config::load(&file).map_err(Into::into).map(|c| {
            println!(
                "{}: ok ({} local nets, {} extra ports, {} watched peers)",
                file.display(),
                c.local_nets.len(),
                c.ports.len(),
                c.watch.len()
            );
        }),
        #[cfg(feature = "live")]
        Command::Live(a) => live(a),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ekuwatch: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Where analyze's events go: the peer book, the JSONL sink, and the metrics with their snapshots.
struct Outputs {
    book: PeerBook,
    sink: Option<JsonlSink<Box<dyn Write>>>,
    metrics: Option<Metrics>,
    /// (packet time in seconds, the metrics then)
    snapshots: Vec<(f64, crate::metrics::Snapshot)>,
    next_snapshot: Option<i64>,
    error: Option<anyhow::Error>,
}

const SNAPSHOT_NS: i64 = 60 * 1_000_000_000;

impl Outputs {
    fn drain(&mut self, pipe: &mut Pipeline, last: bool) {
        for ev in pipe.drain_events() {
            self.book.add(&ev);
            if let Some(m) = &mut self.metrics {
                m.observe(
                    &ev,
                    &crate::peers::registered_domain(&crate::peers::peer_name(&ev)),
                );
            }
            if let Some(s) = self.sink.as_mut() {
                if let Err(e) = s.write(&ev) {
                    self.error
                        .get_or_insert(anyhow::Error::new(e).context("cannot write events"));
                }
            }
        }
        let Some(m) = &mut self.metrics else { return };
        let Some(now) = pipe.stats.last_ts else {
            return;
        };
        let due = *self
            .next_snapshot
            .get_or_insert(now - now.rem_euclid(SNAPSHOT_NS) + SNAPSHOT_NS);
        if now >= due || last {
            m.set_capture(
                "pcap_file",
                pipe.stats.packets,
                &[],
                pipe.flows.active_flows(),
                &pipe.stats.parse_errors,
            );
            m.set_verdicts(&self.book);
            let ts = if last { now } else { due };
            self.snapshots.push((ts as f64 / 1e9, m.snapshot()));
            self.next_snapshot = Some(due + SNAPSHOT_NS * (1 + (now - due) / SNAPSHOT_NS));
        }
    }
}

fn analyze(a: AnalyzeArgs) -> Result<()> {
    let files = expand_paths(&a.paths)?;
    if files.is_empty() {
        anyhow::bail!(
            "no pcap/pcapng files under {}",
            a.paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let file = match &a.config {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    let mut cfg = file.flow_config();
    cfg.local_nets.extend(a.local_net.iter().copied());
    cfg.smtp_ports.extend(&a.ports);
    let (top_peers, watch) = a.labels.resolve(&file);
    let events_to_stdout = a
        .events
        .as_deref()
        .is_some_and(|p| p == std::path::Path::new("-"));
    let report = a.report.unwrap_or(if events_to_stdout {
        ReportFormat::None
    } else {
        ReportFormat::Text
    });
    let sink: Option<JsonlSink<Box<dyn Write>>> = match &a.events {
        None => None,
        Some(p) if p.as_os_str() == "-" => Some(JsonlSink::new(Box::new(std::io::BufWriter::new(
            std::io::stdout(),
        )))),
        Some(p) => {
            let f = std::fs::File::create(p)
                .with_context(|| format!("cannot write events to {}", p.display()))?;
            Some(JsonlSink::new(Box::new(std::io::BufWriter::new(f))))
        }
    };
    let total: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    let bar = if std::io::stderr().is_terminal() && total > 64 * 1024 * 1024 {
        let b = indicatif::ProgressBar::new(total);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        Some(b)
    } else {
        None
    };
    let mut pipe = Pipeline::new(cfg);
    for k in &a.keylog {
        let text =
            std::fs::read(k).with_context(|| format!("cannot read key log {}", k.display()))?;
        pipe.flows.add_keylog(&text);
    }
    if pipe.flows.keylog().malformed > 0 {
        tracing::warn!(
            lines = pipe.flows.keylog().malformed,
            "malformed key log lines ignored"
        );
    }
    let mut out = Outputs {
        book: PeerBook::default(),
        sink,
        metrics: a
            .openmetrics
            .as_ref()
            .map(|_| Metrics::new(top_peers, watch.iter().cloned())),
        snapshots: Vec::new(),
        next_snapshot: None,
        error: None,
    };
    for f in &files {
        tracing::info!(file = %f.display(), "reading");
        let r = pipe.read_file(f, |pipe, n| {
            if let Some(b) = &bar {
                b.inc(n);
            }
            out.drain(pipe, false);
        });
        if let Err(e) = r {
            if pipe.stats.packets == 0 && files.len() == 1 {
                return Err(e.into());
            }
            tracing::warn!("{e}");
        }
        out.drain(&mut pipe, false);
    }
    pipe.finish();
    out.drain(&mut pipe, true);
    if let Some(e) = out.error.take() {
        return Err(e);
    }
    let book = out.book;
    let mut sink = out.sink;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if let Some(s) = sink.as_mut() {
        s.flush().context("cannot write events")?;
    }
    if let (Some(path), Some(m)) = (&a.openmetrics, &out.metrics) {
        std::fs::write(path, m.openmetrics(&out.snapshots))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let mut out = std::io::stdout().lock();
    match report {
        ReportFormat::Text => write!(
            out,
            "{}",
            text_report(&book, &pipe.stats, &pipe.flows.stats)
        )?,
        ReportFormat::Json => writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&json_report(&book, &pipe.stats, &pipe.flows.stats))?
        )?,
        ReportFormat::Markdown => write!(
            out,
            "{}",
            markdown_report(&book, &pipe.stats, &pipe.flows.stats)
        )?,
        ReportFormat::Html => write!(
            out,
            "{}",
            html_report(&book, &pipe.stats, &pipe.flows.stats)
        )?,
        ReportFormat::Csv => write!(out, "{}", csv_report(&book))?,
        ReportFormat::None => {}
    }
    Ok(())
}
