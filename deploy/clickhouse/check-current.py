#!/usr/bin/env python3
"""Compatibility check of deploy/clickhouse/*.sql against current ClickHouse, run in-process by chdb
(PyPI), by hand (not in CI):

    python3 -m venv /tmp/chdb && /tmp/chdb/bin/pip install chdb
    ekuwatch analyze captures/ --local-net 127.0.0.2/32 --events /tmp/events.jsonl --report none
    /tmp/chdb/bin/python deploy/clickhouse/check-current.py /tmp/events.jsonl

Creates schema.sql, ttl.sql and verdicts.sql in a scratch chdb database (a one-node cluster
`ekuwatch` in a generated config), inserts the events through the landing table as JSONEachRow
rows {"raw": line} and prints the per-peer verdicts and the server version. The same SQL on
Debian 12's clickhouse-server 18.16 is exercised by observer/tests/clickhouse.rs.
"""
import json, os, re, shutil, sys, tempfile

import chdb

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIG = """<clickhouse>
  <tcp_port>9000</tcp_port>
  <remote_servers>
    <ekuwatch><shard><replica><host>127.0.0.1</host><port>9000</port></replica></shard></ekuwatch>
  </remote_servers>
</clickhouse>
"""


def statements(name):
    sql = open(os.path.join(HERE, name)).read().replace("{cluster}", "ekuwatch")
    for s in re.split(r";\s*\n", sql):
        body = "\n".join(l for l in s.split("\n") if not l.strip().startswith("--")).strip()
        if body:
            yield body


def main():
    work = tempfile.mkdtemp(prefix="ekuwatch-chdb-")
    try:
        config = os.path.join(work, "config.xml")
        open(config, "w").write(CONFIG)
        conn = chdb.connect(f"file:{work}/data?config-file={config}")
        cur = conn.cursor()
        for name in ["schema.sql", "ttl.sql", "verdicts.sql"]:
            for s in statements(name):
                cur.execute(s)
        rows = "".join(json.dumps({"raw": l.rstrip("\n")}) + "\n" for l in open(sys.argv[1]) if l.strip())
        cur.execute("INSERT INTO ekuwatch.events_landing FORMAT JSONEachRow " + rows)
        cur.execute("SELECT version()")
        print("ClickHouse", cur.fetchall()[0][0])
        cur.execute("SELECT count() FROM ekuwatch.sessions_all")
        print("sessions", cur.fetchall()[0][0])
        cur.execute(
            "SELECT direction, peer, verdict, cr_rate_per_handshake, cr_rate_per_message "
            "FROM ekuwatch.peer_verdicts ORDER BY direction, peer"
        )
        for r in cur.fetchall():
            print(*r, sep="\t")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
