//! Typed views of the frames the proxy inspects, decoded with pgwire.
//!
//! pgwire's decoders read past a short body with `get_u8` (a panic on hostile input) and
//! turn invalid UTF-8 into U+FFFD, so each view first checks the layout and the text
//! itself on the original bytes, then lets pgwire decode exactly one validated frame.

use std::borrow::Cow;

use bytes::BytesMut;
use pgwire::messages::{DecodeContext, Message, ProtocolVersion};

use super::{Frame, FrameError, TxStatus};

/// Statement text that is not valid UTF-8: the caller decides (refuse, fail closed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotUtf8;

fn decode<M: Message>(frame: &Frame, what: &'static str) -> Result<M, FrameError> {
    thread_local! {
        // pgwire decodes from a BytesMut: one per thread, reused, instead of an
        // allocation per inspected frame (every ReadyForQuery is one). Decoders that keep
        // text split it off (a 4 MiB Query leaves nothing reserved here; checked).
        static SCRATCH: std::cell::RefCell<BytesMut> = std::cell::RefCell::new(BytesMut::new());
    }
    SCRATCH.with_borrow_mut(|buf| {
        buf.clear();
        buf.extend_from_slice(frame.bytes());
        let ctx = DecodeContext::new(ProtocolVersion::PROTOCOL3_0);
        match M::decode(buf, &ctx) {
            Ok(Some(m)) => Ok(m),
            _ => Err(FrameError::Malformed(what)),
        }
    })
}

/// Splits a NUL-terminated string off `body`, returning it and the rest.
fn cstr(body: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = body.iter().position(|&b| b == 0)?;
    Some((&body[..end], &body[end + 1..]))
}

/// A Query message: the SQL text.
#[derive(Debug, Clone)]
pub struct Query {
    /// The text, or `Err` when it is not UTF-8.
    pub sql: Result<String, NotUtf8>,
}

impl Query {
    /// Decodes a `Q` frame.
    pub fn decode(frame: &Frame) -> Result<Query, FrameError> {
        // A SQL text is long enough for memchr's vector search to pay (a name is not).
        let body = frame.body();
        let end = memchr::memchr(0, body).ok_or(FrameError::Malformed("Query"))?;
        let (text, rest) = (&body[..end], &body[end + 1..]);
        if !rest.is_empty() {
            return Err(FrameError::Malformed("Query"));
        }
        if std::str::from_utf8(text).is_err() {
            return Ok(Query { sql: Err(NotUtf8) });
        }
        let q: pgwire::messages::simplequery::Query = decode(frame, "Query")?;
        Ok(Query { sql: Ok(q.query) })
    }
}

/// A Parse message: statement name and SQL text.
#[derive(Debug, Clone)]
pub struct Parse {
    /// Prepared statement name; empty for the unnamed statement.
    pub name: String,
    /// The text, or `Err` when it is not UTF-8.
    pub sql: Result<String, NotUtf8>,
    /// Parameter type OIDs the client specified.
    pub param_types: Vec<u32>,
}

impl Parse {
    /// Decodes a `P` frame.
    pub fn decode(frame: &Frame) -> Result<Parse, FrameError> {
        let bad = FrameError::Malformed("Parse");
        let (name, rest) = cstr(frame.body()).ok_or(bad.clone())?;
        let (text, rest) = cstr(rest).ok_or(bad.clone())?;
        if rest.len() < 2 {
            return Err(bad);
        }
        let n = u16::from_be_bytes([rest[0], rest[1]]) as usize;
        if rest.len() != 2 + 4 * n {
            return Err(bad);
        }
        let name = std::str::from_utf8(name)
            .map_err(|_| bad.clone())?
            .to_string();
        if std::str::from_utf8(text).is_err() {
            return Ok(Parse {
                name,
                sql: Err(NotUtf8),
                param_types: Vec::new(),
            });
        }
        let p: pgwire::messages::extendedquery::Parse = decode(frame, "Parse")?;
        Ok(Parse {
            name,
            sql: Ok(p.query),
            param_types: p.type_oids,
        })
    }
}

/// Frames longer than this are decoded every time rather than remembered.
const MAX_REMEMBERED_FRAME: usize = 8 * 1024;

/// The last frame of one kind a session decoded, with what it decoded to.
///
/// Clients repeat themselves: a driver's prepared loop, pgbench, an application's hot
/// query send the same Parse or Query bytes again and again. Comparing the bytes costs a
/// fraction of decoding them again (pgwire copies and re-validates the text), and the
/// decoders are pure functions of the bytes, so the remembered value is exactly what a
/// fresh decode would return. Errors are not remembered.
#[derive(Debug)]
pub struct Recent<T> {
    bytes: Vec<u8>,
    value: Option<T>,
}

impl<T> Default for Recent<T> {
    fn default() -> Self {
        Recent {
            bytes: Vec::new(),
            value: None,
        }
    }
}

impl<T: Clone> Recent<T> {
    /// `decode(frame)`, or the value remembered for the same bytes. A frame over
    /// [`MAX_REMEMBERED_FRAME`] is handed back owned and not kept.
    pub fn decode(
        &mut self,
        frame: &Frame,
        decode: impl Fn(&Frame) -> Result<T, FrameError>,
    ) -> Result<Cow<'_, T>, FrameError> {
        let remembered = self.value.is_some() && self.bytes[..] == frame.bytes()[..];
        if !remembered {
            let value = decode(frame)?;
            if frame.bytes().len() > MAX_REMEMBERED_FRAME {
                return Ok(Cow::Owned(value));
            }
            self.bytes.clear();
            self.bytes.extend_from_slice(frame.bytes());
            self.value = Some(value);
        }
        match &self.value {
            Some(value) => Ok(Cow::Borrowed(value)),
            // Not reached (remembered or just stored), but decoding is never wrong.
            None => decode(frame).map(Cow::Owned),
        }
    }
}

/// The portal an Execute runs (its name's bytes, without the NUL; empty: the unnamed one).
pub fn execute_portal(frame: &Frame) -> Result<&[u8], FrameError> {
    let bad = FrameError::Malformed("Execute");
    let (portal, rest) = cstr(frame.body()).ok_or(bad.clone())?;
    if rest.len() != 4 {
        return Err(bad);
    }
    Ok(portal)
}

/// The portal a Bind creates (its name's bytes; empty: the unnamed one) and the prepared
/// statement it refers to, from one pass over the frame's start.
pub fn bind_names(frame: &Frame) -> Result<(&[u8], String), FrameError> {
    let bad = FrameError::Malformed("Bind");
    let (portal, rest) = cstr(frame.body()).ok_or(bad.clone())?;
    let (statement, _) = cstr(rest).ok_or(bad.clone())?;
    let statement = std::str::from_utf8(statement).map_err(|_| bad)?;
    Ok((portal, statement.to_string()))
}

/// The status byte of ReadyForQuery.
pub fn ready_for_query(frame: &Frame) -> Result<TxStatus, FrameError> {
    let bad = FrameError::Malformed("ReadyForQuery");
    if frame.body().len() != 1 {
        return Err(bad);
    }
    let rfq: pgwire::messages::response::ReadyForQuery = decode(frame, "ReadyForQuery")?;
    TxStatus::from_byte(rfq.status as u8).ok_or(bad)
}

/// A ParameterStatus: name and value.
pub fn parameter_status(frame: &Frame) -> Result<(String, String), FrameError> {
    let bad = FrameError::Malformed("ParameterStatus");
    let (_, rest) = cstr(frame.body()).ok_or(bad.clone())?;
    let (_, rest) = cstr(rest).ok_or(bad.clone())?;
    if !rest.is_empty() {
        return Err(bad);
    }
    let ps: pgwire::messages::startup::ParameterStatus = decode(frame, "ParameterStatus")?;
    Ok((ps.name, ps.value))
}

/// The tag of a CommandComplete (`UPDATE 3`, `SELECT 10`, …).
pub fn command_complete(frame: &Frame) -> Result<String, FrameError> {
    let bad = FrameError::Malformed("CommandComplete");
    let (_, rest) = cstr(frame.body()).ok_or(bad.clone())?;
    if !rest.is_empty() {
        return Err(bad);
    }
    let cc: pgwire::messages::response::CommandComplete = decode(frame, "CommandComplete")?;
    Ok(cc.tag)
}

/// The fields of an ErrorResponse or NoticeResponse, by field code.
#[derive(Debug, Default, Clone)]
pub struct ErrorFieldsView {
    /// All fields in order.
    pub fields: Vec<(u8, String)>,
}

impl ErrorFieldsView {
    /// One field's value (`b'C'` SQLSTATE, `b'M'` message, …).
    pub fn get(&self, code: u8) -> Option<&str> {
        self.fields
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, v)| v.as_str())
    }
}

/// Decodes an ErrorResponse.
pub fn error_response(frame: &Frame) -> Result<ErrorFieldsView, FrameError> {
    let bad = FrameError::Malformed("ErrorResponse");
    let mut rest = frame.body();
    loop {
        match rest.split_first() {
            Some((0, [])) => break,
            Some((_, tail)) => rest = cstr(tail).ok_or(bad.clone())?.1,
            None => return Err(bad),
        }
    }
    let e: pgwire::messages::response::ErrorResponse = decode(frame, "ErrorResponse")?;
    Ok(ErrorFieldsView { fields: e.fields })
}

/// BackendKeyData: process id and secret key bytes.
pub fn backend_key_data(frame: &Frame) -> Result<(u32, Vec<u8>), FrameError> {
    let body = frame.body();
    if !(8..=260).contains(&body.len()) {
        return Err(FrameError::Malformed("BackendKeyData"));
    }
    let pid = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
    Ok((pid, body[4..].to_vec()))
}

/// The request code of an Authentication message (0 = ok, 3 = cleartext, 5 = md5,
/// 10 = SASL, 11 = SASL continue, 12 = SASL final).
pub fn authentication_code(frame: &Frame) -> Result<u32, FrameError> {
    let body = frame.body();
    if body.len() < 4 {
        return Err(FrameError::Malformed("Authentication"));
    }
    Ok(u32::from_be_bytes([body[0], body[1], body[2], body[3]]))
}

#[cfg(test)]
mod test {
    use super::*;
    use bytes::BytesMut;

    fn frame(tag: u8, body: &[u8]) -> Frame {
        let mut b = BytesMut::new();
        b.extend_from_slice(&[tag]);
        b.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
        b.extend_from_slice(body);
        Frame::split(&mut b).unwrap().unwrap()
    }

    #[test]
    fn query_text() {
        let q = Query::decode(&frame(b'Q', b"SELECT 1\0")).unwrap();
        assert_eq!(q.sql.unwrap(), "SELECT 1");
        assert!(Query::decode(&frame(b'Q', b"SELECT 1")).is_err());
        assert!(Query::decode(&frame(b'Q', b"")).is_err());
        let q = Query::decode(&frame(b'Q', b"SELECT '\xff'\0")).unwrap();
        assert_eq!(q.sql, Err(NotUtf8));
    }

    #[test]
    fn parse_layout_is_checked() {
        let p = Parse::decode(&frame(b'P', b"s1\0SELECT $1\0\0\x01\0\0\0\x17")).unwrap();
        assert_eq!(
            (p.name.as_str(), p.sql.unwrap().as_str()),
            ("s1", "SELECT $1")
        );
        assert_eq!(p.param_types, vec![23]);
        // Count says one type, body carries none: pgwire alone would panic here.
        assert!(Parse::decode(&frame(b'P', b"s1\0SELECT $1\0\0\x01")).is_err());
        assert!(Parse::decode(&frame(b'P', b"s1\0SELECT")).is_err());
        assert!(Parse::decode(&frame(b'P', b"s1\0SELECT\0\0")).is_err());
    }

    #[test]
    fn recent_decodes_only_new_bytes() {
        let mut recent = Recent::default();
        let decoded = std::cell::Cell::new(0);
        let decode = |f: &Frame| {
            decoded.set(decoded.get() + 1);
            Parse::decode(f)
        };
        let sql_of = |recent: &mut Recent<Parse>, f: &Frame| {
            recent.decode(f, decode).unwrap().sql.clone().unwrap()
        };
        let a = frame(b'P', b"\0SELECT 1\0\0\0");
        let b = frame(b'P', b"\0SELECT 2\0\0\0");
        assert_eq!(sql_of(&mut recent, &a), "SELECT 1");
        assert_eq!(sql_of(&mut recent, &a), "SELECT 1");
        assert_eq!(sql_of(&mut recent, &b), "SELECT 2");
        assert_eq!(sql_of(&mut recent, &a), "SELECT 1");
        assert_eq!(decoded.get(), 3);
        // An error is not remembered (the same bad bytes fail again) and leaves what
        // was remembered in place.
        let bad = frame(b'P', b"\0SELECT");
        assert!(recent.decode(&bad, decode).is_err());
        assert!(recent.decode(&bad, decode).is_err());
        assert_eq!(sql_of(&mut recent, &a), "SELECT 1");
        assert_eq!(decoded.get(), 5);
        // A frame too large to keep is decoded every time and pushes nothing out.
        let big_sql = format!("SELECT '{}'", "x".repeat(MAX_REMEMBERED_FRAME));
        let big = frame(b'P', format!("\0{big_sql}\0\0\0").as_bytes());
        for _ in 0..2 {
            let owned = recent.decode(&big, decode).unwrap();
            assert!(matches!(owned, Cow::Owned(_)));
        }
        let remembered = recent.decode(&a, decode).unwrap();
        assert!(matches!(remembered, Cow::Borrowed(_)));
        assert_eq!(decoded.get(), 7);
    }

    #[test]
    fn error_fields() {
        let e = error_response(&frame(b'E', b"SERROR\0C22012\0Mdivision by zero\0\0")).unwrap();
        assert_eq!(e.get(b'C'), Some("22012"));
        assert!(error_response(&frame(b'E', b"SERROR\0C2201")).is_err());
    }

    #[test]
    fn ready_status() {
        assert_eq!(
            ready_for_query(&frame(b'Z', b"T")).unwrap(),
            TxStatus::InTransaction
        );
        assert!(ready_for_query(&frame(b'Z', b"X")).is_err());
        assert!(ready_for_query(&frame(b'Z', b"")).is_err());
    }
}
