//! A client's byte stream after startup, in reads of varying size, through what the
//! session does with it: `Frame::split` (length limits, incomplete frames), the typed
//! views of the frames the proxy inspects, and `Relay::client_frame` with pgbelay's own
//! policy hooks, against a server that answers every request with ReadyForQuery; each
//! frame also goes through `Relay::client_bytes` (the session's entry point, which
//! forwards some frames verbatim) on a second relay in the same state.
//!
//! Checked: no panic; a malformed stream is an error value; the read buffer never grows
//! past what arrived (a length field alone must not size it); every frame is the exact
//! bytes received; decoded text is the exact bytes of the frame; both relays send the
//! same bytes both ways.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use pgbelay::session::Flow;
use pgbelay::wire::{Frame, FrontendTag, decode};
use pgbelay_fuzz::{answer, capacity_bound, ready_relay, unnonced};

fuzz_target!(|data: &[u8]| {
    // The first byte sets the read size, so frames arrive split at every point.
    let Some((&read, stream)) = data.split_first() else {
        return;
    };
    let read = usize::from(read % 64) + 1;
    let mut relay = ready_relay();
    let mut relay_bytes = ready_relay();
    let mut buf = BytesMut::new();
    let mut fed = 0;
    let mut consumed = 0;
    for piece in stream.chunks(read) {
        buf.extend_from_slice(piece);
        fed += piece.len();
        loop {
            let frame = match Frame::split(&mut buf) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(_) => return,
            };
            let len = frame.bytes().len();
            assert_eq!(&frame.bytes()[..], &stream[consumed..consumed + len]);
            consumed += len;
            views(&frame);
            // The same frame through the session's entry point, on a relay in the same
            // state: its verbatim path must do exactly what the full path does.
            let fed = relay_bytes.client_bytes(&mut BytesMut::from(&frame.bytes()[..]));
            let full = relay.client_frame(frame);
            assert_eq!(
                unnonced(&relay.to_upstream),
                unnonced(&relay_bytes.to_upstream),
                "to the server"
            );
            assert_eq!(relay.to_client, relay_bytes.to_client, "to the client");
            match (full, fed) {
                (Ok(Flow::Continue), Ok(Flow::Continue)) => {
                    answer(&mut relay);
                    answer(&mut relay_bytes);
                }
                (Ok(Flow::Close) | Err(_), Ok(Flow::Close) | Err(_)) => return,
                (full, fed) => panic!("client_frame gave {full:?}, client_bytes {fed:?}"),
            }
        }
        assert!(
            buf.capacity() <= capacity_bound(fed),
            "read buffer of {} bytes after {fed} bytes arrived",
            buf.capacity()
        );
    }
});

/// The typed views the relay builds, checked against the frame's own bytes.
fn views(frame: &Frame) {
    let Ok(tag) = frame.frontend_tag() else {
        return;
    };
    let body = frame.body();
    match tag {
        FrontendTag::Query => {
            if let Ok(decode::Query { sql: Ok(sql) }) = decode::Query::decode(frame) {
                assert_eq!(sql.as_bytes(), &body[..body.len() - 1]);
            }
        }
        FrontendTag::Parse => {
            if let Ok(p) = decode::Parse::decode(frame) {
                let name_end = p.name.len();
                assert_eq!(p.name.as_bytes(), &body[..name_end]);
                if let Ok(sql) = &p.sql {
                    assert_eq!(
                        sql.as_bytes(),
                        &body[name_end + 1..name_end + 1 + sql.len()]
                    );
                    assert_eq!(body[name_end + 1 + sql.len()], 0);
                }
            }
        }
        FrontendTag::Bind => {
            if let Ok((portal, statement)) = decode::bind_names(frame) {
                assert!(portal.len() + statement.len() + 2 <= body.len());
                assert_eq!(&body[..portal.len()], portal);
            }
        }
        // Relayed as received, never decoded: the tag is all the proxy reads.
        FrontendTag::Describe
        | FrontendTag::Execute
        | FrontendTag::Close
        | FrontendTag::Flush
        | FrontendTag::Sync
        | FrontendTag::FunctionCall
        | FrontendTag::CopyData
        | FrontendTag::CopyDone
        | FrontendTag::CopyFail
        | FrontendTag::Password
        | FrontendTag::Terminate => {}
    }
}
