//! Per-peer verdicts on real captures: each server configuration gets the verdict it implies, with
//! the evidence named. Our side is the client (127.0.0.2 for OpenSSL/swaks/rustls clients; gnutls-cli
//! cannot bind, so those captures are analysed with the client side unknown-direction = ours).
//! The `pf-mail-*` / `exim-mail-*` captures carry mail after STARTTLS; what the server did with each
//! message is in `captures/expected/<name>.truth.json`, derived from the server's own log.

mod common;
use common::*;
use ekuwatch::flow::FlowConfig;
use ekuwatch::peers::{PeerBook, PeerStats};
use ekuwatch::pipeline::Pipeline;

fn verdict(files: &[&str], keys: bool) -> (Option<&'static str>, String, String) {
    let p = peer(files, keys);
    (p.verdict(), p.verdict_evidence(), p.direction.to_string())
}

/// The one peer of these captures (with their key logs when `keys`).
fn peer(files: &[&str], keys: bool) -> PeerStats {
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
    peers[0].clone()
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

/// What the server's log says became of each transaction (captures/expected/<name>.truth.json).
fn truth(name: &str) -> (bool, Vec<String>) {
    let t: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(captures().join(format!("expected/{name}.truth.json"))).unwrap(),
    )
    .unwrap();
    (
        t["ehlo_refused"].as_bool().unwrap(),
        t["transactions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["result"].as_str().unwrap().to_string())
            .collect(),
    )
}

fn server_log(name: &str) -> String {
    std::fs::read_to_string(captures().join(format!("logs/{name}.postfix.log"))).unwrap()
}

const RCPT_REFUSED: &str = "pf-mail-rcptreject-tls12-py-serveronly";
const DELIVERED_DUAL: &str = "pf-mail-delivered-tls12-py-both";

#[test]
fn postfix_refusing_rcpt_with_5_7_1_after_server_only_rejects_it() {
    // Postfix (service mailtls: permit_tls_all_clientcerts) found our serverAuth-only certificate
    // untrusted — OpenSSL's client purpose check — and refused the recipient with 554 5.7.1; it took
    // the message sent after our dual-EKU certificate from the same lab CA.
    assert_eq!(
        truth(RCPT_REFUSED),
        (false, vec!["rejected_rcpt".to_string()])
    );
    assert!(server_log(RCPT_REFUSED).contains("Untrusted TLS connection established"));
    assert!(server_log(RCPT_REFUSED).contains("RCPT from unknown[127.0.0.2]: 554 5.7.1"));
    assert_eq!(
        truth(DELIVERED_DUAL),
        (false, vec!["delivered".to_string()])
    );
    let files = [
        &format!("{RCPT_REFUSED}.pcap")[..],
        &format!("{DELIVERED_DUAL}.pcap")[..],
    ];
    // With keys: the refusal's stage and enhanced status code are read.
    let p = peer(&files, true);
    assert_eq!(p.verdict(), Some("requests_rejects_server_only"));
    let ev = p.verdict_evidence();
    assert!(ev.contains("server_only/rejected_eku:1"), "{ev}");
    assert!(ev.contains("rejected_rcpt(security_policy):1"), "{ev}");
    assert_eq!(p.rejection_stages.get("rcpt"), Some(&1));
    let why = p.explanation().unwrap();
    assert!(
        why.contains("refused 1 of 1 message at RCPT (security_policy) after our serverAuth-only certificate; it delivered 1 message after a certificate with clientAuth"),
        "{why}"
    );
    // Without keys (TLS 1.2: the certificate is in the clear, the refusal is inferred): nothing
    // went through after serverAuth-only, so the refusal counts.
    let p = peer(&files, false);
    assert_eq!(
        p.verdict(),
        Some("requests_rejects_server_only"),
        "{}",
        p.verdict_evidence()
    );
    assert_eq!(p.rejection_stages.get("before_data"), Some(&1));
    // Alone, the refusal of a private chain may be trust: at risk, not yet "rejects".
    let p = peer(&files[..1], true);
    assert_eq!(p.verdict(), Some("requests_untested"));
    assert!(p
        .verdict_evidence()
        .contains("server_only/rejected_ambiguous:1"));
}

#[test]
fn postfix_refusing_mail_by_certificate_rejects_server_only() {
    // Service ccertaccess: check_ccert_access maps our certificates' fingerprints to REJECT, so MAIL
    // is refused with 554 5.7.1 "Client certificate rejected".
    let name = "pf-mail-ccertaccess-tls12-py-serveronly";
    assert_eq!(truth(name), (false, vec!["rejected_mail".to_string()]));
    assert!(server_log(name).contains("MAIL from unknown[127.0.0.2]: 554 5.7.1"));
    let p = peer(
        &[&format!("{name}.pcap"), &format!("{DELIVERED_DUAL}.pcap")],
        true,
    );
    assert_eq!(p.verdict(), Some("requests_rejects_server_only"));
    assert_eq!(p.rejection_stages.get("mail"), Some(&1));
    assert!(p
        .explanation()
        .unwrap()
        .contains("refused 1 of 1 message at MAIL (security_policy)"));
}

#[test]
fn postfix_closing_at_ehlo_after_server_only_rejects_it() {
    // req_ccert: "not designated for use as a client certificate", 421 to the EHLO after TLS.
    let name = "pf-mail-reqccert-tls12-py-serveronly";
    assert_eq!(truth(name), (true, vec![]));
    for keys in [true, false] {
        let p = peer(
            &[&format!("{name}.pcap"), &format!("{DELIVERED_DUAL}.pcap")],
            keys,
        );
        assert_eq!(
            p.verdict(),
            Some("requests_rejects_server_only"),
            "keys: {keys}"
        );
        assert_eq!(p.rejection_stages.get("ehlo"), Some(&1));
        assert_eq!(p.mail_by_class["server_only"].refused_at_ehlo, 1);
    }
}

#[test]
fn a_refused_recipient_is_not_a_refused_certificate() {
    // Four transactions after our dual-EKU certificate: one RCPT refused 550 5.1.1 (User unknown),
    // counted apart; two delivered.
    let name = "pf-mail-multipipe-tls12-py-both";
    assert_eq!(
        truth(name).1,
        [
            "delivered",
            "rejected_after_data",
            "rejected_rcpt",
            "delivered"
        ]
    );
    assert!(server_log(name).contains("550 5.1.1 <nobody@lab.test>"));
    let p = peer(&[&format!("{name}.pcap")], true);
    let a = p.resolved_answers();
    assert_eq!(
        a.get("server_and_client/recipient_refused"),
        Some(&1),
        "{a:?}"
    );
    assert_eq!(a.get("server_and_client/accepted"), Some(&2), "{a:?}");
    assert_eq!(p.recipient_refusals, 1);
    let m = &p.mail_by_class["server_and_client"];
    assert_eq!((m.messages, m.delivered, m.rejected), (4, 2, 2));
    assert_eq!(m.stages.get("rcpt"), Some(&1));
    assert_eq!(m.stages.get("after_data"), Some(&1));
}

#[test]
fn delivered_mail_outweighs_a_refusal_seen_without_keys() {
    // The same peer (lab.test) took a message after our serverAuth-only certificate on its
    // ask_ccert service. Without keys the mailtls refusal is only "refused before data" — it could
    // be a recipient — so the delivered mail outweighs it; with keys the 554 5.7.1 is read and
    // counts against the certificate.
    let files = [
        &format!("{RCPT_REFUSED}.pcap")[..],
        "pf-askccert-tls12-openssl-serveronly.pcap",
    ];
    let p = peer(&files, false);
    assert_eq!(
        p.verdict(),
        Some("requests_accepts_server_only"),
        "{}",
        p.verdict_evidence()
    );
    assert_eq!(p.outweighed_refusals().get("server_only"), Some(&1));
    let p = peer(&files, true);
    assert_eq!(
        p.verdict(),
        Some("requests_rejects_server_only"),
        "{}",
        p.verdict_evidence()
    );
}

#[test]
fn exim_delivers_after_server_only() {
    // Exim (GnuTLS, which does not check the client EKU) verifies our certificate at RCPT and takes
    // the message.
    let name = "exim-mail-rcptverify-tls13-py-serveronly";
    assert_eq!(truth(name), (false, vec!["delivered".to_string()]));
    let p = peer(&[&format!("{name}.pcap")], true);
    assert_eq!(p.verdict(), Some("requests_accepts_server_only"));
    assert!(p
        .explanation()
        .unwrap()
        .contains("delivered 1 of 1 message after our serverAuth-only certificate"));
    // TLS 1.3 without keys: the chain's EKU is not visible, so no guess.
    let p = peer(&[&format!("{name}.pcap")], false);
    assert_eq!(p.verdict(), Some("requests_untested"));
}
