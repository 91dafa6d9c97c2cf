#!/usr/bin/env python3
"""asyncpg through pgbelay, run by tests/drivers.rs.

Connects with PGHOST, PGPORT, PGDATABASE, PGUSER and PGPASSWORD from the environment to a
database laid out by tests/drivers/schema.sql, runs the steps named on the command line
(all of them without arguments) and prints one JSON object per step on stdout:
{"step": NAME, "ok": true, ...what it returned} or {"step": NAME, "ok": false,
"sqlstate": ..., "message": ...}. asyncpg prepares every statement that has arguments
(a named server-side statement, kept in its statement cache). The test asserts on these
lines and on the database. Exit code 3: asyncpg is not installed (run scripts/setup).

Connection.prepare() ends its batch with Flush, not Sync: prepare_write_then_read,
prepare_read_then_write and copy_records send the next statement into that open batch.
"""

import asyncio
import datetime
import io
import json
import os
import sys
import uuid
from decimal import Decimal

try:
    import asyncpg
except ImportError as exc:  # the test turns this into "run scripts/setup"
    print(f"asyncpg is not installed for {sys.executable}: {exc}", file=sys.stderr)
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
        # asyncpg hands jsonb over as its text.
        "doc": json.loads(doc),
        "bin": bytes(bin_).hex(),
        "arr": arr,
        "uid": str(uid),
    }


def rowcount(status):
    """The row count of a command tag such as 'DELETE 2' or 'INSERT 0 1'."""
    return int(status.split()[-1])


async def run(name, fn):
    try:
        record = {"step": name, "ok": True}
        record.update(await fn() or {})
    except asyncpg.PostgresError as exc:
        record = {
            "step": name,
            "ok": False,
            "sqlstate": exc.sqlstate,
            "message": exc.args[0] if exc.args else str(exc),
            "detail": getattr(exc, "detail", None),
        }
    except Exception as exc:  # a driver-side failure is a result too
        record = {"step": name, "ok": False, "sqlstate": None, "message": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(record, ensure_ascii=False), flush=True)


class Steps:
    def __init__(self):
        self.conn = None

    async def connect(self):
        self.conn = await asyncpg.connect(
            host=os.environ["PGHOST"],
            port=int(os.environ["PGPORT"]),
            database=os.environ["PGDATABASE"],
            user=os.environ["PGUSER"],
            password=os.environ["PGPASSWORD"],
            ssl=False,
            timeout=10,
            server_settings={"application_name": "asyncpg_check"},
        )
        row = await self.conn.fetchrow("SELECT current_user, current_setting('server_version_num')")
        return {"user": row[0], "server_version_num": row[1]}

    async def types_stored(self):
        rows = await self.conn.fetch(f"SELECT {TYPED_COLUMNS} FROM typed WHERE id = $1 AND txt = $2", 1, TEXT)
        return {"rows": [typed(r) for r in rows]}

    async def types_params(self):
        rows = await self.conn.fetch(
            "SELECT $1::int8, $2::numeric, $3::text, $4::timestamptz, $5::jsonb, $6::bytea, $7::int4[], $8::uuid",
            9007199254740993,
            Decimal("-12345.678"),
            TEXT,
            datetime.datetime(2024, 2, 29, 12, 34, 56, 789000, tzinfo=datetime.timezone(datetime.timedelta(hours=5))),
            json.dumps({"a": [1, 2.5, {"b": None}], "z": "\u00e9"}),
            bytes([0, 255, 16]),
            [7, None, -1, 2147483647],
            uuid.UUID("01020304-0506-0708-090a-0b0c0d0e0f10"),
        )
        return {"rows": [typed(r) for r in rows]}

    async def div_zero(self):
        # With an argument: prepared, so the error comes from the extended protocol.
        await self.conn.fetch("SELECT 1/$1::int", 0)

    async def after_error(self):
        return {"rows": [list(r) for r in await self.conn.fetch("SELECT $1::int", 1)]}

    async def update(self):
        status = await self.conn.execute("UPDATE items SET qty = qty + $1 WHERE id = $2", 5, 2)
        return {"rowcount": rowcount(status), "status": status}

    async def soft_delete(self):
        status = await self.conn.execute("DELETE FROM items WHERE id BETWEEN $1 AND $2", 3, 4)
        return {"rowcount": rowcount(status), "status": status}

    async def drop(self):
        # No arguments: asyncpg sends it as a simple Query.
        await self.conn.execute("DROP TABLE keep")

    async def after_refusal(self):
        return {"rows": [list(r) for r in await self.conn.fetch("SELECT count(*) FROM keep")]}

    async def tx_commit(self):
        async with self.conn.transaction():
            qty = await self.conn.fetchval("SELECT qty FROM items WHERE id = $1", 5)
            updated = await self.conn.execute("UPDATE items SET qty = $1 WHERE id = $2", qty + 1, 5)
            inserted = await self.conn.execute(
                "INSERT INTO items (id, name, qty) VALUES ($1, $2, $3)", 21, "item 21", qty
            )
        return {"read": qty, "rowcounts": [rowcount(updated), rowcount(inserted)]}

    async def tx_rollback(self):
        class Rollback(Exception):
            pass

        result = {}
        try:
            async with self.conn.transaction():
                result["read"] = await self.conn.fetchval("SELECT qty FROM items WHERE id = $1", 6)
                status = await self.conn.execute("UPDATE items SET qty = $1 WHERE id = $2", 0, 6)
                result["rowcounts"] = [rowcount(status)]
                raise Rollback()
        except Rollback:
            pass
        return result

    async def prepared(self):
        # asyncpg prepares every statement with arguments as a named server-side statement
        # and keeps it in its cache: the second to tenth runs only bind and execute it.
        counts, reads = [], []
        for _ in range(10):
            counts.append(await self.conn.execute("UPDATE items SET qty = qty + 1 WHERE id = $1", 7))
            reads.append(await self.conn.fetchval("SELECT qty FROM items WHERE id = $1", 7))
        prepared = await self.conn.fetch(
            "SELECT statement FROM pg_prepared_statements WHERE NOT from_sql ORDER BY statement"
        )
        return {
            "rowcounts": [rowcount(s) for s in counts],
            "reads": reads,
            "server_prepared": [r[0] for r in prepared],
        }

    async def prepared_explicit(self):
        # Connection.prepare(): a statement object, run ten times. Its Parse goes out with a
        # Flush (no Sync), so the first run comes in the same batch.
        update = await self.conn.prepare("UPDATE items SET qty = qty + 2 WHERE id = $1")
        counts = []
        for _ in range(10):
            await update.fetch(9)
            counts.append(rowcount(update.get_statusmsg()))
        select = await self.conn.prepare("SELECT qty FROM items WHERE id = $1")
        return {"rowcounts": counts, "reads": [await select.fetchval(9)]}

    async def executemany(self):
        # One prepared statement bound and executed once per argument tuple, in one batch
        # (one Sync, so one implicit transaction).
        await self.conn.executemany(
            "UPDATE items SET qty = qty + $1 WHERE id = $2", [(1, 12), (2, 13), (3, 14)]
        )

    async def copy_in(self):
        # COPY FROM STDIN (text format) of one row.
        status = await self.conn.copy_to_table(
            "items", source=io.BytesIO(b"22\titem 22\t220\t\\N\n"), columns=["id", "name", "qty", "deleted_at"]
        )
        return {"rowcount": rowcount(status), "status": status}

    # A statement prepared with Connection.prepare() is followed, before any Sync, by the
    # next statement's messages.

    async def copy_records(self):
        # copy_records_to_table() describes the table with Parse/Describe/Flush, then sends
        # the COPY as a simple Query (pgbelay once left it unanswered: the guard).
        try:
            status = await asyncio.wait_for(
                self.conn.copy_records_to_table("items", records=[(23, "item 23", 230, None)]), 10
            )
        except asyncio.TimeoutError:
            self.conn.terminate()  # close() would wait for the answer too
            self.conn = None
            raise RuntimeError("no answer within 10 s") from None
        return {"rowcount": rowcount(status), "status": status}

    async def prepare_write_then_read(self):
        update = await self.conn.prepare("UPDATE items SET qty = qty + 1 WHERE id = $1")
        select = await self.conn.prepare("SELECT qty FROM items WHERE id = $1")
        await update.fetch(16)
        return {"reads": [await select.fetchval(16)]}

    async def prepare_read_then_write(self):
        select = await self.conn.prepare("SELECT qty FROM items WHERE id = $1")
        status = await self.conn.execute("UPDATE items SET qty = qty + 3 WHERE id = $1", 17)
        return {"rowcount": rowcount(status), "reads": [await select.fetchval(17)]}


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
    "prepared_explicit",
    "executemany",
    "copy_in",
    "copy_records",
    "prepare_write_then_read",
    "prepare_read_then_write",
]


async def main():
    steps = Steps()
    # Every run connects first; the other steps use that connection.
    for name in ["connect"] + [n for n in sys.argv[1:] or STEPS if n != "connect"]:
        await run(name, getattr(steps, name))
    if steps.conn is not None:
        await steps.conn.close()


if __name__ == "__main__":
    asyncio.run(main())
