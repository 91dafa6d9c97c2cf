-- Shadow tables and capture triggers: S.prepare_table(rel) and its helpers.

-- Which tables pgbelay prepares ahead of their first write, the one rule for `pgbelay
-- init` and the event trigger: ordinary and partitioned tables, unlogged ones included,
-- not temporary (session scratch space is not recorded), outside the system schemas and
-- pgbelay's own.
CREATE OR REPLACE FUNCTION @S@._recordable(rel oid) RETURNS boolean
LANGUAGE sql STABLE AS $pgbelay$
    SELECT c.relkind IN ('r', 'p') AND c.relpersistence <> 't'
           AND n.nspname NOT IN ('pg_catalog', 'information_schema', @S_LIT@, @S_LIT@ || '_trash')
           AND n.nspname NOT LIKE 'pg\_toast%'
      FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = rel
$pgbelay$;

-- The source columns that matter for the shadow, in order: user columns, not dropped.
-- Domains are stored as their base type so the shadow carries no constraints (a NOT NULL
-- domain would otherwise refuse the NULLs of a column added later).
CREATE OR REPLACE FUNCTION @S@._source_columns(rel regclass)
RETURNS TABLE (attname name, atttype text)
LANGUAGE sql STABLE AS $pgbelay$
    WITH RECURSIVE cols AS (
        SELECT a.attnum, a.attname, a.atttypid AS typid, a.atttypmod AS typmod, a.attcollation
        FROM pg_attribute a
        WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped
    ), base AS (
        SELECT c.attnum, c.typid, c.typmod, 0 AS depth FROM cols c
        UNION ALL
        SELECT b.attnum, t.typbasetype, t.typtypmod, b.depth + 1
        FROM base b JOIN pg_type t ON t.oid = b.typid
        WHERE t.typtype = 'd'
    )
    SELECT c.attname,
           format_type(b.typid, CASE WHEN b.depth = 0 THEN c.typmod ELSE b.typmod END)
           || CASE WHEN c.attcollation <> 0 AND c.attcollation <> t.typcollation
                   THEN ' COLLATE ' || quote_ident(n.nspname) || '.' || quote_ident(co.collname)
                   ELSE '' END
    FROM cols c
    JOIN LATERAL (SELECT * FROM base WHERE base.attnum = c.attnum
                  ORDER BY depth DESC LIMIT 1) b ON true
    JOIN pg_type t ON t.oid = b.typid
    LEFT JOIN pg_collation co ON co.oid = c.attcollation
    LEFT JOIN pg_namespace n ON n.oid = co.collnamespace
    ORDER BY c.attnum
$pgbelay$;

-- `base` cut to fit, with `suffix`, in an identifier (63 bytes), on a character boundary.
CREATE OR REPLACE FUNCTION @S@._fit_name(base text, suffix text) RETURNS text
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $pgbelay$
DECLARE
    keep int := length(base);
BEGIN
    WHILE octet_length(left(base, keep)) + octet_length(suffix) > 63 LOOP
        keep := keep - 1;
    END LOOP;
    RETURN left(base, keep) || suffix;
END
$pgbelay$;

-- Creates or updates the shadow table of `rel` and installs the capture triggers; returns
-- the shadow's qualified name, or NULL for a temporary table (session scratch space is not
-- recorded). No privilege check: callers are begin_statement / prepare_table (which check
-- the session user) and the capture trigger (cascades, which PostgreSQL itself runs with
-- the table owner's rights). All of them are SECURITY DEFINER with a safe search_path, so
-- this runs as the audit owner without a SET clause of its own (which would cost a GUC
-- save and restore before every recorded write).
CREATE OR REPLACE FUNCTION @S@._prepare(rel regclass) RETURNS text
LANGUAGE plpgsql AS $pgbelay$
DECLARE
    v_audit constant name := @S_LIT@;
    v_class record;
    v_map record;
    v_shadow text;  -- not `name`: that would silently cut a long name before we can
    v_col record;
    v_existing text;
    v_attnum int;
    v_columns text;
    v_capture text;
    v_event text;
    v_grantee record;
BEGIN
    -- One query (its plan cached for the session) tells everything the fast path needs:
    -- each statement a plpgsql function runs costs an executor start-up, which is most of
    -- the fast path's time.
    -- The signature is what decides that nothing changed: the source's current name and
    -- its columns with their types.
    -- (@SIGNATURE@ and @CAPTURE_TRIGGERS_OK@ are the expressions begin_statement's fast
    -- path checks too.)
    SELECT c.relkind, c.relpersistence, n.nspname, c.relname, c.relowner,
           (@SIGNATURE@) AS signature,
           (@CAPTURE_TRIGGERS_OK@) AS triggers_ok,
           s.signature AS prepared_signature, s.shadow_table
      INTO v_class
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      LEFT JOIN @S@.shadow_tables s ON s.relid = c.oid
     WHERE c.oid = rel;
    IF v_class.relpersistence = 't' THEN
        RETURN NULL;
    END IF;
    IF v_class.relkind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION USING
            ERRCODE = '42501',
            MESSAGE = format('pgbelay: refused: %I.%I is not a table, writes to it cannot be recorded',
                             v_class.nspname, v_class.relname),
            DETAIL = 'statement class: unrecordable write',
            HINT = 'Write to the underlying table instead.';
    END IF;
    IF v_class.nspname IN (v_audit, v_audit || '_trash') THEN
        RAISE EXCEPTION USING
            ERRCODE = '42501',
            MESSAGE = format('pgbelay: refused: %I.%I belongs to the audit schema', v_class.nspname, v_class.relname),
            DETAIL = 'statement class: audit schema',
            HINT = 'The audit trail is append-only.';
    END IF;

    -- Fast path, taken before every recorded write: nothing changed since last time.
    IF v_class.prepared_signature = v_class.signature AND v_class.triggers_ok THEN
        RETURN format('%I.%I', v_audit, v_class.shadow_table);
    END IF;

    -- Slow path: serialize with other sessions preparing the same table, then look again.
    PERFORM pg_advisory_xact_lock(hashtext('pgbelay prepare'), (rel::oid::bigint - 2147483648)::int);
    SELECT * INTO v_map FROM @S@.shadow_tables WHERE relid = rel;
    IF FOUND AND v_map.signature = v_class.signature
       AND (SELECT (@CAPTURE_TRIGGERS_OK@) FROM pg_class c WHERE c.oid = rel) THEN
        RETURN format('%I.%I', v_audit, v_map.shadow_table);
    END IF;
    -- The DDL below fires the event trigger (prepare_on_ddl), which must not prepare the
    -- half-prepared table again.
    PERFORM set_config('pgbelay.preparing', 'on', true);

    IF v_map.shadow_table IS NOT NULL
       AND to_regclass(format('%I.%I', v_audit, v_map.shadow_table)) IS NOT NULL THEN
        v_shadow := v_map.shadow_table;
    ELSE
        -- Readable name "<schema>.<table>"; when too long, cut with a hash of the full
        -- name; when taken (another table had that name before), add the source's oid.
        v_shadow := v_class.nspname || '.' || v_class.relname;
        IF octet_length(v_shadow) > 63 THEN
            v_shadow := @S@._fit_name(v_shadow, '~' || left(md5(v_shadow), 8));
        END IF;
        IF to_regclass(format('%I.%I', v_audit, v_shadow)) IS NOT NULL THEN
            v_shadow := @S@._fit_name(v_shadow, '~' || rel::oid);
        END IF;
        EXECUTE format('CREATE TABLE %I.%I (pgbelay_change_id bigint, pgbelay_image text)', v_audit, v_shadow);
        EXECUTE format('CREATE INDEX ON %I.%I (pgbelay_change_id)', v_audit, v_shadow);
        EXECUTE format('REVOKE ALL ON %I.%I FROM PUBLIC', v_audit, v_shadow);
        -- Append-only like the rest of the trail.
        EXECUTE format('CREATE TRIGGER pgbelay_append_only BEFORE UPDATE OR DELETE ON %I.%I '
                       'FOR EACH ROW EXECUTE FUNCTION %I.refuse_rewrite()', v_audit, v_shadow, v_audit);
        EXECUTE format('CREATE TRIGGER pgbelay_append_only_truncate BEFORE TRUNCATE ON %I.%I '
                       'FOR EACH STATEMENT EXECUTE FUNCTION %I.refuse_rewrite()', v_audit, v_shadow, v_audit);
    END IF;

    -- Images are the source's rows: whoever may read the source (now) may read the shadow.
    FOR v_grantee IN
        SELECT DISTINCT a.grantee FROM pg_class c, aclexplode(c.relacl) a
        WHERE c.oid = rel AND a.privilege_type = 'SELECT'
        UNION SELECT v_class.relowner
    LOOP
        EXECUTE format('GRANT SELECT ON %I.%I TO %s', v_audit, v_shadow,
                       CASE WHEN v_grantee.grantee = 0 THEN 'PUBLIC'
                            ELSE quote_ident(pg_get_userbyid(v_grantee.grantee)) END);
    END LOOP;

    -- Bring the shadow's columns up to date: add new source columns; a column whose type
    -- changed keeps its old images under a new name and starts again with the new type.
    FOR v_col IN SELECT * FROM @S@._source_columns(rel) LOOP
        IF v_col.attname IN ('pgbelay_change_id', 'pgbelay_image') THEN
            RAISE EXCEPTION USING
                ERRCODE = '42501',
                MESSAGE = format('pgbelay: refused: %I.%I has a column named %I, which pgbelay reserves',
                                 v_class.nspname, v_class.relname, v_col.attname),
                DETAIL = 'statement class: unrecordable write',
                HINT = format('Rename the column (ALTER TABLE %I.%I RENAME COLUMN %I TO …) so its writes can be recorded.',
                              v_class.nspname, v_class.relname, v_col.attname);
        END IF;
        SELECT format_type(a.atttypid, a.atttypmod)
               || CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation
                       THEN ' COLLATE ' || quote_ident(n.nspname) || '.' || quote_ident(co.collname)
                       ELSE '' END,
               a.attnum
          INTO v_existing, v_attnum
          FROM pg_attribute a
          JOIN pg_type t ON t.oid = a.atttypid
          LEFT JOIN pg_collation co ON co.oid = a.attcollation
          LEFT JOIN pg_namespace n ON n.oid = co.collnamespace
         WHERE a.attrelid = format('%I.%I', v_audit, v_shadow)::regclass
           AND a.attname = v_col.attname AND NOT a.attisdropped;
        IF FOUND AND v_existing IS DISTINCT FROM v_col.atttype THEN
            -- "<name>~<its attnum in the shadow>": attnums are never reused, so never taken
            EXECUTE format('ALTER TABLE %I.%I RENAME COLUMN %I TO %I', v_audit, v_shadow, v_col.attname,
                           @S@._fit_name(v_col.attname, '~' || v_attnum));
        END IF;
        IF NOT FOUND OR v_existing IS DISTINCT FROM v_col.atttype THEN
            EXECUTE format('ALTER TABLE %I.%I ADD COLUMN %I %s', v_audit, v_shadow, v_col.attname, v_col.atttype);
        END IF;
    END LOOP;

    SELECT coalesce(string_agg(quote_ident(c.attname), ', ' ORDER BY c.i), '') INTO v_columns
      FROM @S@._source_columns(rel) WITH ORDINALITY c(attname, atttype, i);
    v_capture := @S@._generate_capture(rel, format('%I.%I', v_audit, v_shadow), v_columns);

    -- One statement-level trigger per event: PostgreSQL allows transition tables only on
    -- single-event triggers. The WHEN clause skips the function for writes that were not
    -- announced by begin_statement (direct connections); ENABLE ALWAYS keeps them firing
    -- under session_replication_role = replica.
    FOREACH v_event IN ARRAY ARRAY['insert', 'update', 'delete', 'truncate'] LOOP
        -- A trigger calling something else (an older version's function) is replaced.
        IF EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = rel AND tgname = 'pgbelay_capture_' || v_event
                   AND tgfoid <> (CASE v_event WHEN 'truncate' THEN format('%I.capture_truncate()', v_audit)
                                  ELSE v_capture || '()' END)::regprocedure) THEN
            EXECUTE format('DROP TRIGGER %I ON %s', 'pgbelay_capture_' || v_event, rel);
        END IF;
        IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = rel
                       AND tgname = 'pgbelay_capture_' || v_event) THEN
            EXECUTE format(
                'CREATE TRIGGER %I %s %s ON %s %s FOR EACH STATEMENT '
                'WHEN (pg_catalog.current_setting(''pgbelay.statement'', true) <> '''') '
                'EXECUTE FUNCTION %s()',
                'pgbelay_capture_' || v_event,
                CASE v_event WHEN 'truncate' THEN 'BEFORE' ELSE 'AFTER' END,
                upper(v_event),
                rel,
                CASE v_event
                    WHEN 'insert' THEN 'REFERENCING NEW TABLE AS pgbelay_new'
                    WHEN 'update' THEN 'REFERENCING OLD TABLE AS pgbelay_old NEW TABLE AS pgbelay_new'
                    WHEN 'delete' THEN 'REFERENCING OLD TABLE AS pgbelay_old'
                    ELSE '' END,
                CASE v_event WHEN 'truncate' THEN format('%I.capture_truncate', v_audit) ELSE v_capture END);
        END IF;
        IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = rel
                       AND tgname = 'pgbelay_capture_' || v_event AND tgenabled = 'A') THEN
            EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER %I', rel, 'pgbelay_capture_' || v_event);
        END IF;
    END LOOP;

    INSERT INTO @S@.shadow_tables AS s (relid, source_schema, source_table, shadow_table, signature, columns)
    VALUES (rel, v_class.nspname, v_class.relname, v_shadow, v_class.signature, v_columns)
    ON CONFLICT (relid) DO UPDATE
       SET source_schema = EXCLUDED.source_schema, source_table = EXCLUDED.source_table,
           shadow_table = EXCLUDED.shadow_table, signature = EXCLUDED.signature,
           columns = EXCLUDED.columns;
    PERFORM set_config('pgbelay.preparing', '', true);
    RETURN format('%I.%I', v_audit, v_shadow);
END
$pgbelay$;

-- The public entry: prepare `rel` for recording, for a session user allowed to write it.
CREATE OR REPLACE FUNCTION @S@.prepare_table(rel regclass) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $pgbelay$
BEGIN
    PERFORM @S@._check_writer(rel);
    RETURN @S@._prepare(rel);
END
$pgbelay$;

-- Only someone who may write a table gets to add recording triggers to it. (Internal
-- helpers carry no SET clause: only SECURITY DEFINER callers, which set search_path,
-- reach them, and a SET clause costs a GUC save and restore on every call.)
CREATE OR REPLACE FUNCTION @S@._check_writer(rel regclass) RETURNS void
LANGUAGE plpgsql STABLE AS $pgbelay$
BEGIN
    IF NOT has_table_privilege(session_user, rel, 'INSERT, UPDATE, DELETE, TRUNCATE') THEN
        RAISE EXCEPTION USING
            ERRCODE = '42501',
            MESSAGE = format('permission denied for table %s', rel);
    END IF;
END
$pgbelay$;
