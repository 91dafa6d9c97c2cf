-- Undo bookkeeping (SPEC §B11): which change undid which. Runs after finish.sql.
--
-- An undo of change C (by `pgbelay undo`, see src/audit/undo.rs) is recorded as a change U
-- of kind 'undo' (begin_undo), and every write it makes is recorded as a child of U
-- (parent_id = U), as a cascade is. Undoing U reverses those children, so an undo can be
-- undone like any change.

CREATE TABLE IF NOT EXISTS @S@.undos (
    -- No foreign keys to changes: one would make TRUNCATE of changes fail before its guard.
    undo_id    bigint PRIMARY KEY,        -- the 'undo' change
    change_id  bigint NOT NULL,           -- the change it reversed
    forced     boolean NOT NULL DEFAULT false                    -- conflicts were overridden
);
CREATE INDEX IF NOT EXISTS undos_change_idx ON @S@.undos (change_id);
REVOKE ALL ON @S@.undos FROM PUBLIC;
GRANT SELECT ON @S@.undos TO PUBLIC;

DO $pgbelay$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger
                   WHERE tgrelid = format('%I.undos', @S_LIT@)::regclass
                     AND tgname = 'pgbelay_append_only') THEN
        EXECUTE format('CREATE TRIGGER pgbelay_append_only BEFORE UPDATE OR DELETE ON %I.undos '
                       'FOR EACH ROW EXECUTE FUNCTION %I.refuse_rewrite()', @S_LIT@, @S_LIT@);
        EXECUTE format('CREATE TRIGGER pgbelay_append_only_truncate BEFORE TRUNCATE ON %I.undos '
                       'FOR EACH STATEMENT EXECUTE FUNCTION %I.refuse_rewrite()', @S_LIT@, @S_LIT@);
    END IF;
END
$pgbelay$;

-- The undo currently in effect for change `target`: its newest undo that has not itself
-- been undone; NULL when there is none (never undone, or its undo was undone).
CREATE OR REPLACE FUNCTION @S@.undone_by(target bigint) RETURNS bigint
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $pgbelay$
    SELECT u.undo_id FROM @S@.undos u
     WHERE u.change_id = target
       AND NOT EXISTS (SELECT 1 FROM @S@.undos r WHERE r.change_id = u.undo_id)
     ORDER BY u.undo_id DESC LIMIT 1
$pgbelay$;

-- Starts the undo of change `target` under the statement announced by begin_statement:
-- records the change of kind 'undo' (table of `target`, rows = `row_count`) and links it to
-- `target`; returns its id, which the undo's writes then carry as their parent_id.
-- Serialized per target, and refused (42501) when `target` is undone already, unless
-- `forced`.
CREATE OR REPLACE FUNCTION @S@.begin_undo(target bigint, row_count bigint, forced boolean DEFAULT false)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $pgbelay$
DECLARE
    v_change record;
    v_undone bigint;
    v_id bigint;
BEGIN
    IF coalesce(current_setting('pgbelay.statement', true), '') = '' THEN
        RAISE EXCEPTION USING ERRCODE = '55000', MESSAGE = 'pgbelay: begin_undo needs begin_statement first';
    END IF;
    SELECT * INTO v_change FROM @S@.changes WHERE id = target;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'P0002', MESSAGE = format('pgbelay: no change %s', target);
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('pgbelay undo'), hashtext(target::text));
    v_undone := @S@.undone_by(target);
    IF v_undone IS NOT NULL AND NOT coalesce(forced, false) THEN
        RAISE EXCEPTION USING
            ERRCODE = '42501',
            MESSAGE = format('pgbelay: refused: change %s was already undone by change %s', target, v_undone),
            DETAIL = 'statement class: undo',
            HINT = format('Undo change %s to bring change %s back, or use --force.', v_undone, target);
    END IF;
    v_id := @S@._record(NULL, 'undo', v_change.table_schema, v_change.table_name, row_count, NULL);
    INSERT INTO @S@.undos (undo_id, change_id, forced) VALUES (v_id, target, coalesce(forced, false));
    RETURN v_id;
END
$pgbelay$;

REVOKE ALL ON FUNCTION @S@.undone_by(bigint), @S@.begin_undo(bigint, bigint, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @S@.undone_by(bigint), @S@.begin_undo(bigint, bigint, boolean) TO PUBLIC;
