//! Long-run cardinality: 20 000 distinct peers. The metric series stay within the bound set by
//! `top_peers` (they stop growing once the labelled peers are taken), while the per-peer table
//! (`/peers`, reports) keeps every peer.

mod common;
use common::*;
use ekuwatch::flow::FlowConfig;
use ekuwatch::metrics::Metrics;
use ekuwatch::peers::{peer_name, registered_domain, PeerBook};
use ekuwatch::pipeline::Pipeline;

#[test]
fn series_stay_bounded_while_the_peer_table_keeps_everyone() {
    let mut p = Pipeline::new(FlowConfig::default());
    for f in [
        "pf-askccert-tls12-openssl-serveronly.pcap",
        "pf-reqccert-tls12-openssl-nocert.pcap",
        "pf-noask-tls13-openssl-nocert.pcap",
    ] {
        p.read_file(&captures().join(f), |_, _| {}).unwrap();
    }
    p.finish();
    let templates = p.take_events();
    assert_eq!(templates.len(), 3);
    let mut metrics = Metrics::new(50, ["watched.example".to_string()]);
    let mut book = PeerBook::default();
    let mut series_at_half = 0;
    for i in 0..20_000u32 {
        for (k, t) in templates.iter().enumerate() {
            if k > 0 && i % 7 != 0 {
                continue;
            }
            let mut ev = t.clone();
            let name = if i % 1000 == 0 {
                "mx.watched.example".to_string()
            } else {
                format!("mx{i}.peer{i}.example")
            };
            if let Some(tls) = ev.tls.as_mut() {
                tls.sni = Some(name);
            }
            ev.server.ip = std::net::Ipv4Addr::from(0x0a00_0000 + i).into();
            // `peer` is derived from the rest of the event: made again after changing it
            ev.peer = ekuwatch::peers::session_peer(&ev);
            book.add(&ev);
            metrics.observe(&ev, &registered_domain(&peer_name(&ev)));
        }
        if i % 500 == 0 {
            metrics.set_verdicts(&book);
        }
        if i == 10_000 {
            series_at_half = metrics.series();
        }
    }
    metrics.set_verdicts(&book);
    let series = metrics.series();
    assert!(series <= 2000, "{series} series");
    assert_eq!(
        series, series_at_half,
        "no growth over the second 10 000 peers"
    );
    let text = metrics.render();
    let peers: std::collections::BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.split("peer=\"").nth(1)?.split('"').next())
        .collect();
    assert!(peers.len() <= 50 + 2, "{} peer label values", peers.len());
    assert!(peers.contains("watched.example") && peers.contains("other"));
    assert_eq!(
        book.peers().len(),
        20_000 - 20 + 1,
        "every peer is in the table"
    );
}

/// Inbound clients name themselves (EHLO): 5 000 of them, each coming back, take none of the
/// `top_peers` slots, which stay for the domains our MTAs send to.
#[test]
fn inbound_ehlo_names_cannot_squat_peer_labels() {
    let mut p = Pipeline::new(FlowConfig::default());
    p.read_file(
        &captures().join("pf-reqccert-tls12-openssl-nocert.pcap"),
        |_, _| {},
    )
    .unwrap();
    p.finish();
    let template = p.take_events().remove(0);
    assert!(template.smtp.as_ref().is_some_and(|s| s.helo.is_some()));
    let mut metrics = Metrics::new(10, ["watched.example".to_string()]);
    let inbound = |helo: &str| {
        let mut ev = template.clone();
        ev.direction = ekuwatch::event::Direction::Inbound;
        if let Some(s) = ev.smtp.as_mut() {
            s.helo = Some(helo.to_string());
        }
        ev
    };
    for i in 0..5_000u32 {
        for _ in 0..3 {
            let ev = inbound(&format!("mx.squat{i}.example"));
            assert_eq!(
                registered_domain(&peer_name(&ev)),
                format!("squat{i}.example")
            );
            metrics.observe(&ev, &registered_domain(&peer_name(&ev)));
        }
    }
    let ev = inbound("mx.watched.example");
    metrics.observe(&ev, &registered_domain(&peer_name(&ev)));
    for i in 0..10 {
        let mut ev = template.clone();
        ev.direction = ekuwatch::event::Direction::Outbound;
        if let Some(t) = ev.tls.as_mut() {
            t.sni = Some(format!("mx.dest{i}.example"));
        }
        for _ in 0..2 {
            metrics.observe(&ev, &registered_domain(&peer_name(&ev)));
        }
    }
    let text = metrics.render();
    let peers: std::collections::BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.split("peer=\"").nth(1)?.split('"').next())
        .collect();
    assert!(
        !peers.iter().any(|p| p.starts_with("squat")),
        "an inbound EHLO name got a label: {peers:?}"
    );
    for i in 0..10 {
        assert!(
            peers.contains(format!("dest{i}.example").as_str()),
            "{peers:?}"
        );
    }
    assert!(peers.contains("watched.example") && peers.contains("other"));
    assert_eq!(peers.len(), 10 + 2, "{peers:?}");
}
