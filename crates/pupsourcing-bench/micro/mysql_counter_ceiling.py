#!/usr/bin/env python3
"""The ceiling a counter row puts on MySQL/MariaDB commits, beside the events floor.

The store's gap-free log allocates positions from one counter row whose lock is held from the
allocation to the COMMIT (crates/pupsourcing-mysql/src/append/mod.rs, ARCHITECTURE.md). This
script prices that scheme at its cheapest, with none of the store's other rows: N clients
(threads, each with its own connection) for a few seconds each, in turn:

- floor: an autocommitted INSERT of one row into a table with an AUTO_INCREMENT key, one round
  trip (what the bench's floor does);
- counter: the same INSERT after an UPDATE of one shared counter row, in one transaction sent as
  ONE multi-statement round trip (BEGIN; UPDATE; INSERT; COMMIT): the least any scheme that
  serialises allocation through a row lock held to COMMIT can send.

It prints transactions per second and the counter's ratio to the floor at each client count.
The floor's concurrent commits share the redo log's flushes; the counter's commits wait for each
other's, so its rate stays near one commit per flush however many clients there are.

Needs `pip install pymysql`; it creates (and drops) two tables in the given database:

    python3 crates/pupsourcing-bench/micro/mysql_counter_ceiling.py --database test
"""
import argparse
import threading
import time

import pymysql
from pymysql.constants import CLIENT

TABLES = ("micro_ceiling_counter", "micro_ceiling_rows")
FLOOR = "INSERT INTO micro_ceiling_rows (v) VALUES (1)"
COUNTER = ("START TRANSACTION; UPDATE micro_ceiling_counter SET n = n + 1 WHERE id = 1; "
           "INSERT INTO micro_ceiling_rows (v) VALUES (1); COMMIT")


def connect(args):
    return pymysql.connect(host=args.host, port=args.port, user=args.user, password="",
                           database=args.database, autocommit=True,
                           client_flag=CLIENT.MULTI_STATEMENTS)


def run(args, statement, clients):
    """Transactions per second of `clients` threads sending `statement` for `args.seconds`."""
    counts = [0] * clients
    connections = [connect(args) for _ in range(clients)]
    stop = time.monotonic() + args.seconds

    def work(i):
        cursor = connections[i].cursor()
        while time.monotonic() < stop:
            cursor.execute(statement)
            while cursor.nextset():
                pass
            counts[i] += 1

    threads = [threading.Thread(target=work, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for c in connections:
        c.close()
    return sum(counts) / args.seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3306)
    parser.add_argument("--user", default="root")
    parser.add_argument("--database", default="test")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--clients", default="1,8,32")
    args = parser.parse_args()

    setup = connect(args).cursor()
    setup.execute(f"DROP TABLE IF EXISTS {', '.join(TABLES)}")
    setup.execute("CREATE TABLE micro_ceiling_counter (id INT PRIMARY KEY, n BIGINT NOT NULL)"
                  " ENGINE=InnoDB")
    setup.execute("CREATE TABLE micro_ceiling_rows (id BIGINT AUTO_INCREMENT PRIMARY KEY,"
                  " v BIGINT NOT NULL) ENGINE=InnoDB")
    setup.execute("INSERT INTO micro_ceiling_counter VALUES (1, 0)")
    setup.execute("SELECT @@version, @@innodb_flush_log_at_trx_commit")
    version, flush = setup.fetchone()
    print(f"{version}, innodb_flush_log_at_trx_commit={flush}, {args.seconds} s per point")
    print(f"{'clients':>7} {'floor tx/s':>11} {'counter tx/s':>13} {'ratio':>6}")
    try:
        for clients in (int(c) for c in args.clients.split(",")):
            floor = run(args, FLOOR, clients)
            counter = run(args, COUNTER, clients)
            print(f"{clients:>7} {floor:>11.0f} {counter:>13.0f} {counter / floor:>6.2f}")
    finally:
        setup.execute(f"DROP TABLE IF EXISTS {', '.join(TABLES)}")


if __name__ == "__main__":
    main()
