-- Per-peer verdicts and rates over ekuwatch.sessions_all, the rules of docs/policy.md
-- ("Verdicts", "Rates and message figures"). What each session says about its peer — the class we
-- presented under a CertificateRequest and how the peer answered it, message by message (SMTP
-- after TLS included: delivered, refused at MAIL/RCPT/DATA or after the body, recipient
-- refusals apart, refusals seen without keys as `tentative`) — is classified by ekuwatch when it
-- writes the event (its `peer` object, docs/events.md). These views apply the rules that span
-- sessions, as ekuwatch's report does (observer/src/peers/rules.rs):
--   * a refusal seen without keys counts only when no message after the same class was delivered
--     to the same peer;
--   * an unexplained refusal (rejected_ambiguous) of a chain whose issuer the same peer accepted
--     in another session counts as rejected_eku;
--   * the verdict: no_request / requests_rejects_server_only / requests_accepts_server_only /
--     requests_no_cert_ok / requests_untested ('' where ekuwatch gives none: inbound peers,
--     peers without a non-resumed handshake).
-- Limits: ekuwatch keeps at most 32 accepted issuers and 64 (class, kind, issuer) tentative
-- entries per peer; these views keep all, so they can differ only for peers beyond those caps.
-- For a time window, use the same SELECTs with a WHERE on ts (views take no parameters).
-- Runs on ClickHouse 18.16 and current ClickHouse (which wants every joined subquery named).
-- One statement per `;`.

-- Issuers of chains a peer accepted (delivered a message after them).
CREATE VIEW IF NOT EXISTS ekuwatch.peer_accepted_issuers AS
SELECT direction, peer, groupUniqArray(issuer) AS accepted_issuers
FROM ekuwatch.sessions_all
WHERE a_accepted > 0 AND issuer != ''
GROUP BY direction, peer;

-- Per peer and class presented under a CertificateRequest: the answers after the rules above.
CREATE VIEW IF NOT EXISTS ekuwatch.peer_class_answers AS
SELECT
    direction, peer, class, sessions,
    s_accepted AS accepted,
    s_rejected_eku + if(s_accepted = 0, s_t_rejected_eku, 0) + moved AS rejected_eku,
    s_rejected_trust AS rejected_trust,
    s_rejected_no_cert + if(s_accepted = 0, s_t_rejected_no_cert, 0) AS rejected_no_cert,
    s_rejected_ambiguous + if(s_accepted = 0, s_t_rejected_ambiguous, 0) - moved AS rejected_ambiguous,
    s_recipient_refused AS recipient_refused,
    s_no_message AS no_message,
    s_unfinished AS unfinished,
    if(s_accepted = 0, 0, s_t_rejected_eku + s_t_rejected_no_cert + s_t_rejected_ambiguous) AS outweighed
FROM
(
    SELECT
        direction, peer, class,
        sum(n) AS sessions,
        sum(accepted) AS s_accepted,
        sum(rejected_eku) AS s_rejected_eku,
        sum(rejected_trust) AS s_rejected_trust,
        sum(rejected_no_cert) AS s_rejected_no_cert,
        sum(rejected_ambiguous) AS s_rejected_ambiguous,
        sum(recipient_refused) AS s_recipient_refused,
        sum(no_message) AS s_no_message,
        sum(unfinished) AS s_unfinished,
        sum(t_eku) AS s_t_rejected_eku,
        sum(t_no_cert) AS s_t_rejected_no_cert,
        sum(t_ambiguous) AS s_t_rejected_ambiguous,
        sumIf(rejected_ambiguous, vouched) + if(sum(accepted) = 0, sumIf(t_ambiguous, vouched), 0) AS moved
    FROM
    (
        SELECT
            direction, peer, class, issuer, n, accepted, rejected_eku, rejected_trust,
            rejected_no_cert, rejected_ambiguous, recipient_refused, no_message, unfinished,
            t_eku, t_no_cert, t_ambiguous,
            issuer != '' AND has(accepted_issuers, issuer) AS vouched
        FROM
        (
            SELECT
                direction, peer, class, issuer,
                count() AS n,
                sum(a_accepted) AS accepted,
                sum(a_rejected_eku) AS rejected_eku,
                sum(a_rejected_trust) AS rejected_trust,
                sum(a_rejected_no_cert) AS rejected_no_cert,
                sum(a_rejected_ambiguous) AS rejected_ambiguous,
                sum(a_recipient_refused) AS recipient_refused,
                sum(a_no_message) AS no_message,
                sum(a_unfinished) AS unfinished,
                sum(t_rejected_eku) AS t_eku,
                sum(t_rejected_no_cert) AS t_no_cert,
                sum(t_rejected_ambiguous) AS t_ambiguous
            FROM ekuwatch.sessions_all
            WHERE class != ''
            GROUP BY direction, peer, class, issuer
        ) AS per_issuer
        ANY LEFT JOIN ekuwatch.peer_accepted_issuers AS vouching USING (direction, peer)
    )
    GROUP BY direction, peer, class
);

-- Per peer: counts, rates (NULL where the denominator is 0) and the verdict.
CREATE VIEW IF NOT EXISTS ekuwatch.peer_verdicts AS
SELECT
    direction, peer, observers, sessions, handshakes, resumed, cr_known, cr_present,
    established, established_with_cr, messages, messages_delivered, messages_rejected,
    messages_cr_known, messages_with_cr,
    if(cr_known > 0, cr_present / cr_known, NULL) AS cr_rate_per_handshake,
    if(sessions > 0, cr_present / sessions, NULL) AS cr_rate_per_connection,
    if(established > 0, established_with_cr / established, NULL) AS cr_rate_per_established_session,
    if(messages_cr_known > 0, messages_with_cr / messages_cr_known, NULL) AS cr_rate_per_message,
    server_only_rejected_eku, server_only_accepted,
    multiIf(
        direction = 'inbound' OR handshakes = resumed, '',
        cr_present = 0, if(cr_known > 0, 'no_request', ''),
        server_only_rejected_eku > 0, 'requests_rejects_server_only',
        server_only_accepted > 0, 'requests_accepts_server_only',
        no_cert_accepted > 0 AND other_class_answers = 0, 'requests_no_cert_ok',
        'requests_untested') AS verdict
FROM
(
    SELECT
        direction, peer,
        groupUniqArray(observer) AS observers,
        count() AS sessions,
        sum(handshakes) AS handshakes,
        sum(resumed) AS resumed,
        sum(cr_known) AS cr_known,
        sum(cr_present) AS cr_present,
        sum(established) AS established,
        sum(established_with_cr) AS established_with_cr,
        sum(messages) AS messages,
        sum(messages_delivered) AS messages_delivered,
        sum(messages_rejected) AS messages_rejected,
        sum(messages_cr_known) AS messages_cr_known,
        sum(messages_with_cr) AS messages_with_cr
    FROM ekuwatch.sessions_all
    GROUP BY direction, peer
) AS per_peer
ANY LEFT JOIN
(
    SELECT
        direction, peer,
        sumIf(rejected_eku, class = 'server_only') AS server_only_rejected_eku,
        sumIf(accepted, class = 'server_only') AS server_only_accepted,
        sumIf(accepted, class = 'no_cert') AS no_cert_accepted,
        sumIf(accepted + rejected_eku + rejected_trust + rejected_no_cert + rejected_ambiguous
              + recipient_refused + no_message + unfinished, class != 'no_cert') AS other_class_answers
    FROM ekuwatch.peer_class_answers
    GROUP BY direction, peer
) AS per_class USING (direction, peer);
