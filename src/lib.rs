//! pgbelay: a PostgreSQL wire-protocol proxy that makes every change made through it
//! reversible.
//!
//! # Layout
//!
//! ```text
//!   cli, server            (on top; nothing imports them)
//!        |
//!   session  --->  policy  --->  rewrite  --->  audit
//!        |            |
//!      wire          sql (pg_query)
//! ```
//!
//! * [`wire`]: pure framing; frames keep their original bytes; pgwire decodes the frames
//!   the proxy inspects and encodes the ones it creates.
//! * [`session`]: one task per client; owns both sockets; relays, tracks transaction
//!   status and pending responses, and carries out the policy's [`session::Decision`]s.
//! * [`server`]: accept loop, signals, graceful drain.
//! * [`config`]: settings (flag > env > file > default); [`metrics`]: `/metrics`.
//! * [`cluster`]: a throwaway PostgreSQL for `pgbelay demo` and the tests.
//! * [`approval`]: approval tokens (mint, verify); [`audit`]: the audit schema.
//! * [`cli`]: the `pgbelay` subcommands.

#![warn(
    clippy::all,
    clippy::unwrap_used,
    clippy::todo,
    clippy::dbg_macro,
    missing_docs
)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod approval;
pub mod audit;
pub mod cli;
pub mod cluster;
pub mod config;
mod io_enum;
pub mod metrics;
pub mod policy;
pub mod rewrite;
pub mod server;
pub mod session;
pub mod sql;
pub mod tls;
pub mod wire;
