//! Command line (the edge: `anyhow` lives here and only here): `mod.rs` the commands and the
//! exit status, `args.rs` their arguments, `analyze.rs` and `live.rs` the two ways to run,
//! `logging.rs` log lines, colour and the progress bar.
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
use crate::sink::{
    csv_report, html_report, markdown_report, text_report, write_json_report, JsonlSink,
};
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
    /// Per-peer report from session events (JSON Lines from `analyze --events` or `live --events`,
    /// plain or gzip, of one observer or many): the same report and verdicts as `analyze`.
    Report(ReportArgs),
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

mod analyze;
mod args;
#[cfg(feature = "live")]
mod live;
mod logging;
mod report;

pub use args::*;
pub use logging::AboveBar;
use logging::*;

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
        Command::Analyze(a) => analyze::analyze(a),
        Command::Report(a) => report::report(a),
        Command::CheckConfig { file } => check_config(&file),
        #[cfg(feature = "live")]
        Command::Live(a) => live::live(a),
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

pub(super) fn check_config(file: &Path) -> Result<()> {
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

pub(super) fn is_usage(e: &anyhow::Error) -> bool {
    #[cfg(feature = "live")]
    if let Some(crate::live::LiveError::Usage(_)) = e.downcast_ref() {
        return true;
    }
    e.is::<Usage>()
}

/// Whether the run ended because its reader closed standard output (or another pipe we wrote):
/// like a Unix filter killed by SIGPIPE, that is no failure (Rust ignores SIGPIPE, so it comes
/// back as an EPIPE write error).
pub(super) fn broken_pipe(e: &anyhow::Error) -> bool {
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
