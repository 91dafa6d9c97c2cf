//! The first packets of a connection, both ways, through what the session does with
//! them: `StartupPacket::split` for the untagged packets (SSLRequest, GSSENCRequest,
//! CancelRequest, StartupMessage; the cancel key looked up in a `CancelMap`), then the
//! authentication exchange in `Relay` (the client's PasswordMessage / SASL responses, the
//! server's Authentication*, ParameterStatus, BackendKeyData, ErrorResponse,
//! ReadyForQuery) and, past ReadyForQuery, the relay's handling of server frames.
//! The socket loop of `session::run` itself is async IO; these are its pure parts, fed
//! as it feeds them.
//!
//! Input: chunks from either side (`pgbelay_fuzz::chunks`). Checked: no panic; errors
//! are values; a StartupMessage is forwarded as the exact bytes received; during
//! authentication the client's frames reach the server unchanged and the server's reach
//! the client unchanged (except BackendKeyData, which the proxy replaces); buffers stay
//! bounded by what arrived.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use pgbelay::config::UpstreamAddr;
use pgbelay::policy::Guard;
use pgbelay::session::cancel::{CancelMap, UpstreamKey};
use pgbelay::session::{Flow, Hooks, Phase, Relay, SessionInfo};
use pgbelay::wire::startup::StartupPacket;
use pgbelay::wire::{BackendTag, Frame};
use pgbelay_fuzz::{Side, capacity_bound, chunks, unnonced};

fuzz_target!(|data: &[u8]| {
    let cancels = CancelMap::default();
    let _registration = cancels.register(UpstreamKey {
        addr: UpstreamAddr::Tcp("127.0.0.1:5432".into()),
        pid: 42,
        secret: vec![1, 2, 3, 4],
    });
    let guard = Guard::new(&pgbelay::config::Settings::default());
    // Two relays fed the same frames: the session's entry points (`client_bytes`,
    // `upstream_bytes`, which forward some frames verbatim) and the full per-frame path
    // (`client_frame`, `upstream_frame`); both must send the same bytes both ways.
    let mut relay: Option<(Relay, Relay)> = None;
    let (mut cbuf, mut ubuf) = (BytesMut::new(), BytesMut::new());
    let (mut cfed, mut ufed) = (0, 0);
    for (side, bytes) in chunks(data) {
        match side {
            Side::Client => {
                cbuf.extend_from_slice(bytes);
                cfed += bytes.len();
            }
            Side::Server => {
                ubuf.extend_from_slice(bytes);
                ufed += bytes.len();
            }
        }
        let Some((r, full)) = relay.as_mut() else {
            // Before the StartupMessage nothing is connected upstream: server bytes wait.
            match startup(&mut cbuf, &cancels) {
                Ok(Some(info)) => {
                    let make = || {
                        Relay::new(
                            info.clone(),
                            guard.session(&info),
                            std::sync::Arc::default(),
                        )
                    };
                    relay = Some((make(), make()))
                }
                Ok(None) => continue,
                Err(()) => return,
            }
            continue;
        };
        if client_frames(&mut cbuf, r, full).is_err() || server_frames(&mut ubuf, r, full).is_err()
        {
            return;
        }
        assert!(cbuf.capacity() <= capacity_bound(cfed));
        assert!(ubuf.capacity() <= capacity_bound(ufed));
    }
});

/// Startup packets until a StartupMessage (`Some`), more bytes needed (`None`), or the
/// connection ends (`Err`: a protocol error, or a CancelRequest, which is all it carries).
fn startup(buf: &mut BytesMut, cancels: &CancelMap) -> Result<Option<SessionInfo>, ()> {
    loop {
        let received = buf.clone();
        match StartupPacket::split(buf) {
            Ok(Some(StartupPacket::SslRequest | StartupPacket::GssEncRequest)) => {}
            Ok(Some(StartupPacket::CancelRequest { pid, secret })) => {
                let _ = cancels.lookup(pid, &secret);
                return Err(());
            }
            Ok(Some(StartupPacket::Startup { params, raw, .. })) => {
                assert_eq!(
                    &raw[..],
                    &received[..raw.len()],
                    "StartupMessage forwarded changed"
                );
                let get = |name: &str| {
                    params
                        .iter()
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default()
                };
                return Ok(Some(SessionInfo {
                    user: get("user"),
                    database: get("database"),
                    application_name: get("application_name"),
                    ..SessionInfo::default()
                }));
            }
            Ok(None) => return Ok(None),
            Err(_) => return Err(()),
        }
    }
}

/// One frame at a time through `Relay::client_bytes` on `relay`, as the session feeds
/// it, and through `Relay::client_frame` on `full`.
fn client_frames(buf: &mut BytesMut, relay: &mut Relay, full: &mut Relay) -> Result<(), ()> {
    while let Some(frame) = Frame::split(buf).map_err(drop)? {
        let auth = relay.phase == Phase::Auth;
        let before = relay.to_upstream.len();
        let bytes = frame.bytes().clone();
        let fed = relay.client_bytes(&mut BytesMut::from(&bytes[..]));
        let whole = full.client_frame(frame);
        same_output(relay, full);
        match (fed, whole) {
            (Ok(Flow::Continue), Ok(Flow::Continue)) => {}
            (Ok(Flow::Close) | Err(_), Ok(Flow::Close) | Err(_)) => return Err(()),
            (fed, whole) => panic!("client_bytes gave {fed:?}, client_frame {whole:?}"),
        }
        if auth {
            assert_eq!(
                &relay.to_upstream[before..],
                &bytes[..],
                "auth frame changed"
            );
        }
        clear(relay, full);
    }
    Ok(())
}

/// One frame at a time through `Relay::upstream_bytes` on `relay`, as the session feeds
/// it, and through `Relay::upstream_frame` on `full`.
fn server_frames(buf: &mut BytesMut, relay: &mut Relay, full: &mut Relay) -> Result<(), ()> {
    // The session registers the server's key and gives the client its own.
    let register = |relay: &mut Relay| {
        if let Some((_, secret)) = &relay.upstream_key {
            relay.client_key = Some((7, secret.clone()));
        }
    };
    while let Some(frame) = Frame::split(buf).map_err(drop)? {
        let auth = relay.phase == Phase::Auth;
        let before = relay.to_client.len();
        let bytes = frame.bytes().clone();
        let key_data = frame.backend_tag() == BackendTag::BackendKeyData;
        let ready = frame.backend_tag() == BackendTag::ReadyForQuery;
        let fed = relay.upstream_bytes(&mut BytesMut::from(&bytes[..]), register);
        let whole = full.upstream_frame(frame);
        if full.client_key.is_none() {
            register(full);
        }
        same_output(relay, full);
        match (fed, whole) {
            (Ok(()), Ok(_)) => {}
            (Err(_), Err(_)) => return Err(()),
            (fed, whole) => panic!("upstream_bytes gave {fed:?}, upstream_frame {whole:?}"),
        }
        if auth && !key_data && !ready {
            assert_eq!(
                &relay.to_client[before..],
                &bytes[..],
                "server auth frame changed"
            );
        }
        clear(relay, full);
    }
    Ok(())
}

fn same_output(relay: &Relay, full: &Relay) {
    assert_eq!(
        unnonced(&relay.to_upstream),
        unnonced(&full.to_upstream),
        "to the server"
    );
    assert_eq!(relay.to_client, full.to_client, "to the client");
}

fn clear(relay: &mut Relay, full: &mut Relay) {
    for r in [relay, full] {
        r.to_client.clear();
        r.to_upstream.clear();
    }
}
