//! Golden outputs for `captures/`: our events for each capture are pinned in
//! `captures/expected/<name>.events.jsonl` (regenerate with `UPDATE_GOLDEN=1 cargo test --test golden`
//! after checking the diff), and — independently of our code — they must agree with
//! `captures/expected/<name>.tshark.jsonl`, the facts tshark dissected from the same capture
//! (written by captures/make-expected.sh; with the key log for TLS 1.3 captures). The goldens
//! leave out `observer` (the name of whoever ran the analysis).

mod common;
use common::*;
use serde_json::Value;

#[test]
fn events_match_goldens_and_goldens_match_tshark() {
    let update = std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1");
    let expected = captures().join("expected");
    let mut failures = Vec::new();
    let files = pcaps_in(&captures());
    assert!(!files.is_empty());
    for f in &files {
        let name = f.file_stem().unwrap().to_string_lossy().to_string();
        let mut ours = analyze(f);
        // `observer` names the run, not the capture: not pinned (observer/tests/report.rs checks
        // that every event carries it).
        for e in &mut ours {
            e.as_object_mut().unwrap().remove("observer");
        }
        let text: String = ours.iter().map(|e| format!("{e}\n")).collect();
        let golden = expected.join(format!("{name}.events.jsonl"));
        if update {
            std::fs::write(&golden, &text).unwrap();
        } else {
            match std::fs::read_to_string(&golden) {
                Ok(g) if g == text => {}
                Ok(g) => {
                    let want: Vec<Value> = g
                        .lines()
                        .map(|l| serde_json::from_str(l).unwrap())
                        .collect();
                    failures.push(format!(
                        "{name}: events differ from {}: got {} events, golden {}; first got: {}",
                        golden.display(),
                        ours.len(),
                        want.len(),
                        ours.first().map(|e| e.to_string()).unwrap_or_default()
                    ));
                }
                Err(_) => failures.push(format!(
                    "{name}: no golden {} (UPDATE_GOLDEN=1 writes it)",
                    golden.display()
                )),
            }
        }
        let oracle_file = expected.join(format!("{name}.tshark.jsonl"));
        if !oracle_file.exists() {
            failures.push(format!(
                "{name}: no tshark facts {} (captures/make-expected.sh writes them)",
                oracle_file.display()
            ));
            continue;
        }
        let (bad, _) = compare_with_oracle(&ours, &read_jsonl(&oracle_file));
        failures.extend(bad.into_iter().map(|b| format!("{name}: {b}")));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The scenarios the captures were made for, asserted directly (the configuration implies them).
#[test]
fn scenarios_show_what_their_configuration_implies() {
    let ev = |name: &str| -> Vec<Value> {
        let p = captures().join(name);
        assert!(p.exists(), "missing capture {name}");
        analyze(&p)
    };
    // Postfix without smtpd_tls_ask_ccert: no CertificateRequest.
    for name in [
        "pf-noask-tls12-openssl-nocert.pcap",
        "pf-noask-tls12-swaks-nocert.pcap",
    ] {
        let e = &ev(name)[0];
        assert_eq!(e["smtp"]["starttls"], "accepted", "{name}");
        assert_eq!(e["tls"]["certificate_request"]["present"], false, "{name}");
        assert_eq!(
            e["tls"]["certificate_request"]["evidence"], "plaintext",
            "{name}"
        );
    }
    // With smtpd_tls_ask_ccert: CR listing the Lab Root CA; each client certificate variant.
    for (name, class) in [
        (
            "pf-askccert-tls12-openssl-serveronly.pcap",
            Some("server_only"),
        ),
        (
            "pf-askccert-tls12-openssl-both.pcap",
            Some("server_and_client"),
        ),
        (
            "pf-askccert-tls12-openssl-clientonly.pcap",
            Some("client_only"),
        ),
        ("pf-askccert-tls12-openssl-noeku.pcap", Some("none")),
        ("pf-askccert-tls12-openssl-nocert.pcap", None),
        (
            "pf-askccert-tls12-gnutls-serveronly.pcap",
            Some("server_only"),
        ),
        ("pf-askccert-tls12-gnutls-nocert.pcap", None),
    ] {
        let e = &ev(name)[0];
        let t = &e["tls"];
        assert_eq!(t["version"], "1.2", "{name}");
        assert_eq!(t["certificate_request"]["present"], true, "{name}");
        assert_eq!(
            t["certificate_request"]["ca_names"],
            serde_json::json!(["CN=Lab Root CA,O=Lab"]),
            "{name}"
        );
        match class {
            Some(c) => {
                assert_eq!(t["client_certificate"]["status"], "presented", "{name}");
                assert_eq!(
                    t["client_certificate"]["chain"][0]["eku_class"], c,
                    "{name}"
                );
            }
            None => assert_eq!(t["client_certificate"]["status"], "empty", "{name}"),
        }
        assert_eq!(
            t["server_certificate"]["chain"][0]["eku_class"], "server_only",
            "{name}"
        );
    }
    // TLS 1.3 without keys: inferred from record lengths, never "plaintext".
    for (name, present, status) in [
        ("pf-noask-tls13-openssl-nocert.pcap", false, "absent"),
        ("pf-noask-tls13-gnutls-nocert.pcap", false, "absent"),
        ("pf-askccert-tls13-openssl-nocert.pcap", true, "empty"),
        (
            "pf-askccert-tls13-openssl-serveronly.pcap",
            true,
            "presented",
        ),
    ] {
        let t = &ev(name)[0]["tls"];
        assert_eq!(t["version"], "1.3", "{name}");
        assert_eq!(t["certificate_request"]["present"], present, "{name}");
        assert_eq!(t["certificate_request"]["evidence"], "inferred", "{name}");
        assert_eq!(t["client_certificate"]["status"], status, "{name}");
    }
    // smtpd_tls_req_ccert: Postfix completes the handshake, then sends 421 and closes when the
    // client certificate is missing or not usable (serverAuth-only: "not designated for use as a
    // client certificate" in captures/logs); a trusted dual-EKU certificate is accepted.
    for (name, result) in [
        (
            "pf-reqccert-tls12-openssl-nocert.pcap",
            "closed_after_handshake",
        ),
        (
            "pf-reqccert-tls12-openssl-serveronly.pcap",
            "closed_after_handshake",
        ),
        (
            "pf-reqccert-tls13-openssl-nocert.pcap",
            "closed_after_handshake",
        ),
        (
            "pf-reqccert-tls13-openssl-serveronly.pcap",
            "closed_after_handshake",
        ),
        ("pf-reqccert-tls12-openssl-both.pcap", "established"),
    ] {
        let t = &ev(name)[0]["tls"];
        assert_eq!(t["certificate_request"]["present"], true, "{name}");
        assert_eq!(t["outcome"]["result"], result, "{name}");
        if result == "closed_after_handshake" {
            assert_eq!(t["outcome"]["alert"]["sender"], "server", "{name}");
            assert_eq!(t["outcome"]["alert"]["encrypted"], true, "{name}");
        }
    }
    // Implicit TLS (smtpd_tls_wrappermode): TLS from the first byte.
    let cfg = ekuwatch::flow::FlowConfig {
        smtp_ports: vec![25, 465, 587, 2465],
        ..Default::default()
    };
    for name in [
        "pf-wrapper-tls12-swaks-nocert.pcap",
        "pf-wrapper-tls13-openssl-nocert.pcap",
    ] {
        let e = &analyze_with(&captures().join(name), cfg.clone())[0];
        assert_eq!(e["smtp"]["starttls"], "implicit", "{name}");
        assert_eq!(e["tls"]["outcome"]["result"], "established", "{name}");
    }
    // STARTTLS not offered.
    let e = &ev("pf-notls-swaks-tlsoptional.pcap")[0];
    assert_eq!(e["smtp"]["starttls"], "not_offered");
    assert!(e["tls"].is_null());
    // STARTTLS refused with 454: stays SMTP, no TLS.
    let e = &ev("pf-454-swaks-tlsoptional.pcap")[0];
    assert_eq!(e["smtp"]["starttls"], "refused");
    assert_eq!(e["smtp"]["starttls_reply"], 454);
    assert!(e["tls"].is_null());
    // Plaintext SMTP.
    let e = &ev("pf-noask-plain-swaks.pcap")[0];
    assert!(e["tls"].is_null());
    assert_ne!(e["smtp"]["starttls"], "accepted");
}

/// TLS 1.3 scenarios decrypted with their key logs: what each server configuration implies.
#[test]
fn tls13_scenarios_with_keys() {
    let ev = |name: &str| -> serde_json::Value {
        let p = captures().join(name);
        assert!(p.exists(), "missing capture {name}");
        let evs = analyze_with_keys(&p);
        assert_eq!(evs.len(), 1, "{name}");
        evs[0]["tls"].clone()
    };
    // oid_filters (hand-built; no common stack sends it) with the clientAuth EKU named.
    let t = ev("synthetic-tls13-oidfilters.pcap");
    assert_eq!(
        t["certificate_request"]["oid_filters"],
        serde_json::json!(["extendedKeyUsage=clientAuth"])
    );
    assert_eq!(
        t["certificate_request"]["ca_names"],
        serde_json::json!(["CN=Lab Root CA,O=Lab"])
    );
    assert!(!t["certificate_request"]["signature_algorithms_cert"]
        .as_array()
        .unwrap()
        .is_empty());
    // An OpenSSL server verifying with the ssl_client purpose: alert 43 for serverAuth-only, 116 for none.
    for (name, code, desc) in [
        (
            "ossl-verify-tls13-openssl-serveronly.pcap",
            43,
            "unsupported_certificate",
        ),
        (
            "ossl-verify-tls13-openssl-nocert.pcap",
            116,
            "certificate_required",
        ),
        (
            "gnutls-verify-tls13-openssl-nocert.pcap",
            116,
            "certificate_required",
        ),
    ] {
        let t = ev(name);
        assert_eq!(t["outcome"]["result"], "handshake_failed", "{name}");
        assert_eq!(t["outcome"]["alert"]["code"], code, "{name}");
        assert_eq!(t["outcome"]["alert"]["description"], desc, "{name}");
        assert_eq!(t["outcome"]["alert"]["sender"], "server", "{name}");
    }
    // GnuTLS does not check the client certificate's EKU: serverAuth-only is accepted.
    let t = ev("gnutls-verify-tls13-openssl-serveronly.pcap");
    assert_eq!(
        t["client_certificate"]["chain"][0]["eku_class"],
        "server_only"
    );
    assert_eq!(t["outcome"]["result"], "established");
    // All three TLS 1.3 cipher suites decrypt.
    for (name, suite) in [
        ("pf-askccert-tls13-openssl-both-aes128.pcap", "0x1301"),
        ("pf-askccert-tls13-openssl-both-aes256.pcap", "0x1302"),
        ("pf-askccert-tls13-openssl-both-chacha20.pcap", "0x1303"),
    ] {
        let t = ev(name);
        assert_eq!(t["cipher_id"], suite, "{name}");
        assert_eq!(t["decryption"], "ok", "{name}");
        assert_eq!(
            t["client_certificate"]["chain"][0]["eku_class"], "server_and_client",
            "{name}"
        );
        assert_eq!(t["smtp_reply_after_tls"]["data"], 354, "{name}");
    }
    // HelloRetryRequest and PSK resumption.
    let t = ev("pf-hrr-tls13-openssl-both.pcap");
    assert_eq!(t["hello_retry_request"], true);
    assert_eq!(t["certificate_request"]["present"], true);
    let t = ev("pf-askccert-tls13-openssl-both-resumed.pcap");
    assert_eq!(t["resumed"], true);
    assert_eq!(t["certificate_request"]["present"], false);
    // Postfix req_ccert without a usable certificate: 421 inside TLS, then close.
    let t = ev("pf-reqccert-tls13-openssl-serveronly.pcap");
    assert_eq!(t["smtp_reply_after_tls"]["first"], 421);
    assert_eq!(t["outcome"]["result"], "closed_after_handshake");
}
