//! The verdict in one plain sentence, and the words it is made of.

use super::{ClassMail, PeerStats};

/// Words for a client-certificate class in the report's sentences.
pub fn class_words(class: &str) -> &'static str {
    match class {
        "server_only" => "our serverAuth-only certificate",
        "server_and_client" => "our certificate with serverAuth and clientAuth",
        "client_only" => "our clientAuth-only certificate",
        "none" => "our certificate without an EKU extension",
        "any" => "our anyExtendedKeyUsage certificate",
        "other" => "our certificate with neither serverAuth nor clientAuth",
        "no_cert" => "no certificate",
        _ => "our certificate (EKU not visible without keys)",
    }
}

/// Classes a verifier checking the client EKU accepts (no EKU extension means any use).
fn allows_client_auth(class: &str) -> bool {
    matches!(class, "server_and_client" | "client_only" | "any" | "none")
}

fn stage_words(stage: &str) -> &'static str {
    match stage {
        "ehlo" => "EHLO",
        "mail" => "MAIL",
        "rcpt" => "RCPT",
        "data" => "DATA",
        "after_data" => "the end of data",
        "before_data" => "MAIL/RCPT/DATA (not visible without keys)",
        _ => "an unknown stage",
    }
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// "refused 3 of 3 messages at RCPT (security_policy)", "closed 1 session at EHLO …", … joined
/// with "and"; empty when nothing was refused. `outweighed`: mail after this class was delivered,
/// so its refusals seen without keys do not count (they are named apart).
fn refusal_words(cm: &ClassMail, outweighed: bool) -> String {
    let mut parts = Vec::new();
    if cm.refused_in_handshake > 0 {
        let why: Vec<String> = cm
            .reasons
            .keys()
            .filter(|r| r.starts_with("alert:") || *r == "handshake_failed")
            .map(|r| r.replace("alert:", "alert "))
            .collect();
        parts.push(format!(
            "failed {} in the handshake ({})",
            plural(cm.refused_in_handshake, "session", "sessions"),
            why.join(", ")
        ));
    }
    if cm.refused_at_ehlo > 0 {
        parts.push(format!(
            "closed {} at EHLO (right after the handshake, before any message)",
            plural(cm.refused_at_ehlo, "session", "sessions")
        ));
    }
    let not_counted = if outweighed { cm.inferred_refusals } else { 0 };
    let counted = cm
        .rejected
        .saturating_sub(cm.recipient_refusals)
        .saturating_sub(not_counted);
    if counted > 0 {
        let stages: Vec<(&String, &u64)> = cm
            .stages
            .iter()
            .filter(|(s, _)| *s != "ehlo" && !(outweighed && *s == "before_data"))
            .collect();
        let stage_list: Vec<String> = stages
            .iter()
            .map(|(s, n)| {
                if stages.len() > 1 {
                    format!("{}: {n}", stage_words(s))
                } else {
                    stage_words(s).to_string()
                }
            })
            .collect();
        let mut s = format!(
            "refused {counted} of {} at {}",
            plural(cm.messages, "message", "messages"),
            stage_list.join(", ")
        );
        let subj: Vec<&str> = cm
            .subjects
            .keys()
            .map(String::as_str)
            .filter(|k| *k != "addressing" && *k != "mailbox")
            .collect();
        if !subj.is_empty() {
            s.push_str(&format!(" ({})", subj.join(", ")));
        }
        parts.push(s);
    }
    let mut apart = Vec::new();
    if cm.recipient_refusals > 0 {
        apart.push(format!(
            "{} for a recipient or mailbox",
            plural(cm.recipient_refusals, "message", "messages")
        ));
    }
    if not_counted > 0 {
        apart.push(format!(
            "{} seen without keys, outweighed by delivered mail",
            plural(not_counted, "message", "messages")
        ));
    }
    if !apart.is_empty() {
        parts.push(format!(
            "refused {} (not counted against the certificate)",
            apart.join(" and ")
        ));
    }
    parts.join(" and ")
}

impl PeerStats {
    /// The verdict in one plain sentence (None without a verdict).
    pub fn explanation(&self) -> Option<String> {
        let v = self.verdict()?;
        let peer = &self.peer;
        let none = ClassMail::default();
        let so = self.mail_by_class.get("server_only").unwrap_or(&none);
        let with_client_auth: u64 = self
            .mail_by_class
            .iter()
            .filter(|(c, _)| allows_client_auth(c))
            .map(|(_, m)| m.delivered)
            .sum();
        let also = if with_client_auth > 0 {
            format!(
                "; it delivered {} after a certificate with clientAuth",
                plural(with_client_auth, "message", "messages")
            )
        } else {
            String::new()
        };
        let s = match v {
            "no_request" => format!(
                "{peer} sent no CertificateRequest in {}; {} of {} met one",
                plural(self.cr_known, "handshake", "handshakes"),
                self.messages_with_cr,
                plural(self.messages, "message", "messages")
            ),
            "requests_rejects_server_only" => {
                let words = refusal_words(so, so.delivered > 0);
                let words = if words.is_empty() {
                    "refused mail".to_string()
                } else {
                    words
                };
                let through = if so.delivered > 0 {
                    format!(
                        " (in other sessions it delivered {} of {} after it)",
                        so.delivered,
                        plural(so.messages, "message", "messages")
                    )
                } else {
                    String::new()
                };
                format!(
                    "{peer} {words} after {}{through}{also}",
                    class_words("server_only")
                )
            }
            "requests_accepts_server_only" => {
                let refused = refusal_words(so, so.delivered > 0);
                format!(
                    "{peer} asks for a client certificate and delivered {} of {} after {}{}",
                    so.delivered,
                    plural(so.messages, "message", "messages"),
                    class_words("server_only"),
                    if refused.is_empty() {
                        String::new()
                    } else {
                        format!(" (it also {refused})")
                    }
                )
            }
            "requests_no_cert_ok" => {
                let nc = self.mail_by_class.get("no_cert").unwrap_or(&none);
                format!(
                    "{peer} asks for a client certificate and delivered {} of {} although we sent none",
                    nc.delivered,
                    plural(nc.messages, "message", "messages")
                )
            }
            _ => {
                let seen: Vec<String> = self
                    .mail_by_class
                    .iter()
                    .map(|(c, m)| {
                        let refused = refusal_words(m, m.delivered > 0);
                        let mut s = format!(
                            "after {} it delivered {} of {}",
                            class_words(c),
                            m.delivered,
                            plural(m.messages, "message", "messages")
                        );
                        if !refused.is_empty() {
                            s.push_str(&format!(" and {refused}"));
                        }
                        s
                    })
                    .collect();
                format!(
                    "{peer} asks for a client certificate, but no message has gone through after {} yet (at risk){}{}",
                    class_words("server_only"),
                    if seen.is_empty() { "" } else { ": " },
                    seen.join("; ")
                )
            }
        };
        Some(format!("{s}."))
    }
}
