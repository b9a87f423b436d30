//! Command line (the edge: `anyhow` lives here and only here).

use crate::capture::expand_paths;
use crate::flow::FlowConfig;
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
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ekuwatch: {e:#}");
            ExitCode::from(1)
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
    let mut cfg = FlowConfig {
        local_nets: a.local_net.clone(),
        ..FlowConfig::default()
    };
    cfg.smtp_ports.extend(&a.ports);
    let events_to_stdout = a
        .events
        .as_deref()
        .is_some_and(|p| p == std::path::Path::new("-"));
    let report = a.report.unwrap_or(if events_to_stdout {
        ReportFormat::None
    } else {
        ReportFormat::Text
    });
    let mut sink: Option<JsonlSink<Box<dyn Write>>> = match &a.events {
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
    let mut book = PeerBook::default();
    let emit = |pipe: &mut Pipeline,
                book: &mut PeerBook,
                sink: &mut Option<JsonlSink<Box<dyn Write>>>|
     -> Result<()> {
        for ev in pipe.take_events() {
            book.add(&ev);
            if let Some(s) = sink.as_mut() {
                s.write(&ev).context("cannot write events")?;
            }
        }
        Ok(())
    };
    for f in &files {
        tracing::info!(file = %f.display(), "reading");
        if let Err(e) = pipe.read_file(f, |n| {
            if let Some(b) = &bar {
                b.inc(n);
            }
        }) {
            if pipe.stats.packets == 0 && files.len() == 1 {
                return Err(e.into());
            }
            tracing::warn!("{e}");
        }
        emit(&mut pipe, &mut book, &mut sink)?;
    }
    pipe.finish();
    emit(&mut pipe, &mut book, &mut sink)?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if let Some(s) = sink.as_mut() {
        s.flush().context("cannot write events")?;
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
