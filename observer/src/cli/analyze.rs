//! `ekuwatch analyze`: inputs (files, directories, standard input), key logs, the pipeline and the
//! outputs (events, reports, OpenMetrics).

use super::*;

/// Where analyze's events go: the peer book, the JSONL sink, and the metrics with their snapshots.
pub(super) struct Outputs {
    book: PeerBook,
    sink: Option<JsonlSink<Box<dyn Write>>>,
    metrics: Option<Metrics>,
    /// (packet time in seconds, the metrics then)
    snapshots: Vec<(f64, crate::metrics::Snapshot)>,
    next_snapshot: Option<i64>,
    error: Option<anyhow::Error>,
}

pub(super) const SNAPSHOT_NS: i64 = 60 * 1_000_000_000;

impl Outputs {
    fn drain(&mut self, pipe: &mut Pipeline, last: bool) {
        for ev in pipe.drain_events() {
            self.book.add(&ev);
            if let Some(m) = &mut self.metrics {
                m.observe(&ev, &ev.peer.domain);
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
pub(super) enum Input {
    File(PathBuf),
    Stdin,
    /// A path that gave no file (missing, unreadable, a directory without a capture): said in
    /// its turn.
    Bad(CaptureError),
}

/// How reading one input went.
pub(super) enum Read {
    Ok,
    /// Not usable at all (cannot open, not a capture, unreadable): exit status 1.
    Bad(CaptureError),
    /// Read up to damage after its header: logged and reported, exit status unaffected.
    Damaged(CaptureError),
}

/// The name standard input goes by in messages and the report (as grep calls it).
pub(super) const STDIN_NAME: &str = "(standard input)";

/// The command line's PATHs as inputs, in order.
pub(super) fn inputs(paths: &[PathBuf]) -> Result<Vec<Input>> {
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
pub(super) fn add_keylogs(pipe: &mut Pipeline, path: &Path, bad: &mut usize) {
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
pub(super) fn read_one<R: BufRead>(
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

pub(super) fn analyze(a: AnalyzeArgs) -> Result<()> {
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
    if let Some(o) = &a.observer {
        cfg.observer = crate::event::Observer::new(o);
    }
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
        ReportFormat::Json => write_json_report(&mut out, &book, &pipe.stats, &pipe.flows.stats)?,
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
