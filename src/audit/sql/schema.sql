-- pgbelay audit schema: tables and their append-only guards.
--
-- Placeholders (replaced by src/audit/schema.rs before this runs):
--   @S@      the audit schema, quoted as an identifier
--   @T@      the recycle bin schema (<audit>_trash), quoted as an identifier
--   @S_LIT@  the audit schema's name as a string literal
--
-- Everything here is idempotent (IF NOT EXISTS / OR REPLACE) so `pgbelay init` can run it
-- again; run the whole script in one transaction.

-- No "already exists, skipping" notices on a re-install (transaction-local, like SET LOCAL).
SELECT pg_catalog.set_config('client_min_messages', 'warning', true);
-- Two installers racing would collide on CREATE ... IF NOT EXISTS; serialize them.
SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('pgbelay install'), pg_catalog.hashtext(@S_LIT@));

CREATE SCHEMA IF NOT EXISTS @S@;
CREATE SCHEMA IF NOT EXISTS @T@;
REVOKE ALL ON SCHEMA @S@ FROM PUBLIC;
REVOKE ALL ON SCHEMA @T@ FROM PUBLIC;
-- Auditors read the trail; only the owner creates objects in it.
GRANT USAGE ON SCHEMA @S@ TO PUBLIC;

CREATE TABLE IF NOT EXISTS @S@.meta (
    version int NOT NULL
);

-- One row per recorded change (one per statement and table; a soft-delete cascade adds one
-- row per child table, pointing at its parent change through parent_id).
CREATE TABLE IF NOT EXISTS @S@.changes (
    id               bigserial PRIMARY KEY,
    at               timestamptz NOT NULL DEFAULT pg_catalog.now(),
    txid             bigint NOT NULL DEFAULT pg_catalog.txid_current(),
    "session_user"   text NOT NULL DEFAULT session_user,
    client_addr      text,
    application_name text,
    kind             text NOT NULL,  -- insert / update / delete / truncate / drop / undo
    table_schema     text,
    table_name       text,
    rows             bigint,
    statement        text,           -- as the client sent it
    executed         text,           -- what ran in the server
    approval         text,           -- token id, or null
    approved_by      text,
    reason           text,
    shadow_table     text,           -- qualified name of the table holding the images
    parent_id        bigint REFERENCES @S@.changes (id)
);
CREATE INDEX IF NOT EXISTS changes_at_idx ON @S@.changes (at);
CREATE INDEX IF NOT EXISTS changes_table_idx ON @S@.changes (table_schema, table_name, id);

-- One row per approval token used: the primary key makes a token single-use.
CREATE TABLE IF NOT EXISTS @S@.approvals (
    token_id    text PRIMARY KEY,
    used_at     timestamptz NOT NULL DEFAULT pg_catalog.now(),
    change_id   bigint,
    approved_by text,
    reason      text,
    statement   text
);

-- Which shadow table holds the images of which source table.
CREATE TABLE IF NOT EXISTS @S@.shadow_tables (
    relid         oid PRIMARY KEY,   -- the source table (oids survive renames and SET SCHEMA)
    source_schema name NOT NULL,     -- names as of the last prepare_table
    source_table  name NOT NULL,
    shadow_table  name NOT NULL UNIQUE,  -- in the audit schema
    signature     text NOT NULL,     -- the source's columns when last prepared
    columns       text NOT NULL,     -- the source's column list, quoted, for image inserts
    created_at    timestamptz NOT NULL DEFAULT pg_catalog.now()
);

REVOKE ALL ON ALL TABLES IN SCHEMA @S@ FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA @S@ FROM PUBLIC;
GRANT SELECT ON @S@.meta, @S@.changes, @S@.approvals, @S@.shadow_tables TO PUBLIC;

-- Append-only, also for the owner (who owns the SECURITY DEFINER functions): a bug in the
-- recording code or a stray statement cannot rewrite history. A superuser can still
-- disable the trigger on purpose; setting pgbelay.maintenance = 'on' lets the owner
-- clean up deliberately.
CREATE OR REPLACE FUNCTION @S@.refuse_rewrite() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $pgbelay$
BEGIN
    IF current_setting('pgbelay.maintenance', true) = 'on' THEN
        RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    END IF;
    -- The one permitted update: filling in which change used an approval token.
    IF TG_OP = 'UPDATE' AND TG_TABLE_NAME = 'approvals' THEN
        IF to_jsonb(OLD) -> 'change_id' = 'null'
           AND (to_jsonb(OLD) - 'change_id') = (to_jsonb(NEW) - 'change_id') THEN
            RETURN NEW;
        END IF;
    END IF;
    RAISE EXCEPTION USING
        ERRCODE = '42501',
        MESSAGE = format('pgbelay: refused: %s on %I.%I: the audit trail is append-only',
                         TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME),
        DETAIL = 'statement class: audit schema',
        HINT = 'Recorded changes cannot be altered or removed.';
END
$pgbelay$;

DO $pgbelay$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['changes', 'approvals'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger
                       WHERE tgrelid = format('%I.%I', @S_LIT@, t)::regclass
                         AND tgname = 'pgbelay_append_only') THEN
            EXECUTE format('CREATE TRIGGER pgbelay_append_only BEFORE UPDATE OR DELETE ON %I.%I '
                           'FOR EACH ROW EXECUTE FUNCTION %I.refuse_rewrite()', @S_LIT@, t, @S_LIT@);
            EXECUTE format('CREATE TRIGGER pgbelay_append_only_truncate BEFORE TRUNCATE ON %I.%I '
                           'FOR EACH STATEMENT EXECUTE FUNCTION %I.refuse_rewrite()', @S_LIT@, t, @S_LIT@);
        END IF;
    END LOOP;
END
$pgbelay$;
