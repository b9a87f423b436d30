//! The command line the stack peers share (`PEER client|server --port N …`) and their `main`.

use crate::Res;
use std::process::ExitCode;

/// Options common to the peers; stack-specific ones (`--groups`, `--policy`) are kept by name.
#[derive(Debug)]
pub struct Opts {
    pub server: bool,
    pub host: String,
    pub port: u16,
    /// Client: the local address to connect from.
    pub bind: Option<String>,
    /// `1.2`, `1.3` or `any`.
    pub version: String,
    pub ca: String,
    pub sni: String,
    pub cert: Option<String>,
    pub key: Option<String>,
    pub keylog: Option<String>,
    /// Server: `none`, `ask` or `require`.
    pub client_auth: String,
    /// Names the client's message (`NAME` from the environment by default).
    pub name: String,
    /// Client: implicit TLS, no SMTP (one line each way).
    pub implicit: bool,
    /// Client: connections one after the other, each offering the previous one's session.
    pub sessions: u32,
    extra: Vec<(&'static str, String)>,
}

impl Opts {
    /// A stack-specific option's value (one of the `extras` given to [`run`]).
    pub fn extra(&self, flag: &str) -> Option<&str> {
        self.extra
            .iter()
            .find(|(f, _)| *f == flag)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses `client|server [--option value …]`; `extras` are the stack's own options (each takes a
/// value). A server without `--cert` uses `server.chain.pem` / `server.key.pem`.
pub fn parse_args(
    peer: &str,
    usage: &str,
    extras: &[&'static str],
    args: impl IntoIterator<Item = String>,
) -> Res<Opts> {
    let mut a = args.into_iter();
    let mode = a.next().ok_or(usage)?;
    if mode != "client" && mode != "server" {
        return Err(usage.into());
    }
    let mut o = Opts {
        server: mode == "server",
        host: "127.0.0.1".into(),
        port: 0,
        bind: None,
        version: "1.3".into(),
        ca: "root.cert.pem".into(),
        sni: "mx.lab.test".into(),
        cert: None,
        key: None,
        keylog: None,
        client_auth: "none".into(),
        name: std::env::var("NAME").unwrap_or_else(|_| peer.into()),
        implicit: false,
        sessions: 1,
        extra: Vec::new(),
    };
    while let Some(k) = a.next() {
        let mut v = || a.next().ok_or_else(|| format!("{k} needs a value"));
        match k.as_str() {
            "--host" => o.host = v()?,
            "--port" => o.port = v()?.parse()?,
            "--bind" => o.bind = Some(v()?),
            "--tls" => o.version = v()?,
            "--ca" => o.ca = v()?,
            "--sni" => o.sni = v()?,
            "--cert" | "--chain" => o.cert = Some(v()?),
            "--key" => o.key = Some(v()?),
            "--keylog" => o.keylog = Some(v()?),
            "--client-auth" => o.client_auth = v()?,
            "--name" => o.name = v()?,
            "--implicit" => o.implicit = true,
            "--sessions" => o.sessions = v()?.parse()?,
            f => match extras.iter().find(|e| **e == f) {
                Some(e) => o.extra.push((e, v()?)),
                None => return Err(format!("unknown argument {k}\n{usage}").into()),
            },
        }
    }
    if o.port == 0 {
        return Err(format!("--port is required\n{usage}").into());
    }
    if o.server && o.cert.is_none() {
        o.cert = Some("server.chain.pem".into());
        o.key = Some("server.key.pem".into());
    }
    Ok(o)
}

/// A peer's `main`: parse the command line (exit 2 on a usage error), run the client or the
/// server, exit 1 with `PEER client|server: error: …` when it fails.
pub fn run(
    peer: &str,
    usage: &str,
    extras: &[&'static str],
    client: fn(&Opts) -> Res<()>,
    server: fn(&Opts) -> Res<()>,
) -> ExitCode {
    let o = match parse_args(peer, usage, extras, std::env::args().skip(1)) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    crate::set_server(o.server);
    let (role, r) = if o.server {
        ("server", server(&o))
    } else {
        ("client", client(&o))
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{peer} {role}: error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn common_and_extra_options() {
        let o = parse_args("p", "usage", &["--groups"], args("server --port 25 --groups P-384"))
            .unwrap();
        assert!(o.server);
        assert_eq!(o.extra("--groups"), Some("P-384"));
        assert_eq!(o.cert.as_deref(), Some("server.chain.pem"));
        assert!(parse_args("p", "usage", &[], args("server --port 25 --groups P-384")).is_err());
        assert!(parse_args("p", "usage", &[], args("client")).is_err());
        assert!(parse_args("p", "usage", &[], args("both --port 1")).is_err());
    }
}
