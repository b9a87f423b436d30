//! The TOML configuration file (`--config FILE`, `ekuwatch check-config FILE`). Unknown keys are
//! rejected. Command-line flags extend (lists) or override (single values) what the file says.

use crate::flow::FlowConfig;
use ipnet::IpNet;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::Path;

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Our own hosts (CIDRs): sets each session's direction.
    #[serde(default)]
    pub local_nets: Vec<String>,
    /// Extra SMTP ports (25, 465, 587 are always watched).
    #[serde(default)]
    pub ports: Vec<u16>,
    /// Registered domains that always get their own `peer` label.
    #[serde(default)]
    pub watch: Vec<String>,
    pub top_peers: Option<usize>,
    /// Exporter address (live).
    pub listen: Option<SocketAddr>,
    pub interface: Option<String>,
    pub filter: Option<String>,
    /// User to switch to after the capture is open (live, when started as root).
    pub user: Option<String>,
    /// Name written into every event's `observer` (default: the host name).
    pub observer: Option<String>,
    #[serde(default)]
    pub limits: Limits,
    /// TLS and basic auth on the exporter (live), in the shape of the Prometheus exporter-toolkit's
    /// web configuration file.
    #[serde(default)]
    pub web: Web,
}

/// `[web]`: how the exporter is protected when it listens beyond localhost.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Web {
    /// Serve HTTPS with this certificate chain and key (PEM files).
    pub tls_server_config: Option<TlsServerConfig>,
    /// User name → bcrypt hash (`htpasswd -nbB user pass`, or any `$2a$`/`$2b$`/`$2y$` hash).
    /// Empty: no authentication.
    #[serde(default)]
    pub basic_auth_users: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TlsServerConfig {
    pub cert_file: std::path::PathBuf,
    pub key_file: std::path::PathBuf,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    pub max_flows: Option<usize>,
    pub per_flow_reassembly_bytes: Option<usize>,
    pub reassembly_memcap_bytes: Option<usize>,
    pub idle_timeout_secs: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: p.clone(),
            source,
        })?;
        Self::parse(&text).map_err(|message| ConfigError::Parse { path: p, message })
    }

    /// Parses and validates; the error is one line.
    pub fn parse(text: &str) -> Result<Config, String> {
        let c: Config = toml::from_str(text).map_err(|e| e.message().replace('\n', " "))?;
        c.nets()?;
        if c.top_peers == Some(0) {
            return Err("top_peers must be at least 1".into());
        }
        if c.limits.max_flows == Some(0) || c.limits.idle_timeout_secs == Some(0) {
            return Err("limits must be positive".into());
        }
        Ok(c)
    }

    pub fn nets(&self) -> Result<Vec<IpNet>, String> {
        self.local_nets
            .iter()
            .map(|n| {
                n.parse::<IpNet>()
                    .map_err(|e| format!("local_nets: {n:?}: {e}"))
            })
            .collect()
    }

    /// Flow-table settings from the file (defaults where it is silent).
    pub fn flow_config(&self) -> FlowConfig {
        let mut f = FlowConfig {
            local_nets: self.nets().unwrap_or_default(),
            ..FlowConfig::default()
        };
        f.smtp_ports.extend(&self.ports);
        if let Some(o) = &self.observer {
            f.observer = crate::event::Observer::new(o);
        }
        let l = &self.limits;
        if let Some(v) = l.max_flows {
            f.max_flows = v;
        }
        if let Some(v) = l.per_flow_reassembly_bytes {
            f.per_flow_cap = v;
        }
        if let Some(v) = l.reassembly_memcap_bytes {
            f.memcap = v;
        }
        if let Some(v) = l.idle_timeout_secs {
            f.idle_timeout_ns = (v as i64).saturating_mul(1_000_000_000);
        }
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_file_and_rejections() {
        let c = Config::parse(
            r#"
local_nets = ["192.0.2.0/24", "2001:db8::/32"]
ports = [2525]
watch = ["gmail.com"]
top_peers = 50
listen = "127.0.0.1:9967"
interface = "eth0"
[limits]
max_flows = 10000
idle_timeout_secs = 120
"#,
        )
        .unwrap();
        let f = c.flow_config();
        assert_eq!(f.local_nets.len(), 2);
        assert!(f.smtp_ports.contains(&2525));
        assert_eq!((f.max_flows, f.idle_timeout_ns), (10_000, 120_000_000_000));
        assert!(Config::parse("lcoal_nets = []")
            .unwrap_err()
            .contains("unknown field"));
        assert!(Config::parse("[limits]\nmax_flow = 1").is_err());
        assert!(Config::parse("local_nets = [\"not-a-cidr\"]")
            .unwrap_err()
            .contains("local_nets"));
        assert!(Config::parse("top_peers = 0").is_err());
        assert!(Config::parse("ports = [70000]").is_err());
        assert_eq!(Config::parse("").unwrap(), Config::default());
    }
}
