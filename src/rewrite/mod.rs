//! Rewriting: statements pgbelay sends instead of the client's, built on pg_query's tree
//! and deparsed — never by pasting strings — then parsed again and checked before use.
//!
//! Like `sql/`, this module is pure: it takes text and returns text or an error.

pub mod soft_delete;

pub use soft_delete::soft_delete;

/// Why a statement could not be rewritten; the caller refuses it rather than run it
/// unrecorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RewriteError {
    /// The parser rejected the input.
    #[error("cannot parse: {0}")]
    Parse(String),
    /// The input is not the one kind of statement this rewrite handles.
    #[error("not a single {0} statement")]
    Shape(&'static str),
    /// Deparsing failed.
    #[error("cannot deparse: {0}")]
    Deparse(String),
    /// The rewritten text did not parse back to what was built.
    #[error("rewritten statement failed its check: {0}")]
    Check(&'static str),
}
