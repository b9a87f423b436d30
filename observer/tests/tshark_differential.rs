//! Differential test against tshark (the external oracle): for every capture in `captures/` and
//! every public corpus file, CertificateRequest presence, CA names, client certificate status, chain
//! lengths, leaf EKU OIDs, TLS version, cipher and SNI must agree with what tshark dissects.
//! TLS 1.3 captures are dissected with their key logs, so our *inferred* CR/client-cert facts are
//! checked against tshark's decrypted truth.

mod common;
use common::*;

/// Captures whose server encrypts its refusal alert under the wrong key (mbedTLS 3.6 servers
/// refusing a client certificate; docs/inference.md, "Block padding").
const WRONG_KEY_ALERT: [&str; 2] = [
    "mbedtls-require-tls13-openssl-nocert.",
    "mbedtls-require-tls13-openssl-serveronly.",
];

fn run(files: &[std::path::PathBuf]) -> usize {
    let mut failures = Vec::new();
    let mut total = 0;
    for f in files {
        let keylog = f.with_extension("keylog");
        let keylog = keylog.exists().then_some(keylog);
        let oracle = tshark_oracle(f, keylog.as_deref()).expect("tshark oracle");
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        // Without keys: plaintext facts exactly, inferred TLS 1.3 facts against tshark's decrypted truth.
        let (bad, n) = compare_with_oracle(&analyze(f), &oracle);
        total += n;
        failures.extend(bad.into_iter().map(|b| format!("{name} (no keys): {b}")));
        if keylog.is_some() {
            // With the same key log as tshark: decrypted facts, all of them.
            let ours = analyze_with_keys(f);
            for e in ours.iter().filter(|e| e["tls"]["version"] == "1.3") {
                // mbedTLS as a server sends its refusal alert under its handshake key after its
                // Finished (RFC 8446 §4.4.4 wants the application key): that one record cannot be
                // decrypted (tshark cannot either); the handshake before it must be.
                let wrong_key_alert = WRONG_KEY_ALERT.iter().any(|c| name.starts_with(c))
                    && e["tls"]["decryption"] == "failed";
                if (e["tls"]["decryption"] != "ok" && !wrong_key_alert)
                    || e["tls"]["certificate_request"]["evidence"] != "decrypted"
                {
                    failures.push(format!(
                        "{name}: not decrypted with its key log: {}",
                        e["tls"]["decryption"]
                    ));
                }
            }
            let (bad, n) = compare_with_oracle(&ours, &oracle);
            total += n;
            failures.extend(bad.into_iter().map(|b| format!("{name} (keys): {b}")));
        }
    }
    assert!(
        failures.is_empty(),
        "disagreements with tshark:\n{}",
        failures.join("\n")
    );
    total
}

#[test]
fn captures_agree_with_tshark() {
    if !have_tshark() {
        return skip_or_fail("tshark not installed (scripts/setup.sh installs it)");
    }
    let files = pcaps_in(&captures());
    assert!(files.len() >= 10, "captures/ holds {} pcaps", files.len());
    let n = run(&files);
    assert!(n > 100, "only {n} facts compared");
}

#[test]
fn public_corpus_agrees_with_tshark() {
    if !have_tshark() {
        return skip_or_fail("tshark not installed (scripts/setup.sh installs it)");
    }
    let Some(dir) = public_corpus() else {
        return skip_or_fail("../shared/corpus/public not present beside the checkout");
    };
    let mut files = Vec::new();
    for sub in ["zeek", "ndpi", "arkime", "sv"] {
        files.extend(pcaps_in(&dir.join(sub)));
    }
    let n = run(&files);
    assert!(n > 50, "only {n} facts compared");
}
