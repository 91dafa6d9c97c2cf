//! Shared pieces of the pgbelay fuzz targets: the two-direction stream format of the
//! `startup` target, a simulated server for the relay, and the independent checks
//! (`read_oracle`, `same_tree`) the `classify` and `soft_delete` targets assert.

pub mod read_oracle;
pub mod tree;

use bytes::BytesMut;
use pgbelay::session::{Hooks, Relay, SessionInfo};
use pgbelay::wire::{Frame, TxStatus, encode};

/// Who sent a chunk of a two-direction stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The client (psql, a driver).
    Client,
    /// The server behind the proxy.
    Server,
}

/// Splits fuzz input into chunks: `[control][length][bytes…]` repeated; the low bit of
/// `control` says who sent the chunk (0 client, 1 server). A short last chunk is kept, so
/// every input means something.
pub fn chunks(mut data: &[u8]) -> impl Iterator<Item = (Side, &[u8])> {
    std::iter::from_fn(move || {
        let (&control, rest) = data.split_first()?;
        let (&len, rest) = rest.split_first()?;
        let len = usize::from(len).min(rest.len());
        let (chunk, rest) = rest.split_at(len);
        data = rest;
        let side = if control & 1 == 0 {
            Side::Client
        } else {
            Side::Server
        };
        Some((side, chunk))
    })
}

/// Encodes `chunks` in the format [`chunks`] reads (for seed corpora).
pub fn encode_chunks(parts: &[(Side, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (side, bytes) in parts {
        for piece in bytes.chunks(255) {
            out.push(u8::from(*side == Side::Server));
            out.push(piece.len() as u8);
            out.extend_from_slice(piece);
        }
    }
    out
}

/// A relay with pgbelay's own policy hooks, past authentication: the server has sent
/// ReadyForQuery and answered the statements the guard runs at session start.
pub fn ready_relay() -> Relay {
    let settings = pgbelay::config::Settings::default();
    let guard = pgbelay::policy::Guard::new(&settings);
    let info = SessionInfo {
        user: "fuzz".into(),
        database: "fuzz".into(),
        ..SessionInfo::default()
    };
    let hooks = guard.session(&info);
    let mut relay = Relay::new(info, hooks, std::sync::Arc::default());
    answer(&mut relay);
    relay
}

/// A server that answers every outstanding request with ReadyForQuery (idle), so the
/// relay's queue drains and the next client message is judged at a batch start.
pub fn answer(relay: &mut Relay) {
    let ready = encode::ready_for_query(TxStatus::Idle);
    for _ in 0..8 {
        if relay.is_idle() {
            break;
        }
        if relay.upstream_frame(ready.clone()).is_err() {
            break;
        }
    }
    relay.to_client.clear();
    relay.to_upstream.clear();
}

/// Bytes a read buffer may hold after `fed` bytes arrived: what arrived, doubled for
/// `BytesMut`'s growth, plus a fixed allowance. A buffer sized by an untrusted length
/// field instead (up to 1 GiB from a 5-byte header) fails this.
pub fn capacity_bound(fed: usize) -> usize {
    2 * fed + (1 << 20)
}

/// The frames in `bytes` (type and body), each poison statement's random per-session
/// tag (`pgbelay_refused_<tag>_<n>`) blanked: two relays draw different tags, whose
/// lengths differ too.
pub fn unnonced(bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    const MARK: &[u8] = b"pgbelay_refused_";
    let mut frames = Vec::new();
    let mut buf = BytesMut::from(bytes);
    while let Ok(Some(frame)) = Frame::split(&mut buf) {
        let mut body = Vec::with_capacity(frame.body().len());
        let mut rest = frame.body();
        while let Some(at) = rest.windows(MARK.len()).position(|w| w == MARK) {
            let (before, after) = rest.split_at(at + MARK.len());
            body.extend_from_slice(before);
            let tag = after.iter().take_while(|b| b.is_ascii_hexdigit()).count();
            rest = &after[tag..];
        }
        body.extend_from_slice(rest);
        frames.push((frame.tag(), body));
    }
    assert!(buf.is_empty(), "the relay sent a partial frame");
    frames
}
