//! TLS 1.3 keyless inference, measured: every capture with a key log is analysed twice — without
//! keys (facts inferred from record lengths) and with keys (decrypted truth). Inference must never
//! contradict the truth, must answer on every capture of a known stack (OpenSSL, GnuTLS, rustls,
//! Go, SunJSSE, NSS, BoringSSL, s2n-tls, wolfSSL, mbedTLS, Python, Postfix), and the outcome must not depend on the keys. Sessions of
//! stacks without a key log are checked against their configuration and the server's log. Prints
//! the confusion matrix and a per-stack table (docs/inference.md quotes them).

mod common;
use common::*;
use serde_json::Value;
use std::collections::BTreeMap;

/// "client stack / server stack" from the capture name `<server>-<config>-tls13-<client>-<variant>`.
fn stack_of(name: &str) -> String {
    let parts: Vec<&str> = name.split('-').collect();
    let server = match parts.first().copied() {
        Some("pf") => "postfix",
        Some("exim") => "exim",
        Some("ossl") => "openssl-server",
        Some("gnutls") => "gnutls-server",
        Some("rustls") => "rustls-server",
        Some("go") => "go-server",
        Some("java") => "java-server",
        Some("nss") => "nss-server",
        Some("boring") => "boring-server",
        Some("s2n") => "s2n-server",
        Some("wolfssl") => "wolfssl-server",
        Some("mbedtls") => "mbedtls-server",
        _ => return "other".into(),
    };
    let client = parts
        .iter()
        .position(|p| p.starts_with("tls1"))
        .and_then(|i| parts.get(i + 1))
        .map(|c| if *c == "swaks" { "openssl" } else { *c })
        .unwrap_or("other");
    format!("{client} / {server}")
}

/// The tables in docs/inference.md are this test's own output: each table printed here must be
/// there, row for row (a changed capture set or inference result changes the doc, or this fails).
/// `UPDATE_DOCS=1` writes the table into the doc instead, in place of the table with the same
/// header that shares most rows with it (as `UPDATE_GOLDEN=1` does for the goldens).
fn assert_in_docs(table: &str) {
    let path = repo().join("docs/inference.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    if doc.contains(table) {
        return;
    }
    if std::env::var_os("UPDATE_DOCS").is_some() {
        if let Some(updated) = replace_table(&doc, table) {
            std::fs::write(&path, updated).unwrap();
            eprintln!("docs/inference.md: table updated");
            return;
        }
    }
    panic!("docs/inference.md does not hold this run's table (UPDATE_DOCS=1 writes it); replace it with:\n{table}");
}

/// `doc` with the Markdown table most like `table` (same header line, most rows in common)
/// replaced by it.
fn replace_table(doc: &str, table: &str) -> Option<String> {
    let header = table.lines().next()?;
    let rows: std::collections::HashSet<&str> = table.lines().collect();
    let lines: Vec<&str> = doc.lines().collect();
    let mut best: Option<(usize, usize, usize)> = None; // (common rows, start, end)
    for (i, l) in lines.iter().enumerate() {
        if *l != header {
            continue;
        }
        let end = (i..lines.len())
            .find(|j| !lines[*j].starts_with('|'))
            .unwrap_or(lines.len());
        let common = lines[i..end].iter().filter(|l| rows.contains(*l)).count();
        if best.is_none_or(|(c, _, _)| common > c) {
            best = Some((common, i, end));
        }
    }
    let (_, start, end) = best?;
    let mut out: Vec<&str> = lines[..start].to_vec();
    out.extend(table.trim_end().lines());
    out.extend(&lines[end..]);
    Some(out.join("\n") + "\n")
}

/// The matrix (client / server, truth, inferred, sessions) as printed and documented.
fn print_matrix(header: &str, matrix: &BTreeMap<(String, String, String), u32>) {
    let mut t =
        format!("| client / server | {header} | inferred | sessions |\n|---|---|---|---|\n");
    for ((stack, truth, guess), n) in matrix {
        t.push_str(&format!("| {stack} | {truth} | {guess} | {n} |\n"));
    }
    print!("{t}");
    assert_in_docs(&t);
}

/// Per stack and role: sessions, answered, right (inferred = truth), unknown.
fn print_per_stack(matrix: &BTreeMap<(String, String, String), u32>) {
    let mut per: BTreeMap<(String, &str), [u32; 4]> = BTreeMap::new();
    for ((stack, truth, guess), n) in matrix {
        let Some((client, server)) = stack.split_once(" / ") else {
            continue;
        };
        for key in [
            (client.to_string(), "client"),
            (server.to_string(), "server"),
        ] {
            let row = per.entry(key).or_default();
            row[0] += n;
            if guess == "unknown" {
                row[3] += n;
            } else {
                row[1] += n;
                if guess == truth {
                    row[2] += n;
                }
            }
        }
    }
    let mut t = String::from(
        "| stack | role | sessions | answered | right | unknown |\n|---|---|---|---|---|---|\n",
    );
    for ((stack, role), [n, answered, right, unknown]) in &per {
        t.push_str(&format!(
            "| {stack} | {role} | {n} | {answered} | {right} | {unknown} |\n"
        ));
    }
    print!("\n{t}");
    assert_in_docs(&t);
}

fn label(cr: &Value, cc: &Value) -> String {
    if cr["evidence"] == "unknown" {
        return "unknown".into();
    }
    match (cr["present"].as_bool(), cc["status"].as_str()) {
        (Some(false), _) => "no CR".into(),
        (Some(true), Some(s)) => format!("CR, client {s}"),
        _ => "unknown".into(),
    }
}

#[test]
fn inference_agrees_with_decryption() {
    let mut matrix: BTreeMap<(String, String, String), u32> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut checked = 0;
    for f in pcaps_in(&captures()) {
        if !f.with_extension("keylog").exists() {
            continue;
        }
        let name = f.file_stem().unwrap().to_string_lossy().to_string();
        let stack = stack_of(&name);
        let stack = stack.as_str();
        let plain = analyze(&f);
        let keyed = analyze_with_keys(&f);
        for (p, k) in plain.iter().zip(&keyed) {
            let (pt, kt) = (&p["tls"], &k["tls"]);
            if kt["version"] != "1.3" {
                continue;
            }
            checked += 1;
            let truth = label(&kt["certificate_request"], &kt["client_certificate"]);
            let guess = label(&pt["certificate_request"], &pt["client_certificate"]);
            *matrix
                .entry((stack.to_string(), truth.clone(), guess.clone()))
                .or_default() += 1;
            assert_eq!(kt["certificate_request"]["evidence"], "decrypted", "{name}");
            if guess == "unknown" {
                // A client that offered post-handshake authentication may be asked later, in
                // records no length tells from SMTP: unknown is the answer (docs/inference.md).
                if stack != "other" && pt["post_handshake_auth"] != true {
                    failures.push(format!(
                        "{name}: inference gave no answer on a {stack} capture"
                    ));
                }
            } else if guess != truth {
                failures.push(format!(
                    "{name}: inferred '{guess}' but decrypted '{truth}'"
                ));
            }
            // The outcome must not depend on the keys where inference answers (real stacks).
            if stack != "other" && pt["outcome"]["result"] != kt["outcome"]["result"] {
                failures.push(format!(
                    "{name}: outcome {} without keys, {} with keys",
                    pt["outcome"]["result"], kt["outcome"]["result"]
                ));
            }
            // Where a chain size is inferred (not for coalesced flights), it is within 8 bytes per
            // certificate of the truth (per-entry extensions, header rounding).
            if let Some(approx) = pt["client_certificate"]["size_bytes"]
                .as_u64()
                .filter(|_| pt["client_certificate"]["status"] == "presented")
            {
                let truth: u64 = kt["client_certificate"]["size_bytes"].as_u64().unwrap();
                let n = kt["client_certificate"]["chain"].as_array().unwrap().len() as u64;
                if approx.abs_diff(truth) > 8 * n + 8 {
                    failures.push(format!(
                        "{name}: inferred chain size {approx}, decrypted {truth}"
                    ));
                }
            }
        }
    }
    print_matrix("decrypted truth", &matrix);
    print_per_stack(&matrix);
    assert!(
        checked >= 10,
        "only {checked} TLS 1.3 captures with key logs"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The facts a keyless Postfix session must have: `(CR present, client certificate status,
/// outcome)`. CR from the service in the name `pf-<service>-tls13-<client>-<cert>` (2525 noask: no
/// CR; 2526 askccert, 2527 reqccert and 2530 hrr: CR); whether a certificate came from Postfix's own log of
/// the session (`Anonymous` / `Untrusted` / `Trusted TLS connection established`), because a client
/// may decline to send the one it was given (NSS sends no serverAuth-only certificate); req_ccert
/// ends the session with 421 unless the certificate is trusted. A client configured without a
/// certificate must be logged anonymous. None for other names.
fn configured(name: &str, log: &str) -> Result<Option<(bool, &'static str, &'static str)>, String> {
    let parts: Vec<&str> = name.split('-').collect();
    if let ["exim", "mail", _, "tls13", _, cert] = parts[..] {
        // Exim asks every client (tls_try_verify_hosts = *) and goes on whatever came; its log
        // names the certificate's subject (DN=) when one came.
        let sent = log.contains(" DN=\"");
        if sent && cert == "nocert" {
            return Err(format!(
                "{name}: Exim logged a certificate the client did not have"
            ));
        }
        return Ok(Some((
            true,
            if sent { "presented" } else { "empty" },
            "established",
        )));
    }
    let [pf, service, version, _client, cert] = parts[..] else {
        return Ok(None);
    };
    if pf != "pf" || version != "tls13" {
        return Ok(None);
    }
    let cr = match service {
        "noask" => false,
        "askccert" | "reqccert" | "hrr" => true,
        _ => return Ok(None),
    };
    let trusted = log.contains(" Trusted TLS connection established");
    let sent = trusted || log.contains("Untrusted TLS connection established");
    if !sent && !log.contains("Anonymous TLS connection established") {
        return Err(format!("{name}: no TLS connection in the Postfix log"));
    }
    if sent && (cert == "nocert" || !cr) {
        return Err(format!(
            "{name}: Postfix logged a certificate the client did not have"
        ));
    }
    let status = match (cr, sent) {
        (false, _) => "absent",
        (true, false) => "empty",
        (true, true) => "presented",
    };
    let outcome = if service == "reqccert" && !trusted {
        "closed_after_handshake"
    } else {
        "established"
    };
    Ok(Some((cr, status, outcome)))
}

/// Stacks that cannot write a key log against Postfix (Java SunJSSE; Debian's NSS, built without
/// SSLKEYLOGFILE; Debian's wolfSSL, built without the secret callback): inference is checked against the configuration and Postfix's log ([`configured`]).
#[test]
fn keyless_stacks_agree_with_their_configuration() {
    let mut checked: BTreeMap<String, u32> = BTreeMap::new();
    let mut matrix: BTreeMap<(String, String, String), u32> = BTreeMap::new();
    let mut failures = Vec::new();
    for f in pcaps_in(&captures()) {
        let name = f.file_stem().unwrap().to_string_lossy().to_string();
        if f.with_extension("keylog").exists() {
            continue;
        }
        let server_log = if name.starts_with("exim-") {
            "exim"
        } else {
            "postfix"
        };
        let log = std::fs::read_to_string(captures().join(format!("logs/{name}.{server_log}.log")))
            .unwrap_or_default();
        let (cr, status, outcome) = match configured(&name, &log) {
            Ok(Some(c)) => c,
            Ok(None) => continue,
            Err(e) => {
                failures.push(e);
                continue;
            }
        };
        let events = analyze(&f);
        let tls = &events[0]["tls"];
        assert_eq!(tls["version"], "1.3", "{name}");
        *checked.entry(stack_of(&name)).or_default() += 1;
        let (pcr, pcc) = (&tls["certificate_request"], &tls["client_certificate"]);
        let truth = match (cr, status) {
            (false, _) => "no CR".to_string(),
            (true, s) => format!("CR, client {s}"),
        };
        *matrix
            .entry((stack_of(&name), truth, label(pcr, pcc)))
            .or_default() += 1;
        if pcr["evidence"] != "inferred" || pcr["present"] != cr || pcc["status"] != status {
            failures.push(format!(
                "{name}: inferred CR {} ({}) client {}, configured CR {cr} client {status}",
                pcr["present"], pcr["evidence"], pcc["status"]
            ));
        }
        if tls["outcome"]["result"] != outcome {
            failures.push(format!(
                "{name}: outcome {}, configured {outcome}",
                tls["outcome"]["result"]
            ));
        }
    }
    println!("keyless sessions checked against their configuration: {checked:?}");
    print_matrix("configured truth", &matrix);
    print_per_stack(&matrix);
    assert!(
        checked.values().sum::<u32>() >= 10,
        "only {checked:?} keyless sessions"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Go, Java, BoringSSL, s2n-tls, wolfSSL, mbedTLS and rustls servers (tests/helpers/*-peer) refuse a missing, untrusted or
/// serverAuth-only client certificate inside the handshake; their own log says which sessions
/// they refused ("TLS handshake failed") and which they accepted ("TLS established"). The outcome
/// must say the same, with and without keys, in TLS 1.3 and 1.2; and the CertificateRequest must
/// be there exactly when the server was configured to ask (`ask`, `require`; not `noask`), the
/// client certificate presented or empty as the server received it. Java clients against the Java
/// server have no key log at all: this is their truth. Decrypted, the client chain is as long as
/// the server counted (compressed certificates too; s2n counts its validated chain instead).
#[test]
fn peer_servers_refuse_inside_the_handshake() {
    let mut per: BTreeMap<String, u32> = BTreeMap::new();
    let mut checked = 0;
    let mut failures = Vec::new();
    for f in pcaps_in(&captures()) {
        let name = f.file_stem().unwrap().to_string_lossy().to_string();
        if ![
            "go-", "java-", "boring-", "s2n-", "wolfssl-", "mbedtls-", "rustls-",
        ]
        .iter()
        .any(|p| name.starts_with(p))
        {
            continue;
        }
        let log = std::fs::read_to_string(captures().join(format!("logs/{name}.server.log")))
            .unwrap_or_else(|e| panic!("{name}: server log: {e}"));
        // The server's account of each connection, in order: its verdict line ("TLS handshake
        // failed" or "TLS established: ... client certificates: N[, resumed true]").
        let verdicts: Vec<&str> = log
            .lines()
            .filter(|l| l.starts_with("TLS handshake failed") || l.starts_with("TLS established"))
            .collect();
        assert!(!verdicts.is_empty(), "{name}: the server log says neither");
        *per.entry(stack_of(&name)).or_default() += verdicts.len() as u32;
        let mut runs = vec![("without keys", analyze(&f))];
        if f.with_extension("keylog").exists() {
            runs.push(("with keys", analyze_with_keys(&f)));
        }
        // the server's configuration: `<server>-<noask|ask|require>-...`
        let asked = name.split('-').nth(1) != Some("noask");
        for (how, events) in runs {
            if events.len() != verdicts.len() {
                failures.push(format!(
                    "{name} {how}: {} sessions, the server log has {}",
                    events.len(),
                    verdicts.len()
                ));
                continue;
            }
            for (ev, line) in events.iter().zip(&verdicts) {
                checked += 1;
                let want = if line.contains("TLS handshake failed") {
                    "handshake_failed"
                } else {
                    "established"
                };
                // what the server received when it accepted: "client certificates: N"
                let received = line
                    .split("client certificates: ")
                    .nth(1)
                    .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
                    .and_then(|n| n.parse::<u32>().ok());
                let resumed = line.contains("resumed true");
                let tls = &ev["tls"];
                let got = &tls["outcome"]["result"];
                if got != want {
                    failures.push(format!("{name} {how}: outcome {got}, server log: {want}"));
                }
                if tls["resumed"] != resumed {
                    failures.push(format!(
                        "{name} {how}: resumed {}, server log: {resumed}",
                        tls["resumed"]
                    ));
                }
                let status = &tls["client_certificate"]["status"];
                match received {
                    // a resumed session carries no certificate: the server has it from the ticket
                    _ if resumed && status != "absent" => failures.push(format!(
                        "{name} {how}: resumed, client certificate {status}"
                    )),
                    _ if resumed => {}
                    Some(0) if asked && status != "empty" => failures.push(format!(
                        "{name} {how}: client certificate {status}, the server received none"
                    )),
                    Some(n) if n > 0 && status != "presented" => failures.push(format!(
                        "{name} {how}: client certificate {status}, the server received {n}"
                    )),
                    // decrypted (compressed or not): the chain is the one the server counted (s2n
                    // counts the validated chain, trust anchor included, not what it received)
                    Some(n)
                        if !name.starts_with("s2n-")
                            && tls["client_certificate"]["evidence"] == "decrypted"
                            && tls["client_certificate"]["chain"].as_array().map(Vec::len)
                                != Some(n as usize) =>
                    {
                        failures.push(format!(
                            "{name} {how}: client chain {}, the server received {n}",
                            tls["client_certificate"]["chain"]
                        ))
                    }
                    _ => {}
                }
                // RFC 8446 §4.3.2 / RFC 5077: no CertificateRequest when resuming
                let cr_expected = asked && !resumed;
                if tls["certificate_request"]["present"] != cr_expected {
                    failures.push(format!(
                        "{name} {how}: CR {}, the server was configured to {}ask{}",
                        tls["certificate_request"]["present"],
                        if asked { "" } else { "not " },
                        if resumed { " (resumed)" } else { "" }
                    ));
                }
            }
        }
    }
    println!("peer-server sessions checked against the server's log and configuration: {per:?}");
    assert!(checked >= 8, "only {checked} peer-server analyses");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
