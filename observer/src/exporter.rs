//! The HTTP exporter of `ekuwatch live` (feature `live`): `/metrics` (Prometheus text, with the
//! standard `process_*` metrics), `/peers` (the full per-peer JSON) and `/healthz`.
//!
//! The port is reachable from the network, so it is served by a well-kept HTTP server (hyper's
//! HTTP/1 server on a one-thread tokio runtime of its own, apart from the capture loop) with
//! limits: at most [`Limits::max_connections`] connections at once (more are closed as accepted),
//! request heads of at most [`Limits::max_head_bytes`] (larger: 431 and close), a deadline for
//! reading a request head and one for a whole connection, `GET` and `HEAD` only (else 405). Bodies
//! are never read. The capture loop publishes what is served ([`Published`]) twice a second; a
//! scrape copies it and never waits for the capture.

use hyper::body::Bytes;
use hyper::header::{HeaderValue, ALLOW, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the exporter serves, replaced by the capture loop as it goes.
#[derive(Debug)]
pub struct Published {
    pub metrics: String,
    pub peers: String,
    pub health: Health,
}

/// What `/healthz` judges.
#[derive(Debug, Clone)]
pub struct Health {
    /// The capture loop's last turn (it turns at least every few milliseconds, packets or not).
    pub last_loop: Instant,
    /// The capture failed (the interface went away, the ring buffer broke).
    pub capture_error: Option<String>,
    /// Share of packets the kernel or the ring buffer dropped in the last measuring window.
    pub drop_ratio: f64,
}

impl Default for Published {
    fn default() -> Self {
        Published {
            metrics: String::new(),
            peers: "{}".into(),
            health: Health {
                last_loop: Instant::now(),
                capture_error: None,
                drop_ratio: 0.0,
            },
        }
    }
}

/// The exporter's limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub max_head_bytes: usize,
    pub head_timeout: Duration,
    pub connection_timeout: Duration,
    /// `/healthz` fails when the capture loop has not turned for this long.
    pub max_stall: Duration,
    /// `/healthz` fails above this drop ratio.
    pub max_drop_ratio: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 512,
            // hyper's smallest read buffer; a scrape's request head is a few hundred bytes
            max_head_bytes: 8192,
            head_timeout: Duration::from_secs(5),
            connection_timeout: Duration::from_secs(60),
            max_stall: Duration::from_secs(10),
            max_drop_ratio: 0.01,
        }
    }
}

/// A running exporter; [`Exporter::shutdown`] stops it gracefully.
pub struct Exporter {
    stop: tokio::sync::watch::Sender<bool>,
    thread: std::thread::JoinHandle<()>,
}

impl Exporter {
    /// Serves on `listener` (already bound: privileges may be dropped after this).
    pub fn start(
        listener: std::net::TcpListener,
        shared: Arc<Mutex<Published>>,
        limits: Limits,
    ) -> std::io::Result<Exporter> {
        listener.set_nonblocking(true)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()?;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let thread = std::thread::Builder::new()
            .name("exporter".into())
            .spawn(move || {
                rt.block_on(async move {
                    match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => serve(l, shared, limits, stopped).await,
                        Err(e) => tracing::error!("exporter: {e}"),
                    }
                })
            })?;
        Ok(Exporter { stop, thread })
    }

    /// Stops accepting, lets requests under way finish (at most a few seconds), then returns.
    pub fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.thread.join();
    }
}

async fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<Mutex<Published>>,
    limits: Limits,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.head_timeout)
        .max_buf_size(limits.max_head_bytes)
        .max_headers(64);
    loop {
        let (stream, _) = tokio::select! {
            conn = listener.accept() => match conn {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!("exporter: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stopped.changed() => break,
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            // Full: close at once (a flood of idle connections cannot queue up).
            drop(stream);
            continue;
        };
        let shared = Arc::clone(&shared);
        let service = hyper::service::service_fn(move |req| {
            let shared = Arc::clone(&shared);
            async move { Ok::<_, Infallible>(respond(&req, &shared, &limits)) }
        });
        let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            let _ = tokio::time::timeout(limits.connection_timeout, conn).await;
            drop(slot);
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(Duration::from_secs(5), graceful.shutdown()).await;
}

fn respond<B>(
    req: &Request<B>,
    shared: &Mutex<Published>,
    limits: &Limits,
) -> Response<http_body_util::Full<Bytes>> {
    let head = req.method() == Method::HEAD;
    if req.method() != Method::GET && !head {
        let mut r = reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "GET or HEAD\n".into(),
            false,
        );
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let (status, ctype, body) = {
        let sh = shared.lock().unwrap_or_else(|e| e.into_inner());
        match req.uri().path() {
            "/metrics" => (
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                sh.metrics.clone() + &process_metrics(),
            ),
            "/peers" => (StatusCode::OK, "application/json", sh.peers.clone()),
            "/healthz" => match unhealthy(&sh.health, limits) {
                None => (StatusCode::OK, "text/plain", "ok\n".into()),
                Some(why) => (StatusCode::SERVICE_UNAVAILABLE, "text/plain", why + "\n"),
            },
            _ => (StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
        }
    };
    reply(status, ctype, body, head)
}

fn reply(
    status: StatusCode,
    ctype: &'static str,
    body: String,
    head: bool,
) -> Response<http_body_util::Full<Bytes>> {
    let len = body.len();
    let body = if head {
        Bytes::new()
    } else {
        Bytes::from(body)
    };
    let mut r = Response::new(http_body_util::Full::new(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
    r.headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from(len));
    r
}

/// Why the observer is not healthy, if it is not.
pub fn unhealthy(h: &Health, limits: &Limits) -> Option<String> {
    if let Some(e) = &h.capture_error {
        return Some(format!("capture failed: {e}"));
    }
    let stall = h.last_loop.elapsed();
    if stall > limits.max_stall {
        return Some(format!("capture stalled for {} s", stall.as_secs()));
    }
    if h.drop_ratio > limits.max_drop_ratio {
        return Some(format!(
            "capture dropping {:.1} % of packets (limit {:.1} %)",
            h.drop_ratio * 100.0,
            limits.max_drop_ratio * 100.0
        ));
    }
    None
}

/// The standard `process_*` metrics (CPU, memory, file descriptors, start time), from the
/// `prometheus` crate's process collector, in the text format.
fn process_metrics() -> String {
    use prometheus::core::Collector;
    use prometheus::Encoder;
    let families = prometheus::process_collector::ProcessCollector::for_self().collect();
    let mut out = Vec::new();
    if prometheus::TextEncoder::new()
        .encode(&families, &mut out)
        .is_err()
    {
        return String::new();
    }
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_reasons() {
        let limits = Limits::default();
        let mut h = Published::default().health;
        assert_eq!(unhealthy(&h, &limits), None);
        h.drop_ratio = 0.5;
        assert!(unhealthy(&h, &limits).unwrap().contains("dropping 50.0 %"));
        h.drop_ratio = 0.0;
        h.last_loop = Instant::now() - Duration::from_secs(60);
        assert!(unhealthy(&h, &limits).unwrap().contains("stalled"));
        h.capture_error = Some("interface gone".into());
        assert!(unhealthy(&h, &limits).unwrap().contains("interface gone"));
    }

    #[test]
    fn process_metrics_are_there() {
        let t = process_metrics();
        for name in [
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_start_time_seconds",
        ] {
            assert!(t.contains(name), "{name} missing in:\n{t}");
        }
    }
}
