//! Report formats: Markdown, CSV, and the self-contained HTML report rendered in a real headless
//! Chromium (Debian package), with a screenshot checked for the table and the charts' colours.

mod common;
use common::*;
use std::process::Command;

fn report(format: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_ekuwatch"))
        .args(["analyze", "--local-net", "127.0.0.2/32", "--report", format])
        .arg(captures().join("pf-reqccert-tls12-openssl-both.pcap"))
        .arg(captures().join("pf-reqccert-tls12-openssl-serveronly.pcap"))
        .arg(captures().join("pf-noask-tls12-openssl-nocert.pcap"))
        .arg(captures().join("ossl-verify-tls12-openssl-serveronly.pcap"))
        .arg(captures().join("pf-askccert-tls13-gnutls-nocert.pcap"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn markdown_has_verdicts_and_a_table() {
    let md = report("markdown");
    assert!(md.starts_with("# ekuwatch report"));
    assert!(md.contains("| peer | direction | sessions | TLS | CR rate | verdict | evidence |"));
    assert!(md.contains("requests_rejects_server_only"), "{md}");
    assert!(
        md.lines().all(|l| l.chars().count() < 400),
        "lines stay readable in a pager"
    );
}

#[test]
fn csv_has_one_row_per_peer() {
    let csv = report("csv");
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("peer,direction,sessions,"));
    let json: serde_json::Value = serde_json::from_str(&report("json")).unwrap();
    assert_eq!(lines.len() - 1, json["peers"].as_array().unwrap().len());
    assert!(lines
        .iter()
        .any(|l| l.contains("requests_rejects_server_only")));
}

fn chromium() -> Option<String> {
    ["chromium", "chromium-browser"]
        .iter()
        .find(|c| {
            Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .map(|c| c.to_string())
}

fn headless(browser: &str, profile: &std::path::Path) -> Command {
    let mut c = Command::new(browser);
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--window-size=1280,1100",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    c
}

#[test]
fn html_renders_table_and_charts_in_headless_chromium() {
    let Some(browser) = chromium() else {
        return skip_or_fail("chromium not installed (scripts/setup.sh installs it)");
    };
    let html = report("html");
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "self-contained: no network"
    );
    let dir = std::env::temp_dir().join(format!("ekuwatch-html-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let page = dir.join("report.html");
    std::fs::write(&page, &html).unwrap();
    let url = format!("file://{}", page.display());
    // 1. The DOM after scripts ran: the table has its rows, the three charts exist.
    let dom = headless(&browser, &dir.join("p1"))
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(dom.contains("data-ready=\"1\""), "script ran: {dom:.300}");
    for id in [
        "chart-cr",
        "chart-eku",
        "chart-verdicts",
        "<table id=\"peers\"",
    ] {
        assert!(dom.contains(id), "{id} missing");
    }
    assert!(
        dom.matches("<tr>").count() >= 2,
        "header + at least one peer row"
    );
    // 2. A screenshot: the verdict bar colours and the table are actually painted.
    let shot = dir.join("shot.png");
    let st = headless(&browser, &dir.join("p2"))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(&url)
        .output()
        .unwrap();
    assert!(
        shot.exists(),
        "no screenshot: {}",
        String::from_utf8_lossy(&st.stderr)
    );
    let decoder = png::Decoder::new(std::fs::File::open(&shot).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let bpp = info.color_type.samples();
    let px: Vec<(u8, u8, u8)> = buf[..info.buffer_size()]
        .chunks(bpp)
        .map(|c| (c[0], c[1], c[2]))
        .collect();
    let count = |rgb: (u8, u8, u8)| px.iter().filter(|p| **p == rgb).count();
    let red = count((0xd6, 0x27, 0x28)); // requests_rejects_server_only bars and dots
    let blue = count((0x1f, 0x77, 0xb4)); // CR-rate bars
    let grey_header = count((0xee, 0xee, 0xee)); // table header cells
    assert!(red > 200, "verdict chart not painted ({red} red pixels)");
    assert!(blue > 200, "CR-rate chart not painted ({blue} blue pixels)");
    assert!(
        grey_header > 500,
        "table header not painted ({grey_header} pixels)"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
