-- Tables are prepared for recording when they are created or altered, not by their first
-- recorded write. Preparing installs the capture triggers, and CREATE TRIGGER takes SHARE
-- ROW EXCLUSIVE on the table: done by the first write, inside the writer's transaction,
-- it blocks every other writer of the table until that transaction ends (a DBA's BEGIN
-- left open), and two first writers that already hold ROW EXCLUSIVE (a driver's Parse)
-- deadlock. Done here, it runs in the DDL's own transaction, which already holds ACCESS
-- EXCLUSIVE. Only a superuser may create an event trigger: installed by another role,
-- the schema works without it (`pgbelay init` prepares the tables that exist, the first
-- write prepares the rest).

-- For the event trigger: prepares every table the DDL command created or altered (a new
-- column reaches the shadow table now). Never fails the user's DDL: a table that cannot
-- be prepared (a column named like pgbelay's own) is left to its first write, which
-- refuses with the reason.
CREATE OR REPLACE FUNCTION @S@.prepare_on_ddl() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $pgbelay$
DECLARE
    v_rel oid;
BEGIN
    -- _prepare's own DDL (shadow tables, triggers) fires this trigger again.
    IF current_setting('pgbelay.preparing', true) = 'on' THEN
        RETURN;
    END IF;
    PERFORM set_config('pgbelay.preparing', 'on', true);
    -- Not inside an extension's script: what _prepare creates would become part of the
    -- extension (DROP EXTENSION would drop the images, pg_dump leave them out). Such a
    -- table is prepared by its first write.
    FOR v_rel IN
        SELECT DISTINCT d.objid
          FROM pg_event_trigger_ddl_commands() d
         WHERE d.classid = 'pg_class'::regclass AND NOT d.in_extension
           AND @S@._recordable(d.objid)
    LOOP
        BEGIN
            PERFORM @S@._prepare(v_rel::regclass);
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'pgbelay: % is not prepared for recording: %', v_rel::regclass, SQLERRM
                USING HINT = 'Its first write through pgbelay prepares it, or refuses with the reason.';
        END;
    END LOOP;
    PERFORM set_config('pgbelay.preparing', '', true);
END
$pgbelay$;

DO $pgbelay$
DECLARE
    v_name text := @S@._fit_name(@S_LIT@, '_prepare_tables');
BEGIN
    IF NOT (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
        RETURN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_event_trigger WHERE evtname = v_name) THEN
        EXECUTE format('CREATE EVENT TRIGGER %I ON ddl_command_end '
                       'WHEN TAG IN (''CREATE TABLE'', ''CREATE TABLE AS'', ''SELECT INTO'', ''ALTER TABLE'') '
                       'EXECUTE FUNCTION %I.prepare_on_ddl()', v_name, @S_LIT@);
    END IF;
END
$pgbelay$;
