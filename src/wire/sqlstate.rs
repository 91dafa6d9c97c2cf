//! Typed SQLSTATE codes for the errors pgbelay itself raises.

/// A five-character SQLSTATE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SqlState(&'static str);

impl SqlState {
    /// `42501`: the class of every policy refusal (§A3).
    pub const INSUFFICIENT_PRIVILEGE: SqlState = SqlState("42501");
    /// `08006`: the upstream connection failed.
    pub const CONNECTION_FAILURE: SqlState = SqlState("08006");
    /// `08P01`: the client broke the protocol.
    pub const PROTOCOL_VIOLATION: SqlState = SqlState("08P01");
    /// `08001`: the proxy could not reach the server.
    pub const SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION: SqlState = SqlState("08001");
    /// `0A000`: a message type the proxy will not relay (fast-path FunctionCall).
    pub const FEATURE_NOT_SUPPORTED: SqlState = SqlState("0A000");
    /// `22021`: statement bytes not valid in the client encoding.
    pub const CHARACTER_NOT_IN_REPERTOIRE: SqlState = SqlState("22021");
    /// `57P01`: the proxy is shutting down.
    pub const ADMIN_SHUTDOWN: SqlState = SqlState("57P01");
    /// `53300`: too many connections.
    pub const TOO_MANY_CONNECTIONS: SqlState = SqlState("53300");
    /// `26000`: a Bind of a prepared statement that does not exist (as the server says it).
    pub const INVALID_SQL_STATEMENT_NAME: SqlState = SqlState("26000");
    /// `XX000`: an internal error.
    pub const INTERNAL_ERROR: SqlState = SqlState("XX000");

    /// The code as text.
    pub fn code(self) -> &'static str {
        self.0
    }
}
