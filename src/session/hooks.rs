//! The interface between the session (which owns the sockets) and the policy layer (which
//! decides what each statement becomes).
//!
//! The session asks [`SessionHooks`] about every Query and Parse before anything is sent
//! upstream; the answer is a [`Decision`]. The hooks do no IO: they return values that the
//! session carries out, so the same decision code serves the live proxy and
//! `pgbelay check`.

use crate::wire::TxStatus;
use crate::wire::encode::ErrorFields;

/// What the client told us at startup, and what the server has reported since.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// `user` from the StartupMessage.
    pub user: String,
    /// `database` from the StartupMessage (defaults to the user, as in PostgreSQL).
    pub database: String,
    /// `application_name`, updated from ParameterStatus.
    pub application_name: String,
    /// `client_encoding` as last reported by the server (ParameterStatus).
    pub client_encoding: String,
    /// Peer address of the client.
    pub client_addr: String,
    /// `standard_conforming_strings` as last reported by the server: when off, `'\\'`
    /// means something else, so the parser must read statements the same way.
    pub standard_conforming_strings: bool,
    /// The session's tracing span. The policy logs in it (`parent: &info.span`): entering
    /// it around every decision was a subscriber call per statement (2-3% of the proxy's
    /// instructions per simple-protocol transaction).
    pub span: tracing::Span,
}

impl Default for SessionInfo {
    fn default() -> Self {
        Self {
            user: String::new(),
            database: String::new(),
            application_name: String::new(),
            client_encoding: "UTF8".into(),
            client_addr: String::new(),
            standard_conforming_strings: true,
            span: tracing::Span::none(),
        }
    }
}

/// Where the session stands when a statement arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Transaction status from the last ReadyForQuery the server sent.
    pub tx_status: TxStatus,
    /// True when requests are still waiting for their responses, so `tx_status` may be
    /// out of date by the time this statement runs (a pipelining client).
    pub pipelined: bool,
    /// True when this message opens an extended-protocol batch for the hooks: nothing
    /// since the last Sync, or only messages the relay forwards without asking (a Close or
    /// a Describe; then `pipelined` is true). Statements can only be injected before a
    /// batch at its start.
    pub batch_start: bool,
    /// True when a Bind or Execute of the current batch has gone upstream. Until then the
    /// relay can end the batch with a Sync of its own without changing what it does (a
    /// Parse, Describe or Close commits nothing and leaves no portal), which it does when
    /// the hooks answer [`Decision::Wait`] in the middle of a batch.
    pub batch_ran: bool,
}

/// What to do with one Query or Parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Forward the original bytes.
    Forward,
    /// Send something else, possibly with injected statements around it.
    Rewrite(Plan),
    /// Hold this message, and every message after it, until every earlier request has
    /// been answered; then ask again. For a policy whose plan depends on the transaction
    /// status, which a pipelining client leaves unknown until then (`Position::pipelined`),
    /// or for a message that must start a batch of its own. In the middle of a batch the
    /// relay first ends the batch with a Sync of its own (its ReadyForQuery swallowed), so
    /// the policy asks for it there only where that Sync changes nothing the client can
    /// tell: nothing in the batch has run yet (`Position::batch_ran`), or it only opened
    /// a transaction block.
    Wait,
    /// Do not run it; the client gets this error (and, for Parse, the extended protocol's
    /// discard-until-Sync behaviour), exactly as if the server had raised it.
    Refuse(ErrorFields),
}

/// A rewrite, built by the policy and carried out by the session.
///
/// `before` statements are sent as simple Queries ahead of the client's message (for a
/// Parse: ahead of its batch, so only at a batch start); `after` statements follow it (for a
/// Parse: follow the batch's Sync). Their replies are swallowed, except ErrorResponses,
/// which reach the client; when `after` is not empty, the client's ReadyForQuery is the
/// one that answers the last `after` statement, so it reports the true transaction status.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// Statements run before the client's message.
    pub before: Vec<String>,
    /// Replacement SQL for the message; `None` keeps the client's text.
    pub sql: Option<String>,
    /// Statements run after the client's message (or its batch).
    pub after: Vec<String>,
    /// Rename the command tag of the client's statement: `(from, to)` turns a
    /// CommandComplete `from n` into `to n` (a soft DELETE runs as an UPDATE but the client
    /// asked for, and must see, `DELETE n`).
    pub rename_tag: Option<(String, String)>,
    /// Send `after` only once the client's statement has completed, not pipelined behind
    /// it: a COPY FROM STDIN reads the messages that follow it as its data stream.
    pub after_when_done: bool,
}

/// Per-session policy state; one instance per client session.
pub trait SessionHooks: Send {
    /// A simple-protocol Query message.
    fn on_query(&mut self, info: &SessionInfo, at: Position, sql: &str) -> Decision;

    /// A Parse message; `name` is empty for the unnamed statement.
    fn on_parse(&mut self, info: &SessionInfo, at: Position, name: &str, sql: &str) -> Decision;

    /// A Bind of prepared statement `statement` (empty: the unnamed one). Lets the policy
    /// wrap each execution of a statement it saw at Parse time; `Plan::sql` must be `None`.
    fn on_bind(&mut self, _info: &SessionInfo, _at: Position, _statement: &str) -> Decision {
        Decision::Forward
    }

    /// An Execute of portal `portal` (empty: the unnamed one) that no Bind of its batch
    /// created: a portal an earlier batch of the transaction left suspended at its row
    /// limit, run on. Its remaining rows may still call the session's functions.
    /// `Plan::sql` must be `None`.
    fn on_execute(&mut self, _info: &SessionInfo, _at: Position, _portal: &str) -> Decision {
        Decision::Forward
    }

    /// The server reported a setting's new value (ParameterStatus) at the end of a
    /// request; `by_client` when the request was the client's own (not one of the
    /// policy's injected statements). `Some(statements)`: run these as soon as nothing
    /// is in flight, before anything the client sends later (empty: nothing, or no longer
    /// anything); `None`: no opinion.
    fn on_setting_reported(
        &mut self,
        _info: &SessionInfo,
        _name: &str,
        _value: &str,
        _by_client: bool,
    ) -> Option<Vec<String>> {
        None
    }

    /// Statements to run once authentication has succeeded, before the client is told the
    /// session is ready. If one fails, the client sees its error during startup (and
    /// drivers treat that as a failed connection), so a guard that cannot be set up fails
    /// closed.
    fn on_ready(&mut self, _info: &SessionInfo) -> Vec<String> {
        Vec::new()
    }

    /// Text of a Query or Parse that is not valid in the session's client_encoding.
    /// The default refuses it: what cannot be read cannot be judged.
    fn on_undecodable(&mut self, info: &SessionInfo) -> Decision {
        Decision::Refuse(ErrorFields::error(
            crate::wire::sqlstate::SqlState::CHARACTER_NOT_IN_REPERTOIRE,
            format!(
                "pgbelay: statement text is not valid {}",
                info.client_encoding
            ),
        ))
    }
}

/// Makes the per-session hooks; shared by every session of one proxy.
pub trait Hooks: Send + Sync + 'static {
    /// Called once the StartupMessage is known.
    fn session(&self, info: &SessionInfo) -> Box<dyn SessionHooks>;
}

/// The default: everything passes through unchanged.
#[derive(Debug, Default, Clone, Copy)]
pub struct PassThrough;

impl SessionHooks for PassThrough {
    fn on_query(&mut self, _: &SessionInfo, _: Position, _: &str) -> Decision {
        Decision::Forward
    }
    fn on_parse(&mut self, _: &SessionInfo, _: Position, _: &str, _: &str) -> Decision {
        Decision::Forward
    }
}

impl Hooks for PassThrough {
    fn session(&self, _: &SessionInfo) -> Box<dyn SessionHooks> {
        Box::new(PassThrough)
    }
}
