//! Log lines (text or JSON, colour only on a terminal), errors said once, and the progress bar kept
//! apart from them.

use super::*;

pub(super) fn log_filter() -> std::result::Result<tracing_subscriber::EnvFilter, Usage> {
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
pub(super) fn colour() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

pub(super) fn init_logging(format: LogFormat) -> std::result::Result<(), Usage> {
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
pub(super) static PROGRESS: Mutex<Option<indicatif::ProgressBar>> = Mutex::new(None);

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
pub(super) struct ShownBar(pub(super) indicatif::ProgressBar);

impl ShownBar {
    pub(super) fn new(bar: indicatif::ProgressBar) -> ShownBar {
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
pub(super) fn say_error(message: &str) {
    if LOG_JSON.load(std::sync::atomic::Ordering::Relaxed) {
        tracing::error!("{message}");
    } else {
        let _ = AboveBar(std::io::stderr()).write_all(format!("ekuwatch: {message}\n").as_bytes());
    }
}

pub(super) static LOG_JSON: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);
