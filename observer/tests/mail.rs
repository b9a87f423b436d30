//! What happened to the mail, measured (issue 14):
//! 1. keyless inference against decryption: every SMTP capture with a key log is analysed without
//!    keys (transactions inferred from record sizes) and with keys (the decrypted dialogue). Per
//!    transaction the inference must not contradict the decryption, must answer (≥ 98 %), and the
//!    refusal at EHLO must agree. What cannot be seen without keys (docs/inference.md) is listed
//!    apart, not counted as answered: a refusal *after* the body (inferred `delivered`), and a
//!    transaction the client abandoned (inferred `rejected_before_data`).
//! 2. the decrypted reply codes against tshark given the same key log
//!    (`captures/expected/<name>.tshark-smtp.jsonl`, written by captures/make-expected.sh).
//! 3. the transactions against the truth taken from the server's own log
//!    (`captures/expected/<name>.truth.json`, captures/README.md).
//!
//! Prints the confusion matrix (docs/inference.md quotes it).

mod common;
use common::*;
use serde_json::Value;
use std::collections::BTreeMap;

/// Decrypted / inferred pairs that keys alone can tell apart (docs/inference.md).
fn blind(truth: &str, guess: &str) -> bool {
    matches!(
        (truth, guess),
        ("rejected_after_data", "delivered") | ("aborted", "rejected_before_data")
    )
}

/// How a decrypted result and an inferred one relate.
fn agrees(truth: &str, guess: &str) -> Option<bool> {
    match (truth, guess) {
        (_, "unknown") => None,
        (t, g) if t == g => Some(true),
        ("rejected_mail" | "rejected_rcpt" | "rejected_data", "rejected_before_data") => Some(true),
        _ => Some(false),
    }
}

fn results(m: &Value) -> Vec<String> {
    m["transactions"]
        .as_array()
        .map(|ts| {
            ts.iter()
                .map(|t| t["result"].as_str().unwrap_or("?").to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn mail_inference_agrees_with_decryption() {
    let mut matrix: BTreeMap<(String, String), u32> = BTreeMap::new();
    let mut failures = Vec::new();
    let (mut total, mut answered, mut sessions) = (0u32, 0u32, 0u32);
    let mut blind_spots = Vec::new();
    for f in pcaps_in(&captures()) {
        if !f.with_extension("keylog").exists() {
            continue;
        }
        let name = f.file_stem().unwrap().to_string_lossy().to_string();
        if name.starts_with("synthetic-") {
            continue; // hand-built records of no real stack (tests/inference.rs: stack "other")
        }
        let plain = analyze(&f);
        let keyed = analyze_with_keys(&f);
        assert_eq!(plain.len(), keyed.len(), "{name}");
        for (p, k) in plain.iter().zip(&keyed) {
            let (pm, km) = (&p["mail"], &k["mail"]);
            if km.is_null() || km["evidence"] != "decrypted" {
                continue;
            }
            sessions += 1;
            if pm["evidence"] != "inferred" {
                failures.push(format!(
                    "{name}: without keys the mail is {}",
                    pm["evidence"]
                ));
                continue;
            }
            let (tr, gr) = (results(km), results(pm));
            if (km["rejection_stage"] == "ehlo") != (pm["rejection_stage"] == "ehlo") {
                failures.push(format!(
                    "{name}: refusal at EHLO: decrypted {} inferred {}",
                    km["rejection_stage"], pm["rejection_stage"]
                ));
            }
            if tr.len() != gr.len() {
                failures.push(format!(
                    "{name}: decrypted transactions {tr:?}, inferred {gr:?}"
                ));
            }
            for i in 0..tr.len().max(gr.len()) {
                let t = tr.get(i).map_or("none", String::as_str);
                let g = gr.get(i).map_or("none", String::as_str);
                *matrix.entry((t.to_string(), g.to_string())).or_default() += 1;
                if t == "none" {
                    continue;
                }
                if blind(t, g) {
                    blind_spots.push(format!("{name}: {t} → {g}"));
                    continue;
                }
                total += 1;
                match agrees(t, g) {
                    None => {}
                    Some(true) => answered += 1,
                    Some(false) => {
                        answered += 1;
                        failures.push(format!(
                            "{name}: transaction {i}: inferred {g} but decrypted {t}"
                        ))
                    }
                }
            }
        }
    }
    eprintln!("| decrypted | inferred | transactions |\n|---|---|---|");
    for ((t, g), n) in &matrix {
        eprintln!("| {t} | {g} | {n} |");
    }
    eprintln!(
        "{sessions} sessions, {total} transactions visible without keys, {answered} answered \
         ({:.1} %); {} invisible without keys:\n{}",
        100.0 * f64::from(answered) / f64::from(total.max(1)),
        blind_spots.len(),
        blind_spots.join("\n")
    );
    assert!(sessions >= 20, "only {sessions} keyed SMTP sessions");
    assert!(total >= 20, "only {total} transactions");
    assert!(
        f64::from(answered) >= 0.98 * f64::from(total),
        "inference answered {answered} of {total}"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The final reply codes of the decrypted dialogue, in order, as ekuwatch has them: EHLO, per
/// transaction MAIL, RCPT…, DATA / BDAT…, the reply after the body, then RSET… and QUIT. (RSET
/// replies are compared as a multiset: ekuwatch counts them per session, not in place.)
fn our_codes(m: &Value) -> (Vec<u64>, Vec<u64>) {
    let mut v = Vec::new();
    let mut rset = Vec::new();
    v.extend(m["ehlo_reply"].as_u64());
    for t in m["transactions"].as_array().into_iter().flatten() {
        v.extend(t["mail"].as_u64());
        for c in t["rcpt"]["codes"].as_array().into_iter().flatten() {
            v.extend(c.as_u64());
        }
        v.extend(t["data"].as_u64());
        let bdat: Vec<u64> = t["bdat"]["codes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_u64)
            .collect();
        v.extend(&bdat);
        if bdat.is_empty() {
            v.extend(t["after_body"].as_u64());
        }
    }
    for c in m["rset"]["codes"].as_array().into_iter().flatten() {
        rset.extend(c.as_u64());
    }
    v.extend(m["quit"].as_u64());
    (v, rset)
}

#[test]
fn decrypted_replies_agree_with_tshark() {
    let mut compared = 0;
    let mut failures = Vec::new();
    let mut unpaired = Vec::new();
    for f in pcaps_in(&captures()) {
        let name = f.file_stem().unwrap().to_string_lossy().to_string();
        let oracle = captures()
            .join("expected")
            .join(format!("{name}.tshark-smtp.jsonl"));
        if !oracle.exists() {
            continue;
        }
        let want = read_jsonl(&oracle);
        let ours = if f.with_extension("keylog").exists() {
            analyze_with_keys(&f)
        } else {
            analyze(&f)
        };
        for o in &want {
            let Some(e) = ours.iter().find(|e| endpoint(&e["client"]) == o["client"]) else {
                failures.push(format!("{name}: no event for {}", o["client"]));
                continue;
            };
            if e["mail"]["evidence"] != "decrypted" && e["mail"]["evidence"] != "plaintext" {
                continue; // (not SMTP after TLS, or not decrypted: tls tests cover that)
            }
            // tshark's dialogue after STARTTLS (replies: the banner, then one per command, and
            // the reply after the body after a 354), RSET replies apart
            let cmds: Vec<&str> = o["commands"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let codes: Vec<u64> = o["replies"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_u64).collect())
                .unwrap_or_default();
            if cmds.contains(&"?") {
                // CR CR LF lines (gnutls-cli --crlf fed CRLF): tshark makes commands of the empty
                // lines and cannot pair replies with them reliably
                unpaired.push(format!("{name} {}", o["client"]));
                continue;
            }
            let (mine, rset) = our_codes(&e["mail"]);
            let (mut theirs, mut their_rset) = (Vec::new(), Vec::new());
            let mut replies = codes.iter().skip(1); // the banner
            let after_tls = cmds.iter().position(|c| *c == "STARTTLS");
            for (i, c) in cmds.iter().enumerate() {
                let Some(&r) = replies.next() else { break };
                if after_tls.is_some_and(|t| i <= t) && e["mail"]["evidence"] == "decrypted" {
                    continue; // before TLS
                }
                if *c == "STARTTLS" {
                    continue; // refused (454): the session went on in plaintext
                }
                if *c == "RSET" {
                    their_rset.push(r);
                    continue;
                }
                theirs.push(r);
                if *c == "DATA" && r == 354 {
                    if let Some(&after) = replies.next() {
                        theirs.push(after);
                    }
                }
            }
            compared += 1;
            if mine != theirs || rset != their_rset {
                failures.push(format!(
                    "{name} {}: ekuwatch {mine:?} (RSET {rset:?}), tshark {theirs:?} (RSET \
                     {their_rset:?}; commands {cmds:?})",
                    o["client"]
                ));
            }
        }
    }
    eprintln!(
        "{compared} decrypted or plaintext SMTP dialogues compared with tshark; not compared \
         (tshark pairs no replies with CR CR LF lines): {unpaired:?}"
    );
    assert!(unpaired.len() <= 6, "{unpaired:?}");
    if compared == 0 {
        skip_or_fail("no captures/expected/*.tshark-smtp.jsonl (captures/make-expected.sh)");
        return;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The transactions of every capture with a truth file (from the server's log) match it: with keys
/// exactly, without keys as far as inference can tell.
#[test]
fn transactions_match_the_servers_log() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for f in pcaps_in(&captures()) {
        let name = f.file_stem().unwrap().to_string_lossy().to_string();
        let truth_path = captures()
            .join("expected")
            .join(format!("{name}.truth.json"));
        let Ok(text) = std::fs::read_to_string(&truth_path) else {
            continue;
        };
        let truth: Value = serde_json::from_str(&text).unwrap();
        let want: Vec<String> = truth["transactions"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|t| t["result"].as_str().unwrap_or("?").to_string())
                    .collect()
            })
            .unwrap_or_default();
        let keyed = f.with_extension("keylog").exists();
        let runs: Vec<(&str, Vec<Value>)> = if keyed {
            vec![
                ("decrypted", analyze_with_keys(&f)),
                ("inferred", analyze(&f)),
            ]
        } else {
            vec![("inferred", analyze(&f))]
        };
        for (how, events) in runs {
            let got: Vec<String> = events
                .iter()
                .filter(|e| !e["mail"].is_null())
                .flat_map(|e| results(&e["mail"]))
                .collect();
            checked += 1;
            let ok = got.len() == want.len()
                && got.iter().zip(&want).all(|(g, w)| {
                    if how == "decrypted" {
                        g == w
                    } else {
                        agrees(w, g) == Some(true) || blind(w, g)
                    }
                });
            if !ok {
                failures.push(format!(
                    "{name} ({how}): got {got:?}, server log says {want:?}"
                ));
            }
            if truth["ehlo_refused"] == true {
                let refused = events
                    .iter()
                    .any(|e| e["mail"]["rejection_stage"] == "ehlo");
                if !refused {
                    failures.push(format!("{name} ({how}): the server refused at EHLO"));
                }
            }
        }
    }
    eprintln!("{checked} analyses checked against the servers' logs");
    if checked == 0 {
        skip_or_fail("no captures/expected/*.truth.json");
        return;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
