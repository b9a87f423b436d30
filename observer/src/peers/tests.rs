//! Each verdict rule on real events with constructed mail facts.

use super::*;

use crate::flow::FlowConfig;
use crate::pipeline::Pipeline;
use crate::smtp::mail::{Codes, MailEvidence, MailFacts, StatusSubject, Transaction, TxResult};

/// The one session event of a bundled capture (our side 127.0.0.2, so outbound), no keys.
fn event(name: &str) -> SessionEvent {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../captures")
        .join(name);
    let mut p = Pipeline::new(FlowConfig {
        local_nets: vec!["127.0.0.2/32".parse().unwrap()],
        ..Default::default()
    });
    p.read_file(&path, |_, _| {}).unwrap();
    p.finish();
    let mut evs = p.take_events();
    assert_eq!(evs.len(), 1, "{name}");
    evs.remove(0)
}

/// Postfix ask_ccert, TLS 1.2: our serverAuth-only certificate (Lab Root CA, private) under a
/// CertificateRequest, established (Postfix queued the message: captures/logs).
fn server_only() -> SessionEvent {
    let ev = event("pf-askccert-tls12-openssl-serveronly.pcap");
    let t = ev.tls.as_ref().unwrap();
    assert_eq!(t.certificate_request.present, Some(true));
    assert_eq!(client_eku_label(Some(t)), "server_only");
    ev
}

/// The same server, our certificate with serverAuth and clientAuth from the same lab PKI.
fn dual() -> SessionEvent {
    let ev = event("pf-askccert-tls12-openssl-both.pcap");
    assert_eq!(client_eku_label(ev.tls.as_ref()), "server_and_client");
    ev
}

fn tx(evidence: MailEvidence, result: TxResult, subject: Option<StatusSubject>) -> Transaction {
    let mut t = Transaction::new(evidence);
    t.result = result;
    t.refusal_subject = subject;
    if evidence != MailEvidence::Inferred {
        t.mail = Some(250);
        let refused = result == TxResult::RejectedRcpt;
        t.rcpt = Some(Codes {
            codes: vec![if refused { 550 } else { 250 }],
            count: 1,
        });
        t.rcpt_accepted = Some(u32::from(!refused));
        t.rcpt_rejected = Some(u32::from(refused));
    }
    t
}

fn with_mail(mut ev: SessionEvent, evidence: MailEvidence, txs: Vec<Transaction>) -> SessionEvent {
    let mut m = MailFacts::new(evidence);
    m.ehlo_accepted = Some(true);
    for t in txs {
        m.push(t);
    }
    ev.mail = Some(m);
    ev
}

fn book(evs: &[SessionEvent]) -> PeerStats {
    let mut b = PeerBook::default();
    for ev in evs {
        b.add(ev);
    }
    let peers = b.peers();
    assert_eq!(peers.len(), 1);
    peers[0].clone()
}

const DEC: MailEvidence = MailEvidence::Decrypted;
const INF: MailEvidence = MailEvidence::Inferred;

#[test]
fn policy_refusal_at_rcpt_after_server_only_is_a_rejection() {
    // 5.7.1 at RCPT after serverAuth-only; the same peer delivered after our dual-EKU
    // certificate from the same CA: it trusts the CA, so the refusal is about the EKU.
    let refused = tx(
        DEC,
        TxResult::RejectedRcpt,
        Some(StatusSubject::SecurityPolicy),
    );
    let p = book(&[
        with_mail(
            server_only(),
            DEC,
            vec![refused.clone(), refused.clone(), refused],
        ),
        with_mail(dual(), DEC, vec![tx(DEC, TxResult::Delivered, None)]),
    ]);
    assert_eq!(p.verdict(), Some("requests_rejects_server_only"));
    let a = p.resolved_answers();
    assert_eq!(a.get("server_only/rejected_eku"), Some(&3), "{a:?}");
    assert_eq!(a.get("server_and_client/accepted"), Some(&1));
    let so = &p.mail_by_class["server_only"];
    assert_eq!((so.messages, so.rejected, so.delivered), (3, 3, 0));
    assert_eq!(so.stages.get("rcpt"), Some(&3));
    assert_eq!(p.rejection_stages.get("rcpt"), Some(&3));
    let e = p.explanation().unwrap();
    assert!(
        e.contains("refused 3 of 3 messages at RCPT (security_policy) after our serverAuth-only certificate"),
        "{e}"
    );
    assert!(
        e.contains("it delivered 1 message after a certificate with clientAuth"),
        "{e}"
    );
    assert!(p
        .verdict_evidence()
        .contains("rejected_rcpt(security_policy):3"));
}

#[test]
fn refused_recipient_is_not_a_refused_certificate() {
    // 5.1.1 (addressing) and 5.2.2 (mailbox) after serverAuth-only: counted apart.
    let p = book(&[with_mail(
        server_only(),
        DEC,
        vec![
            tx(DEC, TxResult::RejectedRcpt, Some(StatusSubject::Addressing)),
            tx(DEC, TxResult::RejectedRcpt, Some(StatusSubject::Mailbox)),
            tx(DEC, TxResult::Delivered, None),
        ],
    )]);
    assert_eq!(p.verdict(), Some("requests_accepts_server_only"));
    let a = p.resolved_answers();
    assert_eq!(a.get("server_only/recipient_refused"), Some(&2), "{a:?}");
    assert!(!a.keys().any(|k| k.contains("rejected")), "{a:?}");
    assert_eq!(p.recipient_refusals, 2);
    assert_eq!(p.mail_by_class["server_only"].certificate_refusals(), 0);
    let e = p.explanation().unwrap();
    assert!(
        e.contains("delivered 1 of 3 messages after our serverAuth-only certificate")
            && e.contains("refused 2 messages for a recipient or mailbox (not counted against the certificate)"),
        "{e}"
    );
    // Recipient refusals alone prove nothing either way: untested, not "rejects".
    let p = book(&[with_mail(
        server_only(),
        DEC,
        vec![tx(
            DEC,
            TxResult::RejectedRcpt,
            Some(StatusSubject::Addressing),
        )],
    )]);
    assert_eq!(p.verdict(), Some("requests_untested"));
    // Plaintext evidence is exact too.
    let p = book(&[with_mail(
        server_only(),
        MailEvidence::Plaintext,
        vec![tx(
            MailEvidence::Plaintext,
            TxResult::RejectedMail,
            Some(StatusSubject::Mailbox),
        )],
    )]);
    assert_eq!(
        p.resolved_answers().get("server_only/recipient_refused"),
        Some(&1)
    );
}

#[test]
fn delivered_mail_outweighs_refusals_seen_without_keys() {
    // Without keys a refusal before data may be about a recipient: mail delivered after the
    // same class (same peer, another session) outweighs it.
    let p = book(&[
        with_mail(
            server_only(),
            INF,
            vec![tx(INF, TxResult::RejectedBeforeData, None)],
        ),
        with_mail(server_only(), INF, vec![tx(INF, TxResult::Delivered, None)]),
    ]);
    assert_eq!(p.verdict(), Some("requests_accepts_server_only"));
    assert_eq!(p.outweighed_refusals().get("server_only"), Some(&1));
    assert!(p
        .verdict_evidence()
        .contains("outweighed by delivered mail: server_only:1"));
    let e = p.explanation().unwrap();
    assert!(
        e.contains("refused 1 message seen without keys, outweighed by delivered mail"),
        "{e}"
    );
    let so = &p.mail_by_class["server_only"];
    assert_eq!((so.inferred_refusals, so.rejected, so.delivered), (1, 1, 1));
    // Mail delivered after another class does not outweigh it: with nothing through after
    // serverAuth-only, the refusal counts (and the accepted CA makes it an EKU refusal).
    let p = book(&[
        with_mail(
            server_only(),
            INF,
            vec![tx(INF, TxResult::RejectedBeforeData, None)],
        ),
        with_mail(dual(), INF, vec![tx(INF, TxResult::Delivered, None)]),
    ]);
    assert_eq!(p.verdict(), Some("requests_rejects_server_only"));
    assert_eq!(
        p.resolved_answers().get("server_only/rejected_eku"),
        Some(&1)
    );
    let e = p.explanation().unwrap();
    assert!(
        e.contains("refused 1 of 1 message at MAIL/RCPT/DATA"),
        "{e}"
    );
    // Alone, with a private CA nobody accepted: ambiguous (trust or EKU), so untested.
    let p = book(&[with_mail(
        server_only(),
        INF,
        vec![tx(INF, TxResult::RejectedBeforeData, None)],
    )]);
    assert_eq!(p.verdict(), Some("requests_untested"));
    assert_eq!(
        p.resolved_answers().get("server_only/rejected_ambiguous"),
        Some(&1)
    );
}

#[test]
fn refused_at_ehlo_is_a_rejection_and_a_stage() {
    // The EHLO after TLS refused (the session stays up): no message could be sent.
    let mut refused = with_mail(server_only(), INF, vec![]);
    refused.mail.as_mut().unwrap().refused_at_ehlo();
    let p = book(&[
        refused,
        with_mail(dual(), INF, vec![tx(INF, TxResult::Delivered, None)]),
    ]);
    assert_eq!(p.verdict(), Some("requests_rejects_server_only"));
    assert_eq!(p.rejection_stages.get("ehlo"), Some(&1));
    assert_eq!(p.mail_by_class["server_only"].refused_at_ehlo, 1);
    let e = p.explanation().unwrap();
    assert!(e.contains("closed 1 session at EHLO"), "{e}");
}

#[test]
fn a_session_without_a_message_proves_nothing() {
    // Established, EHLO accepted, QUIT: no message went through after serverAuth-only.
    let p = book(&[with_mail(server_only(), DEC, vec![])]);
    assert_eq!(p.verdict(), Some("requests_untested"));
    assert_eq!(p.resolved_answers().get("server_only/no_message"), Some(&1));
    // An aborted transaction is no delivery either.
    let p = book(&[with_mail(
        server_only(),
        DEC,
        vec![tx(DEC, TxResult::Aborted, None)],
    )]);
    assert_eq!(p.verdict(), Some("requests_untested"));
    assert_eq!(p.mail_by_class["server_only"].other, 1);
}

#[test]
fn messages_and_the_per_message_cr_rate() {
    // The same peer: a plaintext session (no TLS: met no CertificateRequest) with one message,
    // a STARTTLS session under a CertificateRequest with three.
    let plain = event("pf-noask-plain-swaks.pcap");
    assert!(plain.tls.is_none());
    assert_eq!(cr_label(&plain), "no_tls");
    let d = || tx(DEC, TxResult::Delivered, None);
    let p = book(&[plain, with_mail(dual(), DEC, vec![d(), d(), d()])]);
    assert_eq!(p.messages, 4);
    assert_eq!((p.messages_with_cr, p.messages_cr_known), (3, 4));
    assert_eq!(p.cr_rate_per_message(), Some(0.75));
    assert_eq!(p.messages_delivered, 4);
    assert_eq!(p.message_results.get("delivered"), Some(&4));
}

#[test]
fn transactions_beyond_the_list_are_counted() {
    let mut m = MailFacts::new(INF);
    for _ in 0..crate::smtp::mail::MAX_TRANSACTIONS + 4 {
        m.push(tx(INF, TxResult::Delivered, None));
    }
    m.push(tx(INF, TxResult::RejectedBeforeData, None));
    let all: Vec<Message> = messages(&m).collect();
    assert_eq!(all.len(), crate::smtp::mail::MAX_TRANSACTIONS + 5);
    assert_eq!(
        all.iter()
            .filter(|x| x.result == TxResult::RejectedBeforeData)
            .count(),
        1
    );
}

#[test]
fn registered_domains() {
    assert_eq!(registered_domain("mx1.mail.example.co.uk"), "example.co.uk");
    assert_eq!(
        registered_domain("gmail-smtp-in.l.google.com."),
        "google.com"
    );
    assert_eq!(registered_domain("192.0.2.1"), "192.0.2.1");
    assert_eq!(registered_domain("MX.Lab.Test"), "lab.test");
}
