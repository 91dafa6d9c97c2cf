//! The relay's bookkeeping, without IO: client frames in, upstream bytes out; upstream
//! frames in, client bytes out. `Session` (mod.rs) owns the sockets and feeds this.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::{Buf, BytesMut};
use tracing::{debug, info, warn};

use super::hooks::{Decision, Plan, Position, SessionHooks, SessionInfo};
use super::state::{Batch, Origin, Phase, Poison, Unit};
use crate::metrics::{Metrics, Verdict, refusal_class};
use crate::wire::encode::{self, ErrorFields};
use crate::wire::sqlstate::SqlState;
use crate::wire::{BackendTag, Frame, FrameError, FrontendTag, TxStatus, decode};

/// What the session loop should do after a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Keep going.
    Continue,
    /// Flush what is buffered for the client, then end the session.
    Close,
}

/// Why the relay gave up on a session.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The client sent something that is not the protocol.
    #[error("client: {0}")]
    Client(FrameError),
    /// The server sent something the proxy cannot follow.
    #[error("upstream: {0}")]
    Upstream(FrameError),
}

/// How many portal names of one batch the relay remembers.
const MAX_BATCH_PORTALS: usize = 16;

/// Bookkeeping for one session.
pub struct Relay {
    /// Startup parameters and what the server reported.
    pub info: SessionInfo,
    /// Where the session is.
    pub phase: Phase,
    /// Transaction status from the last ReadyForQuery.
    pub tx_status: TxStatus,
    /// Bytes due to the client.
    pub to_client: BytesMut,
    /// Bytes due to the server.
    pub to_upstream: BytesMut,
    /// The upstream backend's key, once the server sent it.
    pub upstream_key: Option<(u32, Vec<u8>)>,
    /// The key given to the client, substituted into BackendKeyData.
    pub client_key: Option<(u32, Vec<u8>)>,
    /// True once the server sent a FATAL: it closes next, and the client already knows.
    pub upstream_fatal: bool,
    hooks: Box<dyn SessionHooks>,
    pending: VecDeque<Unit>,
    batch: Batch,
    /// A message of the open batch has reached the hooks (one the relay only forwarded,
    /// a Close or a Describe, does not count): until then the hooks see a batch start.
    batch_seen: bool,
    /// A Bind or Execute of the open batch has gone upstream: ending the batch early would
    /// now commit (in autocommit) or drop portals.
    batch_ran: bool,
    /// A batch the relay ended with its own Sync failed: the client's messages held
    /// meanwhile are discarded up to its own Sync, as the server would have done.
    discard_held: bool,
    /// A plan in the open batch runs a COPY FROM STDIN (`Plan::after_when_done`): its
    /// `after` statements wait for the batch's ReadyForQuery instead of following its Sync,
    /// which the server ignores while it reads the copy data.
    batch_copies: bool,
    /// The server started a COPY FROM STDIN in a batch whose Sync it has therefore
    /// ignored: the client's next Sync (after CopyDone) ends that batch and opens none.
    copy_sync_owed: bool,
    poison_seq: u64,
    session_tag: u64,
    /// A statement of the current group (injected statements plus the client's request
    /// they surround, up to the ReadyForQuery the client receives) has failed: the ones
    /// after it only repeat "current transaction is aborted" (25P02), which is swallowed
    /// so the client sees the one error that matters.
    group_failed: bool,
    /// `after` statements of a simple Query, held until its ReadyForQuery arrives
    /// ([`Plan::after_when_done`]).
    deferred_after: Option<Vec<String>>,
    /// Client messages that arrived while `deferred_after` was pending or the policy
    /// asked to wait, replayed once that is over.
    held: Vec<Frame>,
    /// The policy asked to wait until nothing is in flight ([`Decision::Wait`]).
    waiting: bool,
    /// The proxy's counters.
    metrics: Arc<Metrics>,
    /// The last Query and Parse decoded: a repeated one is not decoded again.
    recent_query: decode::Recent<decode::Query>,
    recent_parse: decode::Recent<decode::Parse>,
    /// The portals bound in the current batch: whether the unnamed one was, and the
    /// names of the others. An Execute of any other portal resumes one an earlier batch
    /// left suspended, which the hooks decide on ([`SessionHooks::on_execute`]).
    unnamed_portal_bound: bool,
    batch_portals: Vec<Vec<u8>>,
    /// Statements the hooks asked for after a setting changed
    /// ([`SessionHooks::on_setting_reported`]), sent once nothing is in flight.
    restore: Vec<String>,
}

impl Relay {
    /// A relay for a session that has sent its StartupMessage.
    pub fn new(info: SessionInfo, hooks: Box<dyn SessionHooks>, metrics: Arc<Metrics>) -> Relay {
        Relay {
            info,
            phase: Phase::Auth,
            tx_status: TxStatus::Idle,
            to_client: BytesMut::with_capacity(16 * 1024),
            to_upstream: BytesMut::with_capacity(16 * 1024),
            upstream_key: None,
            client_key: None,
            upstream_fatal: false,
            hooks,
            pending: VecDeque::new(),
            batch: Batch::Closed,
            batch_seen: false,
            batch_ran: false,
            discard_held: false,
            batch_copies: false,
            copy_sync_owed: false,
            poison_seq: 0,
            session_tag: rand::random::<u64>(),
            group_failed: false,
            deferred_after: None,
            held: Vec::new(),
            waiting: false,
            metrics,
            recent_query: decode::Recent::default(),
            recent_parse: decode::Recent::default(),
            unnamed_portal_bound: false,
            batch_portals: Vec::new(),
            restore: Vec::new(),
        }
    }

    /// Logs the relay's and the policy's decisions in `span` (the session's).
    pub fn in_span(mut self, span: tracing::Span) -> Relay {
        self.info.span = span;
        self
    }

    /// Counts a final decision on a Query or Parse (not `Wait`: it comes back).
    fn count(&self, decision: &Decision) {
        let (verdict, class) = match decision {
            Decision::Wait => return,
            Decision::Forward => (Verdict::Allow, None),
            Decision::Rewrite(_) => (Verdict::Rewrite, None),
            Decision::Refuse(error) => (Verdict::Refuse, refusal_class(error.detail.as_deref())),
        };
        self.metrics.statement(verdict, class);
    }

    /// True when nothing is in flight and no transaction is open: a safe point to end.
    pub fn is_idle(&self) -> bool {
        self.pending.is_empty()
            && matches!(self.batch, Batch::Closed)
            && self.tx_status == TxStatus::Idle
            && self.phase != Phase::Auth
    }

    fn send_client(&mut self, frame: &Frame) {
        self.to_client.extend_from_slice(frame.bytes());
    }

    fn send_upstream(&mut self, frame: &Frame) {
        self.to_upstream.extend_from_slice(frame.bytes());
    }

    fn position(&self) -> Position {
        Position {
            tx_status: self.tx_status,
            pipelined: !self.pending.is_empty(),
            batch_start: matches!(self.batch, Batch::Closed) || !self.batch_seen,
            batch_ran: self.batch_ran,
        }
    }

    /// Logs a refusal in the session's span (the policy decided it; the relay knows the
    /// session).
    fn log_refusal(&self, statement: &str, error: &ErrorFields) {
        let class = refusal_class(error.detail.as_deref()).unwrap_or("other");
        let statement = crate::approval::redact_token(statement);
        info!(parent: &self.info.span, %statement, class, reason = %error.message, "refused");
    }

    /// A refusal can be answered without the server when nothing is in flight and no
    /// transaction block is open: then the server's state is exactly what a failed
    /// statement would leave (idle, nothing run).
    fn can_answer_locally(&self) -> bool {
        self.pending.is_empty()
            && matches!(self.batch, Batch::Closed)
            && self.tx_status == TxStatus::Idle
    }

    fn next_poison(&mut self, error: ErrorFields) -> Poison {
        self.poison_seq += 1;
        Poison {
            nonce: format!("pgbelay_refused_{:x}_{}", self.session_tag, self.poison_seq),
            error,
        }
    }

    /// Handles every complete frame at the front of `buf`, which holds what the client
    /// sent. Frames that are only forwarded are copied from `buf` without becoming a
    /// [`Frame`] ([`Relay::client_verbatim`]); the rest go through
    /// [`Relay::client_frame`].
    pub fn client_bytes(&mut self, buf: &mut BytesMut) -> Result<Flow, FrameError> {
        while let Some(len) = Frame::complete_len(buf)? {
            if self.client_verbatim(&buf[..len]) {
                buf.advance(len);
                continue;
            }
            match self.client_frame(Frame::take(buf, len)) {
                Ok(Flow::Continue) => {}
                Ok(Flow::Close) => return Ok(Flow::Close),
                Err(RelayError::Client(e) | RelayError::Upstream(e)) => return Err(e),
            }
        }
        Ok(Flow::Continue)
    }

    /// Handles every complete frame at the front of `buf`, which holds what the server
    /// sent, as [`Relay::client_bytes`] does. `on_key` runs once the server's
    /// BackendKeyData has arrived, before the next frame: the session registers the key
    /// and sets [`Relay::client_key`].
    pub fn upstream_bytes(
        &mut self,
        buf: &mut BytesMut,
        mut on_key: impl FnMut(&mut Relay),
    ) -> Result<(), FrameError> {
        while let Some(len) = Frame::complete_len(buf)? {
            if let Some(forward) = self.upstream_verbatim(buf[0]) {
                if forward {
                    self.to_client.extend_from_slice(&buf[..len]);
                }
                buf.advance(len);
                continue;
            }
            match self.upstream_frame(Frame::take(buf, len)) {
                Ok(_) => {}
                Err(RelayError::Client(e) | RelayError::Upstream(e)) => return Err(e),
            }
            if self.client_key.is_none() && self.upstream_key.is_some() {
                on_key(self);
            }
        }
        Ok(())
    }

    /// Relays a client frame that needs no decision (Execute, Describe, Close, Flush and
    /// COPY data in the states where [`Relay::client_frame`] would only forward them)
    /// straight from the read buffer. Returns false, having done nothing, for any other.
    fn client_verbatim(&mut self, frame: &[u8]) -> bool {
        if self.phase == Phase::Auth || matches!(self.batch, Batch::Discarding) {
            return false;
        }
        match frame[0] {
            // Not behind a held message (see `client_frame`).
            b'd' | b'c' | b'f' if self.held.is_empty() => {}
            b'E' | b'D' | b'C' | b'H' if self.deferred_after.is_none() && !self.waiting => {
                if frame[0] == b'E' && !self.bound_in_batch(&frame[5..]) {
                    return false;
                }
                if frame[0] != b'H' {
                    self.open_batch(Vec::new(), None);
                }
            }
            _ => return false,
        }
        self.to_upstream.extend_from_slice(frame);
        true
    }

    /// What [`Relay::upstream_frame`] would do with a server frame of type `tag` when the
    /// answer is only "forward it" (`Some(true)`) or "swallow it" (`Some(false)`), so the
    /// session can do that from the read buffer; `None` for frames that need the full
    /// path (ReadyForQuery, errors, parameter status, keys, authentication, tags that
    /// are renamed or counted).
    fn upstream_verbatim(&self, tag: u8) -> Option<bool> {
        if self.phase == Phase::Auth {
            return None;
        }
        match tag {
            // CopyInResponse: a Sync already sent is ignored by the server from here.
            b'S' | b'K' | b'Z' | b'E' | b'G' => return None,
            b'A' => return Some(true),
            _ => {}
        }
        match &self.pending.front()?.origin {
            Origin::Client {
                swallow_ready,
                rename_tag,
                ..
            } => (tag != b'C' || !*swallow_ready && rename_tag.is_none()).then_some(true),
            Origin::Injected { .. } => Some(false),
        }
    }

    /// Handles one frame from the client.
    pub fn client_frame(&mut self, frame: Frame) -> Result<Flow, RelayError> {
        let tag = frame.frontend_tag().map_err(RelayError::Client)?;
        if self.phase == Phase::Auth {
            return match tag {
                FrontendTag::Password => {
                    self.send_upstream(&frame);
                    Ok(Flow::Continue)
                }
                FrontendTag::Terminate => Ok(Flow::Close),
                _ => Err(RelayError::Client(FrameError::UnknownTag(tag_char(&frame)))),
            };
        }
        // COPY data goes on to the COPY in progress (and the Sync that ends an
        // extended-protocol COPY), unless something the client sent before it is held (a
        // COPY FROM STDIN itself, behind an open batch the relay is ending: asyncpg
        // streams the data without waiting for CopyInResponse).
        let copy_stream = match tag {
            FrontendTag::CopyData | FrontendTag::CopyDone | FrontendTag::CopyFail => true,
            FrontendTag::Sync => self.copy_sync_owed,
            _ => false,
        };
        if (self.deferred_after.is_some() || self.waiting) && !(copy_stream && self.held.is_empty())
        {
            if tag == FrontendTag::Terminate {
                return Ok(Flow::Close);
            }
            self.held.push(frame);
            return Ok(Flow::Continue);
        }
        if matches!(self.batch, Batch::Discarding) {
            return Ok(self.discarding(tag));
        }
        match tag {
            // The server would run it inside the open batch and end both with one
            // ReadyForQuery; the relay ends the batch first and judges it after.
            FrontendTag::Query if matches!(self.batch, Batch::Open { .. }) => self.wait(&frame),
            FrontendTag::Query => self.query(&frame)?,
            FrontendTag::Parse => self.parse(&frame)?,
            FrontendTag::Sync if self.copy_sync_owed => {
                self.copy_sync_owed = false;
                self.send_upstream(&frame);
            }
            FrontendTag::Sync => self.sync(&frame),
            FrontendTag::Bind => self.bind(&frame)?,
            FrontendTag::Execute if !self.bound_in_batch(frame.body()) => self.execute(&frame)?,
            FrontendTag::Describe | FrontendTag::Execute | FrontendTag::Close => {
                self.open_batch(Vec::new(), None);
                self.send_upstream(&frame);
            }
            // Answered by nothing: it opens no batch (one opened only for it would wait
            // for a ReadyForQuery that never comes).
            FrontendTag::Flush => self.send_upstream(&frame),
            FrontendTag::FunctionCall => {
                let error = ErrorFields::error(
                    SqlState::FEATURE_NOT_SUPPORTED,
                    "pgbelay: fast-path function calls are refused",
                )
                .with_detail("statement class: function call by OID")
                .with_hint("call the function with SELECT instead, so it can be checked");
                self.refuse_simple(error);
            }
            FrontendTag::CopyData | FrontendTag::CopyDone | FrontendTag::CopyFail => {
                self.send_upstream(&frame);
            }
            FrontendTag::Password => self.send_upstream(&frame),
            FrontendTag::Terminate => {
                self.send_upstream(&frame);
                return Ok(Flow::Close);
            }
        }
        Ok(Flow::Continue)
    }

    /// In a locally refused batch: drop everything until Sync, then answer it.
    fn discarding(&mut self, tag: FrontendTag) -> Flow {
        match tag {
            FrontendTag::Sync => {
                self.end_batch();
                // The client has its answer: the group is over.
                self.group_failed = false;
                let ready = encode::ready_for_query(self.tx_status);
                self.send_client(&ready);
                Flow::Continue
            }
            FrontendTag::Terminate => Flow::Close,
            _ => Flow::Continue,
        }
    }

    fn query(&mut self, frame: &Frame) -> Result<(), RelayError> {
        self.decode_remembered(
            frame,
            |relay| &mut relay.recent_query,
            decode::Query::decode,
            Self::decoded_query,
        )
    }

    /// Decodes `frame` through the session's memo of its kind, then handles it. The memo
    /// is taken out while the frame is handled (which needs all of `self`), then put back.
    fn decode_remembered<T: Clone>(
        &mut self,
        frame: &Frame,
        memo: fn(&mut Self) -> &mut decode::Recent<T>,
        decoder: fn(&Frame) -> Result<T, FrameError>,
        handle: fn(&mut Self, &Frame, &T) -> Result<(), RelayError>,
    ) -> Result<(), RelayError> {
        let mut recent = std::mem::take(memo(self));
        let handled = match recent.decode(frame, decoder) {
            Ok(value) => handle(self, frame, &value),
            Err(e) => Err(RelayError::Client(e)),
        };
        *memo(self) = recent;
        handled
    }

    fn decoded_query(&mut self, frame: &Frame, query: &decode::Query) -> Result<(), RelayError> {
        let at = self.position();
        let decision = match &query.sql {
            Ok(sql) => self.hooks.on_query(&self.info, at, sql),
            Err(_) => self.hooks.on_undecodable(&self.info),
        };
        debug!(parent: &self.info.span, ?decision, ?at, "query");
        self.count(&decision);
        match decision {
            Decision::Wait => self.wait(frame),
            Decision::Forward => {
                self.pending.push_back(client_unit(false, None));
                self.send_upstream(frame);
            }
            Decision::Rewrite(plan) => {
                let Plan {
                    before,
                    sql,
                    after,
                    rename_tag,
                    after_when_done,
                } = plan;
                self.inject(&before, false);
                self.pending
                    .push_back(client_unit(!after.is_empty(), rename_tag));
                match sql {
                    Some(sql) => self.send_upstream(&encode::query(&sql)),
                    None => self.send_upstream(frame),
                }
                if after_when_done && !after.is_empty() {
                    self.deferred_after = Some(after);
                } else {
                    self.inject(&after, true);
                }
            }
            Decision::Refuse(error) => {
                self.log_refusal(query.sql.as_deref().unwrap_or("<not UTF-8>"), &error);
                self.refuse_simple(error);
            }
        }
        Ok(())
    }

    /// Refuses a Query or FunctionCall: locally when that is exact, else by poison.
    fn refuse_simple(&mut self, error: ErrorFields) {
        if self.can_answer_locally() {
            self.send_client(&error.to_frame());
            let ready = encode::ready_for_query(self.tx_status);
            self.send_client(&ready);
            return;
        }
        let poison = self.next_poison(error);
        self.send_upstream(&encode::query(&poison.sql()));
        let mut unit = client_unit(false, None);
        if let Origin::Client { poison: slot, .. } = &mut unit.origin {
            *slot = Some(poison);
        }
        self.pending.push_back(unit);
    }

    /// Sends injected statements as simple Queries; the last of an `after` list hands its
    /// ReadyForQuery to the client.
    fn inject(&mut self, statements: &[String], after: bool) {
        self.inject_units(statements, after, false);
    }

    fn inject_units(&mut self, statements: &[String], forward_last_ready: bool, quiet: bool) {
        for (i, sql) in statements.iter().enumerate() {
            self.send_upstream(&encode::query(sql));
            self.pending.push_back(Unit {
                origin: Origin::Injected {
                    forward_ready: forward_last_ready && i + 1 == statements.len(),
                },
                quiet,
                failed: false,
                synced: false,
            });
        }
    }

    /// Opens a batch if none is open (its unit ends with the Sync's ReadyForQuery).
    fn open_batch(&mut self, after: Vec<String>, rename_tag: Option<(String, String)>) {
        if matches!(self.batch, Batch::Closed) {
            self.pending
                .push_back(client_unit(!after.is_empty(), rename_tag));
            self.batch = Batch::Open { after };
        }
    }

    /// Applies a Rewrite plan's injections to the batch a Parse or Bind belongs to.
    /// Returns false (after refusing the message) when the plan needs injections but the
    /// batch already started: a transaction cannot begin in the middle of a pipeline.
    fn plan_batch(
        &mut self,
        before: &[String],
        after: Vec<String>,
        rename_tag: Option<(String, String)>,
    ) -> bool {
        let batch_open = !matches!(self.batch, Batch::Closed);
        if batch_open {
            if !before.is_empty() {
                let error = ErrorFields::error(
                    SqlState::INSUFFICIENT_PRIVILEGE,
                    "pgbelay: this statement must start its own extended-protocol batch",
                )
                .with_detail("pgbelay wraps it in statements of its own, which cannot run in the middle of a pipeline")
                .with_hint("send Sync before this statement");
                self.refuse_extended(error);
                return false;
            }
            if !after.is_empty()
                && let Batch::Open { after: due } = &mut self.batch
                && let Some(Unit {
                    origin: Origin::Client { swallow_ready, .. },
                    ..
                }) = self.pending.back_mut()
            {
                // The batch's ReadyForQuery now answers the last of these instead.
                *swallow_ready = true;
                due.extend(after);
            }
            if let (
                Some(rename),
                Some(Unit {
                    origin:
                        Origin::Client {
                            rename_tag: slot, ..
                        },
                    ..
                }),
            ) = (rename_tag, self.pending.back_mut())
            {
                *slot = Some(rename);
            }
            return true;
        }
        self.inject(before, false);
        self.open_batch(after, rename_tag);
        true
    }

    fn parse(&mut self, frame: &Frame) -> Result<(), RelayError> {
        self.decode_remembered(
            frame,
            |relay| &mut relay.recent_parse,
            decode::Parse::decode,
            Self::decoded_parse,
        )
    }

    fn decoded_parse(&mut self, frame: &Frame, parse: &decode::Parse) -> Result<(), RelayError> {
        let at = self.position();
        let decision = match &parse.sql {
            Ok(sql) => self.hooks.on_parse(&self.info, at, &parse.name, sql),
            Err(_) => self.hooks.on_undecodable(&self.info),
        };
        debug!(parent: &self.info.span, ?decision, ?at, name = %parse.name, "parse");
        self.count(&decision);
        match decision {
            Decision::Wait => self.wait(frame),
            Decision::Forward => {
                self.open_batch(Vec::new(), None);
                self.send_upstream(frame);
            }
            Decision::Rewrite(plan) => {
                let Plan {
                    before,
                    sql,
                    after,
                    rename_tag,
                    after_when_done,
                } = plan;
                if !self.plan_batch(&before, after, rename_tag) {
                    return Ok(());
                }
                self.batch_copies |= after_when_done;
                match sql {
                    Some(sql) => {
                        let name = parse.name.as_str();
                        self.send_upstream(&encode::parse(name, &sql, &parse.param_types));
                    }
                    None => self.send_upstream(frame),
                }
            }
            Decision::Refuse(error) => {
                self.log_refusal(parse.sql.as_deref().unwrap_or("<not UTF-8>"), &error);
                self.refuse_extended(error);
            }
        }
        self.batch_seen |= matches!(self.batch, Batch::Open { .. });
        Ok(())
    }

    /// Refuses a Parse or Bind the way a server-side error behaves: ErrorResponse, then
    /// everything up to Sync is discarded, then ReadyForQuery.
    fn refuse_extended(&mut self, error: ErrorFields) {
        if self.can_answer_locally() {
            self.send_client(&error.to_frame());
            self.batch = Batch::Discarding;
            return;
        }
        if matches!(self.batch, Batch::Closed) {
            self.open_batch(Vec::new(), None);
        }
        if let Some(Unit {
            origin: Origin::Client {
                poison: Some(_), ..
            },
            ..
        }) = self.pending.back()
        {
            // The batch already fails at an earlier poison: the server discards the rest
            // up to Sync, and the client gets the first refusal, as from a server.
            return;
        }
        let poison = self.next_poison(error);
        let sql = poison.sql();
        if let Some(Unit {
            origin: Origin::Client { poison: slot, .. },
            ..
        }) = self.pending.back_mut()
        {
            *slot = Some(poison);
        }
        // Named, so the failing Parse leaves the client's unnamed statement alone.
        self.send_upstream(&encode::parse(&sql, &sql, &[]));
    }

    /// Holds `frame` (and what follows) until nothing is in flight; an open batch is ended
    /// first (it would never be answered before the client's Sync).
    fn wait(&mut self, frame: &Frame) {
        if matches!(self.batch, Batch::Open { .. }) {
            self.end_batch_quietly();
        }
        if self.pending.is_empty() {
            // Nothing to wait for: a policy asking anyway would loop; refuse instead.
            let error = ErrorFields::error(
                SqlState::INTERNAL_ERROR,
                "pgbelay: the policy could not decide on this statement",
            );
            self.send_client(&error.to_frame());
            self.send_client(&encode::ready_for_query(self.tx_status));
            return;
        }
        self.waiting = true;
        self.held.push(frame.clone());
    }

    fn bind(&mut self, frame: &Frame) -> Result<(), RelayError> {
        let (portal, statement) = decode::bind_names(frame).map_err(RelayError::Client)?;
        // A few names are enough (drivers bind one or two portals per batch); one left out
        // is only judged again at its Execute.
        if portal.is_empty() {
            self.unnamed_portal_bound = true;
        } else if self.batch_portals.len() < MAX_BATCH_PORTALS
            && !self.batch_portals.iter().any(|p| p[..] == *portal)
        {
            self.batch_portals.push(portal.to_vec());
        }
        let at = self.position();
        let decision = self.hooks.on_bind(&self.info, at, &statement);
        debug!(parent: &self.info.span, ?decision, ?at, %statement, "bind");
        self.extended_decision(frame, decision, || format!("EXECUTE of \"{statement}\""));
        Ok(())
    }

    /// Whether the portal an Execute (`body`) runs was bound in the current batch.
    fn bound_in_batch(&self, body: &[u8]) -> bool {
        match body.iter().position(|&b| b == 0) {
            Some(0) => self.unnamed_portal_bound,
            Some(end) => self.batch_portals.iter().any(|p| p[..] == body[..end]),
            None => false,
        }
    }

    /// The batch is over: its portals are no longer "bound in this batch".
    fn forget_batch_portals(&mut self) {
        self.unnamed_portal_bound = false;
        if !self.batch_portals.is_empty() {
            self.batch_portals.clear();
        }
    }

    /// An Execute of a portal no Bind of this batch created: one an earlier batch left
    /// suspended (a row limit), resumed; its rows may still call functions.
    fn execute(&mut self, frame: &Frame) -> Result<(), RelayError> {
        let portal = decode::execute_portal(frame).map_err(RelayError::Client)?;
        let portal = String::from_utf8_lossy(portal).into_owned();
        let at = self.position();
        let decision = self.hooks.on_execute(&self.info, at, &portal);
        debug!(parent: &self.info.span, ?decision, ?at, %portal, "execute");
        self.extended_decision(frame, decision, || {
            format!("Execute of portal \"{portal}\"")
        });
        Ok(())
    }

    /// Carries out the decision on a Bind or an Execute (`what` names it in the log).
    fn extended_decision(
        &mut self,
        frame: &Frame,
        decision: Decision,
        what: impl FnOnce() -> String,
    ) {
        match decision {
            Decision::Wait => self.wait(frame),
            Decision::Forward => {
                self.open_batch(Vec::new(), None);
                self.send_upstream(frame);
                self.batch_ran = true;
            }
            Decision::Rewrite(plan) => {
                if self.plan_batch(&plan.before, plan.after, plan.rename_tag) {
                    self.send_upstream(frame);
                    self.batch_ran = true;
                    self.batch_copies |= plan.after_when_done;
                }
            }
            Decision::Refuse(error) => {
                let class = refusal_class(error.detail.as_deref());
                self.metrics.statement(Verdict::Refuse, class);
                self.log_refusal(&what(), &error);
                self.refuse_extended(error);
            }
        }
        self.batch_seen |= matches!(self.batch, Batch::Open { .. });
    }

    fn sync(&mut self, frame: &Frame) {
        self.open_batch(Vec::new(), None);
        if let Some(unit) = self.pending.back_mut() {
            unit.synced = true;
        }
        self.send_upstream(frame);
        let copies = self.batch_copies;
        let after = self.end_batch();
        if copies && !after.is_empty() {
            // Sent once the copy is over and the batch answered.
            self.deferred_after = Some(after);
        } else {
            self.inject(&after, true);
        }
    }

    /// The batch's Sync went upstream: the next message starts a new batch. Returns the
    /// statements due after it.
    fn end_batch(&mut self) -> Vec<String> {
        self.forget_batch_portals();
        self.batch_seen = false;
        self.batch_ran = false;
        self.batch_copies = false;
        match std::mem::take(&mut self.batch) {
            Batch::Open { after } => after,
            Batch::Closed | Batch::Discarding => Vec::new(),
        }
    }

    /// Ends the open batch with a Sync of the relay's own, whose ReadyForQuery (and the
    /// batch's `after` statements') the client never sees. For a message that must wait
    /// for the batch to be answered (a simple Query, which the server would run inside
    /// the batch and answer with one ReadyForQuery for both; a statement that must start a
    /// batch of its own) while the client has not sent Sync: asyncpg's `prepare()` ends
    /// with Flush, pgjdbc sends `BEGIN` in the batch of a transaction's first statement.
    /// The hooks ask for it only where the batch has run nothing that a Sync would commit
    /// or end (see [`Position::batch_ran`]). If the batch fails, the client's messages up
    /// to its own Sync are discarded, as the server would have discarded them.
    fn end_batch_quietly(&mut self) {
        // An open batch holds back everything after it: its unit is the last.
        if let Some(unit) = self.pending.back_mut() {
            unit.quiet = true;
            // It may have failed already (its error flushed by the client's Flush).
            self.discard_held |= unit.failed;
            if let Origin::Client { swallow_ready, .. } = &mut unit.origin {
                *swallow_ready = true;
            }
        }
        self.send_upstream(&encode::sync());
        let after = self.end_batch();
        self.inject_units(&after, false, true);
    }

    /// Handles one frame from the server.
    pub fn upstream_frame(&mut self, frame: Frame) -> Result<Flow, RelayError> {
        match frame.backend_tag() {
            BackendTag::ParameterStatus => {
                let (name, value) =
                    decode::parameter_status(&frame).map_err(RelayError::Upstream)?;
                if self.phase != Phase::Auth {
                    let by_client = matches!(
                        self.pending.front(),
                        Some(Unit {
                            origin: Origin::Client { .. },
                            ..
                        })
                    );
                    let asked = self
                        .hooks
                        .on_setting_reported(&self.info, &name, &value, by_client);
                    if let Some(statements) = asked {
                        if !statements.is_empty() {
                            warn!(parent: &self.info.span, setting = %name, %value, "a statement changed a setting the policy watches; setting it again");
                        }
                        self.restore = statements;
                    }
                }
                match name.as_str() {
                    "client_encoding" => self.info.client_encoding = value,
                    "application_name" => self.info.application_name = value,
                    "standard_conforming_strings" => {
                        self.info.standard_conforming_strings = value == "on";
                    }
                    _ => {}
                }
                self.send_client(&frame);
                return Ok(Flow::Continue);
            }
            BackendTag::NotificationResponse => {
                self.send_client(&frame);
                return Ok(Flow::Continue);
            }
            BackendTag::BackendKeyData => {
                let key = decode::backend_key_data(&frame).map_err(RelayError::Upstream)?;
                self.upstream_key = Some(key);
                // The session registers the key and fills `client_key` before the next
                // frame; until then nothing is sent.
                return Ok(Flow::Continue);
            }
            _ => {}
        }
        if self.phase == Phase::Auth {
            return self.auth_frame(frame);
        }
        let Some(head) = self.pending.front_mut() else {
            // Nothing requested: a FATAL before the server closes, or a notice.
            self.note_fatal(&frame);
            self.send_client(&frame);
            return Ok(Flow::Continue);
        };
        let tag = frame.backend_tag();
        let ready = tag == BackendTag::ReadyForQuery;
        if ready {
            self.tx_status = decode::ready_for_query(&frame).map_err(RelayError::Upstream)?;
        }
        if tag == BackendTag::ErrorResponse {
            head.failed = true;
            self.discard_held |= head.quiet;
        }
        if frame.tag() == b'G' && head.synced {
            self.copy_sync_owed = true;
        }
        let forward = match &mut head.origin {
            Origin::Client {
                swallow_ready,
                poison,
                rename_tag,
            } => match tag {
                BackendTag::ReadyForQuery => !*swallow_ready,
                BackendTag::CommandComplete => {
                    // A client statement with pgbelay's statements after it is a recorded
                    // write when its tag says it changed rows.
                    if *swallow_ready {
                        self.metrics.rows_recorded(written_rows(&frame));
                    }
                    match renamed(&frame, rename_tag) {
                        Some(new) => {
                            self.to_client.extend_from_slice(new.bytes());
                            false
                        }
                        None => true,
                    }
                }
                BackendTag::ErrorResponse => {
                    if let Some(p) = poison.take_if(|p| is_poison_error(&frame, p)) {
                        self.to_client.extend_from_slice(p.error.to_frame().bytes());
                        // The statements pgbelay runs after it only echo the failure.
                        self.group_failed = true;
                        false
                    } else {
                        server_error(&mut self.group_failed, &self.metrics, &frame)
                    }
                }
                _ => true,
            },
            Origin::Injected { forward_ready } => match tag {
                BackendTag::ReadyForQuery => *forward_ready,
                BackendTag::ErrorResponse => {
                    server_error(&mut self.group_failed, &self.metrics, &frame)
                }
                _ => false,
            },
        };
        if forward {
            self.note_fatal(&frame);
            self.send_client(&frame);
        }
        if ready {
            let done = self.pending.pop_front();
            if let Some(Unit {
                origin: Origin::Client { .. },
                ..
            }) = done
                && let Some(after) = self.deferred_after.take()
            {
                self.inject(&after, true);
            }
            // Not inside a failed transaction: its end decides (a rollback reports the
            // setting back).
            if !self.restore.is_empty()
                && self.pending.is_empty()
                && self.deferred_after.is_none()
                && self.tx_status != TxStatus::Failed
            {
                let restore = std::mem::take(&mut self.restore);
                self.inject(&restore, false);
            }
            if self.waiting && self.pending.is_empty() {
                self.waiting = false;
            }
            if !self.waiting && self.deferred_after.is_none() && !self.held.is_empty() {
                // What the client sent meanwhile was held back (see `client_frame`); after
                // a failed batch that the relay ended, up to the client's Sync it is what
                // the server would have skipped.
                if self.pending.is_empty() && std::mem::take(&mut self.discard_held) {
                    self.batch = Batch::Discarding;
                }
                for held in std::mem::take(&mut self.held) {
                    if self.client_frame(held)? == Flow::Close {
                        return Ok(Flow::Close);
                    }
                }
            }
            if forward {
                // The client has its answer: the group is over.
                self.group_failed = false;
            }
        }
        Ok(Flow::Continue)
    }

    fn auth_frame(&mut self, frame: Frame) -> Result<Flow, RelayError> {
        match frame.backend_tag() {
            BackendTag::ReadyForQuery => {
                self.tx_status = decode::ready_for_query(&frame).map_err(RelayError::Upstream)?;
                if let Some((pid, secret)) = &self.client_key {
                    let key = encode::backend_key_data(*pid, secret);
                    self.send_client(&key);
                }
                self.phase = Phase::Ready;
                let statements = self.hooks.on_ready(&self.info);
                if !statements.is_empty() {
                    // The last one's ReadyForQuery tells the client the session is ready.
                    self.inject(&statements, true);
                    return Ok(Flow::Continue);
                }
            }
            _ => self.note_fatal(&frame),
        }
        self.send_client(&frame);
        Ok(Flow::Continue)
    }

    fn note_fatal(&mut self, frame: &Frame) {
        if frame.backend_tag() == BackendTag::ErrorResponse
            && let Ok(fields) = decode::error_response(frame)
            && matches!(
                fields.get(b'V').or(fields.get(b'S')),
                Some("FATAL" | "PANIC")
            )
        {
            self.upstream_fatal = true;
        }
    }
}

fn client_unit(swallow_ready: bool, rename_tag: Option<(String, String)>) -> Unit {
    Unit {
        origin: Origin::Client {
            swallow_ready,
            poison: None,
            rename_tag,
        },
        quiet: false,
        failed: false,
        synced: false,
    }
}

/// `UPDATE 3` with rename (UPDATE, DELETE) becomes `DELETE 3`; a tag without a count
/// (`DO`, renamed to `DROP TABLE`) is replaced whole.
fn renamed(frame: &Frame, rename: &Option<(String, String)>) -> Option<Frame> {
    let (from, to) = rename.as_ref()?;
    let tag = decode::command_complete(frame).ok()?;
    if tag == *from {
        return Some(encode::command_complete(to));
    }
    let count = tag.strip_prefix(from.as_str())?.strip_prefix(' ')?;
    Some(encode::command_complete(&format!("{to} {count}")))
}

/// The row count of an INSERT / UPDATE / DELETE / MERGE / COPY command tag, else 0.
fn written_rows(frame: &Frame) -> u64 {
    let Ok(tag) = decode::command_complete(frame) else {
        return 0;
    };
    let mut words = tag.split(' ');
    match words.next() {
        Some("INSERT" | "UPDATE" | "DELETE" | "MERGE" | "COPY") => {
            words.next_back().and_then(|n| n.parse().ok()).unwrap_or(0)
        }
        _ => 0,
    }
}

/// "current transaction is aborted, commands ignored until end of transaction block".
/// An error the server raised in the current group: whether the client gets it (the
/// 25P02 echoes after the group's first error do not). A refusal the server raised for
/// pgbelay (blast radius, hidden write, a spent token: `pgbelay: refused` with its
/// statement class) counts as a refusal, as the proxy's own do.
fn server_error(group_failed: &mut bool, metrics: &Metrics, frame: &Frame) -> bool {
    let Ok(fields) = decode::error_response(frame) else {
        *group_failed = true;
        return true;
    };
    let echo = *group_failed && fields.get(b'C') == Some("25P02");
    *group_failed = true;
    if fields
        .get(b'M')
        .is_some_and(|m| m.starts_with("pgbelay: refused"))
    {
        metrics.refusal(refusal_class(fields.get(b'D')));
    }
    !echo
}

fn is_poison_error(frame: &Frame, poison: &Poison) -> bool {
    decode::error_response(frame)
        .ok()
        .and_then(|f| f.get(b'M').map(|m| m.contains(&poison.nonce)))
        .unwrap_or(false)
}

fn tag_char(frame: &Frame) -> char {
    frame.tag() as char
}
