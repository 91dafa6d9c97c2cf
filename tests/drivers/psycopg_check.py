#!/usr/bin/env python3
"""psycopg 3 (sync API) through pgbelay, run by tests/drivers.rs.

Connects with PGHOST, PGPORT, PGDATABASE, PGUSER and PGPASSWORD from the environment to a
database laid out by tests/drivers/schema.sql, runs the steps named on the command line
(all of them without arguments) and prints one JSON object per step on stdout:
{"step": NAME, "ok": true, ...what it returned} or {"step": NAME, "ok": false,
"sqlstate": ..., "message": ...}. The test asserts on these lines and on the database.
Exit code 3: psycopg is not installed (run scripts/setup).
"""

import datetime
import json
import os
import sys
import uuid
from decimal import Decimal

try:
    import psycopg
    from psycopg.types.json import Jsonb
except ImportError as exc:  # the test turns this into "run scripts/setup"
    print(f"psycopg 3 is not installed for {sys.executable}: {exc}", file=sys.stderr)
    sys.exit(3)

TEXT = '\u00e9 \u2713 "quoted" \\ tab\t'
TYPED_COLUMNS = "i8, num, txt, ts, doc, bin, arr, uid"


def iso(ts):
    return ts.astimezone(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def typed(row):
    i8, num, txt, ts, doc, bin_, arr, uid = row
    return {
        "i8": str(i8),
        "num": str(num),
        "txt": txt,
        "ts": iso(ts),
        "doc": doc,
        "bin": bytes(bin_).hex(),
        "arr": arr,
        "uid": str(uid),
    }


def connect(autocommit):
    return psycopg.connect(
        host=os.environ["PGHOST"],
        port=os.environ["PGPORT"],
        dbname=os.environ["PGDATABASE"],
        user=os.environ["PGUSER"],
        password=os.environ["PGPASSWORD"],
        sslmode="disable",
        connect_timeout=10,
        autocommit=autocommit,
        application_name="psycopg_check",
    )


def run(name, fn):
    try:
        record = {"step": name, "ok": True}
        record.update(fn() or {})
    except psycopg.Error as exc:
        diag = exc.diag
        record = {
            "step": name,
            "ok": False,
            "sqlstate": exc.sqlstate,
            "message": diag.message_primary if diag.message_primary is not None else str(exc),
            "detail": diag.message_detail,
        }
    except Exception as exc:  # a driver-side failure is a result too
        record = {"step": name, "ok": False, "sqlstate": None, "message": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(record, ensure_ascii=False), flush=True)


class Steps:
    def __init__(self):
        self._auto = None
        self._tx = None

    @property
    def auto(self):
        """An autocommit connection."""
        if self._auto is None:
            self._auto = connect(True)
        return self._auto

    @property
    def tx(self):
        """A connection in psycopg's default mode: a transaction until commit()/rollback()."""
        if self._tx is None:
            self._tx = connect(False)
        return self._tx

    def connect(self):
        row = self.auto.execute("SELECT current_user, current_setting('server_version_num')").fetchone()
        return {"user": row[0], "server_version_num": row[1]}

    def types_stored(self):
        rows = self.auto.execute(
            f"SELECT {TYPED_COLUMNS} FROM typed WHERE id = %s AND txt = %s", (1, TEXT)
        ).fetchall()
        return {"rows": [typed(r) for r in rows]}

    def types_params(self):
        params = (
            9007199254740993,
            Decimal("-12345.678"),
            TEXT,
            datetime.datetime(2024, 2, 29, 12, 34, 56, 789000, tzinfo=datetime.timezone(datetime.timedelta(hours=5))),
            Jsonb({"a": [1, 2.5, {"b": None}], "z": "\u00e9"}),
            bytes([0, 255, 16]),
            [7, None, -1, 2147483647],
            uuid.UUID("01020304-0506-0708-090a-0b0c0d0e0f10"),
        )
        rows = self.auto.execute(
            "SELECT %s::int8, %s::numeric, %s::text, %s::timestamptz, %s::jsonb, %s::bytea, %s::int4[], %s::uuid",
            params,
        ).fetchall()
        return {"rows": [typed(r) for r in rows]}

    def div_zero(self):
        self.auto.execute("SELECT 1/0").fetchall()

    def after_error(self):
        return {"rows": self.auto.execute("SELECT 1").fetchall()}

    def update(self):
        cur = self.auto.execute("UPDATE items SET qty = qty + %s WHERE id = %s", (5, 2))
        return {"rowcount": cur.rowcount}

    def soft_delete(self):
        cur = self.auto.execute("DELETE FROM items WHERE id BETWEEN %s AND %s", (3, 4))
        return {"rowcount": cur.rowcount}

    def drop(self):
        self.auto.execute("DROP TABLE keep")

    def after_refusal(self):
        return {"rows": self.auto.execute("SELECT count(*) FROM keep").fetchall()}

    def tx_commit(self):
        conn = self.tx
        try:
            qty = conn.execute("SELECT qty FROM items WHERE id = %s", (5,)).fetchone()[0]
            updated = conn.execute("UPDATE items SET qty = %s WHERE id = %s", (qty + 1, 5)).rowcount
            inserted = conn.execute(
                "INSERT INTO items (id, name, qty) VALUES (%s, %s, %s)", (21, "item 21", qty)
            ).rowcount
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        return {"read": qty, "rowcounts": [updated, inserted]}

    def tx_rollback(self):
        conn = self.tx
        try:
            qty = conn.execute("SELECT qty FROM items WHERE id = %s", (6,)).fetchone()[0]
            updated = conn.execute("UPDATE items SET qty = %s WHERE id = %s", (0, 6)).rowcount
        finally:
            conn.rollback()
        return {"read": qty, "rowcounts": [updated]}

    def prepared(self):
        # psycopg prepares a query on the server once it ran prepare_threshold (5) times.
        conn = self.auto
        counts, reads = [], []
        for _ in range(10):
            counts.append(conn.execute("UPDATE items SET qty = qty + 1 WHERE id = %s", (7,)).rowcount)
            reads.append(conn.execute("SELECT qty FROM items WHERE id = %s", (7,)).fetchone()[0])
        prepared = conn.execute(
            "SELECT statement FROM pg_prepared_statements WHERE NOT from_sql ORDER BY statement"
        ).fetchall()
        return {"rowcounts": counts, "reads": reads, "server_prepared": [r[0] for r in prepared]}

    def executemany(self):
        # psycopg runs executemany() in pipeline mode: the executions share one Sync.
        cur = self.auto.cursor()
        cur.executemany("UPDATE items SET qty = qty + %s WHERE id = %s", [(1, 16), (2, 17)])
        return {"rowcount": cur.rowcount}

    # Pipeline mode: statements go out without waiting for each other's results.

    def pipeline_reads(self):
        conn = self.auto
        with conn.pipeline():
            first = conn.execute("SELECT qty FROM items WHERE id = %s", (12,))
            second = conn.execute("SELECT qty FROM items WHERE id = %s", (13,))
        return {"reads": [first.fetchone()[0], second.fetchone()[0]]}

    def pipeline_synced(self):
        # A Sync after each statement: each one a batch (and an implicit transaction) of its own.
        conn = self.auto
        with conn.pipeline() as pipeline:
            update = conn.execute("UPDATE items SET qty = qty + %s WHERE id = %s", (1, 10))
            pipeline.sync()
            read = conn.execute("SELECT qty FROM items WHERE id = %s", (10,))
            pipeline.sync()
            delete = conn.execute("DELETE FROM items WHERE id = %s", (11,))
        return {"rowcounts": [update.rowcount, delete.rowcount], "reads": [read.fetchone()[0]]}

    def pipeline_unsynced(self):
        # One Sync for three statements, a write first: one batch, one implicit transaction.
        conn = self.auto
        with conn.pipeline():
            update = conn.execute("UPDATE items SET qty = qty + %s WHERE id = %s", (1, 14))
            read = conn.execute("SELECT qty FROM items WHERE id = %s", (14,))
            delete = conn.execute("DELETE FROM items WHERE id = %s", (15,))
        return {"rowcounts": [update.rowcount, delete.rowcount], "reads": [read.fetchone()[0]]}

    def pipeline_in_transaction(self):
        # The same shape on a connection that is not autocommit (psycopg's default): the
        # statements run inside the transaction psycopg opened, committed at the end.
        conn = self.tx
        with conn.pipeline():
            update = conn.execute("UPDATE items SET qty = qty + %s WHERE id = %s", (1, 18))
            read = conn.execute("SELECT qty FROM items WHERE id = %s", (18,))
            delete = conn.execute("DELETE FROM items WHERE id = %s", (19,))
        conn.commit()
        return {"rowcounts": [update.rowcount, delete.rowcount], "reads": [read.fetchone()[0]]}

    def after_pipeline(self):
        return {"rows": self.auto.execute("SELECT qty FROM items WHERE id = ANY(%s) ORDER BY id", ([14, 15],)).fetchall()}


STEPS = [
    "connect",
    "types_stored",
    "types_params",
    "div_zero",
    "after_error",
    "update",
    "soft_delete",
    "drop",
    "after_refusal",
    "tx_commit",
    "tx_rollback",
    "prepared",
    "executemany",
    "pipeline_reads",
    "pipeline_synced",
    "pipeline_unsynced",
    "pipeline_in_transaction",
    "after_pipeline",
]


def main():
    steps = Steps()
    # Every run connects first; the other steps use that connection.
    for name in ["connect"] + [n for n in sys.argv[1:] or STEPS if n != "connect"]:
        run(name, getattr(steps, name))


if __name__ == "__main__":
    main()
