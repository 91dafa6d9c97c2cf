-- The tables every driver program of tests/drivers.rs works on, created in a fresh
-- database (directly, as the superuser) before the program runs. Each step of a program
-- uses its own rows of `items`, so what it did can be checked on its own afterwards.
CREATE TABLE items (
    id int PRIMARY KEY,
    name text NOT NULL,
    qty int NOT NULL,
    deleted_at timestamptz
);
INSERT INTO items SELECT g, 'item ' || g, g * 10 FROM generate_series(1, 20) g;

-- One row of every type the programs read back (and send as parameters).
CREATE TABLE typed (
    id int PRIMARY KEY,
    i8 int8,
    num numeric,
    txt text,
    ts timestamptz,
    doc jsonb,
    bin bytea,
    arr int4[],
    uid uuid
);
INSERT INTO typed VALUES (
    1,
    9007199254740993,
    -12345.678,
    E'\u00e9 \u2713 "quoted" \\ tab\t',
    '2024-02-29 12:34:56.789+05',
    '{"a": [1, 2.5, {"b": null}], "z": "\u00e9"}',
    '\x00ff10',
    '{7,NULL,-1,2147483647}',
    '01020304-0506-0708-090a-0b0c0d0e0f10'
);

-- The target of the refused DROP TABLE.
CREATE TABLE keep (id int PRIMARY KEY);
INSERT INTO keep VALUES (1);
