//! docs/deployment.md followed as written: the systemd unit verifies without a warning, the
//! configuration file it names is valid and is the one the Kubernetes ConfigMap carries, the unit's
//! command line with that file starts the observer (as root: capture on `lo`), and every alert rule
//! points to its runbook section.

mod common;
use common::*;
use std::path::Path;
use std::process::Command;

fn read(p: &str) -> String {
    std::fs::read_to_string(repo().join(p)).unwrap()
}

/// The unit's `ExecStart=` command line.
fn exec_start(unit: &str) -> String {
    unit.lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart in the unit")
        .to_string()
}

#[test]
fn systemd_unit_verifies_without_warnings() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        return skip_or_fail("systemd-analyze not installed (Debian: systemd)");
    }
    let dir = std::env::temp_dir().join(format!("ekuwatch-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // The unit as installed, with its binary where this build put it.
    let unit = read("deploy/systemd/ekuwatch.service")
        .replace("/usr/local/bin/ekuwatch", env!("CARGO_BIN_EXE_ekuwatch"));
    let path = dir.join("ekuwatch.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && err.trim().is_empty(), "{err}");
}

#[test]
fn one_configuration_file_for_systemd_and_kubernetes() {
    let file = read("deploy/ekuwatch.toml");
    let unit = read("deploy/systemd/ekuwatch.service");
    assert!(exec_start(&unit).contains("--config /etc/ekuwatch/ekuwatch.toml"));
    let out = Command::new(env!("CARGO_BIN_EXE_ekuwatch"))
        .args(["check-config"])
        .arg(repo().join("deploy/ekuwatch.toml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The ConfigMap's ekuwatch.toml, un-indented, is the same file.
    let ds = read("deploy/k8s/daemonset.yaml");
    let start = ds
        .find("  ekuwatch.toml: |\n")
        .expect("ConfigMap key ekuwatch.toml")
        + "  ekuwatch.toml: |\n".len();
    let block: String = ds[start..]
        .lines()
        .take_while(|l| l.is_empty() || l.starts_with("    "))
        .map(|l| format!("{}\n", l.strip_prefix("    ").unwrap_or(l)))
        .collect();
    assert_eq!(
        block.trim_end(),
        file.trim_end(),
        "ConfigMap and deploy/ekuwatch.toml differ"
    );
    assert!(
        ds.contains("- /etc/ekuwatch/ekuwatch.toml") && ds.contains("mountPath: /etc/ekuwatch")
    );
    assert!(Path::new(&repo().join("deploy/k8s/podmonitor.yaml")).exists());
}

#[test]
fn every_alert_has_a_runbook_section() {
    let alerts = read("dashboards/prometheus/alerts.yml");
    let runbook = read("docs/runbook.md");
    let names: Vec<&str> = alerts
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .collect();
    assert!(names.len() >= 5);
    for name in names {
        let url = format!("runbook_url: \"docs/runbook.md#{}\"", name.to_lowercase());
        assert!(alerts.contains(&url), "{name}: no {url}");
        assert!(
            runbook.contains(&format!("\n## {name}\n")),
            "{name}: no section in docs/runbook.md"
        );
    }
}

#[cfg(feature = "live")]
#[test]
fn the_unit_command_line_starts_the_observer() {
    use std::process::Stdio;
    if !is_root() {
        return skip_or_fail("needs root (packet capture on lo)");
    }
    let port = 40000 + (std::process::id() % 20000) as u16;
    let dir = std::env::temp_dir().join(format!("ekuwatch-deploy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // The shipped file, with this machine's interface and a free port.
    let conf = read("deploy/ekuwatch.toml")
        .replace("interface = \"eth0\"", "interface = \"lo\"")
        .replace("127.0.0.1:9967", &format!("127.0.0.1:{port}"));
    let conf_path = dir.join("ekuwatch.toml");
    std::fs::write(&conf_path, conf).unwrap();
    let line = exec_start(&read("deploy/systemd/ekuwatch.service"))
        .replace("/etc/ekuwatch/ekuwatch.toml", conf_path.to_str().unwrap())
        .replace("$EKUWATCH_ARGS", "");
    let mut words = line.split_whitespace();
    assert_eq!(words.next(), Some("/usr/local/bin/ekuwatch"));
    let _ekw = Kill(
        Command::new(env!("CARGO_BIN_EXE_ekuwatch"))
            .args(words)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for("the service's /healthz", 20, || {
        http_get(port, "/healthz").is_some_and(|b| b == "ok\n")
    });
    let metrics = http_get(port, "/metrics").unwrap();
    assert!(metrics.contains("ekuwatch_capture_packets_total"));
}

/// The image recipe and the DaemonSet that runs it agree: the user the pod runs as, the binary's
/// path, the file capability for what the manifest adds, the configuration path, the port. (No
/// container runtime on the test machines: the image itself is built by hand, docs/deployment.md.)
#[test]
fn containerfile_matches_the_daemonset() {
    let cf = read("Containerfile");
    let ds = read("deploy/k8s/daemonset.yaml");
    let line = |prefix: &str| {
        cf.lines()
            .rfind(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("Containerfile has no {prefix} line"))
            .to_string()
    };
    // non-root, the pod's user
    assert_eq!(line("USER "), "USER 65532:65532");
    assert!(ds.contains("runAsUser: 65532") && ds.contains("runAsGroup: 65532"));
    assert!(ds.contains("runAsNonRoot: true"));
    // the capability the manifest adds is the file capability the image sets, and privilege
    // escalation stays allowed for it
    assert!(ds.contains(r#"add: ["NET_RAW"]"#));
    assert!(cf.contains("setcap cap_net_raw+ep /usr/local/bin/ekuwatch"));
    assert!(ds.contains("allowPrivilegeEscalation: true"));
    // the binary and the command the manifest's args complete
    assert_eq!(
        line("ENTRYPOINT "),
        r#"ENTRYPOINT ["/usr/local/bin/ekuwatch"]"#
    );
    assert!(
        ds.contains("- live\n            - --config\n            - /etc/ekuwatch/ekuwatch.toml")
    );
    assert_eq!(
        line("CMD "),
        r#"CMD ["live", "--config", "/etc/ekuwatch/ekuwatch.toml"]"#
    );
    assert!(cf.contains("COPY deploy/ekuwatch.toml /etc/ekuwatch/ekuwatch.toml"));
    assert!(ds.contains("containerPort: 9967") && cf.contains("EXPOSE 9967"));
    // the build context leaves the build outputs out
    assert!(read(".dockerignore").lines().any(|l| l == "target"));
}
