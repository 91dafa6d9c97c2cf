-- Function privileges and the version stamp; runs last.

-- Internals are for the owner (and the SECURITY DEFINER functions running as the owner).
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA @S@ FROM PUBLIC;
-- The entry points the proxy calls with the client's own credentials.
GRANT EXECUTE ON FUNCTION
    @S@.begin_statement(regclass, text, text, bigint, text, text, text, text, text, text),
    @S@._begin_statement(regclass, text, text, text, text, text, text),
    @S@.end_statement(),
    @S@.record_change(text, text, text, bigint, text),
    @S@.prepare_table(regclass)
TO PUBLIC;
-- Run before an approved TRUNCATE.
GRANT EXECUTE ON FUNCTION @S@.prepare_truncate(regclass[], boolean) TO PUBLIC;

INSERT INTO @S@.meta (version) SELECT @VERSION@ WHERE NOT EXISTS (SELECT 1 FROM @S@.meta);
UPDATE @S@.meta SET version = @VERSION@ WHERE version IS DISTINCT FROM @VERSION@;

-- Read by installed_check_sql without touching the tables (which may not exist).
COMMENT ON SCHEMA @S@ IS 'pgbelay audit schema, version @VERSION@';
COMMENT ON SCHEMA @T@ IS 'pgbelay recycle bin: tables an approved DROP moved here';
