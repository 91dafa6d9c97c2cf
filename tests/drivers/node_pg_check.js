#!/usr/bin/env node
// node-postgres (`pg`) through pgbelay, run by tests/drivers.rs.
//
// Connects with PGHOST, PGPORT, PGDATABASE, PGUSER and PGPASSWORD from the environment to a
// database laid out by tests/drivers/schema.sql, runs the steps named on the command line
// (all of them without arguments) and prints one JSON object per step on stdout:
// {"step": NAME, "ok": true, ...what it returned} or {"step": NAME, "ok": false,
// "sqlstate": ..., "message": ...}. The test asserts on these lines and on the database.
// Exit code 3: `pg` is not installed (run scripts/setup, which runs `npm ci` here).
'use strict';

let pg;
try {
  pg = require('pg');
} catch (err) {
  process.stderr.write(`node-postgres (pg) is not installed in ${__dirname}/node_modules: ${err.message}\n`);
  process.exit(3);
}

const TEXT = '\u00e9 \u2713 "quoted" \\ tab\t';
const TYPED_COLUMNS = 'i8, num, txt, ts, doc, bin, arr, uid';

// Rows as arrays, in column order.
function typed(row) {
  const [i8, num, txt, ts, doc, bin, arr, uid] = row;
  return {
    i8: String(i8), // int8 arrives as a string: no precision lost
    num: String(num),
    txt,
    ts: ts.toISOString(),
    doc,
    bin: bin.toString('hex'),
    arr,
    uid,
  };
}

class Steps {
  async connect() {
    this.client = new pg.Client({
      host: process.env.PGHOST,
      port: Number(process.env.PGPORT),
      database: process.env.PGDATABASE,
      user: process.env.PGUSER,
      password: process.env.PGPASSWORD,
      ssl: false,
      connectionTimeoutMillis: 10000,
      application_name: 'node_pg_check',
    });
    await this.client.connect();
    const res = await this.client.query("SELECT current_user, current_setting('server_version_num') AS v");
    return { user: res.rows[0].current_user, server_version_num: res.rows[0].v };
  }

  async rows(text, values) {
    return (await this.client.query({ text, values, rowMode: 'array' })).rows;
  }

  async types_stored() {
    const rows = await this.rows(`SELECT ${TYPED_COLUMNS} FROM typed WHERE id = $1 AND txt = $2`, [1, TEXT]);
    return { rows: rows.map(typed) };
  }

  async types_params() {
    const rows = await this.rows(
      'SELECT $1::int8, $2::numeric, $3::text, $4::timestamptz, $5::jsonb, $6::bytea, $7::int4[], $8::uuid',
      [
        '9007199254740993',
        '-12345.678',
        TEXT,
        new Date('2024-02-29T12:34:56.789+05:00'),
        JSON.stringify({ a: [1, 2.5, { b: null }], z: '\u00e9' }),
        Buffer.from([0, 255, 16]),
        [7, null, -1, 2147483647],
        '01020304-0506-0708-090a-0b0c0d0e0f10',
      ],
    );
    return { rows: rows.map(typed) };
  }

  async div_zero() {
    await this.client.query('SELECT 1/$1::int', [0]);
  }

  async after_error() {
    return { rows: await this.rows('SELECT $1::int', [1]) };
  }

  async update() {
    const res = await this.client.query('UPDATE items SET qty = qty + $1 WHERE id = $2', [5, 2]);
    return { rowcount: res.rowCount, command: res.command };
  }

  async soft_delete() {
    const res = await this.client.query('DELETE FROM items WHERE id BETWEEN $1 AND $2', [3, 4]);
    return { rowcount: res.rowCount, command: res.command };
  }

  async drop() {
    // No parameters: a simple Query.
    await this.client.query('DROP TABLE keep');
  }

  async after_refusal() {
    return { rows: await this.rows('SELECT count(*)::int FROM keep', []) };
  }

  async tx_commit() {
    await this.client.query('BEGIN');
    try {
      const qty = (await this.rows('SELECT qty FROM items WHERE id = $1', [5]))[0][0];
      const updated = await this.client.query('UPDATE items SET qty = $1 WHERE id = $2', [qty + 1, 5]);
      const inserted = await this.client.query('INSERT INTO items (id, name, qty) VALUES ($1, $2, $3)', [
        21,
        'item 21',
        qty,
      ]);
      await this.client.query('COMMIT');
      return { read: qty, rowcounts: [updated.rowCount, inserted.rowCount] };
    } catch (err) {
      await this.client.query('ROLLBACK');
      throw err;
    }
  }

  async tx_rollback() {
    await this.client.query('BEGIN');
    try {
      const qty = (await this.rows('SELECT qty FROM items WHERE id = $1', [6]))[0][0];
      const updated = await this.client.query('UPDATE items SET qty = $1 WHERE id = $2', [0, 6]);
      return { read: qty, rowcounts: [updated.rowCount] };
    } finally {
      await this.client.query('ROLLBACK');
    }
  }

  async prepared() {
    // Named queries: parsed once on the server, then only bound and executed.
    const rowcounts = [];
    const reads = [];
    for (let i = 0; i < 10; i++) {
      const res = await this.client.query({
        name: 'bump_qty',
        text: 'UPDATE items SET qty = qty + 1 WHERE id = $1',
        values: [7],
      });
      rowcounts.push(res.rowCount);
      const read = await this.client.query({
        name: 'read_qty',
        text: 'SELECT qty FROM items WHERE id = $1',
        values: [7],
        rowMode: 'array',
      });
      reads.push(read.rows[0][0]);
    }
    const prepared = await this.rows(
      'SELECT statement FROM pg_prepared_statements WHERE NOT from_sql ORDER BY statement',
      [],
    );
    return { rowcounts, reads, server_prepared: prepared.map((r) => r[0]) };
  }

  async close() {
    if (this.client) await this.client.end();
  }
}

const STEPS = [
  'connect',
  'types_stored',
  'types_params',
  'div_zero',
  'after_error',
  'update',
  'soft_delete',
  'drop',
  'after_refusal',
  'tx_commit',
  'tx_rollback',
  'prepared',
];

async function main() {
  const steps = new Steps();
  const asked = process.argv.slice(2);
  // Every run connects first; the other steps use that connection.
  const names = ['connect', ...(asked.length ? asked : STEPS).filter((n) => n !== 'connect')];
  for (const name of names) {
    let record;
    try {
      record = { step: name, ok: true, ...((await steps[name]()) || {}) };
    } catch (err) {
      record = {
        step: name,
        ok: false,
        sqlstate: err.code === undefined ? null : err.code,
        message: err.message,
        detail: err.detail === undefined ? null : err.detail,
      };
    }
    process.stdout.write(JSON.stringify(record) + '\n');
  }
  await steps.close();
}

main().catch((err) => {
  process.stderr.write(`${err.stack}\n`);
  process.exit(1);
});
