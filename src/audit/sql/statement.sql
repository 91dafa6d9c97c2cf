-- The proxy's side of the protocol: announce a statement before running it, read back what
-- was recorded after it. All settings are transaction-local (set_config(..., true)), so
-- they vanish with the transaction, and a rolled-back savepoint takes them back too.

-- Announces the next write of the current transaction: prepares `rel` for recording
-- (shadow table and triggers, a no-op when nothing changed), claims the approval token if
-- any (single use: a second use fails), and sets the settings the capture triggers read.
-- `rel` is a regclass so that the caller's own search_path resolves the name (the cast
-- happens in the calling statement, before this function's search_path applies).
-- Returns the shadow table's qualified name (NULL for a temporary table or when rel is
-- NULL, e.g. for a statement that touches no table's rows).
--
-- This runs before every recorded write, so the common case takes a fast path: a write
-- without a token to a table prepared and unchanged since (the same check as _prepare's,
-- in one query) only sets the settings. It runs with the caller's rights (what it reads
-- is readable by PUBLIC), without SECURITY DEFINER's SET search_path (a GUC save and
-- restore per call), so everything in it is schema-qualified. Anything else goes to
-- _begin_statement, which prepares the table, checks the writer and claims the token.
CREATE OR REPLACE FUNCTION @S@.begin_statement(
    rel regclass,
    statement text,
    kind text DEFAULT NULL,
    max_rows bigint DEFAULT -1,
    approval text DEFAULT NULL,
    approved_by text DEFAULT NULL,
    reason text DEFAULT NULL,
    client_addr text DEFAULT NULL,
    application_name text DEFAULT NULL,
    soft_delete_column text DEFAULT 'deleted_at'
) RETURNS text
LANGUAGE plpgsql AS $pgbelay$
DECLARE
    v_shadow text;
    v_set text;
BEGIN
    -- The proxy refuses changing this setting, but a function can (set_config), and the
    -- server does not report it to the proxy; `replica` would let this write skip its
    -- foreign keys and triggers.
    IF pg_catalog.current_setting('session_replication_role') OPERATOR(pg_catalog.<>) 'origin' THEN
        RAISE EXCEPTION USING
            ERRCODE = '42501',
            MESSAGE = pg_catalog.format('pgbelay: refused: session_replication_role is %s in this session, '
                                        'which silently disables triggers and foreign keys (a function set it?)',
                                        pg_catalog.current_setting('session_replication_role')),
            DETAIL = 'statement class: guard setting',
            HINT = 'SET session_replication_role = origin, then run the statement again.';
    END IF;
    IF rel IS NOT NULL AND coalesce(approval, '') OPERATOR(pg_catalog.=) ''
       AND coalesce(statement, '') OPERATOR(pg_catalog.<>) '' THEN
        SELECT pg_catalog.format('%I.%I', @S_LIT@, s.shadow_table) INTO v_shadow
          FROM @S@.shadow_tables s
          JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) s.relid
          JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
         WHERE s.relid OPERATOR(pg_catalog.=) rel::pg_catalog.oid
           AND s.signature OPERATOR(pg_catalog.=) (@SIGNATURE@)
           AND (@CAPTURE_TRIGGERS_OK@)
           -- only a writer announces writes (else _begin_statement refuses)
           AND pg_catalog.has_table_privilege(session_user, c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE')
           -- a soft delete needs its column (else _begin_statement refuses with a hint)
           AND (coalesce(kind, '') OPERATOR(pg_catalog.<>) 'delete' OR EXISTS (
                SELECT FROM pg_catalog.pg_attribute a
                 WHERE a.attrelid OPERATOR(pg_catalog.=) c.oid AND a.attnum OPERATOR(pg_catalog.>) 0
                   AND NOT a.attisdropped
                   AND a.attname OPERATOR(pg_catalog.=) coalesce(soft_delete_column, 'deleted_at')));
    END IF;
    IF v_shadow IS NULL THEN
        v_shadow := @S@._begin_statement(rel, statement, kind, approval, approved_by, reason,
                                         soft_delete_column);
    END IF;
    -- One expression, assigned rather than PERFORMed (no executor start-up).
    v_set := pg_catalog.concat(
            pg_catalog.set_config('pgbelay.statement', statement, true),
            pg_catalog.set_config('pgbelay.target', coalesce(rel::pg_catalog.oid::pg_catalog.text, ''), true),
            pg_catalog.set_config('pgbelay.kind', coalesce(kind, ''), true),
            pg_catalog.set_config('pgbelay.max_rows', coalesce(max_rows, -1)::pg_catalog.text, true),
            -- rows changed so far by this statement, in every table (the blast radius)
            pg_catalog.set_config('pgbelay.rows_total', '0', true),
            pg_catalog.set_config('pgbelay.approval', coalesce(approval, ''), true),
            pg_catalog.set_config('pgbelay.approved_by', coalesce(approved_by, ''), true),
            pg_catalog.set_config('pgbelay.reason', coalesce(reason, ''), true),
            pg_catalog.set_config('pgbelay.client_addr', coalesce(client_addr, ''), true),
            pg_catalog.set_config('pgbelay.application_name', coalesce(application_name, ''), true),
            pg_catalog.set_config('pgbelay.soft_delete_column', coalesce(soft_delete_column, 'deleted_at'), true),
            pg_catalog.set_config('pgbelay.change_id', '', true),
            pg_catalog.set_config('pgbelay.parent_id', '', true),
            pg_catalog.set_config('pgbelay.executed', '', true));
    RETURN v_shadow;
END
$pgbelay$;

-- begin_statement's full path: prepares the table (creating its shadow and triggers when
-- needed, for a session user allowed to write it), refuses a soft delete without its
-- column, claims the approval token. Returns the shadow's qualified name.
CREATE OR REPLACE FUNCTION @S@._begin_statement(
    rel regclass,
    statement text,
    kind text,
    approval text,
    approved_by text,
    reason text,
    soft_delete_column text
) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $pgbelay$
DECLARE
    v_shadow text;
BEGIN
    IF coalesce(statement, '') = '' THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'pgbelay: begin_statement needs the statement text';
    END IF;
    IF rel IS NOT NULL THEN
        -- Only someone who may write a table gets to add recording triggers to it (or to
        -- announce writes to it).
        IF NOT has_table_privilege(session_user, rel, 'INSERT, UPDATE, DELETE, TRUNCATE') THEN
            RAISE EXCEPTION USING ERRCODE = '42501', MESSAGE = format('permission denied for table %s', rel);
        END IF;
        v_shadow := @S@._prepare(rel);
    END IF;
    -- A DELETE becomes a soft delete only where there is a column to set (SPEC B3).
    -- (An approved --hard DELETE is announced without kind 'delete' and runs as written.)
    IF rel IS NOT NULL AND kind = 'delete' AND NOT EXISTS (
        SELECT 1 FROM pg_catalog.pg_attribute a
         WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped
           AND a.attname = coalesce(soft_delete_column, 'deleted_at')) THEN
        RAISE EXCEPTION USING
            ERRCODE = '42501',
            MESSAGE = format('pgbelay: refused: DELETE on %s cannot be a soft delete: the table has no %I column',
                             rel, coalesce(soft_delete_column, 'deleted_at')),
            DETAIL = 'statement class: delete without soft-delete column',
            HINT = format('Add the column (ALTER TABLE %s ADD COLUMN %I timestamptz), or approve a hard delete: pgbelay approve --hard --sql %s',
                          rel, coalesce(soft_delete_column, 'deleted_at'),
                          '''' || replace(statement, '''', '''\''''') || '''');
    END IF;
    IF coalesce(approval, '') <> '' THEN
        BEGIN
            INSERT INTO @S@.approvals (token_id, approved_by, reason, statement)
            VALUES (approval, approved_by, reason, _begin_statement.statement);
        EXCEPTION WHEN unique_violation THEN
            RAISE EXCEPTION USING
                ERRCODE = '42501',
                MESSAGE = format('pgbelay: refused: approval token %s has already been used', approval),
                DETAIL = 'statement class: approval',
                HINT = 'A token works once; mint a new one with pgbelay approve.';
        END;
    END IF;
    RETURN v_shadow;
END
$pgbelay$;

-- Ends the announced statement: later writes in the same transaction are not recorded
-- until the next begin_statement. Returns the id of the change the statement recorded
-- (the top-level one when it cascaded), NULL when it changed no rows. Only the statement
-- setting gates recording (the capture triggers and record_change check it first); the
-- others are all set again by the next begin_statement. Calls are schema-qualified
-- instead of a SET search_path clause, which would cost a GUC save and restore per write.
CREATE OR REPLACE FUNCTION @S@.end_statement() RETURNS bigint
LANGUAGE plpgsql AS $pgbelay$
BEGIN
    PERFORM pg_catalog.set_config('pgbelay.statement', '', true),
            pg_catalog.set_config('pgbelay.approval', '', true);
    RETURN NULLIF(pg_catalog.current_setting('pgbelay.change_id', true), '')::pg_catalog.int8;
END
$pgbelay$;

-- Records the change row of an approved statement no trigger sees (DDL, a DO block, a
-- hidden write), with the announced statement's settings, before the statement runs;
-- returns its id. The rows the statement then changes in recorded tables are its parts
-- (pgbelay.parent_id), so undoing it reverses them.
CREATE OR REPLACE FUNCTION @S@.record_change(kind text, table_schema text, table_name text,
                                             row_count bigint DEFAULT NULL, shadow_table text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $pgbelay$
DECLARE
    v_parent text;
    v_id bigint;
BEGIN
    IF coalesce(current_setting('pgbelay.statement', true), '') = '' THEN
        RAISE EXCEPTION USING ERRCODE = '55000', MESSAGE = 'pgbelay: record_change needs begin_statement first';
    END IF;
    v_parent := coalesce(current_setting('pgbelay.parent_id', true), '');
    v_id := @S@._record(NULL, kind, table_schema, table_name, row_count, shadow_table);
    IF v_parent = '' THEN
        PERFORM set_config('pgbelay.parent_id', v_id::text, true);
    END IF;
    RETURN v_id;
END
$pgbelay$;

-- Prepares for recording every table an approved TRUNCATE empties: the ones it names and,
-- with CASCADE, every table referencing them by foreign key (transitively), so that the
-- BEFORE TRUNCATE capture trigger of each records all its rows first. Returns how many.
CREATE OR REPLACE FUNCTION @S@.prepare_truncate(rels regclass[], "cascade" boolean DEFAULT false)
RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $pgbelay$
DECLARE
    v_all oid[] := rels::oid[];
    v_next oid[];
    v_rel oid;
BEGIN
    IF prepare_truncate."cascade" THEN
        LOOP
            SELECT array_agg(DISTINCT c.conrelid) INTO v_next
              FROM pg_constraint c
             WHERE c.contype = 'f' AND c.confrelid = ANY (v_all) AND NOT c.conrelid = ANY (v_all);
            EXIT WHEN v_next IS NULL;
            v_all := v_all || v_next;
        END LOOP;
    END IF;
    FOREACH v_rel IN ARRAY v_all LOOP
        PERFORM @S@._check_writer(v_rel::regclass);
        PERFORM @S@._prepare(v_rel::regclass);
    END LOOP;
    RETURN cardinality(v_all);
END
$pgbelay$;
