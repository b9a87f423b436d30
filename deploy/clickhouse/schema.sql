-- ekuwatch session events in ClickHouse (docs/deployment.md, "Fleet"). Runs on ClickHouse 18.16
-- (Debian 12's clickhouse-server) and on current ClickHouse: no JSON type, no JSONExtract*, no
-- LowCardinality, no TTL clause (ttl.sql adds it where the server has it, ClickHouse >= 19.6).
--
-- Ingestion: a shipper (deploy/vector.toml) sends each line of `ekuwatch live --events` as
-- {"raw": "<the event line>"} with INSERT INTO ekuwatch.events_landing FORMAT JSONEachRow.
-- events_landing keeps nothing (Null engine); sessions_mv extracts the typed columns the verdict
-- needs with visitParamExtract* (flat keys: the event's `peer` object, docs/events.md) and keeps
-- the whole event beside them in `event`.
--
-- Every column is written out in full (18.16 neither drops helper columns on insert nor runs a
-- view over a subquery; repeated sub-expressions are computed once). One statement per `;` (scripts/tests split on ";\n"). {cluster} is replaced by the cluster
-- name in clickhouse-cluster.xml (docs/deployment.md); run the file on every node.

CREATE DATABASE IF NOT EXISTS ekuwatch;

CREATE TABLE IF NOT EXISTS ekuwatch.events_landing (raw String) ENGINE = Null;

CREATE TABLE IF NOT EXISTS ekuwatch.sessions
(
    ts DateTime,                    -- the connection's first packet (UTC; the event's `ts`, seconds)
    ts_us UInt32,                   -- its microseconds
    observer String,
    direction String,               -- outbound / inbound / unknown
    peer String,                    -- peer.domain: registered domain or IP
    peer_host String,
    client_ip String,
    server_ip String,
    server_port UInt16,
    tls_version String,             -- '' without TLS
    outcome String,                 -- tls.outcome.result, '' without TLS
    class String,                   -- peer.class: what we presented under a CertificateRequest, '' without
    issuer String,                  -- peer.issuer, '' without
    handshakes UInt8,
    resumed UInt8,
    cr_known UInt8,
    cr_present UInt8,
    established UInt8,
    established_with_cr UInt8,
    messages UInt32,
    messages_delivered UInt32,
    messages_rejected UInt32,
    messages_cr_known UInt32,
    messages_with_cr UInt32,
    a_accepted UInt32,
    a_rejected_eku UInt32,
    a_rejected_trust UInt32,
    a_rejected_no_cert UInt32,
    a_rejected_ambiguous UInt32,
    a_recipient_refused UInt32,
    a_no_message UInt32,
    a_unfinished UInt32,
    t_rejected_eku UInt32,
    t_rejected_no_cert UInt32,
    t_rejected_ambiguous UInt32,
    event String                    -- the whole event (JSON), as the observer wrote it
)
ENGINE = MergeTree()
PARTITION BY toYYYYMM(ts)
ORDER BY (direction, peer, ts)
SETTINGS index_granularity = 8192;

CREATE MATERIALIZED VIEW IF NOT EXISTS ekuwatch.sessions_mv TO ekuwatch.sessions AS
SELECT
    toDateTime(concat(substring(visitParamExtractString(raw, 'ts'), 1, 10), ' ', substring(visitParamExtractString(raw, 'ts'), 12, 8)), 'UTC') AS ts,
    toUInt32OrZero(substring(visitParamExtractString(raw, 'ts'), 21, 6)) AS ts_us,
    visitParamExtractString(raw, 'observer') AS observer,
    visitParamExtractString(raw, 'direction') AS direction,
    visitParamExtractString(visitParamExtractRaw(raw, 'peer'), 'domain') AS peer,
    visitParamExtractString(visitParamExtractRaw(raw, 'peer'), 'host') AS peer_host,
    visitParamExtractString(visitParamExtractRaw(raw, 'client'), 'ip') AS client_ip,
    visitParamExtractString(visitParamExtractRaw(raw, 'server'), 'ip') AS server_ip,
    toUInt16(visitParamExtractUInt(visitParamExtractRaw(raw, 'server'), 'port')) AS server_port,
    visitParamExtractString(visitParamExtractRaw(raw, 'tls'), 'version') AS tls_version,
    visitParamExtractString(visitParamExtractRaw(visitParamExtractRaw(raw, 'tls'), 'outcome'), 'result') AS outcome,
    visitParamExtractString(visitParamExtractRaw(raw, 'peer'), 'class') AS class,
    visitParamExtractString(visitParamExtractRaw(raw, 'peer'), 'issuer') AS issuer,
    toUInt8(visitParamExtractUInt(visitParamExtractRaw(raw, 'peer'), 'handshakes')) AS handshakes,
    toUInt8(visitParamExtractUInt(visitParamExtractRaw(raw, 'peer'), 'resumed')) AS resumed,
    toUInt8(visitParamExtractUInt(visitParamExtractRaw(raw, 'peer'), 'cr_known')) AS cr_known,
    toUInt8(visitParamExtractUInt(visitParamExtractRaw(raw, 'peer'), 'cr_present')) AS cr_present,
    toUInt8(visitParamExtractUInt(visitParamExtractRaw(raw, 'peer'), 'established')) AS established,
    toUInt8(visitParamExtractUInt(visitParamExtractRaw(raw, 'peer'), 'established_with_cr')) AS established_with_cr,
    toUInt32(visitParamExtractUInt(visitParamExtractRaw(raw, 'peer'), 'messages')) AS messages,
    toUInt32(visitParamExtractUInt(visitParamExtractRaw(raw, 'peer'), 'messages_delivered')) AS messages_delivered,
    toUInt32(visitParamExtractUInt(visitParamExtractRaw(raw, 'peer'), 'messages_rejected')) AS messages_rejected,
    toUInt32(visitParamExtractUInt(visitParamExtractRaw(raw, 'peer'), 'messages_cr_known')) AS messages_cr_known,
    toUInt32(visitParamExtractUInt(visitParamExtractRaw(raw, 'peer'), 'messages_with_cr')) AS messages_with_cr,
    toUInt32(visitParamExtractUInt(visitParamExtractRaw(visitParamExtractRaw(raw, 'peer'), 'answers'), 'accepted')) AS a_accepted,
    toUInt32(visitParamExtractUInt(visitParamExtractRaw(visitParamExtractRaw(raw, 'peer'), 'answers'), 'rejected_eku')) AS a_rejected_eku,
    toUInt32(visitParamExtractUInt(visitParamExtractRaw(visitParamExtractRaw(raw, 'peer'), 'answers'), 'rejected_trust')) AS a_rejected_trust,
    toUInt32(visitParamExtractUInt(visitParamExtractRaw(visitParamExtractRaw(raw, 'peer'), 'answers'), 'rejected_no_cert')) AS a_rejected_no_cert,
    toUInt32(visitParamExtractUInt(visitParamExtractRaw(visitParamExtractRaw(raw, 'peer'), 'answers'), 'rejected_ambiguous')) AS a_rejected_ambiguous,
    toUInt32(visitParamExtractUInt(visitParamExtractRaw(visitParamExtractRaw(raw, 'peer'), 'answers'), 'recipient_refused')) AS a_recipient_refused,
    toUInt32(visitParamExtractUInt(visitParamExtractRaw(visitParamExtractRaw(raw, 'peer'), 'answers'), 'no_message')) AS a_no_message,
    toUInt32(visitParamExtractUInt(visitParamExtractRaw(visitParamExtractRaw(raw, 'peer'), 'answers'), 'unfinished')) AS a_unfinished,
    toUInt32(visitParamExtractUInt(visitParamExtractRaw(visitParamExtractRaw(raw, 'peer'), 'tentative'), 'rejected_eku')) AS t_rejected_eku,
    toUInt32(visitParamExtractUInt(visitParamExtractRaw(visitParamExtractRaw(raw, 'peer'), 'tentative'), 'rejected_no_cert')) AS t_rejected_no_cert,
    toUInt32(visitParamExtractUInt(visitParamExtractRaw(visitParamExtractRaw(raw, 'peer'), 'tentative'), 'rejected_ambiguous')) AS t_rejected_ambiguous,
    raw AS event
FROM ekuwatch.events_landing;

-- Every node's sessions, read as one table (queries and the views in verdicts.sql use it).
-- Sharded by peer when written through it, so one peer's sessions stay on one shard.
CREATE TABLE IF NOT EXISTS ekuwatch.sessions_all AS ekuwatch.sessions
ENGINE = Distributed({cluster}, ekuwatch, sessions, cityHash64(peer));
