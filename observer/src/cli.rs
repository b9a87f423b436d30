//! Command line (the edge: `anyhow` lives here and only here).
//!
//! Exit status: 0 on success; 1 when an input or output could not be used (each bad input is said
//! on one line of standard error, and the others are still analysed and reported); 2 on a usage
//! error. A standard output closed by its reader (EPIPE: `| head`) ends the run quietly with 0.
//! Log lines go to standard error, coloured only on a terminal without `NO_COLOR`, and never
//! through the progress bar (it is cleared while a line is written).

use crate::capture::{CaptureError, CaptureReader, FileReader, Inputs};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::peers::PeerBook;
use crate::pipeline::Pipeline;
use crate::sink::{csv_report, html_report, json_report, markdown_report, text_report, JsonlSink};
use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use ipnet::IpNet;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Mutex, PoisonError};

/// `ekuwatch --version`: the version and the optional features this binary was built with.
#[cfg(feature = "ebpf")]
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (features: live, ebpf)");
/// `ekuwatch --version`: the version and the optional features this binary was built with.
#[cfg(all(feature = "live", not(feature = "ebpf")))]
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (features: live)");
/// `ekuwatch --version`: the version and the optional features this binary was built with.
#[cfg(not(feature = "live"))]
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (features: none)");

/// What `ekuwatch live` says in a build without the `live` feature.
pub const NO_LIVE: &str =
    "this ekuwatch was built without live capture: cargo build --release --features live";

#[derive(Parser, Debug)]
#[command(
    name = "ekuwatch",
    version = VERSION,
    about = "Who asks our MTAs for TLS client certificates, and which certificates (by EKU) each side presents"
)]
pub struct Cli {
    /// Log lines on standard error: text, or one JSON object per line for log collectors.
    /// The level comes from EKUWATCH_LOG (default warn; e.g. info, debug, ekuwatch=trace).
    #[arg(long, value_enum, global = true, default_value = "text")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (coloured on a terminal unless NO_COLOR is set).
    Text,
    /// One JSON object per line: timestamp, level, fields (message and values), target.
    Json,
}

/// A usage error: exit status 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

/// The run failed and every cause was already said (one line per bad input): exit status 1,
/// nothing more printed.
#[derive(Debug, thiserror::Error)]
#[error("{0} inputs could not be used")]
struct AlreadyReported(usize);

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
    /// Capture live on an interface — not in this build: cargo build --release --features live
    #[cfg(not(feature = "live"))]
    #[command(disable_help_flag = true)]
    Live {
        #[arg(num_args = 0.., allow_hyphen_values = true, trailing_var_arg = true)]
        args: Vec<std::ffi::OsString>,
    },
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
        return Err(Usage(
            "no interface: give --interface or `interface` in the configuration file".into(),
        )
        .into());
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

/// `ekuwatch analyze --help`, after the options (README "Exit status" says the same).
const ANALYZE_AFTER_HELP: &str = "\
Inputs: a PATH that is a file is read as a capture (pcap or pcapng); if it is none, that is an error.
`-` reads a capture from standard input. A directory is walked recursively, in name order, and only
its captures are read: files that start with a pcap/pcapng magic number or are named *.pcap,
*.pcapng or *.cap. Its other files (READMEs, key logs, scripts, ...) are skipped, counted in an
info log line (EKUWATCH_LOG=info); a directory without any capture is an error.

Exit status: 0 on success. 1 when an input or output could not be used: a missing or unreadable
PATH or --keylog, a file named as PATH that is not a capture, a directory without a capture; each is
said on one line of standard error, the other inputs are still analysed and reported (no report
when no input could be read). A capture damaged after its header (truncated, malformed) is read up
to the damage, which is logged and listed in the report: exit 0. 2 on a usage error (unknown flag,
bad value, invalid EKUWATCH_LOG, `-` twice or on a terminal). A standard output closed by its reader (`| head`) ends the run
quietly with 0.";

#[derive(clap::Args, Debug)]
#[command(after_help = ANALYZE_AFTER_HELP)]
pub struct AnalyzeArgs {
    /// Write one JSON object per connection to FILE ("-" for standard output).
    #[arg(long, value_name = "FILE")]
    pub events: Option<PathBuf>,
    /// TLS key log (NSS format, e.g. SSLKEYLOGFILE) to decrypt TLS 1.3 handshakes and the SMTP replies
    /// after STARTTLS (repeatable). A directory: every file in it (not recursive; pcap/pcapng
    /// files skipped). Secrets are never printed.
    #[arg(long = "keylog", value_name = "FILE|DIR")]
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
    /// pcap/pcapng files, directories of them (recursive), or `-` for standard input.
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
    if let Err(e) = init_logging(cli.log_format) {
        let _ = writeln!(std::io::stderr(), "ekuwatch: {e}");
        return ExitCode::from(2);
    }
    let r = match cli.command {
        Command::Analyze(a) => analyze(a),
        Command::CheckConfig { file } => check_config(&file),
        #[cfg(feature = "live")]
        Command::Live(a) => live(a),
        #[cfg(not(feature = "live"))]
        Command::Live { .. } => Err(Usage(NO_LIVE.into()).into()),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) if e.is::<AlreadyReported>() => ExitCode::from(1),
        Err(e) => {
            say_error(&format!("{e:#}"));
            ExitCode::from(if is_usage(&e) { 2 } else { 1 })
        }
    }
}

fn check_config(file: &Path) -> Result<()> {
    let c = Config::load(file)?;
    // `[web]`: the certificate, key and password hashes are read as `live` would read them.
    #[cfg(feature = "live")]
    crate::exporter::Web::load(&c.web)
        .map_err(|e| anyhow::anyhow!("{}: [web]: {e}", file.display()))?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{}: ok ({} local nets, {} extra ports, {} watched peers)",
        file.display(),
        c.local_nets.len(),
        c.ports.len(),
        c.watch.len()
    )?;
    out.flush()?;
    Ok(())
}

fn is_usage(e: &anyhow::Error) -> bool {
    #[cfg(feature = "live")]
    if let Some(crate::live::LiveError::Usage(_)) = e.downcast_ref() {
        return true;
    }
    e.is::<Usage>()
}

/// Whether the run ended because its reader closed standard output (or another pipe we wrote):
/// like a Unix filter killed by SIGPIPE, that is no failure (Rust ignores SIGPIPE, so it comes
/// back as an EPIPE write error).
fn broken_pipe(e: &anyhow::Error) -> bool {
    #[cfg(feature = "live")]
    if let Some(crate::live::LiveError::Events(io)) = e.downcast_ref() {
        return io.kind() == std::io::ErrorKind::BrokenPipe;
    }
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The log level from `EKUWATCH_LOG` (unset or empty: warn). An invalid filter is a usage error:
/// silently logging nothing (or everything) is worse.
fn log_filter() -> std::result::Result<tracing_subscriber::EnvFilter, Usage> {
    let Some(v) = std::env::var_os("EKUWATCH_LOG").filter(|v| !v.is_empty()) else {
        return Ok(tracing_subscriber::EnvFilter::new("warn"));
    };
    let s = v
        .to_str()
        .ok_or_else(|| Usage("invalid EKUWATCH_LOG: not UTF-8".into()))?;
    tracing_subscriber::EnvFilter::builder()
        .parse(s)
        .map_err(|e| {
            Usage(format!(
                "invalid EKUWATCH_LOG={s:?}: {e} (examples: warn, info, ekuwatch=debug)"
            ))
        })
}

/// Colour on standard error: only on a terminal, and never with `NO_COLOR` set (no-color.org).
fn colour() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

fn init_logging(format: LogFormat) -> std::result::Result<(), Usage> {
    let builder = tracing_subscriber::fmt()
        .with_writer(|| AboveBar(std::io::stderr()))
        .with_env_filter(log_filter()?);
    // (`try_init` fails only when a subscriber is already set: then that one logs.)
    LOG_JSON.store(
        format == LogFormat::Json,
        std::sync::atomic::Ordering::Relaxed,
    );
    let _ = match format {
        LogFormat::Text => builder.with_ansi(colour()).try_init(),
        LogFormat::Json => builder.json().with_ansi(false).try_init(),
    };
    Ok(())
}

/// The progress bar while one is shown (analyze, large inputs on a terminal): log and error lines
/// are written with it cleared ([`AboveBar`]).
static PROGRESS: Mutex<Option<indicatif::ProgressBar>> = Mutex::new(None);

/// A writer for standard error that never mixes with the progress bar: while one is shown, each
/// write clears it, writes, and redraws it below (`ProgressBar::suspend`). The log subscriber
/// writes one whole line per write.
pub struct AboveBar<W>(pub W);

impl<W: Write> Write for AboveBar<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let bar = PROGRESS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        match bar {
            Some(b) if !b.is_hidden() => b.suspend(|| self.0.write_all(buf))?,
            _ => self.0.write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// Shows `bar` (log lines then go above it) until dropped.
struct ShownBar(indicatif::ProgressBar);

impl ShownBar {
    fn new(bar: indicatif::ProgressBar) -> ShownBar {
        *PROGRESS.lock().unwrap_or_else(PoisonError::into_inner) = Some(bar.clone());
        ShownBar(bar)
    }
}

impl Drop for ShownBar {
    fn drop(&mut self) {
        *PROGRESS.lock().unwrap_or_else(PoisonError::into_inner) = None;
        self.0.finish_and_clear();
    }
}

/// One error line on standard error: `ekuwatch: MESSAGE`, or with `--log-format json` an
/// error-level log line (so that standard error stays one JSON object per line).
fn say_error(message: &str) {
    if LOG_JSON.load(std::sync::atomic::Ordering::Relaxed) {
        tracing::error!("{message}");
    } else {
        let _ = AboveBar(std::io::stderr()).write_all(format!("ekuwatch: {message}\n").as_bytes());
    }
}

static LOG_JSON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

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
            // After a failed write (e.g. EPIPE: the reader of standard output is gone) nothing more
            // is written; the error ends the run.
            if let Some(s) = self.sink.as_mut().filter(|_| self.error.is_none()) {
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

/// One input of `analyze`, in command-line order.
enum Input {
    File(PathBuf),
    Stdin,
    /// A path that gave no file (missing, unreadable, a directory without a capture): said in
    /// its turn.
    Bad(CaptureError),
}

/// How reading one input went.
enum Read {
    Ok,
    /// Not usable at all (cannot open, not a capture, unreadable): exit status 1.
    Bad(CaptureError),
    /// Read up to damage after its header: logged and reported, exit status unaffected.
    Damaged(CaptureError),
}

/// The name standard input goes by in messages and the report (as grep calls it).
const STDIN_NAME: &str = "(standard input)";

/// The command line's PATHs as inputs, in order.
fn inputs(paths: &[PathBuf]) -> Result<Vec<Input>> {
    let mut found = Inputs::default();
    let mut out = Vec::new();
    let mut stdin = false;
    for p in paths {
        if p.as_os_str() == "-" {
            if stdin {
                return Err(Usage("`-` (standard input) given twice".into()).into());
            }
            if std::io::stdin().is_terminal() {
                return Err(Usage(
                    "`-` reads a capture from standard input, which is a terminal".into(),
                )
                .into());
            }
            stdin = true;
            out.push(Input::Stdin);
            continue;
        }
        found.add(p);
        out.extend(
            std::mem::take(&mut found.files)
                .into_iter()
                .map(Input::File),
        );
        out.extend(
            std::mem::take(&mut found.errors)
                .into_iter()
                .map(Input::Bad),
        );
    }
    if found.skipped > 0 {
        tracing::info!(
            files = found.skipped,
            "skipped in the directories: not pcap/pcapng"
        );
    }
    Ok(out)
}

/// Adds the key logs of one `--keylog`: a file, or every file of a directory (not recursive;
/// pcap/pcapng files skipped: their embedded keys come with them when they are analysed).
/// Unreadable ones are said (one line each) and counted.
fn add_keylogs(pipe: &mut Pipeline, path: &Path, bad: &mut usize) {
    let mut fail = |p: &Path, e: std::io::Error| {
        say_error(&format!("cannot read key log {}: {e}", p.display()));
        *bad += 1;
    };
    let files = match std::fs::metadata(path) {
        Err(e) => return fail(path, e),
        Ok(m) if !m.is_dir() => vec![path.to_path_buf()],
        Ok(_) => {
            let mut files: Vec<PathBuf> = match std::fs::read_dir(path) {
                Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
                Err(e) => return fail(path, e),
            };
            files.sort();
            files.retain(|f| {
                std::fs::metadata(f).is_ok_and(|m| m.is_file())
                    && !crate::capture::starts_like_capture(f).unwrap_or(false)
            });
            if files.is_empty() {
                tracing::warn!(dir = %path.display(), "no key log file in the directory");
            }
            files
        }
    };
    for f in files {
        match std::fs::read(&f) {
            Ok(text) => pipe.flows.add_keylog(&text),
            Err(e) => fail(&f, e),
        }
    }
}

/// Reads one capture through the pipeline, draining events as they come.
fn read_one<R: BufRead>(
    pipe: &mut Pipeline,
    reader: Result<CaptureReader<R>, CaptureError>,
    out: &mut Outputs,
    bar: Option<&indicatif::ProgressBar>,
) -> Read {
    let header = reader.is_ok();
    let r = pipe.read(reader, |pipe, n| {
        if let Some(b) = bar {
            b.inc(n);
        }
        out.drain(pipe, false);
    });
    out.drain(pipe, false);
    match r {
        Ok(()) => Read::Ok,
        Err(e @ (CaptureError::Open { .. } | CaptureError::Io { .. })) => Read::Bad(e),
        Err(e) if !header => Read::Bad(e),
        Err(e) => Read::Damaged(e),
    }
}

fn analyze(a: AnalyzeArgs) -> Result<()> {
    let inputs = inputs(&a.paths)?;
    if inputs.iter().all(|i| matches!(i, Input::Bad(_))) {
        for i in &inputs {
            if let Input::Bad(e) = i {
                say_error(&e.to_string());
            }
        }
        return Err(AlreadyReported(inputs.len()).into());
    }
    let mut bad = 0;
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
    let total: u64 = inputs
        .iter()
        .filter_map(|i| match i {
            Input::File(f) => std::fs::metadata(f).ok(),
            Input::Stdin | Input::Bad(_) => None,
        })
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
        Some(ShownBar::new(b))
    } else {
        None
    };
    let mut pipe = Pipeline::new(cfg);
    for k in &a.keylog {
        add_keylogs(&mut pipe, k, &mut bad);
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
    let mut read = 0;
    for input in inputs {
        if out.error.is_some() {
            break; // the events cannot be written: the run ends with that error
        }
        let bar = bar.as_ref().map(|b| &b.0);
        let r = match input {
            Input::File(f) => {
                tracing::info!(file = %f.display(), "reading");
                read_one(&mut pipe, FileReader::open(&f), &mut out, bar)
            }
            Input::Stdin => {
                tracing::info!(file = STDIN_NAME, "reading");
                let stdin = std::io::BufReader::with_capacity(1 << 18, std::io::stdin());
                read_one(
                    &mut pipe,
                    CaptureReader::new(Path::new(STDIN_NAME), stdin),
                    &mut out,
                    bar,
                )
            }
            Input::Bad(e) => Read::Bad(e),
        };
        match r {
            Read::Ok => read += 1,
            Read::Damaged(e) => {
                read += 1;
                tracing::warn!("{e}");
            }
            Read::Bad(e) => {
                bad += 1;
                say_error(&e.to_string());
            }
        }
    }
    pipe.finish();
    out.drain(&mut pipe, true);
    if let Some(e) = out.error.take() {
        return Err(e);
    }
    drop(bar);
    if read == 0 {
        return Err(AlreadyReported(bad).into());
    }
    let book = out.book;
    let mut sink = out.sink;
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
    out.flush()?;
    if bad > 0 {
        return Err(AlreadyReported(bad).into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// What a terminal and a log writer did, in order.
    #[derive(Debug, Default, Clone)]
    struct Screen(Arc<Mutex<Vec<String>>>);

    impl Screen {
        fn push(&self, s: String) {
            self.0.lock().unwrap().push(s);
        }
        fn ops(&self) -> Vec<String> {
            self.0.lock().unwrap().clone()
        }
    }

    impl indicatif::TermLike for Screen {
        fn width(&self) -> u16 {
            80
        }
        fn move_cursor_up(&self, n: usize) -> std::io::Result<()> {
            self.push(format!("up {n}"));
            Ok(())
        }
        fn move_cursor_down(&self, n: usize) -> std::io::Result<()> {
            self.push(format!("down {n}"));
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> std::io::Result<()> {
            self.push(format!("bar {s}"));
            Ok(())
        }
        fn write_str(&self, s: &str) -> std::io::Result<()> {
            self.push(format!("bar {s}"));
            Ok(())
        }
        fn clear_line(&self) -> std::io::Result<()> {
            self.push("clear".into());
            Ok(())
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The log writer, writing onto the same screen.
    impl Write for Screen {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.push(format!("log {}", String::from_utf8_lossy(buf).trim_end()));
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// While the progress bar is shown, a log line (through the subscriber, with the writer
    /// `init_logging` installs) clears the bar first and the bar comes back below it.
    #[test]
    fn log_lines_clear_the_progress_bar_and_it_is_redrawn_below() {
        let screen = Screen::default();
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(100),
            indicatif::ProgressDrawTarget::term_like(Box::new(screen.clone())),
        );
        bar.set_style(indicatif::ProgressStyle::with_template("{pos}/{len}").unwrap());
        let shown = ShownBar::new(bar.clone());
        bar.set_position(40);
        bar.tick();
        let writer = screen.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || AboveBar(writer.clone()))
            .with_ansi(false)
            .without_time()
            .finish();
        tracing::subscriber::with_default(subscriber, || tracing::warn!("damaged input"));
        let ops = screen.ops();
        let log = ops
            .iter()
            .position(|o| o.starts_with("log ") && o.contains("damaged input"))
            .unwrap_or_else(|| panic!("{ops:?}"));
        let drawn = ops
            .iter()
            .position(|o| o == "bar 40/100")
            .unwrap_or_else(|| panic!("{ops:?}"));
        assert!(drawn < log, "{ops:?}");
        assert!(
            ops[drawn + 1..log].iter().any(|o| o == "clear"),
            "the bar was not cleared before the log line: {ops:?}"
        );
        assert!(
            ops[log + 1..].iter().any(|o| o == "bar 40/100"),
            "the bar was not redrawn after the log line: {ops:?}"
        );
        drop(shown);
        assert!(PROGRESS.lock().unwrap().is_none());
        // without a bar the line is written as it is
        let mut plain = Screen::default();
        AboveBar(&mut plain).write_all(b"x\n").unwrap();
        assert_eq!(plain.ops(), ["log x"]);
    }
}
