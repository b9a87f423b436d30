//! `ekuwatch report EVENTS…`: the per-peer report from session events (JSON Lines, plain or gzip,
//! from any number of observers), through the same aggregation as `analyze`
//! ([`crate::peers::from_events`] → [`PeerBook::add`]). Streaming: one line in memory at a time
//! (at most [`MAX_LINE`] bytes); what is kept is the per-peer book, bounded per peer.

use super::*;
use crate::flow::FlowStats;
use crate::peers::from_events::{parse_line, Observers};
use crate::pipeline::CaptureStats;

/// A line longer than this is an error (events are a few KiB; a chain of 16 certificates stays far
/// below it).
pub(super) const MAX_LINE: usize = 4 << 20;
/// Bad lines said one by one per input; beyond them only their count.
const BAD_LINES_SAID: u64 = 10;

/// gzip's magic number (RFC 1952).
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

struct Totals {
    book: PeerBook,
    flows: FlowStats,
    observers: Observers,
    bad_lines: u64,
}

/// Reads one input's events into the book. `Err`: the input could not be read (what was read
/// before stays counted).
fn read_events(
    name: &str,
    raw: Box<dyn std::io::Read + '_>,
    t: &mut Totals,
) -> std::io::Result<()> {
    let mut raw = std::io::BufReader::with_capacity(1 << 16, raw);
    let gz = raw.fill_buf()?.starts_with(&GZIP_MAGIC);
    let mut input: Box<dyn BufRead + '_> = if gz {
        Box::new(std::io::BufReader::with_capacity(
            1 << 16,
            flate2::bufread::MultiGzDecoder::new(raw),
        ))
    } else {
        Box::new(raw)
    };
    let mut line = Vec::with_capacity(4096);
    let mut bad_here = 0u64;
    let mut bad = |n: u64, why: &dyn std::fmt::Display, t: &mut Totals| {
        bad_here += 1;
        t.bad_lines += 1;
        if bad_here <= BAD_LINES_SAID {
            say_error(&format!("{name}:{n}: {why}"));
        }
    };
    for n in 1u64.. {
        line.clear();
        let got =
            std::io::Read::take(&mut input, MAX_LINE as u64 + 1).read_until(b'\n', &mut line)?;
        if got == 0 {
            break;
        }
        if line.len() > MAX_LINE && line.last() != Some(&b'\n') {
            bad(n, &format!("line longer than {MAX_LINE} bytes"), t);
            // skip the rest of the line
            loop {
                line.clear();
                let got = std::io::Read::take(&mut input, MAX_LINE as u64)
                    .read_until(b'\n', &mut line)?;
                if got == 0 || line.last() == Some(&b'\n') {
                    break;
                }
            }
            continue;
        }
        match parse_line(&line, &mut t.observers) {
            Ok(Some(ev)) => {
                t.book.add(&ev);
                t.flows.count_event(&ev);
            }
            Ok(None) => {}
            Err(e) => bad(n, &e, t),
        }
    }
    if bad_here > BAD_LINES_SAID {
        say_error(&format!(
            "{name}: {bad_here} bad lines in all ({} more not shown)",
            bad_here - BAD_LINES_SAID
        ));
    }
    Ok(())
}

pub(super) fn report(a: ReportArgs) -> Result<()> {
    let mut stdin_seen = false;
    for p in &a.events {
        if p.as_os_str() == "-" {
            if stdin_seen {
                return Err(Usage("`-` (standard input) given twice".into()).into());
            }
            if std::io::stdin().is_terminal() {
                return Err(Usage(
                    "`-` reads events from standard input, which is a terminal".into(),
                )
                .into());
            }
            stdin_seen = true;
        }
    }
    let mut t = Totals {
        book: PeerBook::default(),
        flows: FlowStats::default(),
        observers: Observers::default(),
        bad_lines: 0,
    };
    let mut stats = CaptureStats::default();
    let mut bad_inputs = 0usize;
    for p in &a.events {
        let r = if p.as_os_str() == "-" {
            read_events(
                analyze::STDIN_NAME,
                Box::new(std::io::stdin().lock()),
                &mut t,
            )
        } else {
            let name = p.display().to_string();
            match std::fs::File::open(p) {
                Ok(f) => read_events(&name, Box::new(f), &mut t),
                Err(e) => Err(e),
            }
        };
        match r {
            Ok(()) => stats.files += 1,
            Err(e) => {
                bad_inputs += 1;
                let line = format!("{}: {e}", p.display());
                say_error(&line);
                stats.file_errors.push(line);
            }
        }
    }
    if stats.files == 0 {
        return Err(AlreadyReported(bad_inputs).into());
    }
    let book = t.book;
    let flows = t.flows;
    let mut out = std::io::stdout().lock();
    match a.report {
        ReportFormat::Text => write!(out, "{}", text_report(&book, &stats, &flows))?,
        ReportFormat::Json => write_json_report(&mut out, &book, &stats, &flows)?,
        ReportFormat::Markdown => write!(out, "{}", markdown_report(&book, &stats, &flows))?,
        ReportFormat::Html => write!(out, "{}", html_report(&book, &stats, &flows))?,
        ReportFormat::Csv => write!(out, "{}", csv_report(&book))?,
        ReportFormat::None => {}
    }
    out.flush()?;
    let bad = bad_inputs + usize::try_from(t.bad_lines).unwrap_or(usize::MAX);
    if bad > 0 {
        return Err(AlreadyReported(bad).into());
    }
    Ok(())
}
