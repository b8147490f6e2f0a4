#!/usr/bin/env python3
"""The ceiling a counter row puts on MySQL/MariaDB commits, beside the events floor.

The store's gap-free log allocates positions from one counter row whose lock is held from the
allocation to the COMMIT (crates/pupsourcing-mysql/src/append/mod.rs, ARCHITECTURE.md). This
script prices that scheme at its cheapest, with none of the store's other rows: N clients
(threads, each with its own connection) for a few seconds each, in turn:

- floor: an autocommitted INSERT of one row into a table with an AUTO_INCREMENT key, one round
  trip (what the bench's floor does);
- transaction: the same INSERT in an explicit transaction sent as one multi-statement round trip
  (START TRANSACTION; INSERT; COMMIT): what the statements of a transaction cost, with no
  shared row;
- counter: the same INSERT after an UPDATE of one shared counter row, in one transaction sent as
  ONE multi-statement round trip (BEGIN; UPDATE; INSERT; COMMIT): the least any scheme that
  serialises allocation through a row lock held to COMMIT can send;
- marker: the cost of an alternative without that lock (not built, not proven sound: priced
  here to decide whether it is worth designing). Positions come from a counter in a MEMORY
  table (not transactional: visible at once, no row lock held to COMMIT); before allocating, a
  writer registers the next value in its own slot of a second MEMORY table (as PostgreSQL's
  in-flight markers do), and clears its slot after COMMIT; a reader's safe head would be below
  the lowest registered slot. One round trip for the registration, allocation, insert and
  COMMIT, one more for clearing the slot.

It prints appends per second and each variant's ratio to the floor at each client count. On a
small machine the floor is CPU-bound at 8 clients and more, so every statement a variant adds
costs throughput there: compare the counter with the transaction, not only with the floor, to
see what the shared row itself costs.

Needs `pip install pymysql`; it creates (and drops) two tables in the given database:

    python3 crates/pupsourcing-bench/micro/mysql_counter_ceiling.py --database test
"""
import argparse
import threading
import time

import pymysql
from pymysql.constants import CLIENT

TABLES = ("micro_ceiling_counter", "micro_ceiling_rows", "micro_ceiling_mem_counter",
          "micro_ceiling_slots")
FLOOR = "INSERT INTO micro_ceiling_rows (v) VALUES (1)"
TRANSACTION = "START TRANSACTION; INSERT INTO micro_ceiling_rows (v) VALUES (1); COMMIT"
COUNTER = ("START TRANSACTION; UPDATE micro_ceiling_counter SET n = n + 1 WHERE id = 1; "
           "INSERT INTO micro_ceiling_rows (v) VALUES (1); COMMIT")
MARKER = ("UPDATE micro_ceiling_slots SET pos = (SELECT n + 1 FROM micro_ceiling_mem_counter)"
          " WHERE slot = {slot}; "
          "UPDATE micro_ceiling_mem_counter SET n = LAST_INSERT_ID(n + 1); "
          "START TRANSACTION; INSERT INTO micro_ceiling_rows (id, v) VALUES (LAST_INSERT_ID(), 1); "
          "COMMIT")
CLEAR = "UPDATE micro_ceiling_slots SET pos = NULL WHERE slot = {slot}"


def connect(args):
    return pymysql.connect(host=args.host, port=args.port, user=args.user, password="",
                           database=args.database, autocommit=True,
                           client_flag=CLIENT.MULTI_STATEMENTS)


def run(args, statement, clients):
    """Appends per second of `clients` threads each sending the round trips of `statement`
    (a tuple of texts, `{slot}` replaced by the thread's number) for `args.seconds`."""
    counts = [0] * clients
    connections = [connect(args) for _ in range(clients)]
    stop = time.monotonic() + args.seconds

    def work(i):
        cursor = connections[i].cursor()
        while time.monotonic() < stop:
            for text in statement:
                cursor.execute(text.format(slot=i))
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
    setup.execute("CREATE TABLE micro_ceiling_mem_counter (n BIGINT NOT NULL) ENGINE=MEMORY")
    setup.execute("CREATE TABLE micro_ceiling_slots (slot INT PRIMARY KEY, pos BIGINT)"
                  " ENGINE=MEMORY")
    setup.execute("SELECT @@version, @@innodb_flush_log_at_trx_commit")
    version, flush = setup.fetchone()
    print(f"{version}, innodb_flush_log_at_trx_commit={flush}, {args.seconds} s per point")
    print(f"{'clients':>7} {'floor/s':>8} {'transaction':>12} {'counter':>12} {'marker':>12}")
    try:
        for clients in (int(c) for c in args.clients.split(",")):
            # The MEMORY counter starts above every row the other variants wrote.
            setup.execute("DELETE FROM micro_ceiling_mem_counter")
            setup.execute("INSERT INTO micro_ceiling_mem_counter"
                          " SELECT coalesce(max(id), 0) + 1000000 FROM micro_ceiling_rows")
            setup.execute("DELETE FROM micro_ceiling_slots")
            for slot in range(clients):
                setup.execute(f"INSERT INTO micro_ceiling_slots VALUES ({slot}, NULL)")
            floor = run(args, (FLOOR,), clients)
            rates = [run(args, (TRANSACTION,), clients), run(args, (COUNTER,), clients),
                     run(args, (MARKER, CLEAR), clients)]
            cells = " ".join(f"{r:>6.0f} {r / floor:>5.2f}" for r in rates)
            print(f"{clients:>7} {floor:>8.0f} {cells}")
    finally:
        setup.execute(f"DROP TABLE IF EXISTS {', '.join(TABLES)}")


if __name__ == "__main__":
    main()
