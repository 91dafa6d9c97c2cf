//! Session state: the phase, and the queue of requests whose responses are still due.
//!
//! Every request the proxy sends upstream that ends in ReadyForQuery (a Query, or an
//! extended-protocol batch up to its Sync) has one [`Unit`] in the queue, in send order.
//! Responses are matched to the unit at the head, which says whether they reach the client
//! (the client's own requests) or are swallowed (statements the proxy injected).

use crate::wire::encode::ErrorFields;

/// Where the session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// StartupMessage sent; authentication messages are relayed both ways until the
    /// first ReadyForQuery.
    Auth,
    /// Normal operation.
    Ready,
    /// Shutdown requested: end the session at the next idle point.
    Draining,
}

/// Who a unit of responses belongs to.
#[derive(Debug)]
pub enum Origin {
    /// The client's own request: responses are forwarded.
    Client {
        /// Swallow this unit's ReadyForQuery, because an injected statement follows and
        /// its ReadyForQuery carries the true transaction status.
        swallow_ready: bool,
        /// The request was replaced by a poison statement (see [`Poison`]).
        poison: Option<Poison>,
        /// Rename CommandComplete tags `from n` → `to n` in this unit.
        rename_tag: Option<(String, String)>,
    },
    /// A statement the proxy injected: responses are swallowed, except ErrorResponse (the
    /// client must learn that its transaction failed) and, if `forward_ready`, the final
    /// ReadyForQuery.
    Injected {
        /// This is the last injected statement after a client request.
        forward_ready: bool,
    },
}

/// A refused request that could not be answered locally (the upstream transaction must
/// fail as it would on a server-side error, or earlier requests are still in flight) is
/// replaced by a statement that fails to parse. The server then does exactly what it does
/// for an error at that point (fail the transaction block, discard until Sync, report the
/// right status) and the proxy puts its own error in place of the syntax error. The nonce
/// tells that error apart from one an earlier message of the same batch raised.
#[derive(Debug)]
pub struct Poison {
    /// Unique token in the poison statement; the server's error message quotes it.
    pub nonce: String,
    /// What the client sees instead.
    pub error: ErrorFields,
}

impl Poison {
    /// The SQL sent upstream: a bare identifier is a syntax error in every context.
    pub fn sql(&self) -> String {
        self.nonce.clone()
    }
}

/// One expected ReadyForQuery-terminated response.
#[derive(Debug)]
pub struct Unit {
    /// Whose it is.
    pub origin: Origin,
    /// Part of a batch the relay ended with a Sync of its own (and of the statements
    /// after it): an error here means the client's messages up to its own Sync are
    /// discarded, as the server would have discarded them.
    pub quiet: bool,
    /// An ErrorResponse of this unit has arrived.
    pub failed: bool,
    /// An extended-protocol batch whose Sync has gone upstream (a COPY FROM STDIN that
    /// starts in it makes the server ignore that Sync: its ReadyForQuery answers the
    /// client's next one, after the copy data).
    pub synced: bool,
}

/// The client's current extended-protocol batch (messages since the last Sync).
#[derive(Debug, Default)]
pub enum Batch {
    /// No batch open.
    #[default]
    Closed,
    /// Messages have been forwarded; `after` runs once the batch's Sync is sent.
    Open {
        /// Statements to inject after the Sync.
        after: Vec<String>,
    },
    /// A message was refused locally: discard until Sync, then answer ReadyForQuery.
    Discarding,
}
