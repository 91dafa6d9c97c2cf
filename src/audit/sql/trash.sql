-- The recycle bin (SPEC §B6): an approved DROP TABLE moves the table into @T@ instead of
-- dropping it (recycle_table), and undo moves it back (restore_table).
--
-- Runs after finish.sql, so it sets the privileges of its own functions.
--
-- What goes to the bin with a table is what DROP TABLE would drop with it: its indexes,
-- constraints, triggers, rules, policies, column defaults, TOAST table, row type and the
-- sequences it owns (serial and identity columns). ALTER TABLE ... SET SCHEMA moves all of
-- that; indexes and sequences live in the schema's namespace, so they are renamed in the
-- bin like the table: "<name>~<change id>" (with the object's oid added if that is taken),
-- which lets two copies of public.orders, or orders from two schemas, lie side by side.
--
-- The rule for dependents: a table goes to the bin only when a plain DROP TABLE (without
-- CASCADE) would drop nothing but the table and what belongs to it. When other objects
-- depend on it -- views, foreign keys from other tables, functions using its row type,
-- defaults of other tables using its sequences, inheritance children -- or when it has
-- partitions, or is a partition or an inheritance child (its rows would still show through
-- the parent), recycle_table refuses (42501, DETAIL 'statement class: drop'): drop the
-- dependents first, or approve a real DROP ... CASCADE with --hard.

-- One row per table moved to the bin; restored_by/restored_at are filled once, when undo
-- moves it back (the only update the guard below lets through).
CREATE TABLE IF NOT EXISTS @S@.trash (
    -- No foreign keys to changes: one would make TRUNCATE of changes fail before its guard.
    change_id     bigint PRIMARY KEY,  -- the 'drop' change
    relid         oid NOT NULL,      -- the table (an oid survives SET SCHEMA and renames)
    table_schema  name NOT NULL,     -- where it was, and its name there
    table_name    name NOT NULL,
    trash_name    name NOT NULL,     -- its name in the bin
    -- indexes and owned sequences: [{"kind", "oid", "name", "trash_name"}]
    objects       jsonb NOT NULL,
    recycled_at   timestamptz NOT NULL DEFAULT pg_catalog.now(),
    restored_by   bigint,            -- the undo change that moved it back
    restored_at   timestamptz
);
-- Its foreign keys to other tables, dropped while it lies in the bin (a dropped table must
-- not keep its parents' rows from being deleted, nor be reached by their ON DELETE
-- CASCADE) and added again when it comes back: [{"name", "definition"}].
ALTER TABLE @S@.trash ADD COLUMN IF NOT EXISTS foreign_keys jsonb NOT NULL DEFAULT '[]';
CREATE INDEX IF NOT EXISTS trash_relid_idx ON @S@.trash (relid);
REVOKE ALL ON @S@.trash FROM PUBLIC;
GRANT SELECT ON @S@.trash TO PUBLIC;

-- Append-only like the rest of the trail, except marking an entry restored, once.
CREATE OR REPLACE FUNCTION @S@.refuse_trash_rewrite() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $pgbelay$
BEGIN
    IF current_setting('pgbelay.maintenance', true) = 'on' THEN
        RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.restored_by IS NULL AND NEW.restored_by IS NOT NULL
       AND (to_jsonb(OLD) - 'restored_by' - 'restored_at') = (to_jsonb(NEW) - 'restored_by' - 'restored_at') THEN
        RETURN NEW;
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
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger
                   WHERE tgrelid = format('%I.trash', @S_LIT@)::regclass
                     AND tgname = 'pgbelay_append_only') THEN
        EXECUTE format('CREATE TRIGGER pgbelay_append_only BEFORE UPDATE OR DELETE ON %I.trash '
                       'FOR EACH ROW EXECUTE FUNCTION %I.refuse_trash_rewrite()', @S_LIT@, @S_LIT@);
        EXECUTE format('CREATE TRIGGER pgbelay_append_only_truncate BEFORE TRUNCATE ON %I.trash '
                       'FOR EACH STATEMENT EXECUTE FUNCTION %I.refuse_trash_rewrite()', @S_LIT@, @S_LIT@);
    END IF;
END
$pgbelay$;

-- The objects that would make a plain DROP TABLE `rel` fail or reach beyond the table
-- (see the rule at the top), described for a message; empty when none.
-- Dependencies are looked up on the table, its row type and the sequences it owns, minus
-- the objects that belong to the table itself.
CREATE OR REPLACE FUNCTION @S@._drop_dependents(rel regclass) RETURNS text[]
LANGUAGE sql STABLE AS $pgbelay$
    WITH targets AS (
        SELECT 'pg_class'::regclass AS classid, rel::oid AS objid
        UNION ALL
        SELECT 'pg_type'::regclass, c.reltype FROM pg_class c WHERE c.oid = rel
        UNION ALL
        SELECT 'pg_class'::regclass, d.objid FROM pg_depend d JOIN pg_class s ON s.oid = d.objid
         WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
           AND d.refobjid = rel AND d.deptype IN ('a', 'i') AND s.relkind = 'S'
    ), own AS (  -- what DROP TABLE drops as part of the table
        SELECT 'pg_class'::regclass AS classid, rel::oid AS objid
        UNION ALL SELECT 'pg_constraint'::regclass, oid FROM pg_constraint WHERE conrelid = rel
        UNION ALL SELECT 'pg_attrdef'::regclass, oid FROM pg_attrdef WHERE adrelid = rel
        UNION ALL SELECT 'pg_trigger'::regclass, oid FROM pg_trigger WHERE tgrelid = rel
        UNION ALL SELECT 'pg_rewrite'::regclass, oid FROM pg_rewrite WHERE ev_class = rel
        UNION ALL SELECT 'pg_policy'::regclass, oid FROM pg_policy WHERE polrelid = rel
        UNION ALL SELECT 'pg_statistic_ext'::regclass, oid FROM pg_statistic_ext WHERE stxrelid = rel
        UNION ALL SELECT 'pg_class'::regclass, indexrelid FROM pg_index WHERE indrelid = rel
        UNION ALL SELECT 'pg_type'::regclass, t.oid FROM pg_type t JOIN pg_class c ON c.oid = rel
                   WHERE t.oid = c.reltype OR t.typelem = c.reltype
        UNION ALL SELECT classid, objid FROM targets
    ), found AS (
        SELECT DISTINCT
               CASE WHEN d.classid = 'pg_rewrite'::regclass THEN
                        (SELECT CASE WHEN r.rulename = '_RETURN' THEN
                                     CASE v.relkind WHEN 'm' THEN 'materialized view ' ELSE 'view ' END
                                     || v.oid::regclass::text
                                ELSE pg_describe_object(d.classid, d.objid, 0) END
                           FROM pg_rewrite r JOIN pg_class v ON v.oid = r.ev_class WHERE r.oid = d.objid)
                    ELSE pg_describe_object(d.classid, d.objid, 0) END AS what
          FROM pg_depend d JOIN targets t ON t.classid = d.refclassid AND t.objid = d.refobjid
         WHERE d.deptype = 'n'
           AND NOT EXISTS (SELECT 1 FROM own o WHERE o.classid = d.classid AND o.objid = d.objid)
           -- inheritance children are named below
           AND NOT (d.classid = 'pg_class'::regclass
                    AND d.objid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = rel))
        UNION
        SELECT CASE WHEN c.relispartition THEN 'partition ' ELSE 'inheritance child ' END
               || i.inhrelid::regclass::text
          FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = rel

    )
    SELECT coalesce(array_agg(what ORDER BY what), '{}') FROM found
$pgbelay$;

-- Refuses (42501) unless the session user owns `rel` (or is a member of its owning role),
-- as DROP and ALTER would: the functions below run as the audit owner.
CREATE OR REPLACE FUNCTION @S@._check_owner(rel regclass) RETURNS void
LANGUAGE plpgsql STABLE AS $pgbelay$
BEGIN
    IF NOT pg_has_role(session_user, (SELECT relowner FROM pg_class WHERE oid = rel), 'MEMBER') THEN
        RAISE EXCEPTION USING ERRCODE = '42501', MESSAGE = format('must be owner of table %s', rel);
    END IF;
END
$pgbelay$;

-- Moves `rel` into the recycle bin instead of dropping it, and records a change of kind
-- 'drop' (rows = the table's row count) under the statement announced by begin_statement;
-- returns its id. The proxy calls it once per table of an approved DROP TABLE. Refuses
-- (42501) what cannot go to the bin: see the rule at the top of this file, temporary
-- tables, tables of the audit schema or the bin, and session users who do not own `rel`.
CREATE OR REPLACE FUNCTION @S@.recycle_table(rel regclass) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $pgbelay$
DECLARE
    v_audit constant name := @S_LIT@;
    v_trash constant name := @S_LIT@ || '_trash';
    v_class record;
    v_dependents text[];
    v_parents text;
    v_rows bigint;
    v_id bigint;
    v_obj record;
    v_objects jsonb := '[]';
    v_foreign_keys jsonb := '[]';
    v_fk record;
    v_name text;
BEGIN
    IF coalesce(current_setting('pgbelay.statement', true), '') = '' THEN
        RAISE EXCEPTION USING ERRCODE = '55000', MESSAGE = 'pgbelay: recycle_table needs begin_statement first';
    END IF;
    SELECT c.relkind, c.relpersistence, n.nspname, c.relname INTO v_class
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = rel;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = '42P01', MESSAGE = 'pgbelay: recycle_table needs an existing table';
    END IF;
    IF v_class.relkind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION USING
            ERRCODE = '42809',
            MESSAGE = format('pgbelay: refused: %s is not a table; only tables go to the recycle bin', rel),
            DETAIL = 'statement class: drop';
    END IF;
    IF v_class.relpersistence = 't' THEN
        RAISE EXCEPTION USING
            ERRCODE = '42501',
            MESSAGE = format('pgbelay: refused: %s is a temporary table, which cannot go to the recycle bin', rel),
            DETAIL = 'statement class: drop',
            HINT = 'Approve a real DROP with pgbelay approve --hard.';
    END IF;
    IF v_class.nspname IN (v_audit, v_trash, 'pg_catalog', 'information_schema')
       OR v_class.nspname LIKE 'pg\_toast%' THEN
        RAISE EXCEPTION USING
            ERRCODE = '42501',
            MESSAGE = format('pgbelay: refused: %s belongs to the audit schema, the recycle bin or the system', rel),
            DETAIL = 'statement class: drop';
    END IF;
    PERFORM @S@._check_owner(rel);
    -- As DROP would; also keeps the dependencies from changing under the check.
    EXECUTE format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE', rel);
    v_dependents := @S@._drop_dependents(rel);
    IF cardinality(v_dependents) > 0 THEN
        RAISE EXCEPTION USING
            ERRCODE = '42501',
            MESSAGE = format('pgbelay: refused: %s cannot go to the recycle bin: %s depend%s on it',
                             rel, array_to_string(v_dependents, ', '),
                             CASE WHEN cardinality(v_dependents) = 1 THEN 's' ELSE '' END),
            DETAIL = 'statement class: drop',
            HINT = 'Drop the dependent objects first, or approve a real DROP ... CASCADE with pgbelay approve --hard.';
    END IF;

    SELECT string_agg(i.inhparent::regclass::text, ', ' ORDER BY i.inhseqno) INTO v_parents
      FROM pg_inherits i WHERE i.inhrelid = rel;
    IF v_parents IS NOT NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = '42501',
            MESSAGE = format('pgbelay: refused: %s cannot go to the recycle bin: it is a partition or inheritance '
                             'child of %s, through which its rows would still show', rel, v_parents),
            DETAIL = 'statement class: drop',
            HINT = 'Detach it first (DETACH PARTITION or NO INHERIT), or approve a real DROP with pgbelay approve --hard.';
    END IF;

    EXECUTE format('SELECT count(*) FROM %s', rel) INTO v_rows;
    v_id := @S@._record(NULL, 'drop', v_class.nspname, v_class.relname, v_rows, NULL);
    -- The first table of a DROP TABLE a, b is the statement's change, the others its parts
    -- (one undo restores them all); an undo's recycling is already a part of the undo.
    IF coalesce(current_setting('pgbelay.parent_id', true), '') = '' THEN
        PERFORM set_config('pgbelay.parent_id', v_id::text, true);
    END IF;

    -- Its foreign keys to other tables go, kept for the restore (written with this
    -- function's search_path, so every name in them is qualified). One to itself stays.
    FOR v_fk IN
        SELECT c.conname, pg_get_constraintdef(c.oid) AS definition
          FROM pg_constraint c
         WHERE c.conrelid = rel AND c.contype = 'f' AND c.confrelid <> rel AND c.conparentid = 0
         ORDER BY c.conname
    LOOP
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', rel, v_fk.conname);
        v_foreign_keys := v_foreign_keys || jsonb_build_object('name', v_fk.conname, 'definition', v_fk.definition);
    END LOOP;

    -- Moving first is safe: every object in the bin carries a "~" suffix, so the original
    -- names are free there. SET SCHEMA takes indexes, constraints and owned sequences along.
    EXECUTE format('ALTER TABLE %s SET SCHEMA %I', rel, v_trash);
    FOR v_obj IN
        SELECT 'index' AS kind, i.indexrelid AS oid, ic.relname AS name
          FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
         WHERE i.indrelid = rel AND ic.relnamespace = to_regnamespace(quote_ident(v_trash))
        UNION ALL
        SELECT 'sequence', s.oid, s.relname
          FROM pg_depend d JOIN pg_class s ON s.oid = d.objid
         WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
           AND d.refobjid = rel AND d.deptype IN ('a', 'i') AND s.relkind = 'S'
        ORDER BY 1, 3
    LOOP
        v_name := @S@._trash_name(v_obj.name, v_id, v_obj.oid);
        EXECUTE format('ALTER %s %s RENAME TO %I', upper(v_obj.kind), v_obj.oid::regclass, v_name);
        v_objects := v_objects || jsonb_build_object('kind', v_obj.kind, 'oid', v_obj.oid,
                                                     'name', v_obj.name, 'trash_name', v_name);
    END LOOP;
    v_name := @S@._trash_name(v_class.relname, v_id, rel);
    EXECUTE format('ALTER TABLE %s RENAME TO %I', rel, v_name);

    INSERT INTO @S@.trash (change_id, relid, table_schema, table_name, trash_name, objects, foreign_keys)
    VALUES (v_id, rel, v_class.nspname, v_class.relname, v_name, v_objects, v_foreign_keys);
    RETURN v_id;
END
$pgbelay$;

-- The name of `original` (relation `oid`, recycled by change `change_id`) in the bin:
-- "<original>~<change id>", or "<original>~<change id>.<oid>" when cutting a long name
-- made it collide.
CREATE OR REPLACE FUNCTION @S@._trash_name(original text, change_id bigint, oid oid) RETURNS text
LANGUAGE plpgsql STABLE AS $pgbelay$
DECLARE
    v_name text := @S@._fit_name(original, '~' || change_id);
BEGIN
    IF to_regclass(format('%I.%I', @S_LIT@ || '_trash', v_name)) IS NOT NULL THEN
        v_name := @S@._fit_name(original, '~' || change_id || '.' || oid);
    END IF;
    RETURN v_name;
END
$pgbelay$;

-- Moves the table that change `change_id` (a 'drop') put in the bin back under its old
-- schema and name, its indexes and sequences renamed back, and records a change of kind
-- 'undo' under the statement announced by begin_statement; returns its id. Refuses when
-- the table is not in the bin (any more), when the session user does not own it, and when
-- its old name, or an old name of one of its indexes or sequences, is taken now (42P07).
CREATE OR REPLACE FUNCTION @S@.restore_table(change_id bigint) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $pgbelay$
DECLARE
    v_trash constant name := @S_LIT@ || '_trash';
    v_entry record;
    v_obj jsonb;
    v_taken text[] := '{}';
    v_rel regclass;
    v_rows bigint;
    v_id bigint;
    v_fk jsonb;
BEGIN
    IF coalesce(current_setting('pgbelay.statement', true), '') = '' THEN
        RAISE EXCEPTION USING ERRCODE = '55000', MESSAGE = 'pgbelay: restore_table needs begin_statement first';
    END IF;
    SELECT * INTO v_entry FROM @S@.trash t WHERE t.change_id = restore_table.change_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'P0002',
            MESSAGE = format('pgbelay: change %s moved no table to the recycle bin', change_id);
    END IF;
    IF v_entry.restored_by IS NOT NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = '42501',
            MESSAGE = format('pgbelay: refused: the table of change %s was already restored by change %s',
                             change_id, v_entry.restored_by),
            DETAIL = 'statement class: undo';
    END IF;
    SELECT c.oid::regclass INTO v_rel FROM pg_class c
     WHERE c.oid = v_entry.relid AND c.relname = v_entry.trash_name
       AND c.relnamespace = to_regnamespace(quote_ident(v_trash));
    IF v_rel IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'P0002',
            MESSAGE = format('pgbelay: the table of change %s is no longer in the recycle bin', change_id);
    END IF;
    PERFORM @S@._check_owner(v_rel);
    EXECUTE format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE', v_rel);

    IF to_regnamespace(quote_ident(v_entry.table_schema)) IS NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = '3F000',
            MESSAGE = format('pgbelay: refused: cannot restore %I.%I: schema %I no longer exists',
                             v_entry.table_schema, v_entry.table_name, v_entry.table_schema),
            DETAIL = 'statement class: undo',
            HINT = 'Create the schema, then run the undo again.';
    END IF;
    IF to_regclass(format('%I.%I', v_entry.table_schema, v_entry.table_name)) IS NOT NULL
       OR to_regtype(format('%I.%I', v_entry.table_schema, v_entry.table_name)) IS NOT NULL THEN
        v_taken := v_taken || format('%I.%I', v_entry.table_schema, v_entry.table_name);
    END IF;
    FOR v_obj IN SELECT * FROM jsonb_array_elements(v_entry.objects) LOOP
        IF to_regclass(format('%I.%I', v_entry.table_schema, v_obj ->> 'name')) IS NOT NULL THEN
            v_taken := v_taken || format('%I.%I', v_entry.table_schema, v_obj ->> 'name');
        END IF;
    END LOOP;
    IF cardinality(v_taken) > 0 THEN
        RAISE EXCEPTION USING
            ERRCODE = '42P07',
            MESSAGE = format('pgbelay: refused: cannot restore %I.%I: %s already exist%s',
                             v_entry.table_schema, v_entry.table_name, array_to_string(v_taken, ', '),
                             CASE WHEN cardinality(v_taken) = 1 THEN 's' ELSE '' END),
            DETAIL = 'statement class: undo',
            HINT = 'Rename or drop what is in the way, then run the undo again.';
    END IF;

    -- Back to the old names inside the bin (where no object has an unsuffixed name), then
    -- out; SET SCHEMA takes the indexes and owned sequences along.
    FOR v_obj IN SELECT * FROM jsonb_array_elements(v_entry.objects) LOOP
        CONTINUE WHEN NOT EXISTS (SELECT 1 FROM pg_class WHERE oid = (v_obj ->> 'oid')::oid);
        EXECUTE format('ALTER %s %s RENAME TO %I', upper(v_obj ->> 'kind'),
                       ((v_obj ->> 'oid')::oid)::regclass, v_obj ->> 'name');
    END LOOP;
    EXECUTE format('ALTER TABLE %s RENAME TO %I', v_rel, v_entry.table_name);
    EXECUTE format('ALTER TABLE %s SET SCHEMA %I', v_rel, v_entry.table_schema);
    -- Its foreign keys come back. Rows whose parent went meanwhile keep it from being
    -- checked: then it comes back NOT VALID (new rows are checked; VALIDATE CONSTRAINT once
    -- the old ones are fixed), which pgbelay undo reports.
    FOR v_fk IN SELECT * FROM jsonb_array_elements(v_entry.foreign_keys) LOOP
        BEGIN
            EXECUTE format('ALTER TABLE %s ADD CONSTRAINT %I %s', v_rel, v_fk ->> 'name', v_fk ->> 'definition');
        EXCEPTION WHEN foreign_key_violation THEN
            EXECUTE format('ALTER TABLE %s ADD CONSTRAINT %I %s NOT VALID', v_rel, v_fk ->> 'name', v_fk ->> 'definition');
        END;
    END LOOP;

    EXECUTE format('SELECT count(*) FROM %s', v_rel) INTO v_rows;
    v_id := @S@._record(NULL, 'undo', v_entry.table_schema, v_entry.table_name, v_rows, NULL);
    UPDATE @S@.trash t SET restored_by = v_id, restored_at = now() WHERE t.change_id = restore_table.change_id;
    RETURN v_id;
END
$pgbelay$;

REVOKE ALL ON FUNCTION @S@._drop_dependents(regclass), @S@._check_owner(regclass),
                       @S@._trash_name(text, bigint, oid), @S@.refuse_trash_rewrite()
FROM PUBLIC;
-- Entry points, called with the client's own credentials (they check ownership).
REVOKE ALL ON FUNCTION @S@.recycle_table(regclass), @S@.restore_table(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @S@.recycle_table(regclass), @S@.restore_table(bigint) TO PUBLIC;
