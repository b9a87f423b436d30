//! Per-peer verdicts on real captures: each server configuration gets the verdict it implies, with
//! the evidence named. Our side is the client (127.0.0.2 for OpenSSL/swaks/rustls clients; gnutls-cli
//! cannot bind, so those captures are analysed with the client side unknown-direction = ours).

mod common;
use common::*;
use ekuwatch::flow::FlowConfig;
use ekuwatch::peers::PeerBook;
use ekuwatch::pipeline::Pipeline;

fn verdict(files: &[&str], keys: bool) -> (Option<&'static str>, String, String) {
    let mut p = Pipeline::new(FlowConfig {
        local_nets: vec!["127.0.0.2/32".parse().unwrap()],
        ..Default::default()
    });
    for f in files {
        let path = captures().join(f);
        if keys {
            if let Ok(k) = std::fs::read(path.with_extension("keylog")) {
                p.flows.add_keylog(&k);
            }
        }
        p.read_file(&path, |_, _| {}).unwrap();
    }
    p.finish();
    let mut book = PeerBook::default();
    for ev in p.take_events() {
        book.add(&ev);
    }
    let peers = book.peers();
    assert_eq!(peers.len(), 1, "{files:?}");
    (
        peers[0].verdict(),
        peers[0].verdict_evidence(),
        peers[0].direction.to_string(),
    )
}

#[test]
fn postfix_req_ccert_rejects_server_only() {
    // The same peer accepted a dual-EKU chain from the same CA: the rejection is about the EKU.
    let (v, ev, dir) = verdict(
        &[
            "pf-reqccert-tls12-openssl-both.pcap",
            "pf-reqccert-tls12-openssl-serveronly.pcap",
            "pf-reqccert-tls12-openssl-nocert.pcap",
        ],
        false,
    );
    assert_eq!(dir, "outbound");
    assert_eq!(v, Some("requests_rejects_server_only"), "{ev}");
    assert!(ev.contains("server_only/rejected_eku:1"), "{ev}");
    assert!(ev.contains("closed_after_handshake"), "{ev}");
}

#[test]
fn postfix_req_ccert_rejection_alone_is_not_called_eku() {
    // Without evidence that the peer trusts our (private) CA, a silent close is ambiguous.
    let (v, ev, _) = verdict(&["pf-reqccert-tls12-openssl-serveronly.pcap"], false);
    assert_eq!(v, Some("requests_untested"), "{ev}");
    assert!(ev.contains("server_only/rejected_ambiguous:1"), "{ev}");
}

#[test]
fn openssl_verifying_server_alert_43_rejects_server_only() {
    let (v, ev, _) = verdict(&["ossl-verify-tls12-openssl-serveronly.pcap"], false);
    assert_eq!(v, Some("requests_rejects_server_only"), "{ev}");
    assert!(ev.contains("alert:unsupported_certificate"), "{ev}");
    // TLS 1.3: the alert is encrypted; with the key log it is read.
    let (v, ev, _) = verdict(&["ossl-verify-tls13-openssl-serveronly.pcap"], true);
    assert_eq!(v, Some("requests_rejects_server_only"), "{ev}");
    let (v, ev, _) = verdict(&["rustls-require-tls13-openssl-serveronly.pcap"], true);
    assert_eq!(v, Some("requests_rejects_server_only"), "{ev}");
}

#[test]
fn servers_that_accept_server_only() {
    // Postfix ask_ccert logs "Untrusted" but carries the mail.
    let (v, ev, _) = verdict(&["pf-askccert-tls12-openssl-serveronly.pcap"], false);
    assert_eq!(v, Some("requests_accepts_server_only"), "{ev}");
    // Postfix TLS 1.3 with keys: the decrypted chain is serverAuth-only and DATA got 354.
    let (v, ev, _) = verdict(&["pf-askccert-tls13-openssl-serveronly.pcap"], true);
    assert_eq!(v, Some("requests_accepts_server_only"), "{ev}");
    // Without keys the chain's EKU is not visible: untested, never a guess.
    let (v, ev, _) = verdict(&["pf-askccert-tls13-openssl-serveronly.pcap"], false);
    assert_eq!(v, Some("requests_untested"), "{ev}");
}

#[test]
fn no_request_untested_and_no_cert_ok() {
    let (v, _, _) = verdict(&["pf-noask-tls12-openssl-nocert.pcap"], false);
    assert_eq!(v, Some("no_request"));
    let (v, _, _) = verdict(&["pf-noask-tls13-openssl-nocert.pcap"], false);
    assert_eq!(v, Some("no_request"), "inferred from record lengths");
    let (v, ev, _) = verdict(&["pf-askccert-tls12-openssl-both.pcap"], false);
    assert_eq!(
        v,
        Some("requests_untested"),
        "only a dual-EKU certificate seen: at risk; {ev}"
    );
    let (v, ev, _) = verdict(&["pf-askccert-tls12-openssl-nocert.pcap"], false);
    assert_eq!(v, Some("requests_no_cert_ok"), "{ev}");
}
