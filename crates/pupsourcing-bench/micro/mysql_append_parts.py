#!/usr/bin/env python3
"""What each part of the MySQL/MariaDB lone stream append costs, round trips included.

Sends the statements one lone `Exact` append sends (as MariaDB's general log shows them: two
multi-statement round trips) and the events floor (one autocommitted INSERT into a copy of the
events table with an AUTO_INCREMENT position), each variant in turn, three rounds, and prints
the wall time per append of each: the store's two round trips, then with one part changed at a
time. The variants are not correct appends: they only show what each part costs.

The statements mirror `crates/pupsourcing-mysql/src/append` (BEGIN, the lock rows, the head's
locking read; then the head bump, the counter, the events insert, COMMIT); update them here when
those change. Needs `pip install pymysql` and a database created by the store, e.g.:

    cargo run -p pupsourcing-cli -- --database-url mysql://root@127.0.0.1:3306/test \
        --schema micro migrate apply
    python3 crates/pupsourcing-bench/micro/mysql_append_parts.py --database micro
"""
import argparse
import time
import uuid

import pymysql
from pymysql.constants import CLIENT

BEGIN = ("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED; "
         "/*M!100300 SET SESSION idle_transaction_timeout = DEFAULT */; START TRANSACTION")
COLUMNS = ("event_id, event_type, event_version, bounded_context, aggregate_type, aggregate_id, "
           "aggregate_version, tags, payload, metadata, trace_id, correlation_id, causation_id, "
           "created_at, partition_hash")
ROW = ("X'{eid}', X'41', 1, NULL, X'4F72646572', X'{s}', {v}, _utf8mb4 X'5B5D', X'7B7D', NULL, "
       "NULL, NULL, NULL, 1796079098930840, 2260335988")


class Bench:
    def __init__(self, args):
        self.db = args.database
        self.conn = pymysql.connect(host=args.host, user=args.user, password="",
                                    database=args.database, autocommit=True,
                                    client_flag=CLIENT.MULTI_STATEMENTS)
        self.cur = self.conn.cursor()
        self.run(f"CREATE TABLE IF NOT EXISTS micro_floor LIKE events; "
                 f"ALTER TABLE micro_floor MODIFY global_position BIGINT NOT NULL AUTO_INCREMENT")
        # The keys of an untagged event's plan (global, type), their rows created as the
        # store's `ensure_rows` would.
        self.keys = "-1872228358846142017, -959854908465356284"
        self.run(f"INSERT IGNORE INTO events_locks (lock_key) VALUES "
                 f"{', '.join(f'({k.strip()})' for k in self.keys.split(','))}")

    def run(self, sql):
        """One round trip: every statement of `sql`, every result read."""
        self.cur.execute(sql)
        while self.cur.nextset():
            pass

    def stream(self):
        s = uuid.uuid4().hex.upper()
        self.run(f"INSERT INTO aggregate_heads (aggregate_type, aggregate_id, aggregate_version, "
                 f"updated_at) VALUES (X'4F72646572', X'{s}', 1, 0)")
        return s

    def parts(self, s, v):
        eid = uuid.uuid4().hex.upper()
        where = f"aggregate_type = X'4F72646572' AND aggregate_id = X'{s}'"
        return {
            "locks": f"SELECT lock_key FROM events_locks WHERE lock_key IN ({self.keys}) "
                     f"ORDER BY lock_key LOCK IN SHARE MODE",
            "head": f"SELECT aggregate_version FROM aggregate_heads WHERE {where} FOR UPDATE",
            "bump": f"UPDATE aggregate_heads SET aggregate_version = {v}, updated_at = "
                    f"TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)) "
                    f"WHERE {where}",
            "counter": "UPDATE events_counter SET last_position = "
                       "LAST_INSERT_ID(last_position + 1) WHERE id = 1",
            "insert": f"INSERT INTO events (global_position, {COLUMNS}) VALUES "
                      f"(LAST_INSERT_ID(), {ROW.format(eid=eid, s=s, v=v)})",
            "floor": f"INSERT INTO micro_floor ({COLUMNS}) VALUES ({ROW.format(eid=eid, s=s, v=v)})",
        }

    def append(self, variant, p):
        trips = {
            "events floor": [[p["floor"]]],
            "store's two round trips": [[BEGIN, p["locks"], p["head"]],
                                        [p["bump"], p["counter"], p["insert"], "COMMIT"]],
            "without the session SETs": [["START TRANSACTION", p["locks"], p["head"]],
                                         [p["bump"], p["counter"], p["insert"], "COMMIT"]],
            "one round trip": [["START TRANSACTION", p["locks"], p["head"], p["bump"],
                                p["counter"], p["insert"], "COMMIT"]],
            "without the lock rows": [["START TRANSACTION", p["head"]],
                                      [p["bump"], p["counter"], p["insert"], "COMMIT"]],
            "without the head": [["START TRANSACTION", p["locks"]],
                                 [p["counter"], p["insert"], "COMMIT"]],
            "counter and events only": [["START TRANSACTION", p["counter"], p["insert"],
                                         "COMMIT"]],
        }[variant]
        for trip in trips:
            self.run("; ".join(trip))

    VARIANTS = ["events floor", "store's two round trips", "without the session SETs",
                "one round trip", "without the lock rows", "without the head",
                "counter and events only"]

    def measure(self, variant, appends):
        s, v = self.stream(), 1
        started = time.perf_counter()
        for _ in range(appends):
            if v >= 50:
                s, v = self.stream(), 1
            v += 1
            self.append(variant, self.parts(s, v))
        return (time.perf_counter() - started) / appends * 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--user", default="root")
    parser.add_argument("--database", required=True)
    parser.add_argument("--appends", type=int, default=500, help="per variant and round")
    args = parser.parse_args()
    bench = Bench(args)
    results = {name: [] for name in Bench.VARIANTS}
    for _ in range(3):
        for name in Bench.VARIANTS:
            results[name].append(bench.measure(name, args.appends))
    print("microseconds per append, three rounds (one connection, one append at a time):")
    for name, times in results.items():
        print(f"  {name:26s} " + " ".join(f"{t:6.0f}" for t in times))


if __name__ == "__main__":
    main()
