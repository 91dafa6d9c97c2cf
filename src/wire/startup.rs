//! The untagged packets a client sends before the regular protocol starts.

use bytes::{Bytes, BytesMut};

use super::FrameError;

/// PostgreSQL refuses startup packets longer than this (`MAX_STARTUP_PACKET_LENGTH`).
pub const MAX_STARTUP_LEN: usize = 10_000;

const SSL_REQUEST: u32 = 80_877_103;

/// An SSLRequest as sent on the wire (length 8, code 80877103).
pub const SSL_REQUEST_PACKET: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
const GSSENC_REQUEST: u32 = 80_877_104;
const CANCEL_REQUEST: u32 = 80_877_102;

/// One startup-phase packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartupPacket {
    /// The client asks for TLS.
    SslRequest,
    /// The client asks for GSSAPI encryption.
    GssEncRequest,
    /// Cancel the query running on the backend with this key.
    CancelRequest {
        /// Backend process id as the client knows it.
        pid: u32,
        /// Secret key as the client knows it (4 bytes in protocol 3.0, up to 256 in 3.2).
        secret: Bytes,
    },
    /// A StartupMessage; `raw` is the packet exactly as received, for forwarding.
    Startup {
        /// Requested protocol version (major << 16 | minor).
        version: u32,
        /// Parameters in the order sent.
        params: Vec<(String, String)>,
        /// The whole packet.
        raw: Bytes,
    },
}

impl StartupPacket {
    /// Takes one startup packet off `buf`, or `Ok(None)` if more bytes are needed.
    pub fn split(buf: &mut BytesMut) -> Result<Option<StartupPacket>, FrameError> {
        if buf.len() < 8 {
            return Ok(None);
        }
        let len = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
        if len < 8 {
            return Err(FrameError::BadLength(len.into()));
        }
        let len = len as usize;
        if len > MAX_STARTUP_LEN {
            return Err(FrameError::TooLong(len));
        }
        if buf.len() < len {
            return Ok(None);
        }
        let raw = buf.split_to(len).freeze();
        let code = u32::from_be_bytes([raw[4], raw[5], raw[6], raw[7]]);
        let body = &raw[8..];
        Ok(Some(match code {
            SSL_REQUEST if body.is_empty() => StartupPacket::SslRequest,
            GSSENC_REQUEST if body.is_empty() => StartupPacket::GssEncRequest,
            CANCEL_REQUEST if (8..=260).contains(&body.len()) => StartupPacket::CancelRequest {
                pid: u32::from_be_bytes([body[0], body[1], body[2], body[3]]),
                secret: raw.slice(12..),
            },
            version if version >> 16 == 3 => StartupPacket::Startup {
                version,
                params: parse_params(body)?,
                raw,
            },
            SSL_REQUEST | GSSENC_REQUEST | CANCEL_REQUEST => {
                return Err(FrameError::Malformed("startup packet"));
            }
            other => return Err(FrameError::UnsupportedProtocol(other)),
        }))
    }
}

/// Reads `name\0value\0…\0`. Names and values must be UTF-8 (libpq sends ASCII for both).
fn parse_params(body: &[u8]) -> Result<Vec<(String, String)>, FrameError> {
    let bad = FrameError::Malformed("StartupMessage");
    let Some((&0, list)) = body.split_last() else {
        return Err(bad);
    };
    if list.is_empty() {
        return Ok(Vec::new());
    }
    let parts: Vec<&[u8]> = list.split(|&b| b == 0).collect();
    // A list of pairs, each part terminated: `list` ends in 0, so the last part is empty.
    let Some((last, parts)) = parts.split_last() else {
        return Err(bad);
    };
    if !last.is_empty() || parts.len() % 2 != 0 {
        return Err(bad);
    }
    parts
        .chunks(2)
        .map(|pair| {
            let name = std::str::from_utf8(pair[0]).map_err(|_| bad.clone())?;
            let value = std::str::from_utf8(pair[1]).map_err(|_| bad.clone())?;
            if name.is_empty() {
                return Err(bad.clone());
            }
            Ok((name.to_string(), value.to_string()))
        })
        .collect()
}

/// Encodes a CancelRequest for the upstream backend.
pub fn cancel_request(pid: u32, secret: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(12 + secret.len());
    out.extend_from_slice(&((12 + secret.len()) as i32).to_be_bytes());
    out.extend_from_slice(&CANCEL_REQUEST.to_be_bytes());
    out.extend_from_slice(&pid.to_be_bytes());
    out.extend_from_slice(secret);
    Bytes::from(out)
}

#[cfg(test)]
mod test {
    use super::*;

    fn packet(code: u32, body: &[u8]) -> BytesMut {
        let mut b = BytesMut::new();
        b.extend_from_slice(&((8 + body.len()) as i32).to_be_bytes());
        b.extend_from_slice(&code.to_be_bytes());
        b.extend_from_slice(body);
        b
    }

    #[test]
    fn startup_params_in_order() {
        let mut buf = packet(196_608, b"user\0bob\0database\0db\0\0");
        let StartupPacket::Startup { params, .. } =
            StartupPacket::split(&mut buf).unwrap().unwrap()
        else {
            panic!("not a startup")
        };
        assert_eq!(
            params,
            vec![
                ("user".into(), "bob".into()),
                ("database".into(), "db".into())
            ]
        );
    }

    #[test]
    fn malformed_startup() {
        for body in [&b"user\0bob\0"[..], b"user\0\0", b"\0bob\0\0", b""] {
            let mut buf = packet(196_608, body);
            assert!(StartupPacket::split(&mut buf).is_err(), "{body:?}");
        }
        let mut buf = packet(1234, b"");
        assert!(StartupPacket::split(&mut buf).is_err());
    }

    #[test]
    fn ssl_and_cancel() {
        let mut buf = packet(SSL_REQUEST, b"");
        assert_eq!(
            StartupPacket::split(&mut buf).unwrap(),
            Some(StartupPacket::SslRequest)
        );
        let mut buf = packet(CANCEL_REQUEST, &[0, 0, 0, 7, 1, 2, 3, 4]);
        assert_eq!(
            StartupPacket::split(&mut buf).unwrap(),
            Some(StartupPacket::CancelRequest {
                pid: 7,
                secret: Bytes::from_static(&[1, 2, 3, 4])
            })
        );
        assert_eq!(
            &cancel_request(7, &[1, 2, 3, 4])[..],
            &packet(CANCEL_REQUEST, &[0, 0, 0, 7, 1, 2, 3, 4])[..]
        );
    }

    #[test]
    fn oversized_startup() {
        let mut buf = BytesMut::from(&[0x40, 0, 0, 0, 0, 3, 0, 0][..]);
        assert!(matches!(
            StartupPacket::split(&mut buf),
            Err(FrameError::TooLong(_))
        ));
    }
}
