//! Length-prefixed framing of regular (tagged) protocol messages.
//!
//! `split` takes complete frames off the front of a read buffer and returns `Ok(None)`
//! while a frame is still incomplete, like mini-redis `parse_frame`.

use bytes::{Bytes, BytesMut};

/// Largest frame accepted from either side, as PostgreSQL's own limit (1 GiB - 1): a
/// length above it is garbage or an attack, and closes the connection.
pub const MAX_FRAME_LEN: usize = 0x3fff_ffff;

/// The most `split` reserves ahead for an incomplete frame. The length field is the
/// peer's claim, not data: reserving all of it would let 5 bytes allocate 1 GiB per
/// connection. Bigger frames grow the buffer as their bytes arrive.
const RESERVE_AHEAD: usize = 64 * 1024;

/// One protocol message exactly as received: tag byte, length, body.
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    bytes: Bytes,
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Frame({:?}, {} bytes)",
            self.tag() as char,
            self.bytes.len()
        )
    }
}

/// Why a byte stream is not a valid sequence of frames.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    /// The length field is below 4 (it counts itself).
    #[error("invalid message length {0}")]
    BadLength(i64),
    /// The length field exceeds [`MAX_FRAME_LEN`].
    #[error("message length {0} exceeds the 1 GiB limit")]
    TooLong(usize),
    /// The tag byte is not one this side may send.
    #[error("unexpected message type {0:?}")]
    UnknownTag(char),
    /// A message body does not have the layout its type requires.
    #[error("malformed {0} message")]
    Malformed(&'static str),
    /// A startup packet asking for a protocol other than 3.x (or a code that is none of
    /// the known requests), as PostgreSQL reports it.
    #[error("unsupported frontend protocol {}.{}: pgbelay supports 3.0", .0 >> 16, .0 & 0xffff)]
    UnsupportedProtocol(u32),
}

impl Frame {
    /// Takes one complete frame off `buf`, or `Ok(None)` if more bytes are needed.
    pub fn split(buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        Ok(Self::complete_len(buf)?.map(|len| Self::take(buf, len)))
    }

    /// Takes the complete frame of `len` bytes that [`Frame::complete_len`] found.
    pub fn take(buf: &mut BytesMut, len: usize) -> Frame {
        Frame {
            bytes: buf.split_to(len).freeze(),
        }
    }

    /// The length (tag included) of the complete frame at the front of `buf`, or
    /// `Ok(None)` if more bytes are needed: lets a relayed frame be copied from the read
    /// buffer without becoming a [`Frame`] of its own.
    pub fn complete_len(buf: &mut BytesMut) -> Result<Option<usize>, FrameError> {
        if buf.len() < 5 {
            return Ok(None);
        }
        let len = i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
        if len < 4 {
            return Err(FrameError::BadLength(len.into()));
        }
        let len = len as usize;
        if len > MAX_FRAME_LEN {
            return Err(FrameError::TooLong(len));
        }
        if buf.len() < len + 1 {
            buf.reserve((len + 1 - buf.len()).min(RESERVE_AHEAD));
            return Ok(None);
        }
        Ok(Some(len + 1))
    }

    /// Wraps bytes that already hold exactly one frame (ones the proxy encoded itself).
    pub(crate) fn from_encoded(bytes: Bytes) -> Frame {
        debug_assert!(bytes.len() >= 5);
        Frame { bytes }
    }

    /// The message type byte.
    pub fn tag(&self) -> u8 {
        self.bytes[0]
    }

    /// The body after tag and length.
    pub fn body(&self) -> &[u8] {
        &self.bytes[5..]
    }

    /// The whole frame as received.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The frame's tag as a frontend message type.
    pub fn frontend_tag(&self) -> Result<FrontendTag, FrameError> {
        FrontendTag::from_byte(self.tag())
    }

    /// The frame's tag as a backend message type.
    pub fn backend_tag(&self) -> BackendTag {
        BackendTag::from_byte(self.tag())
    }
}

/// Message types a client may send after startup; decoded once, matched exhaustively.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrontendTag {
    /// `Q`
    Query,
    /// `P`
    Parse,
    /// `B`
    Bind,
    /// `D`
    Describe,
    /// `E`
    Execute,
    /// `C`
    Close,
    /// `H`
    Flush,
    /// `S`
    Sync,
    /// `F`: fast-path call of any function by OID; cannot be audited.
    FunctionCall,
    /// `d`
    CopyData,
    /// `c`
    CopyDone,
    /// `f`
    CopyFail,
    /// `p`: PasswordMessage, SASLInitialResponse, SASLResponse, GSSResponse.
    Password,
    /// `X`
    Terminate,
}

impl FrontendTag {
    /// Maps a tag byte, rejecting anything a client may not send.
    pub fn from_byte(b: u8) -> Result<Self, FrameError> {
        Ok(match b {
            b'Q' => Self::Query,
            b'P' => Self::Parse,
            b'B' => Self::Bind,
            b'D' => Self::Describe,
            b'E' => Self::Execute,
            b'C' => Self::Close,
            b'H' => Self::Flush,
            b'S' => Self::Sync,
            b'F' => Self::FunctionCall,
            b'd' => Self::CopyData,
            b'c' => Self::CopyDone,
            b'f' => Self::CopyFail,
            b'p' => Self::Password,
            b'X' => Self::Terminate,
            other => return Err(FrameError::UnknownTag(other as char)),
        })
    }

    /// True for the messages of the extended query protocol (answered after Sync).
    pub fn is_extended(self) -> bool {
        matches!(
            self,
            Self::Parse
                | Self::Bind
                | Self::Describe
                | Self::Execute
                | Self::Close
                | Self::Flush
                | Self::Sync
        )
    }
}

/// Message types the server sends that the proxy treats specially; the rest are relayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendTag {
    /// `R`
    Authentication,
    /// `K`
    BackendKeyData,
    /// `Z`
    ReadyForQuery,
    /// `E`
    ErrorResponse,
    /// `N`
    NoticeResponse,
    /// `S`
    ParameterStatus,
    /// `A`
    NotificationResponse,
    /// `C`
    CommandComplete,
    /// `G`, `H`, `W`: the start of a COPY.
    CopyStart,
    /// `v`
    NegotiateProtocolVersion,
    /// Anything else (DataRow, RowDescription, ParseComplete, CopyData, …).
    Other(u8),
}

impl BackendTag {
    /// Maps a tag byte.
    pub fn from_byte(b: u8) -> Self {
        match b {
            b'R' => Self::Authentication,
            b'K' => Self::BackendKeyData,
            b'Z' => Self::ReadyForQuery,
            b'E' => Self::ErrorResponse,
            b'N' => Self::NoticeResponse,
            b'S' => Self::ParameterStatus,
            b'A' => Self::NotificationResponse,
            b'C' => Self::CommandComplete,
            b'G' | b'H' | b'W' => Self::CopyStart,
            b'v' => Self::NegotiateProtocolVersion,
            other => Self::Other(other),
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn incomplete_then_complete() {
        let mut buf = BytesMut::from(&b"Q\0\0\0\x09SEL"[..]);
        assert_eq!(Frame::split(&mut buf), Ok(None));
        buf.extend_from_slice(b"1\0Z");
        let frame = Frame::split(&mut buf).unwrap().unwrap();
        assert_eq!(frame.tag(), b'Q');
        assert_eq!(frame.body(), b"SEL1\0");
        assert_eq!(&buf[..], b"Z");
    }

    #[test]
    fn rejects_bad_lengths() {
        let mut buf = BytesMut::from(&b"Q\0\0\0\x02"[..]);
        assert_eq!(Frame::split(&mut buf), Err(FrameError::BadLength(2)));
        let mut buf = BytesMut::from(&b"Q\x7f\xff\xff\xff"[..]);
        assert!(matches!(
            Frame::split(&mut buf),
            Err(FrameError::TooLong(_))
        ));
        let mut buf = BytesMut::from(&b"Q\xff\xff\xff\xff"[..]);
        assert_eq!(Frame::split(&mut buf), Err(FrameError::BadLength(-1)));
    }

    #[test]
    fn a_length_field_alone_does_not_size_the_buffer() {
        // Found by the frontend_frames fuzz target: 5 bytes reserved 1 GiB.
        let mut buf = BytesMut::from(&b"Q\x3f\xff\xff\xff"[..]);
        assert_eq!(Frame::split(&mut buf), Ok(None));
        assert!(buf.capacity() <= 2 * RESERVE_AHEAD, "{}", buf.capacity());
    }

    #[test]
    fn unknown_frontend_tag() {
        assert_eq!(
            FrontendTag::from_byte(b'!'),
            Err(FrameError::UnknownTag('!'))
        );
    }
}
