//! The rules of docs/inference.md on hand-made record-length sequences.

use super::*;

const AES128: Option<u16> = Some(0x1301);

fn flight(lens: &[u16], server_flight: u8) -> Inferred {
    let mut f = Flights::default();
    for _ in 0..server_flight {
        f.count(false, 100, AES128);
    }
    for &l in lens {
        f.count(true, l, AES128);
        f.client_record(l, AES128, false);
    }
    f.server_record(200, AES128, false);
    f.infer(false, AES128)
}

/// The rules table of docs/inference.md, row by row.
#[test]
fn rules_table() {
    assert_eq!(flight(&[53], 4).0, Some(false));
    assert_eq!(flight(&[25, 53], 5).1, CertStatus::Empty);
    assert_eq!(flight(&[61], 1).1, CertStatus::Empty);
    assert_eq!(flight(&[900], 1).1, CertStatus::Presented);
    // (a CertificateVerify record is at least 89 bytes: 96 is an ECDSA P-256 one)
    assert_eq!(
        flight(&[700, 96, 53], 5),
        (
            Some(true),
            CertStatus::Presented,
            Some(675),
            Evidence::Inferred
        )
    );
    assert_eq!(Flights::default().infer(true, AES128).0, Some(false));
    assert_eq!(flight(&[30, 40], 5), UNKNOWN);
    // cross-check with the server's flight
    assert_eq!(flight(&[53], 5), UNKNOWN);
    assert_eq!(flight(&[25, 53], 4), UNKNOWN);
}

const AES256: Option<u16> = Some(0x1302);

/// Padded flights (SunJSSE adds 16 bytes to every record): docs/inference.md, "Padding".
#[test]
fn padded_flights() {
    let padded = |lens: &[u16], server_flight: u8| {
        let mut f = Flights::default();
        for _ in 0..server_flight {
            f.count(false, 100, AES256);
        }
        for &l in lens {
            f.count(true, l, AES256);
            f.client_record(l, AES256, false);
        }
        f.server_record(250, AES256, false);
        (f.infer(false, AES256), f.pad(true, AES256))
    };
    // no CR: the server's one-message-per-record flight of 4 says so; the Finished is 69 + 16
    assert_eq!(
        padded(&[85], 4),
        (
            (Some(false), CertStatus::Absent, None, Evidence::Inferred),
            16
        )
    );
    assert_eq!(
        padded(&[85], 1).0,
        UNKNOWN,
        "a coalescing server says nothing"
    );
    // empty Certificate and Finished: 25 + 16, 69 + 16
    assert_eq!(padded(&[41, 85], 5).0 .1, CertStatus::Empty);
    // Certificate, CertificateVerify, Finished, each + 16: the chain is 1010 - 25 - 16
    assert_eq!(
        padded(&[1010, 112, 85], 5),
        (
            (
                Some(true),
                CertStatus::Presented,
                Some(969),
                Evidence::Inferred
            ),
            16
        )
    );
    assert_eq!(padded(&[1010, 112, 85 + MAX_PAD + 1], 5).0, UNKNOWN);
}

/// Go sends its NewSessionTicket after the client's CertificateVerify and before its
/// Finished, and its alert right after an empty Certificate.
#[test]
fn server_records_inside_the_client_flight() {
    let mut f = Flights::default();
    for _ in 0..5 {
        f.count(false, 100, AES128);
    }
    for l in [1010, 112] {
        f.count(true, l, AES128);
        assert_eq!(f.client_record(l, AES128, false), ClientRecord::Flight);
    }
    assert_eq!(f.server_record(1116, AES128, false), ServerRecord::Flight);
    assert!(!f.client_flight_over());
    f.count(true, 69, AES128);
    assert_eq!(f.client_record(69, AES128, false), ClientRecord::Flight);
    assert!(f.client_flight_over());
    assert_eq!(f.infer(false, AES128).1, CertStatus::Presented);
    assert_eq!(
        f.client_record(52, AES128, false),
        ClientRecord::Application
    );
    assert_eq!(f.client_record(35, AES128, false), ClientRecord::Alert);

    let mut f = Flights::default();
    for _ in 0..5 {
        f.count(false, 100, AES128);
    }
    f.count(true, 41, AES128);
    f.client_record(41, AES128, false);
    assert_eq!(f.server_record(19, AES128, false), ServerRecord::Alert);
    assert!(!f.client_flight_over());
    assert_eq!(f.infer(false, AES128).1, CertStatus::Empty, "cut short");
}

/// Go without client authentication: EE, Certificate, CertificateVerify, Finished and an early
/// NewSessionTicket (RFC 8446 §4.6.1) — 5 records, no CR.
#[test]
fn early_ticket_in_the_server_flight() {
    let with_last = |last: u16, client: &[u16]| {
        let mut f = Flights::default();
        for l in [23, 980, 96, 53, last] {
            f.count(false, l, AES128);
        }
        for &l in client {
            f.count(true, l, AES128);
            f.client_record(l, AES128, false);
        }
        f.server_record(64, AES128, false);
        f.infer(false, AES128).0
    };
    assert_eq!(with_last(147, &[53]), Some(false), "early ticket");
    assert_eq!(
        with_last(53, &[53]),
        None,
        "5 records ending with Finished: a CR"
    );
    assert_eq!(with_last(147, &[69]), Some(false), "padded Finished, no CR");
}

/// BoringSSL: a coalesced client flight (Certificate + CertificateVerify + Finished in one
/// record) and the EHLO written before the server's tickets; a coalescing server (one record).
#[test]
fn application_record_after_a_coalesced_flight() {
    let run = |client: &[u16]| {
        let mut f = Flights::default();
        f.count(false, 1178, AES128);
        let kinds: Vec<ClientRecord> = client
            .iter()
            .map(|&l| {
                f.count(true, l, AES128);
                f.client_record(l, AES128, false)
            })
            .collect();
        f.server_record(2333, AES128, false);
        (kinds, f.infer(false, AES128))
    };
    let (kinds, inferred) = run(&[1108, 36]);
    assert_eq!(kinds, [ClientRecord::Flight, ClientRecord::Application]);
    assert_eq!(
        inferred,
        (Some(true), CertStatus::Presented, None, Evidence::Inferred)
    );
    // 36 bytes can be a Finished (SHA-256: 53) no more than a CertificateVerify (≥ 89): a
    // one-message-per-record Certificate is followed by a CertificateVerify
    let (kinds, inferred) = run(&[1108, 112, 53]);
    assert_eq!(kinds, [ClientRecord::Flight; 3]);
    assert_eq!(inferred.2, Some(1083));
    // a record long enough for a CertificateVerify is not taken for application data
    let (kinds, _) = run(&[1108, 89]);
    assert_eq!(kinds, [ClientRecord::Flight; 2]);
}

/// A padded server (SunJSSE) alerts with 19 + its padding.
#[test]
fn padded_server_alert() {
    let mut f = Flights::default();
    for l in [65, 162, 996, 111, 85] {
        f.count(false, l, AES256);
    }
    f.count(true, 25, AES256);
    f.client_record(25, AES256, false);
    f.count(true, 69, AES256);
    f.client_record(69, AES256, false);
    assert_eq!(f.server_pad(AES256), 16);
    assert_eq!(f.server_record(35, AES256, false), ServerRecord::Alert);
    assert!(!f.complete());
}

#[test]
fn alerts_and_completion() {
    let mut f = Flights::default();
    f.count(true, 53, AES128);
    assert_eq!(f.client_record(53, AES128, false), ClientRecord::Flight);
    assert!(f.client_flight_over() && !f.complete());
    assert_eq!(f.server_record(19, AES128, false), ServerRecord::Alert);
    assert!(!f.complete(), "an alert is not the server accepting");
    assert_eq!(f.server_record(200, AES128, false), ServerRecord::Other);
    assert!(f.complete());
    assert_eq!(f.client_record(19, AES128, false), ClientRecord::Alert);
    assert_eq!(
        f.client_record(30, AES128, false),
        ClientRecord::Application
    );
    assert_eq!(alert_len(Some(0x1305)), 11);
}

/// KeyUpdates (22-byte records, 14 with CCM_8) after the flights are neither application data nor
/// the server speaking; a record one byte longer is (a 6-byte `DATA` CRLF).
#[test]
fn key_updates_after_the_flights() {
    let mut f = Flights::default();
    f.count(true, 53, AES128);
    assert_eq!(f.client_record(53, AES128, false), ClientRecord::Flight);
    assert_eq!(f.client_record(22, AES128, false), ClientRecord::KeyUpdate);
    assert_eq!(f.server_record(22, AES128, false), ServerRecord::KeyUpdate);
    assert!(
        !f.complete(),
        "a server KeyUpdate is no answer to the client"
    );
    assert_eq!(
        f.client_record(23, AES128, false),
        ClientRecord::Application
    );
    assert_eq!(f.server_record(23, AES128, false), ServerRecord::Other);
    assert_eq!(key_update_len(Some(0x1305)), 14);
}

/// Block padding (mbedTLS 3.x: every record's inner plaintext to a multiple of 16): the client's
/// flight [F'] / [32, F'] / [C, V, F'] with F' = 64 for SHA-256 suites; its short records after
/// it are data (a 6-byte DATA is one block like an alert); a block-padded server's one-block
/// record right after the client's flight is its refusal, later ones are replies.
#[test]
fn block_padded_flights() {
    assert_eq!(block_len(9), 32);
    assert_eq!(block_fin(53), 64);
    assert_eq!(block_fin(69), 80);
    assert_eq!(flight(&[64], 4).0, Some(false));
    assert_eq!(flight(&[32, 64], 5).1, CertStatus::Empty);
    let (cr, status, size, _) = flight(&[480, 112, 64], 5);
    assert_eq!((cr, status), (Some(true), CertStatus::Presented));
    assert_eq!(size, Some(480 - 25 - 8));
    // a constant padding is not taken for blocks: [25 + 16, 53 + 16]
    assert_eq!(flight(&[41, 69], 5).1, CertStatus::Empty);

    let mut f = Flights::default();
    for l in [32, 48, 992, 112, 64] {
        f.count(false, l, AES128); // a block-padded server flight with a CR
    }
    for l in [32, 64] {
        f.count(true, l, AES128);
        assert_eq!(f.client_record(l, AES128, false), ClientRecord::Flight);
    }
    assert!(f.block_padded(true, AES128) && f.block_padded(false, AES128));
    assert_eq!(
        f.client_record(32, AES128, false),
        ClientRecord::Application
    );
    assert_eq!(f.server_record(32, AES128, false), ServerRecord::Alert);
    let mut g = Flights::default();
    for l in [32, 48, 992, 112, 64] {
        g.count(false, l, AES128);
    }
    g.count(true, 64, AES128);
    g.client_record(64, AES128, false);
    assert_eq!(g.server_record(48, AES128, false), ServerRecord::Other);
    assert_eq!(g.server_record(32, AES128, false), ServerRecord::Other);
    assert!(!g.key_update_sized(false, 32, AES128));
}
