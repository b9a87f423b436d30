//! TLS 1.3 keyless inference, measured: every capture with a key log is analysed twice — without
//! keys (facts inferred from record lengths) and with keys (decrypted truth). Inference must never
//! contradict the truth, must answer on every OpenSSL/GnuTLS capture, and the outcome must not
//! depend on the keys. Prints the confusion matrix per stack (docs/inference.md quotes it).

mod common;
use common::*;
use serde_json::Value;
use std::collections::BTreeMap;

/// "client stack / server stack" from the capture name `<server>-<config>-tls13-<client>-<variant>`.
fn stack_of(name: &str) -> String {
    let parts: Vec<&str> = name.split('-').collect();
    let server = match parts.first().copied() {
        Some("pf") => "postfix",
        Some("ossl") => "openssl-server",
        Some("gnutls") => "gnutls-server",
        Some("rustls") => "rustls-server",
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
                if stack != "other" {
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
    println!("| client / server | decrypted truth | inferred | sessions |\n|---|---|---|---|");
    for ((stack, truth, guess), n) in &matrix {
        println!("| {stack} | {truth} | {guess} | {n} |");
    }
    assert!(
        checked >= 10,
        "only {checked} TLS 1.3 captures with key logs"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
