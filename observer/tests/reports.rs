//! Report formats: Markdown, CSV, and the self-contained HTML report rendered in a real headless
//! Chromium (Debian package), with a screenshot checked for the table and the charts' colours.
//! What became of the mail (messages, per-message CertificateRequest rate, rejection stages) in
//! every format, checked against what Postfix logged for each capture (`captures/logs/`).

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
    assert!(md.contains("| peer | direction | sessions | TLS | CR rate | messages | CR / message | rejection stages | verdict | evidence |"));
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
        "chart-mail",
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

// ------------------------------------------------------------------------------------------------
// Mail: the oracle is Postfix's own log of each session.

/// Postfix sessions whose mail facts the analysis can see (our client 127.0.0.2: outbound, one
/// peer `lab.test`): Postfix queued a message, refused the session after TLS, or did both across
/// the set; one without STARTTLS.
const MAIL_CAPTURES: [&str; 6] = [
    "pf-reqccert-tls12-openssl-both", // req_ccert, dual EKU: queued
    "pf-reqccert-tls12-openssl-serveronly", // req_ccert, serverAuth-only: "abort: TLS", no message
    "pf-reqccert-tls12-openssl-nocert", // req_ccert, no certificate: "abort: TLS"
    "pf-askccert-tls12-openssl-serveronly", // ask_ccert, serverAuth-only: queued
    "pf-noask-tls12-openssl-nocert",  // no CertificateRequest: queued
    "pf-noask-plain-swaks",           // plaintext SMTP, no TLS: queued
];

/// What Postfix logged for one capture's session.
struct Logged {
    /// Messages Postfix accepted: `data=N` of its disconnect line counts the DATA commands that
    /// succeeded, i.e. whose reply after the body was 2xx (`data=0/1`: refused).
    queued: u64,
    /// The session was ended after the TLS handshake (`NOQUEUE: abort: TLS from …`).
    aborted_after_tls: bool,
    /// The service asks for a client certificate (askccert/reqccert/hrr: captures/README.md) and
    /// TLS was established.
    met_cr: bool,
    /// The client's certificate (from the scenario name: the lab PKI in captures/README.md).
    client_class: &'static str,
}

fn logged(name: &str) -> Logged {
    let log = std::fs::read_to_string(captures().join(format!("logs/{name}.postfix.log")))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let tls = log.contains("TLS connection established");
    Logged {
        queued: log
            .lines()
            .filter(|l| l.contains("disconnect from"))
            .filter_map(|l| {
                let n = l.split_once(" data=")?.1;
                n.split(['/', ' ']).next()?.parse::<u64>().ok()
            })
            .sum(),
        aborted_after_tls: log.contains("NOQUEUE: abort: TLS"),
        met_cr: tls
            && ["/askccert/", "/reqccert/", "/hrr/"]
                .iter()
                .any(|s| log.contains(s)),
        client_class: if name.contains("-both") {
            "server_and_client"
        } else if name.contains("-serveronly") {
            "server_only"
        } else {
            "no_cert"
        },
    }
}

/// The oracle's totals over a set of captures: (messages, messages that met a CR, sessions
/// refused after TLS).
fn oracle(names: &[&str]) -> (u64, u64, u64) {
    let mut t = (0, 0, 0);
    for n in names {
        let l = logged(n);
        t.0 += l.queued;
        if l.met_cr {
            t.1 += l.queued;
        }
        t.2 += u64::from(l.aborted_after_tls);
    }
    t
}

fn mail_report(format: &str, names: &[&str], keys: bool) -> String {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ekuwatch"));
    c.args(["analyze", "--local-net", "127.0.0.2/32", "--report", format]);
    for n in names {
        c.arg(captures().join(format!("{n}.pcap")));
        let k = captures().join(format!("{n}.keylog"));
        if keys && k.exists() {
            c.arg("--keylog").arg(k);
        }
    }
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn pct(a: u64, b: u64) -> String {
    format!("{:.0}%", a as f64 * 100.0 / b as f64)
}

#[test]
fn json_counts_messages_cr_per_message_and_stages_as_postfix_logged() {
    let (messages, with_cr, refused) = oracle(&MAIL_CAPTURES);
    assert_eq!(
        (messages, with_cr, refused),
        (4, 2, 2),
        "the logs themselves"
    );
    let json: serde_json::Value =
        serde_json::from_str(&mail_report("json", &MAIL_CAPTURES, false)).unwrap();
    let sum = &json["summary"];
    assert_eq!(sum["messages"], messages, "{sum}");
    assert_eq!(
        sum["messages_delivered"], messages,
        "Postfix queued every message it was sent"
    );
    assert_eq!(sum["messages_rejected"], 0);
    assert_eq!(sum["messages_with_cr"], with_cr);
    assert_eq!(
        sum["messages_cr_known"], messages,
        "every session's CR presence is visible"
    );
    let rate = sum["cr_rate_per_message"].as_f64().unwrap();
    assert!(
        (rate - with_cr as f64 / messages as f64).abs() < 1e-9,
        "{rate}"
    );
    assert_eq!(
        sum["rejection_stages"]["ehlo"], refused,
        "req_ccert closes at EHLO"
    );
    let peers = json["peers"].as_array().unwrap();
    assert_eq!(peers.len(), 1, "one outbound peer, lab.test");
    let p = &peers[0];
    assert_eq!(p["counts"]["messages"], messages);
    // Per certificate class (under a CertificateRequest): what Postfix did after each.
    let by_class = &p["counts"]["mail_by_class"];
    let mut want: std::collections::BTreeMap<&str, (u64, u64)> = Default::default();
    for n in MAIL_CAPTURES {
        let l = logged(n);
        if l.met_cr || l.aborted_after_tls {
            let e = want.entry(l.client_class).or_default();
            e.0 += l.queued;
            e.1 += u64::from(l.aborted_after_tls);
        }
    }
    for (class, (delivered, at_ehlo)) in &want {
        assert_eq!(
            by_class[class]["delivered"], *delivered,
            "{class}: {by_class}"
        );
        assert_eq!(
            by_class[class]["refused_at_ehlo"], *at_ehlo,
            "{class}: {by_class}"
        );
        assert_eq!(by_class[class]["rejected"], 0, "{class}");
    }
    assert_eq!(
        by_class.as_object().unwrap().len(),
        want.len(),
        "{by_class}"
    );
    // Postfix logged "not designated for use as a client certificate" and closed; it queued mail
    // after the dual-EKU certificate from the same lab CA: the refusal is about the EKU.
    assert_eq!(p["verdict"], "requests_rejects_server_only");
    let why = p["explanation"].as_str().unwrap();
    assert!(
        why.contains("closed 1 session at EHLO")
            && why.contains("after our serverAuth-only certificate"),
        "{why}"
    );
    assert!(
        why.contains("delivered 1 message after a certificate with clientAuth"),
        "{why}"
    );
}

#[test]
fn text_report_shows_messages_cr_per_message_stages_and_why() {
    let (messages, with_cr, refused) = oracle(&MAIL_CAPTURES);
    let text = mail_report("text", &MAIL_CAPTURES, false);
    let header = text.lines().next().unwrap();
    assert!(
        header.contains("MSGS") && header.contains("CR/MSG"),
        "{header}"
    );
    let row = text.lines().find(|l| l.starts_with("lab.test")).unwrap();
    let cols: Vec<&str> = row.split_whitespace().collect();
    // PEER DIRECTION SESS TLS CR(n/m pct) MSGS CR/MSG
    assert_eq!(cols[6], messages.to_string(), "{row}");
    assert_eq!(cols[7], pct(with_cr, messages), "{row}");
    assert!(
        text.contains(&format!(
            "    messages: {messages} (delivered {messages}, rejected 0, other 0); met a CertificateRequest: {with_cr}/{messages} {}",
            pct(with_cr, messages)
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("    rejection stages: ehlo:{refused}\n")),
        "{text}"
    );
    assert!(
        text.contains("    why: lab.test closed 1 session at EHLO"),
        "{text}"
    );
    assert!(text.contains("docs/policy.md"), "points to the rules");
    assert!(
        text.contains(&format!(
            "{messages} messages ({with_cr} of {messages} where known met a CertificateRequest"
        )),
        "{text}"
    );
}

#[test]
fn markdown_shows_messages_cr_per_message_and_stages() {
    let (messages, with_cr, refused) = oracle(&MAIL_CAPTURES);
    let md = mail_report("markdown", &MAIL_CAPTURES, false);
    let row = md.lines().find(|l| l.starts_with("| lab.test |")).unwrap();
    let cells: Vec<&str> = row.split(" | ").collect();
    assert_eq!(cells[5], messages.to_string(), "{row}");
    assert_eq!(cells[6], pct(with_cr, messages), "{row}");
    assert_eq!(cells[7], format!("ehlo:{refused}"), "{row}");
    assert!(md.contains(&format!(
        "{messages} messages ({messages} delivered, 0 rejected); {with_cr} of {messages} messages where known met a CertificateRequest ({} per message). Rejection stages: ehlo:{refused}.",
        pct(with_cr, messages)
    )), "{md}");
    assert!(
        md.contains("- **why**: lab.test closed 1 session at EHLO"),
        "{md}"
    );
    assert!(md.contains("`docs/policy.md`"));
    assert!(
        md.lines().all(|l| l.chars().count() < 400),
        "readable in a pager"
    );
}

#[test]
fn csv_shows_messages_cr_per_message_and_stages() {
    let (messages, with_cr, refused) = oracle(&MAIL_CAPTURES);
    let csv = mail_report("csv", &MAIL_CAPTURES, false);
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let row = lines.find(|l| l.starts_with("lab.test,")).unwrap();
    let parsed = parse_csv_row(row);
    assert_eq!(parsed.len(), header.len(), "{row}");
    let at = |name: &str| parsed[col(name)].as_str();
    assert_eq!(at("sessions"), MAIL_CAPTURES.len().to_string());
    assert_eq!(at("messages"), messages.to_string());
    assert_eq!(at("messages_delivered"), messages.to_string());
    assert_eq!(at("messages_with_cr"), with_cr.to_string());
    assert_eq!(
        at("cr_rate_per_message"),
        format!("{:.4}", with_cr as f64 / messages as f64)
    );
    assert_eq!(at("rejection_stages"), format!("ehlo:{refused}"));
    assert!(at("explanation").starts_with("lab.test closed 1 session at EHLO"));
}

/// One CSV row (RFC 4180 quoting) into its fields.
fn parse_csv_row(row: &str) -> Vec<String> {
    let (mut out, mut cur, mut quoted) = (Vec::new(), String::new(), false);
    let mut chars = row.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

#[test]
fn html_shows_messages_cr_per_message_and_stages() {
    let (messages, with_cr, refused) = oracle(&MAIL_CAPTURES);
    let html = mail_report("html", &MAIL_CAPTURES, false);
    assert!(html.contains(&format!(
        "<p id=\"messages\">{messages} messages ({messages} delivered, 0 rejected); {with_cr} of {messages} messages where known met a CertificateRequest ({} per message). Rejection stages: ehlo:{refused}.",
        pct(with_cr, messages)
    )), "{html}");
    let row = html
        .lines()
        .find(|l| l.starts_with("<tr><td>lab.test</td>"))
        .unwrap();
    assert!(
        row.contains(&format!(
            "<td data-v=\"{messages}\">{messages}</td><td data-v=\"{}\">{}</td><td>ehlo:{refused}</td>",
            with_cr as f64 / messages as f64,
            pct(with_cr, messages)
        )),
        "{row}"
    );
    assert!(row.contains("closed 1 session at EHLO"), "{row}");
    assert!(html.contains("id=\"chart-mail\""));
}

/// TLS 1.3 with the clients' key logs: the reply to the EHLO after TLS is read (Postfix
/// req_ccert: 421, then close) and the message after ask_ccert is seen delivered (250 after the
/// body), as Postfix logged.
#[test]
fn decrypted_sessions_give_the_same_messages_and_stage() {
    let names = [
        "pf-reqccert-tls13-openssl-serveronly",
        "pf-askccert-tls13-openssl-serveronly",
    ];
    let (messages, with_cr, refused) = oracle(&names);
    assert_eq!((messages, with_cr, refused), (1, 1, 1));
    let json: serde_json::Value = serde_json::from_str(&mail_report("json", &names, true)).unwrap();
    let p = &json["peers"][0];
    let so = &p["counts"]["mail_by_class"]["server_only"];
    assert_eq!(so["delivered"], messages, "{so}");
    assert_eq!(so["refused_at_ehlo"], refused, "{so}");
    assert_eq!(p["counts"]["messages_with_cr"], with_cr);
    assert_eq!(p["verdict"], "requests_rejects_server_only", "{p}");
    // Without keys the TLS 1.3 chain's EKU is not visible: the same mail, class unknown_eku.
    let json: serde_json::Value =
        serde_json::from_str(&mail_report("json", &names, false)).unwrap();
    let p = &json["peers"][0];
    assert_eq!(
        p["counts"]["mail_by_class"]["unknown_eku"]["delivered"],
        messages
    );
    assert_eq!(
        p["verdict"], "requests_untested",
        "no guess without the EKU"
    );
}

/// GnuTLS clients (gnutls-cli, 127.0.0.1): Postfix accepted each message. The keyless mail
/// inference once reported them `rejected_before_data`, which the verdicts (resting on messages)
/// would have turned into refusals; guarded here against Postfix's own log.
#[test]
fn gnutls_client_sessions_are_delivered_as_postfix_logged() {
    for name in [
        "pf-askccert-tls12-gnutls-both",
        "pf-askccert-tls12-gnutls-nocert",
        "pf-askccert-tls12-gnutls-serveronly",
        "pf-askccert-tls13-gnutls-nocert",
        "pf-noask-tls13-gnutls-nocert",
    ] {
        let (messages, _, _) = oracle(&[name]);
        let json: serde_json::Value =
            serde_json::from_str(&mail_report("json", &[name], false)).unwrap();
        assert_eq!(
            json["summary"]["messages_delivered"], messages,
            "{name}: Postfix queued {messages}"
        );
    }
}
