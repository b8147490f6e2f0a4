#!/usr/bin/env python3
"""What each part of PostgreSQL's lone stream append costs on the server.

Runs the store's own direct statement (`append/direct_stream.sql`, read from the repository)
beside two floors in ONE pgbench script, so that every variant sees the same load, and prints
the per-append latency of each. The floors: the events floor (one INSERT into a copy of the
events table) and the same-rows floor (the rows the store writes, as the bench's same-rows
floor writes them: the head upserted, the event and its tag-index row, one statement, no
locks). The variants: the statement as it is, and with one part removed at a time (the
boundary locks, the in-flight marker, the tag-index step). A lifecycle of 10 appends per stream
(the first with NoStream, then Exact), each event with one tag, as the bench's.

Needs pgbench and a schema created by the store (`pup migrate apply`), e.g.:

    cargo run -p pupsourcing-cli -- --database-url postgres://postgres@127.0.0.1:5432/test \
        --schema micro migrate apply
    python3 crates/pupsourcing-bench/micro/pg_append_parts.py --schema micro --seconds 30

The variants with a part removed are not correct appends: they only show what that part costs.
"""
import argparse
import os
import re
import subprocess
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
DIRECT = os.path.join(HERE, "../../pupsourcing-postgres/src/append/direct_stream.sql")
COLUMNS = ("event_id, event_type, event_version, bounded_context, aggregate_type, aggregate_id, "
           "aggregate_version, tags, payload, metadata, trace_id, correlation_id, causation_id, "
           "created_at")


def template(schema):
    sql = "\n".join(re.sub(r"--.*$", "", line) for line in open(DIRECT).read().splitlines())
    for name, value in (("{schema}", schema), ("{aggregate_heads}", "aggregate_heads"),
                        ("{events}", "events"), ("{marker_tag}", "777")):
        sql = sql.replace(name, value)
    return sql


def bind(sql, expected):
    """The statement with its parameters as literals and pgbench variables (:sid, :k)."""
    values = {1: "'Order'", 2: ":sid", 3: str(expected), 4: "gen_random_uuid()",
              5: "'OrderPlaced'", 6: "1", 7: "NULL", 8: "'{customer:1}'", 9: "'\\x7b7d'", 10: "NULL",
              11: "NULL", 12: "NULL", 13: "NULL", 14: "now()", 15: "42", 16: "'{12345}'",
              17: "ARRAY[:k]", 18: "'{f}'"}
    values.update({i: "NULL" for i in range(19, 26)})
    for i in sorted(values, reverse=True):
        sql = sql.replace(f"${i}", values[i])
    return " ".join(sql.split()) + ";"


def variants(schema):
    base = template(schema)
    locks = ("count(CASE WHEN l.exclusive THEN pg_advisory_xact_lock(l.hi, l.lo)\n"
             "                              ELSE pg_advisory_xact_lock_shared(l.hi, l.lo) END)")
    assert locks in base, "direct_stream.sql changed: update this script"
    marker = re.compile(r"LATERAL \(SELECT pg_advisory_xact_lock_shared\(\(777::bigint << 47\)"
                        r".*?AS registered", re.S)
    tags = re.compile(r", indexed AS \(.*?\)\n\)", re.S)
    assert marker.search(base) and tags.search(base), "direct_stream.sql changed"
    floor = (f"INSERT INTO {schema}.micro_floor ({COLUMNS}) VALUES (gen_random_uuid(), "
             "'OrderPlaced', 1, NULL, 'Order', :sid, {v}, '{{customer:1}}', '\\x7b7d', NULL, "
             "NULL, NULL, NULL, now()) RETURNING global_position;")
    # The rows the store writes, as the bench's same-rows floor writes them: the head upserted,
    # the event, its tag-index row, in one statement and no locks.
    same_rows = (f"WITH head AS (INSERT INTO {schema}.micro_heads AS h (aggregate_type, "
                 "aggregate_id, aggregate_version) VALUES ('Order', :sid, 1) ON CONFLICT "
                 "(aggregate_type, aggregate_id) DO UPDATE SET aggregate_version = "
                 "h.aggregate_version + 1, updated_at = now() RETURNING h.aggregate_version), "
                 f"ev AS (INSERT INTO {schema}.micro_floor ({COLUMNS}) SELECT gen_random_uuid(), "
                 "'OrderPlaced', 1, NULL, 'Order', :sid, head.aggregate_version, "
                 "'{customer:1}', '\\x7b7d', NULL, NULL, NULL, NULL, now() FROM head "
                 "RETURNING global_position, event_type, tags), tagged AS (INSERT INTO "
                 f"{schema}.micro_floor_tags (tag, global_position, event_type) SELECT "
                 "unnest(ev.tags), ev.global_position, ev.event_type FROM ev) "
                 "SELECT global_position FROM ev;")
    return {
        "events floor": lambda v: floor.format(v=v + 1),
        "same-rows floor": lambda v: same_rows,
        "store's statement": lambda v: bind(base, v),
        "without boundary locks": lambda v: bind(base.replace(locks, "count(*)"), v),
        "without marker": lambda v: bind(marker.sub(
            "LATERAL (SELECT 1 WHERE head.aggregate_version IS NOT NULL) AS registered", base), v),
        "without tag-index step": lambda v: bind(tags.sub("", base), v),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--user", default="postgres")
    parser.add_argument("--database", default="test")
    parser.add_argument("--schema", required=True)
    parser.add_argument("--seconds", type=int, default=30)
    args = parser.parse_args()
    conn = ["-h", args.host, "-U", args.user, args.database]
    s = args.schema
    subprocess.run(["psql", "-q", "-c",
                    f"CREATE TABLE IF NOT EXISTS {s}.micro_floor (LIKE {s}.events INCLUDING "
                    f"DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES); "
                    f"CREATE SEQUENCE IF NOT EXISTS {s}.micro_floor_seq; "
                    f"ALTER TABLE {s}.micro_floor ALTER global_position SET DEFAULT "
                    f"nextval('{s}.micro_floor_seq'), ALTER partition_hash SET DEFAULT 0; "
                    f"CREATE TABLE IF NOT EXISTS {s}.micro_heads (LIKE {s}.aggregate_heads "
                    f"INCLUDING ALL); CREATE TABLE IF NOT EXISTS {s}.micro_floor_tags "
                    f"(LIKE {s}.events_tags INCLUDING ALL)"]
                   + conn, check=True)
    lines = ["\\set k random(1, 2000000000)"]
    names = list(variants(s))
    for statement in variants(s).values():
        lines.append("SELECT gen_random_uuid() AS sid \\gset")
        lines += [statement(v) for v in range(10)]
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as script:
        script.write("\n".join(lines) + "\n")
    out = subprocess.run(["pgbench", "-n", "-M", "prepared", "-r", "-c", "1", "-T",
                          str(args.seconds), "-f", script.name] + conn,
                         capture_output=True, text=True, check=True).stdout
    os.unlink(script.name)
    latencies = [float(line.split()[0]) for line in out.split("statement latencies")[1]
                 .splitlines() if re.match(r"\s+\d", line)]
    floor = sum(latencies[2:12])
    print(f"per append, ms (lifecycles of 10, {args.seconds} s, one script):")
    for i, name in enumerate(names):
        total = sum(latencies[2 + 11 * i: 12 + 11 * i])
        print(f"  {name:24s} {total / 10:.3f}   floor/this {floor / total:.2f}")


if __name__ == "__main__":
    main()
