-- The capture triggers: record one change row and the images of exactly the rows the
-- statement changed (the transition tables), enforce the blast radius, and keep DELETE's
-- foreign-key contract for soft deletes.
--
-- They act only when the proxy announced the statement (pgbelay.statement is set, see
-- begin_statement); writes from direct connections pass unrecorded.

-- Records one change row (using the statement's settings) under `id` (NULL: a new one)
-- and returns its id. A change with a parent (pgbelay.parent_id: a cascade, an undo's
-- write) leaves pgbelay.change_id, which names the statement's own change, alone.
-- The helpers below carry no SECURITY DEFINER: they run as the audit owner when the
-- SECURITY DEFINER entry points or capture functions call them. The capture functions,
-- which run with every write, have no SET clause (a GUC save and restore on every call)
-- and write everything schema-qualified; the helpers they call on rarer paths (an
-- approved statement's change row, a refusal, a soft delete's cascades) set search_path
-- themselves.
CREATE OR REPLACE FUNCTION @S@._record(id bigint, kind text, table_schema text, table_name text,
                                       row_count bigint, shadow text)
RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $pgbelay$
DECLARE
    v_id bigint := coalesce(id, nextval(format('%I.changes_id_seq', @S_LIT@)::regclass));
    v_approval text := nullif(current_setting('pgbelay.approval', true), '');
    v_parent bigint := nullif(current_setting('pgbelay.parent_id', true), '')::bigint;
    v_set text;
BEGIN
    INSERT INTO @S@.changes (id, client_addr, application_name, kind, table_schema, table_name, rows,
                             statement, executed, approval, approved_by, reason, shadow_table, parent_id)
    VALUES (v_id,
            nullif(current_setting('pgbelay.client_addr', true), ''),
            nullif(current_setting('pgbelay.application_name', true), ''),
            kind, table_schema, table_name, row_count,
            nullif(current_setting('pgbelay.statement', true), ''),
            coalesce(nullif(current_setting('pgbelay.executed', true), ''), current_query()),
            v_approval,
            nullif(current_setting('pgbelay.approved_by', true), ''),
            nullif(current_setting('pgbelay.reason', true), ''),
            shadow,
            v_parent);
    IF v_approval IS NOT NULL THEN
        UPDATE @S@.approvals SET change_id = v_id WHERE token_id = v_approval AND change_id IS NULL;
    END IF;
    -- the statement's own change, not a part of another (an assignment: no executor start-up)
    IF v_parent IS NULL THEN
        v_set := set_config('pgbelay.change_id', v_id::text, true);
    END IF;
    RETURN v_id;
END
$pgbelay$;

-- The kind recorded for a write by `op` on `rel`: the proxy's override (a DELETE turned
-- into the soft-delete UPDATE says 'delete') for the announced target table only, else the
-- trigger's event. Writes elsewhere in the same statement (by the user's own triggers)
-- keep their real kind: an UPDATE they make is no soft delete and must not cascade.
-- Inlined into its callers' expressions, with their search_path: schema-qualified, and
-- no NULLIF / IN / IS DISTINCT FROM (they find `=` through the search_path).
CREATE OR REPLACE FUNCTION @S@._kind(op text, rel regclass) RETURNS text
LANGUAGE sql STABLE AS $pgbelay$
    SELECT CASE WHEN pg_catalog.current_setting('pgbelay.target', true)
                     OPERATOR(pg_catalog.=) rel::pg_catalog.oid::pg_catalog.text
                THEN CASE WHEN pg_catalog.current_setting('pgbelay.kind', true) OPERATOR(pg_catalog.<>) ''
                          THEN pg_catalog.current_setting('pgbelay.kind', true) ELSE pg_catalog.lower(op) END
                ELSE pg_catalog.lower(op) END
$pgbelay$;

-- Refuses (§A3, 42501) when `row_count` is over the announced max_rows; raised in the
-- server, so the statement fails natively and nothing of it stays.
CREATE OR REPLACE FUNCTION @S@._check_blast_radius(op text, rel regclass, row_count bigint) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $pgbelay$
DECLARE
    v_max bigint := coalesce(nullif(current_setting('pgbelay.max_rows', true), '')::bigint, -1);
    v_statement text := coalesce(current_setting('pgbelay.statement', true), '');
BEGIN
    IF v_max < 0 OR row_count <= v_max THEN
        RETURN;
    END IF;
    RAISE EXCEPTION USING
        ERRCODE = '42501',
        MESSAGE = format('pgbelay: refused: %s would change %s rows, more than max_rows (%s)%s',
                         upper(@S@._kind(op, rel)), row_count, v_max,
                         CASE WHEN coalesce(current_setting('pgbelay.parent_id', true), '') <> ''
                              THEN ' (counting every row the statement changed, its cascades and other half included)'
                              ELSE '' END),
        DETAIL = 'statement class: blast radius',
        -- the exact command, the statement quoted for a POSIX shell
        HINT = 'Narrow the WHERE clause, or get an approval: pgbelay approve --sql '
               || '''' || replace(v_statement, '''', '''\''''') || '''';
END
$pgbelay$;

-- (Re)creates the capture function of one source table: AFTER INSERT / UPDATE / DELETE
-- ... FOR EACH STATEMENT, with transition tables pgbelay_new / pgbelay_old. It is generated
-- per table, with the shadow and the column list written in, so that its statements are
-- static and their plans cached for the session: dynamic SQL would be planned again on
-- every write. Returns the function's qualified name.
CREATE OR REPLACE FUNCTION @S@._generate_capture(rel regclass, shadow text, columns text) RETURNS text
LANGUAGE plpgsql AS $pgbelay$
DECLARE
    v_name text := format('%I.%I', @S_LIT@, 'capture_' || rel::oid);
    -- the column list followed by a comma, or nothing for a table without columns
    v_cols text := CASE WHEN columns = '' THEN '' ELSE columns || ', ' END;
    -- the same, qualified: a column may be named like a variable
    v_select text := (SELECT coalesce(string_agg('pgbelay_row.' || quote_ident(c.attname) || ', ', ''
                                                 ORDER BY c.i), '')
                        FROM @S@._source_columns(rel) WITH ORDINALITY c(attname, atttype, i));
    v_body text;
BEGIN
    -- Variables and columns are qualified (block label, alias): a column may be named v_id.
    v_body := format($body$
-- Generated by pgbelay for %1$s; recreated when its columns change.
-- No SET search_path (a GUC save and restore on every write): every function, operator
-- and type is schema-qualified (and no NULLIF / IN, which find `=` through the caller's
-- search_path), and the rare paths call helpers that set it themselves.
<<pgbelay_capture>>
DECLARE
    v_id bigint;
    v_rows bigint;
    v_max bigint;
    v_total bigint;
    v_kind text;
    v_parent pg_catalog.int8;
    v_set text;
BEGIN
    -- Not announced by begin_statement (a direct connection): not recorded.
    IF coalesce(pg_catalog.current_setting('pgbelay.statement', true), '') OPERATOR(pg_catalog.=) '' THEN
        RETURN NULL;
    END IF;
    -- One statement writes the images (each statement a function runs costs an executor
    -- start-up, most of a small write's recording time); the blast radius is checked on
    -- its row count, and a refusal takes the images back with the statement.
    pgbelay_capture.v_id := pg_catalog.nextval(%3$L::pg_catalog.regclass);
    IF TG_OP OPERATOR(pg_catalog.=) 'INSERT' THEN
        INSERT INTO %4$s (%5$s pgbelay_change_id, pgbelay_image)
        SELECT %7$s pgbelay_capture.v_id, 'after' FROM pgbelay_new pgbelay_row;
        GET DIAGNOSTICS pgbelay_capture.v_rows = ROW_COUNT;
    ELSIF TG_OP OPERATOR(pg_catalog.=) 'UPDATE' THEN
        INSERT INTO %4$s (%5$s pgbelay_change_id, pgbelay_image)
        SELECT %7$s pgbelay_capture.v_id, 'before' FROM pgbelay_old pgbelay_row
        UNION ALL
        SELECT %7$s pgbelay_capture.v_id, 'after' FROM pgbelay_new pgbelay_row;
        GET DIAGNOSTICS pgbelay_capture.v_rows = ROW_COUNT;
        pgbelay_capture.v_rows := pgbelay_capture.v_rows OPERATOR(pg_catalog./) 2;
    ELSE
        INSERT INTO %4$s (%5$s pgbelay_change_id, pgbelay_image)
        SELECT %7$s pgbelay_capture.v_id, 'before' FROM pgbelay_old pgbelay_row;
        GET DIAGNOSTICS pgbelay_capture.v_rows = ROW_COUNT;
    END IF;
    -- max_rows: unset or -1 means no limit. Checked after the images went in (their row
    -- count is the statement's): a refused write wrote its images for nothing, but a
    -- refusal is rare and a count(*) before every write was not. What counts is every
    -- row the statement changed so far, in any table: an upsert's inserts and updates
    -- (two triggers), a cascade's children.
    pgbelay_capture.v_max := (CASE WHEN pg_catalog.current_setting('pgbelay.max_rows', true) OPERATOR(pg_catalog.<>) '' THEN pg_catalog.current_setting('pgbelay.max_rows', true) END)::pg_catalog.int8;
    IF pgbelay_capture.v_max OPERATOR(pg_catalog.>=) 0 THEN
        pgbelay_capture.v_total := (CASE WHEN pg_catalog.current_setting('pgbelay.rows_total', true) OPERATOR(pg_catalog.<>) '' THEN pg_catalog.current_setting('pgbelay.rows_total', true) ELSE '0' END)::pg_catalog.int8
                                   OPERATOR(pg_catalog.+) pgbelay_capture.v_rows;
        pgbelay_capture.v_set := pg_catalog.set_config('pgbelay.rows_total', pgbelay_capture.v_total::pg_catalog.text, true);
        IF pgbelay_capture.v_total OPERATOR(pg_catalog.>) pgbelay_capture.v_max THEN
            PERFORM %2$s._check_blast_radius(TG_OP, TG_RELID, pgbelay_capture.v_total);
        END IF;
    END IF;
    -- A statement that changed nothing is not a change.
    IF pgbelay_capture.v_rows OPERATOR(pg_catalog.=) 0 THEN
        RETURN NULL;
    END IF;
    -- An assignment, not PERFORM: plpgsql evaluates it without an executor start-up
    -- (and _kind, one SQL expression, is inlined into it).
    pgbelay_capture.v_kind := %2$s._kind(TG_OP, TG_RELID);
    -- The change this one is part of: a cascade's parent, an undo (both set by whoever runs
    -- them), or the change this statement recorded first (claimed below).
    pgbelay_capture.v_parent := (CASE WHEN pg_catalog.current_setting('pgbelay.parent_id', true) OPERATOR(pg_catalog.<>) '' THEN pg_catalog.current_setting('pgbelay.parent_id', true) END)::pg_catalog.int8;
    IF coalesce(pg_catalog.current_setting('pgbelay.approval', true), '') OPERATOR(pg_catalog.=) '' THEN
        -- The change row, written here rather than by _record: a function call per write
        -- costs its own start-up in every transaction. (An approved statement's change row
        -- also claims its token: _record.)
        INSERT INTO %2$s.changes (id, client_addr, application_name, kind, table_schema, table_name, rows,
                                  statement, executed, shadow_table, parent_id)
        VALUES (pgbelay_capture.v_id,
                CASE WHEN pg_catalog.current_setting('pgbelay.client_addr', true) OPERATOR(pg_catalog.<>) '' THEN pg_catalog.current_setting('pgbelay.client_addr', true) END,
                CASE WHEN pg_catalog.current_setting('pgbelay.application_name', true) OPERATOR(pg_catalog.<>) '' THEN pg_catalog.current_setting('pgbelay.application_name', true) END,
                pgbelay_capture.v_kind, TG_TABLE_SCHEMA, TG_TABLE_NAME, pgbelay_capture.v_rows,
                CASE WHEN pg_catalog.current_setting('pgbelay.statement', true) OPERATOR(pg_catalog.<>) '' THEN pg_catalog.current_setting('pgbelay.statement', true) END,
                coalesce(CASE WHEN pg_catalog.current_setting('pgbelay.executed', true) OPERATOR(pg_catalog.<>) '' THEN pg_catalog.current_setting('pgbelay.executed', true) END, pg_catalog.current_query()),
                %6$L,
                pgbelay_capture.v_parent);
        -- The statement's own change (a part of another leaves it): an assignment, not
        -- PERFORM, so no executor start-up.
        IF pgbelay_capture.v_parent IS NULL THEN
            pgbelay_capture.v_set := pg_catalog.set_config('pgbelay.change_id', pgbelay_capture.v_id::pg_catalog.text, true);
        END IF;
    ELSE
        PERFORM %2$s._record(pgbelay_capture.v_id, pgbelay_capture.v_kind, TG_TABLE_SCHEMA,
                             TG_TABLE_NAME, pgbelay_capture.v_rows, %6$L);
    END IF;
    -- The statement's own change (the announced table's, at the top): what the statement
    -- changes after it (PostgreSQL's ON DELETE / ON UPDATE actions, whose triggers fire
    -- after this one at the same depth; an upsert's other half; triggers that fire
    -- later) is recorded as parts of it, so undoing it reverses them too.
    IF pgbelay_capture.v_parent IS NULL AND pg_catalog.pg_trigger_depth() OPERATOR(pg_catalog.=) 1
       AND pg_catalog.current_setting('pgbelay.target', true) OPERATOR(pg_catalog.=) TG_RELID::pg_catalog.oid::pg_catalog.text THEN
        pgbelay_capture.v_set := pg_catalog.set_config('pgbelay.parent_id', pgbelay_capture.v_id::pg_catalog.text, true);
    END IF;
    -- DELETE's foreign-key contract for a soft delete: the cascades it runs are parts too.
    IF TG_OP OPERATOR(pg_catalog.=) 'UPDATE' AND pgbelay_capture.v_kind OPERATOR(pg_catalog.=) 'delete' THEN
        PERFORM %2$s._soft_delete_references(TG_RELID, pgbelay_capture.v_id, %6$L);
    END IF;
    RETURN NULL;
END
$body$, rel, quote_ident(@S_LIT@), format('%I.changes_id_seq', @S_LIT@), shadow, v_cols, shadow, v_select);
    -- The body goes in as a literal (%L), so no column name can end a dollar quote.
    EXECUTE format('CREATE OR REPLACE FUNCTION %s() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER '
                   'AS %L', v_name, v_body);
    EXECUTE format('REVOKE ALL ON FUNCTION %s() FROM PUBLIC', v_name);
    RETURN v_name;
END
$pgbelay$;

-- BEFORE TRUNCATE ... FOR EACH STATEMENT: an (approved) TRUNCATE records every row first.
-- PostgreSQL fires it for every table the TRUNCATE empties (the ones it names, then those
-- CASCADE adds) before emptying any; the first records the statement's change and the
-- others are its parts, so undoing it fills them all again.
CREATE OR REPLACE FUNCTION @S@.capture_truncate() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $pgbelay$
DECLARE
    v_audit constant name := @S_LIT@;
    v_rows bigint;
    v_map record;
    v_shadow text;
    v_id bigint;
    v_source text := format('%I.%I', TG_TABLE_SCHEMA, TG_TABLE_NAME);
    v_parent text := coalesce(current_setting('pgbelay.parent_id', true), '');
BEGIN
    IF coalesce(current_setting('pgbelay.statement', true), '') = '' THEN
        RETURN NULL;
    END IF;
    EXECUTE format('SELECT count(*) FROM %s', v_source) INTO v_rows;
    PERFORM @S@._check_blast_radius('TRUNCATE', TG_RELID, v_rows);
    SELECT * INTO v_map FROM @S@.shadow_tables WHERE relid = TG_RELID;
    IF NOT FOUND THEN
        PERFORM @S@._prepare(TG_RELID);
        SELECT * INTO v_map FROM @S@.shadow_tables WHERE relid = TG_RELID;
    END IF;
    v_shadow := format('%I.%I', v_audit, v_map.shadow_table);
    v_id := @S@._record(NULL, 'truncate', TG_TABLE_SCHEMA, TG_TABLE_NAME, v_rows, v_shadow);
    IF v_parent = '' THEN
        PERFORM set_config('pgbelay.parent_id', v_id::text, true);
    END IF;
    EXECUTE format('INSERT INTO %s (%s%s pgbelay_change_id, pgbelay_image) SELECT %s%s $1, ''before'' FROM %s',
                   v_shadow, v_map.columns, CASE WHEN v_map.columns = '' THEN '' ELSE ',' END,
                   v_map.columns, CASE WHEN v_map.columns = '' THEN '' ELSE ',' END, v_source)
    USING v_id;
    RETURN NULL;
END
$pgbelay$;

-- DELETE's foreign-key contract for a soft delete of `rel` (change `change_id`, whose
-- before-images in `shadow` are the rows just soft-deleted; the transition tables are not
-- visible outside the trigger function, the shadow is):
--   ON DELETE CASCADE      referencing live rows are soft-deleted too, as a child change
--                          (refused when the child has no soft-delete column);
--   SET NULL / SET DEFAULT refused without an approval; approved, done and recorded;
--   NO ACTION / RESTRICT   a live referencing row fails the statement with 23503.
-- The actions run first and the checks after, as PostgreSQL checks NO ACTION at the end
-- of the statement. Like PostgreSQL's own referential actions they run with the table
-- owner's (here: the audit owner's) rights.
CREATE OR REPLACE FUNCTION @S@._soft_delete_references(rel regclass, change_id bigint, shadow text)
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $pgbelay$
DECLARE
    v_col text := coalesce(nullif(current_setting('pgbelay.soft_delete_column', true), ''), 'deleted_at');
    v_approved boolean := coalesce(current_setting('pgbelay.approval', true), '') <> '';
    v_parent_name name := (SELECT relname FROM pg_class WHERE oid = rel);
    v_pass int;
    v_fk record;
    v_from text;
    v_live text;
    v_found text;
    v_sql text;
    v_set text;
    v_saved text[];
BEGIN
    FOR v_pass IN 1..2 LOOP
        FOR v_fk IN
            SELECT DISTINCT ON (con.conrelid, con.conkey, con.confkey)
                   con.conname, con.conrelid::regclass AS child, cc.relname AS child_name,
                   cn.nspname AS child_schema, con.confdeltype,
                   (SELECT string_agg(format('c.%I', a.attname), ', ' ORDER BY k.i)
                      FROM unnest(con.conkey) WITH ORDINALITY k(attnum, i)
                      JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum) AS child_cols,
                   (SELECT string_agg(format('c.%I::text', a.attname), ', ' ORDER BY k.i)
                      FROM unnest(con.conkey) WITH ORDINALITY k(attnum, i)
                      JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum) AS child_texts,
                   (SELECT string_agg(format('s.%I', a.attname), ', ' ORDER BY k.i)
                      FROM unnest(con.confkey) WITH ORDINALITY k(attnum, i)
                      JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum) AS parent_cols,
                   (SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY k.i)
                      FROM unnest(con.confkey) WITH ORDINALITY k(attnum, i)
                      JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum) AS parent_names,
                   (SELECT array_agg(a.attname ORDER BY k.i)
                      FROM unnest(CASE WHEN cardinality(con.confdelsetcols) > 0
                                       THEN con.confdelsetcols ELSE con.conkey END) WITH ORDINALITY k(attnum, i)
                      JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum) AS set_cols,
                   EXISTS (SELECT 1 FROM pg_attribute a
                           WHERE a.attrelid = con.conrelid AND a.attname = v_col
                             AND a.attnum > 0 AND NOT a.attisdropped) AS soft
              FROM pg_constraint con
              JOIN pg_class cc ON cc.oid = con.conrelid
              JOIN pg_namespace cn ON cn.oid = cc.relnamespace
             WHERE con.contype = 'f' AND con.confrelid = rel
               -- a partition's copy of its partitioned parent's key is covered by the parent's
               AND (NOT cc.relispartition OR con.conparentid = 0)
             ORDER BY con.conrelid, con.conkey, con.confkey, con.conname
        LOOP
            v_from := format('FROM %s c WHERE (%s) IN (SELECT %s FROM %s s WHERE s.pgbelay_change_id = %s '
                             'AND s.pgbelay_image = ''before'')',
                             v_fk.child, v_fk.child_cols, v_fk.parent_cols, shadow, change_id);
            v_live := CASE WHEN v_fk.soft THEN format(' AND c.%I IS NULL', v_col) ELSE '' END;

            IF v_pass = 1 AND v_fk.confdeltype = 'c' THEN
                EXECUTE format('SELECT concat_ws('', '', %s) %s%s LIMIT 1', v_fk.child_texts, v_from, v_live)
                   INTO v_found;
                CONTINUE WHEN v_found IS NULL;
                IF NOT v_fk.soft THEN
                    RAISE EXCEPTION USING
                        ERRCODE = '42501',
                        MESSAGE = format('pgbelay: refused: DELETE on %I would cascade to %I.%I (constraint %I), '
                                         'which has no %I column for a soft delete',
                                         v_parent_name, v_fk.child_schema, v_fk.child_name, v_fk.conname, v_col),
                        DETAIL = 'statement class: soft delete',
                        HINT = format('Add the column (ALTER TABLE %I.%I ADD COLUMN %I timestamptz), '
                                      'or get an approval for a hard delete.',
                                      v_fk.child_schema, v_fk.child_name, v_col);
                END IF;
                v_sql := format('UPDATE %s c SET %I = now() WHERE (%s) IN (SELECT %s FROM %s s '
                                'WHERE s.pgbelay_change_id = %s AND s.pgbelay_image = ''before'') AND c.%I IS NULL',
                                v_fk.child, v_col, v_fk.child_cols, v_fk.parent_cols, shadow, change_id, v_col);
                v_saved := @S@._push_settings('delete', change_id, v_sql, v_fk.child);
                EXECUTE v_sql;
                PERFORM @S@._pop_settings(v_saved);

            ELSIF v_pass = 1 AND v_fk.confdeltype IN ('n', 'd') THEN
                -- A real DELETE would change every referencing row, soft-deleted or not.
                EXECUTE format('SELECT concat_ws('', '', %s) %s LIMIT 1', v_fk.child_texts, v_from)
                   INTO v_found;
                CONTINUE WHEN v_found IS NULL;
                IF NOT v_approved THEN
                    RAISE EXCEPTION USING
                        ERRCODE = '42501',
                        MESSAGE = format('pgbelay: refused: DELETE on %I would set %s of referencing rows in %I.%I '
                                         '(constraint %I, ON DELETE SET %s)',
                                         v_parent_name, array_to_string(v_fk.set_cols, ', '), v_fk.child_schema,
                                         v_fk.child_name, v_fk.conname,
                                         CASE v_fk.confdeltype WHEN 'n' THEN 'NULL' ELSE 'DEFAULT' END),
                        DETAIL = 'statement class: soft delete',
                        HINT = 'Get an approval for this statement: pgbelay approve --sql ''...''';
                END IF;
                SELECT string_agg(format('%I = %s', c, CASE v_fk.confdeltype WHEN 'n' THEN 'NULL' ELSE 'DEFAULT' END), ', ')
                  INTO v_set FROM unnest(v_fk.set_cols) c;
                v_sql := format('UPDATE %s c SET %s WHERE (%s) IN (SELECT %s FROM %s s '
                                'WHERE s.pgbelay_change_id = %s AND s.pgbelay_image = ''before'')',
                                v_fk.child, v_set, v_fk.child_cols, v_fk.parent_cols, shadow, change_id);
                v_saved := @S@._push_settings('update', change_id, v_sql, v_fk.child);
                EXECUTE v_sql;
                PERFORM @S@._pop_settings(v_saved);

            ELSIF v_pass = 2 AND v_fk.confdeltype IN ('a', 'r') THEN
                EXECUTE format('SELECT concat_ws('', '', %s) %s%s LIMIT 1', v_fk.child_texts, v_from, v_live)
                   INTO v_found;
                IF v_found IS NOT NULL THEN
                    -- As PostgreSQL words it for a real DELETE.
                    RAISE EXCEPTION USING
                        ERRCODE = '23503',
                        MESSAGE = format('update or delete on table "%s" violates foreign key constraint "%s" on table "%s"',
                                         v_parent_name, v_fk.conname, v_fk.child_name),
                        DETAIL = format('Key (%s)=(%s) is still referenced from table "%s".',
                                        v_fk.parent_names, v_found, v_fk.child_name),
                        SCHEMA = v_fk.child_schema,
                        TABLE = v_fk.child_name,
                        CONSTRAINT = v_fk.conname;
                END IF;
            END IF;
        END LOOP;
    END LOOP;
END
$pgbelay$;

-- Settings for a statement the capture runs itself (a cascade): its kind, its parent
-- change and its text; prepares the child for recording. Returns the values to restore.
CREATE OR REPLACE FUNCTION @S@._push_settings(kind text, parent_id bigint, executed text, child regclass)
RETURNS text[]
LANGUAGE plpgsql AS $pgbelay$
DECLARE
    v_saved text[] := ARRAY[coalesce(current_setting('pgbelay.target', true), ''),
                            coalesce(current_setting('pgbelay.kind', true), ''),
                            coalesce(current_setting('pgbelay.parent_id', true), ''),
                            coalesce(current_setting('pgbelay.executed', true), '')];
BEGIN
    PERFORM @S@._prepare(child);
    PERFORM set_config('pgbelay.target', child::oid::text, true);
    PERFORM set_config('pgbelay.kind', kind, true);
    PERFORM set_config('pgbelay.parent_id', parent_id::text, true);
    PERFORM set_config('pgbelay.executed', executed, true);
    RETURN v_saved;
END
$pgbelay$;

CREATE OR REPLACE FUNCTION @S@._pop_settings(saved text[]) RETURNS void
LANGUAGE plpgsql AS $pgbelay$
BEGIN
    PERFORM set_config('pgbelay.target', saved[1], true);
    PERFORM set_config('pgbelay.kind', saved[2], true);
    PERFORM set_config('pgbelay.parent_id', saved[3], true);
    PERFORM set_config('pgbelay.executed', saved[4], true);
END
$pgbelay$;

-- A (re)install brings every table's capture function to this version's template, where
-- the table has not changed since it was prepared (a changed one is regenerated by its
-- next preparation, before its next recorded write). CREATE OR REPLACE FUNCTION takes no
-- lock on the table, and its triggers keep calling the same function.
DO $pgbelay$
DECLARE
    v_table record;
BEGIN
    FOR v_table IN
        SELECT s.relid, s.shadow_table, s.columns
          FROM @S@.shadow_tables s
          JOIN pg_catalog.pg_class c ON c.oid = s.relid
         WHERE to_regclass(format('%I.%I', @S_LIT@, s.shadow_table)) IS NOT NULL
           AND s.columns = (SELECT coalesce(string_agg(quote_ident(x.attname), ', ' ORDER BY x.i), '')
                              FROM @S@._source_columns(s.relid::regclass) WITH ORDINALITY x(attname, atttype, i))
    LOOP
        PERFORM @S@._generate_capture(v_table.relid::regclass,
                                      format('%I.%I', @S_LIT@, v_table.shadow_table), v_table.columns);
    END LOOP;
END
$pgbelay$;
