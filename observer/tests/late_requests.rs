//! Certificates asked for where the wire shows only lengths, and TLS 1.2 without keys.
//!
//! TLS ≤ 1.2 without keys never contradicts decryption: every capture with a key log is analysed
//! without and with it, and for each TLS 1.2 session the keyless CertificateRequest presence and
//! client-certificate status are the decrypted ones or `unknown` (the decrypted facts themselves are
//! checked against tshark in `tshark_differential.rs`). Its plaintext handshake is usually the
//! whole story — not after a renegotiation, whose handshake is encrypted (`reneg-*` captures:
//! OpenSSL s_server renegotiating with and without a CertificateRequest, and one the client
//! resumed): there the keyless answer must be `unknown` wherever the renegotiation could have
//! carried a request, never the first handshake's "no". TLS 1.3 post-handshake authentication
//! (`ossl-pha*`): the request and the client's answer are decrypted with keys; without, a client
//! that offered it leaves "no CR" unknown.

mod common;
use common::*;
use serde_json::Value;

fn by_client(evs: &[Value]) -> Vec<(String, &Value)> {
    evs.iter()
        .filter(|e| !e["tls"].is_null())
        .map(|e| (endpoint(&e["client"]), e))
        .collect()
}

#[test]
fn keyless_tls12_never_contradicts_decryption() {
    let mut checked = 0;
    let mut bad = Vec::new();
    for pcap in pcaps_in(&captures()) {
        if !pcap.with_extension("keylog").exists() {
            continue;
        }
        let name = pcap.file_stem().unwrap().to_string_lossy().into_owned();
        let keyless = analyze(&pcap);
        let keyed = analyze_with_keys(&pcap);
        for (client, k) in by_client(&keyed) {
            let kt = &k["tls"];
            if kt["version"] != "1.2" || kt["decryption"] != "ok" {
                continue;
            }
            let Some((_, n)) = by_client(&keyless).into_iter().find(|(c, _)| *c == client) else {
                bad.push(format!("{name} {client}: no keyless event"));
                continue;
            };
            let nt = &n["tls"];
            checked += 1;
            let (ncr, kcr) = (
                &nt["certificate_request"]["present"],
                &kt["certificate_request"]["present"],
            );
            if !ncr.is_null() && ncr != kcr {
                bad.push(format!(
                    "{name} {client}: CR keyless {ncr} vs decrypted {kcr}"
                ));
            }
            let (ncs, kcs) = (
                &nt["client_certificate"]["status"],
                &kt["client_certificate"]["status"],
            );
            if ncs != "unknown" && ncs != kcs {
                bad.push(format!(
                    "{name} {client}: client certificate keyless {ncs} vs decrypted {kcs}"
                ));
            }
            if nt["outcome"]["result"] != kt["outcome"]["result"] {
                bad.push(format!(
                    "{name} {client}: outcome keyless {} vs decrypted {}",
                    nt["outcome"]["result"], kt["outcome"]["result"]
                ));
            }
        }
    }
    eprintln!("{checked} TLS 1.2 sessions with keys: keyless facts agree or are unknown");
    assert!(bad.is_empty(), "contradictions:\n{}", bad.join("\n"));
    assert!(checked >= 20, "only {checked} TLS 1.2 sessions with keys");
}

/// The renegotiation captures, fact by fact: with keys the renegotiation's request and the
/// client's answer (tshark agrees: `tshark_differential.rs`); without, `unknown` unless the
/// renegotiation was abbreviated (the server changed keys first: no request possible).
/// CertificateRequest presence and client-certificate status.
type Facts = (Value, &'static str);

#[test]
fn renegotiation_is_followed_with_keys_and_unknown_without() {
    // name, decrypted (CR, client status), keyless (CR, client status)
    let cases: [(&str, Facts, Facts); 4] = [
        (
            "reneg-request-tls12-openssl-both",
            (Value::Bool(true), "presented"),
            (Value::Null, "unknown"),
        ),
        (
            "reneg-request-tls12-openssl-nocert",
            (Value::Bool(true), "empty"),
            (Value::Null, "unknown"),
        ),
        (
            "reneg-norequest-tls12-openssl-both",
            (Value::Bool(false), "absent"),
            (Value::Null, "unknown"),
        ),
        (
            "reneg-resumed-tls12-openssl-both",
            (Value::Bool(false), "absent"),
            (Value::Bool(false), "absent"),
        ),
    ];
    for (name, keyed_want, keyless_want) in cases {
        let pcap = captures().join(format!("{name}.pcap"));
        for (evs, (cr, status), keys) in [
            (analyze_with_keys(&pcap), keyed_want, true),
            (analyze(&pcap), keyless_want, false),
        ] {
            assert_eq!(evs.len(), 1, "{name}");
            let e = &evs[0];
            let t = &e["tls"];
            let what = format!("{name} (keys: {keys})");
            assert_eq!(t["version"], "1.2", "{what}");
            assert_eq!(t["certificate_request"]["present"], cr, "{what}");
            assert_eq!(t["client_certificate"]["status"], status, "{what}");
            assert_eq!(t["outcome"]["result"], "established", "{what}");
            assert!(
                e["weirds"]
                    .as_array()
                    .unwrap()
                    .contains(&Value::from("tls_renegotiation")),
                "{what}: {}",
                e["weirds"]
            );
            if keys {
                assert_eq!(t["decryption"], "ok", "{what}");
            }
        }
    }
}

/// TLS 1.3 post-handshake authentication: with keys the request after the handshake and the
/// client's Certificate are the facts (decryption goes on after the client's post-handshake
/// Finished); without, `unknown` — the client offered it, so a request may hide in any record.
#[test]
fn post_handshake_request_is_decrypted_with_keys_and_unknown_without() {
    let cases: [(&str, Facts); 3] = [
        (
            "ossl-pha-tls13-openssl-both",
            (Value::Bool(true), "presented"),
        ),
        (
            "ossl-pha-tls13-openssl-nocert",
            (Value::Bool(true), "empty"),
        ),
        (
            "ossl-phaoffered-tls13-openssl-both",
            (Value::Bool(false), "absent"),
        ),
    ];
    for (name, (cr, status)) in cases {
        let pcap = captures().join(format!("{name}.pcap"));
        for (evs, keys) in [(analyze_with_keys(&pcap), true), (analyze(&pcap), false)] {
            assert_eq!(evs.len(), 1, "{name}");
            let t = &evs[0]["tls"];
            let what = format!("{name} (keys: {keys})");
            assert_eq!(t["version"], "1.3", "{what}");
            assert_eq!(t["post_handshake_auth"], true, "{what}");
            assert_eq!(t["outcome"]["result"], "established", "{what}");
            if keys {
                assert_eq!(t["decryption"], "ok", "{what}");
                assert_eq!(t["certificate_request"]["present"], cr, "{what}");
                assert_eq!(t["certificate_request"]["evidence"], "decrypted", "{what}");
                assert_eq!(t["client_certificate"]["status"], status, "{what}");
            } else {
                assert_eq!(t["certificate_request"]["present"], Value::Null, "{what}");
                assert_eq!(t["client_certificate"]["status"], "unknown", "{what}");
            }
        }
    }
}
