//! A throwaway PostgreSQL cluster (initdb into a temp dir, free port), for `pgbelay demo`
//! and the tests.
