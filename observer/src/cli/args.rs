//! The subcommands' arguments (clap).

use super::*;

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
    /// Name of this observer, written into every event's `observer` (default: the host name, or
    /// `observer` in the configuration file).
    #[arg(long, value_name = "NAME")]
    pub observer: Option<String>,
    /// Seconds the final counters stay served after SIGINT/SIGTERM.
    #[arg(long, default_value_t = 2)]
    pub linger: u64,
}

#[cfg(feature = "live")]
pub(super) fn ring_mib(s: &str) -> std::result::Result<u32, String> {
    match s.parse::<u32>() {
        Ok(n) if n.is_power_of_two() && n <= 1024 => Ok(n),
        _ => Err("a power of two, at most 1024".into()),
    }
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
    pub(super) fn resolve(&self, file: &Config) -> (usize, Vec<String>) {
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
pub(super) const ANALYZE_AFTER_HELP: &str = "\
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
    /// Name of this observer, written into every event's `observer` (default: the host name, or
    /// `observer` in the configuration file).
    #[arg(long, value_name = "NAME")]
    pub observer: Option<String>,
    #[command(flatten)]
    pub labels: PeerLabelArgs,
    /// pcap/pcapng files, directories of them (recursive), or `-` for standard input.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

/// `ekuwatch report --help`, after the options.
pub(super) const REPORT_AFTER_HELP: &str = "\
EVENTS: files of session events, one JSON object per line (docs/events.md), as `analyze --events`
and `live --events` write them; gzip-compressed files are recognised by their magic number. `-`
reads standard input. Events of several observers (their `observer` field) are merged per peer.

Exit status: 0 on success. 1 when an input could not be read or a line is not a session event
(each said as FILE:LINE: why, at most 10 per file, then their count); the other lines and inputs are
still reported. 2 on a usage error.";

#[derive(clap::Args, Debug)]
#[command(after_help = REPORT_AFTER_HELP)]
pub struct ReportArgs {
    /// Per-peer report format on standard output.
    #[arg(long, value_enum, default_value = "text")]
    pub report: ReportFormat,
    /// Event files (JSON Lines, plain or gzip), or `-` for standard input.
    #[arg(required = true, value_name = "EVENTS")]
    pub events: Vec<PathBuf>,
}
