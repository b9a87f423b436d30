//! The HTTP exporter of `ekuwatch live` (feature `live`): `/metrics` (Prometheus text, with the
//! standard `process_*` metrics), `/peers` (the full per-peer JSON) and `/healthz`.
//!
//! The port is reachable from the network, so it is served by a well-kept HTTP server (hyper's
//! HTTP/1 server on a one-thread tokio runtime of its own, apart from the capture loop) with
//! limits: at most [`Limits::max_connections`] connections at once (more are closed as accepted),
//! request heads of at most [`Limits::max_head_bytes`] (larger: 431 and close), a deadline for
//! reading a request head and one for a whole connection, `GET` and `HEAD` only (else 405). Bodies
//! are never read. The capture loop publishes what is served ([`Published`]) twice a second; a
//! scrape copies it and never waits for the capture. Optionally ([`Web`], `[web]` in the
//! configuration file, the shape of the Prometheus exporter-toolkit's web config): HTTPS (rustls)
//! and basic auth against bcrypt hashes, checked off the serving thread.

use hyper::body::Bytes;
use hyper::header::{
    HeaderValue, ALLOW, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, WWW_AUTHENTICATE,
};
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
    /// The capture loop published once (until then `/healthz` says `starting`).
    pub started: bool,
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
                started: false,
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

/// TLS and basic auth, when configured.
#[derive(Clone, Default)]
pub struct Web {
    tls: Option<tokio_rustls::TlsAcceptor>,
    /// User → bcrypt hash; empty: no authentication.
    users: Arc<std::collections::BTreeMap<String, String>>,
}

impl Web {
    /// Reads the certificate and key named by `[web]` (errors say which file and why).
    pub fn load(cfg: &crate::config::Web) -> Result<Web, String> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let tls = match &cfg.tls_server_config {
            None => None,
            Some(t) => {
                let name = |p: &std::path::Path| p.display().to_string();
                let certs: Vec<CertificateDer<'static>> =
                    CertificateDer::pem_file_iter(&t.cert_file)
                        .and_then(|it| it.collect::<Result<_, _>>())
                        .map_err(|e| format!("{}: {e}", name(&t.cert_file)))?;
                if certs.is_empty() {
                    return Err(format!("{}: no certificate", name(&t.cert_file)));
                }
                let key = PrivateKeyDer::from_pem_file(&t.key_file)
                    .map_err(|e| format!("{}: {e}", name(&t.key_file)))?;
                let config = rustls::ServerConfig::builder_with_provider(Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_no_client_auth()
                .with_single_cert(certs, key)
                .map_err(|e| format!("{}: {e}", name(&t.key_file)))?;
                Some(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
            }
        };
        for (user, hash) in &cfg.basic_auth_users {
            if bcrypt::verify("", hash).is_err() {
                return Err(format!("basic_auth_users.{user}: not a bcrypt hash"));
            }
        }
        Ok(Web {
            tls,
            users: Arc::new(cfg.basic_auth_users.clone()),
        })
    }

    /// Whether the request's credentials are good (always, without users). bcrypt is slow on
    /// purpose: it runs on the blocking pool, not on the serving thread.
    async fn allows<B>(&self, req: &Request<B>) -> bool {
        if self.users.is_empty() {
            return true;
        }
        use base64::Engine as _;
        let Some((user, pass)) = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
            .and_then(|b| {
                base64::engine::general_purpose::STANDARD
                    .decode(b.trim())
                    .ok()
            })
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| {
                s.split_once(':')
                    .map(|(u, p)| (u.to_string(), p.to_string()))
            })
        else {
            return false;
        };
        let Some(hash) = self.users.get(&user).cloned() else {
            return false;
        };
        tokio::task::spawn_blocking(move || bcrypt::verify(pass, &hash).unwrap_or(false))
            .await
            .unwrap_or(false)
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
        web: Web,
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
                        Ok(l) => serve(l, shared, limits, web, stopped).await,
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
    web: Web,
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
        let web = web.clone();
        let http = http.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let service = {
                let web = web.clone();
                hyper::service::service_fn(move |req| {
                    let (shared, web) = (Arc::clone(&shared), web.clone());
                    async move {
                        let r = if web.allows(&req).await {
                            respond(&req, &shared, &limits)
                        } else {
                            unauthorized()
                        };
                        Ok::<_, Infallible>(r)
                    }
                })
            };
            let conn = async {
                match &web.tls {
                    None => {
                        let c = http.serve_connection(TokioIo::new(stream), service);
                        let _ = watcher.watch(c).await;
                    }
                    Some(acceptor) => {
                        let Ok(Ok(tls)) =
                            tokio::time::timeout(limits.head_timeout, acceptor.accept(stream))
                                .await
                        else {
                            return;
                        };
                        let c = http.serve_connection(TokioIo::new(tls), service);
                        let _ = watcher.watch(c).await;
                    }
                }
            };
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

fn unauthorized() -> Response<http_body_util::Full<Bytes>> {
    let mut r = reply(
        StatusCode::UNAUTHORIZED,
        "text/plain",
        "unauthorized\n".into(),
        false,
    );
    r.headers_mut().insert(
        WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"ekuwatch\""),
    );
    r
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
    if !h.started {
        return Some("starting".into());
    }
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
        assert_eq!(unhealthy(&h, &limits).as_deref(), Some("starting"));
        h.started = true;
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
