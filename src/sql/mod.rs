//! SQL reading: wraps pg_query; nothing else imports the parser.
