//! Frames pgbelay creates itself, encoded with pgwire.

use bytes::BytesMut;
use pgwire::messages::Message;

use super::sqlstate::SqlState;
use super::{Frame, TxStatus};

/// Severity of an error the proxy raises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The statement fails; the session goes on.
    Error,
    /// The session ends after this message.
    Fatal,
}

impl Severity {
    fn text(self) -> &'static str {
        match self {
            Self::Error => "ERROR",
            Self::Fatal => "FATAL",
        }
    }
}

/// A client-visible error: the only way pgbelay's own words reach a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorFields {
    /// ERROR or FATAL.
    pub severity: Severity,
    /// SQLSTATE.
    pub code: SqlState,
    /// One line: what failed and why.
    pub message: String,
    /// More detail (for refusals: the statement class).
    pub detail: Option<String>,
    /// What to do about it.
    pub hint: Option<String>,
}

impl ErrorFields {
    /// An ERROR with a code and message.
    pub fn error(code: SqlState, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            code,
            message: message.into(),
            detail: None,
            hint: None,
        }
    }

    /// A FATAL with a code and message.
    pub fn fatal(code: SqlState, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Fatal,
            ..Self::error(code, message)
        }
    }

    /// Adds a DETAIL.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Adds a HINT.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Encodes the ErrorResponse frame.
    pub fn to_frame(&self) -> Frame {
        let mut fields = vec![
            (b'S', self.severity.text().to_string()),
            (b'V', self.severity.text().to_string()),
            (b'C', self.code.code().to_string()),
            (b'M', self.message.clone()),
        ];
        if let Some(d) = &self.detail {
            fields.push((b'D', d.clone()));
        }
        if let Some(h) = &self.hint {
            fields.push((b'H', h.clone()));
        }
        encode(&pgwire::messages::response::ErrorResponse::new(fields))
    }
}

fn encode<M: Message>(m: &M) -> Frame {
    let mut buf = BytesMut::new();
    // pgwire only fails on messages over its size limits, which ours never reach.
    if m.encode(&mut buf).is_err() {
        buf.clear();
    }
    Frame::from_encoded(buf.freeze())
}

/// Strips NULs, which cannot travel inside a protocol string.
fn clean(text: &str) -> String {
    text.replace('\0', "")
}

/// ReadyForQuery with the given status.
pub fn ready_for_query(status: TxStatus) -> Frame {
    use pgwire::messages::response::{ReadyForQuery, TransactionStatus};
    let status = match status {
        TxStatus::Idle => TransactionStatus::Idle,
        TxStatus::InTransaction => TransactionStatus::Transaction,
        TxStatus::Failed => TransactionStatus::Error,
    };
    encode(&ReadyForQuery::new(status))
}

/// A simple-protocol Query.
pub fn query(sql: &str) -> Frame {
    encode(&pgwire::messages::simplequery::Query::new(clean(sql)))
}

/// A Parse of `sql` as statement `name`, with the client's parameter types.
pub fn parse(name: &str, sql: &str, param_types: &[u32]) -> Frame {
    let name = (!name.is_empty()).then(|| clean(name));
    encode(&pgwire::messages::extendedquery::Parse::new(
        name,
        clean(sql),
        param_types.to_vec(),
    ))
}

/// BackendKeyData with the proxy's own process id and secret.
pub fn backend_key_data(pid: u32, secret: &[u8]) -> Frame {
    use pgwire::messages::startup::{BackendKeyData, SecretKey};
    encode(&BackendKeyData::new(
        pid as i32,
        SecretKey::Bytes(bytes::Bytes::copy_from_slice(secret)),
    ))
}

/// CommandComplete with `tag`.
pub fn command_complete(tag: &str) -> Frame {
    encode(&pgwire::messages::response::CommandComplete::new(clean(
        tag,
    )))
}

/// A Sync message.
pub fn sync() -> Frame {
    encode(&pgwire::messages::extendedquery::Sync::new())
}

/// A Terminate message.
pub fn terminate() -> Frame {
    encode(&pgwire::messages::terminate::Terminate::new())
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::wire::decode;

    #[test]
    fn error_roundtrip() {
        let f = ErrorFields::error(SqlState::INSUFFICIENT_PRIVILEGE, "pgbelay: no")
            .with_detail("class: drop")
            .with_hint("ask")
            .to_frame();
        let v = decode::error_response(&f).unwrap();
        assert_eq!(v.get(b'C'), Some("42501"));
        assert_eq!(v.get(b'M'), Some("pgbelay: no"));
        assert_eq!(v.get(b'D'), Some("class: drop"));
        assert_eq!(v.get(b'H'), Some("ask"));
        assert_eq!(v.get(b'S'), Some("ERROR"));
    }

    #[test]
    fn simple_frames() {
        assert_eq!(
            &ready_for_query(TxStatus::Failed).bytes()[..],
            b"Z\0\0\0\x05E"
        );
        assert_eq!(&query("SELECT 1").bytes()[..], b"Q\0\0\0\x0dSELECT 1\0");
        assert_eq!(&sync().bytes()[..], b"S\0\0\0\x04");
        assert_eq!(
            &backend_key_data(7, &[1, 2, 3, 4]).bytes()[..],
            b"K\0\0\0\x0c\0\0\0\x07\x01\x02\x03\x04"
        );
        let p = parse("s", "SELECT $1", &[23]);
        let d = decode::Parse::decode(&p).unwrap();
        assert_eq!(d.name, "s");
        assert_eq!(d.param_types, vec![23]);
    }
}
