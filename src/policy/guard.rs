//! The policy as the proxy's [`Hooks`]: one [`GuardSession`] per client, sharing one
//! bounded cache of parsed statements.
//!
//! The cache holds the *analysis* (the parse tree's facts), keyed by the exact text and the
//! parser dialect, not the verdict: the verdict also depends on per-session state (the
//! prepared statements an EXECUTE refers to, the client encoding), and judging an analysis
//! is cheap next to parsing. Texts over [`MAX_CACHED_LEN`] are not cached, so a few large
//! bulk INSERTs cannot pin megabytes.

use std::collections::{HashMap, HashSet};
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use lru::LruCache;

use crate::approval::{Approval, Secret, token_in_comments};
use crate::config::Settings;
use crate::session::{Decision, Hooks, Plan, Position, SessionHooks, SessionInfo};
use crate::sql::{
    Dialect, Kind, ParseError, QualifiedName, SessionReset, SettingName, SettingValue, Statement,
    TransactionStart, analyze, canonical, has_masked_key, locks_rows, numeric_masked_key,
    quick_masked_key,
};
use crate::wire::TxStatus;

use super::class::{IrreversibleKind, Unrecordable};
use super::classify::classify;
use super::record::{RecordedWrite, Recorder, Source};
use super::refusal::Refusal;
use super::{
    Context, Judgement, Prepared, PreparedChange, StatementClass, Verdict, judge_analyzed,
};

/// Statements longer than this (bytes) are parsed every time instead of cached.
pub const MAX_CACHED_LEN: usize = 64 * 1024;

/// Default number of cached statement texts.
pub const DEFAULT_CACHE_ENTRIES: usize = 4096;

type Analysis = Arc<Result<Vec<Statement>, ParseError>>;
type Cache = LruCache<String, Analysis>;
/// A text's numeric-masked key and its statement's span ([`numeric_masked_key`]).
type MaskedKey = (String, std::ops::Range<usize>);

/// Only a single plain read with no setting change may stand for the other statements
/// of its numeric-masked shape.
fn shareable(analysis: &Analysis) -> bool {
    matches!(analysis.as_ref().as_ref().map(Vec::as_slice), Ok([one]) if one.kind == Kind::Read && one.writes.is_empty() && one.settings.is_empty())
}

/// The policy engine for the proxy; cheap to clone (the cache is shared).
#[derive(Clone)]
pub struct Guard {
    audit_schema: Arc<str>,
    /// Analyses by exact text, one cache per literal dialect (indexed by
    /// `standard_conforming_strings`): where a literal ends depends on it.
    caches: Arc<[Mutex<Cache>; 2]>,
    /// Analyses of plain SELECTs by numeric-masked text.
    shapes: Arc<Mutex<LruCache<String, Analysis>>>,
    /// How writes are recorded.
    recorder: Recorder,
    /// The key approval tokens are checked with (`approval_secret`).
    secret: Option<Arc<Secret>>,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("audit_schema", &self.audit_schema)
            .finish_non_exhaustive()
    }
}

impl Guard {
    /// A guard for these settings, with the default cache size.
    pub fn new(settings: &Settings) -> Self {
        Self::with_cache(settings, DEFAULT_CACHE_ENTRIES)
    }

    /// A guard caching up to `entries` statement texts (at least 1).
    pub fn with_cache(settings: &Settings, entries: usize) -> Self {
        let entries = NonZeroUsize::new(entries).unwrap_or(NonZeroUsize::MIN);
        Self {
            audit_schema: Arc::from(settings.audit_schema.as_str()),
            caches: Arc::new([(); 2].map(|()| Mutex::new(LruCache::new(entries)))),
            shapes: Arc::new(Mutex::new(LruCache::new(entries))),
            recorder: Recorder::new(settings),
            secret: settings
                .approval_secret
                .as_deref()
                .map(|s| Arc::new(Secret::new(s))),
        }
    }

    /// The analysis of `sql`, from the cache or freshly parsed.
    ///
    /// A plain SELECT that misses the exact-text cache is looked up once more under its
    /// numeric-masked key ([`numeric_masked_key`]): a hit is a statement of the same shape
    /// that differs only in numbers, so its analysis holds with this text put in.
    pub(crate) fn analysis(&self, sql: &str, dialect: Dialect) -> Analysis {
        self.analysis_and_whether_kept(sql, dialect, None).0
    }

    /// [`Guard::analysis`], and whether the cache keeps it under this very text (not for a
    /// long text, nor for one found by its shape, which a new number replaces each time).
    /// `quick` is the text's [`quick_masked_key`] where the caller computed it.
    fn analysis_and_whether_kept(
        &self,
        sql: &str,
        dialect: Dialect,
        quick: Option<&Option<MaskedKey>>,
    ) -> (Analysis, bool) {
        if sql.len() > MAX_CACHED_LEN {
            return (Arc::new(analyze(sql, dialect)), false);
        }
        // A poisoned lock only means another session panicked mid-update; the cache
        // holds immutable values, so it is still sound to use.
        if let Some(hit) = self.lock(dialect).get(sql) {
            return (Arc::clone(hit), true);
        }
        let computed;
        let masked = match quick {
            Some(known) => known,
            None => {
                computed = numeric_masked_key(sql, dialect);
                &computed
            }
        };
        if let Some((masked_key, span)) = masked
            && let Some(shape) = self.lock_shapes().get(masked_key).cloned()
            && let (Ok([one]), Some(text)) = (
                shape.as_ref().as_ref().map(Vec::as_slice),
                sql.get(span.clone()),
            )
        {
            // Not cached under its own text: texts that differ only in numbers (a new
            // one per call) would push every other statement out of the cache.
            let mut statement = one.clone();
            statement.text = text.to_string();
            return (Arc::new(Ok(vec![statement])), false);
        }
        let fresh = Arc::new(analyze(sql, dialect));
        if let Some((masked_key, _)) = masked
            && shareable(&fresh)
        {
            self.lock_shapes()
                .put(masked_key.clone(), Arc::clone(&fresh));
        }
        self.lock(dialect).put(sql.to_string(), Arc::clone(&fresh));
        (fresh, true)
    }

    fn lock(&self, dialect: Dialect) -> std::sync::MutexGuard<'_, Cache> {
        self.caches[usize::from(dialect.standard_conforming_strings)]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn lock_shapes(&self) -> std::sync::MutexGuard<'_, LruCache<String, Analysis>> {
        self.shapes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Judges `sql` with a session's state.
    pub fn judge(&self, sql: &str, info: &SessionInfo, prepared: &Prepared) -> Judgement {
        let ctx = self.context(info, prepared);
        judge_analyzed(sql, &self.analysis(sql, ctx.dialect), &ctx)
    }

    /// What a session's statements are judged against.
    fn context<'a>(&'a self, info: &'a SessionInfo, prepared: &'a Prepared) -> Context<'a> {
        Context {
            audit_schema: &self.audit_schema,
            client_encoding: &info.client_encoding,
            dialect: Dialect {
                standard_conforming_strings: info.standard_conforming_strings,
            },
            prepared,
        }
    }
}

/// Statements longer than this (bytes) are not kept in a session's own recent list.
const MAX_SESSION_RECENT_LEN: usize = 8 * 1024;

/// How many analyses (and plain-read shapes) a session keeps in front of the shared cache.
const SESSION_RECENT: usize = 4;

/// A single read that runs as it is: outside a transaction under the session's read-only
/// default, inside one in the read-only savepoint ([`GuardSession::plain_read`]). Nothing
/// in the session's state (prepared statements, held token) bears on it, only where the
/// session stands, so a session may remember the fact instead of judging it again. The
/// client encoding is checked at each use (it refuses every statement when unsafe).
fn is_plain_read(analysis: &Analysis, audit_schema: &str, dialect: Dialect) -> bool {
    let no_prepared = Prepared::new();
    let ctx = Context {
        dialect,
        ..Context::offline(audit_schema, &no_prepared)
    };
    matches!(analysis.as_ref().as_ref().map(Vec::as_slice), Ok([one])
        if one.kind == Kind::Read
            && !one.locks_rows
            && classify(one, &ctx, &no_prepared) == StatementClass::Read)
}

/// What a session's cache found for a text.
enum Found {
    /// A plain read ([`is_plain_read`]); for a text found by its numeric shape no analysis
    /// with this text is built at all.
    PlainRead,
    /// Anything else, to be judged.
    Other(Analysis),
}

/// The last few analyses one session looked up, in front of the shared cache. Most of a
/// session's traffic repeats a handful of statements; finding one here is a text
/// comparison, without the shared cache's lock (which every event loop contends for) and
/// hash. An analysis is a pure function of text and dialect, so a copy here is the same
/// value the shared cache would give. Beside them, the numeric-masked keys of the plain
/// reads it ran most recently (pgbench and ORMs in the simple protocol send a new text,
/// of one shape, per call).
#[derive(Debug, Default)]
struct RecentAnalyses {
    /// Newest first, with whether each is a plain read.
    entries: std::collections::VecDeque<(String, Dialect, Analysis, bool)>,
    /// Newest first. Masked keys exist only for `standard_conforming_strings = on`.
    plain_shapes: std::collections::VecDeque<String>,
}

impl RecentAnalyses {
    fn get(&mut self, guard: &Guard, sql: &str, dialect: Dialect) -> Found {
        if let Some((_, _, analysis, plain)) = self
            .entries
            .iter()
            .find(|(text, d, ..)| *d == dialect && text == sql)
        {
            return if *plain {
                Found::PlainRead
            } else {
                Found::Other(Arc::clone(analysis))
            };
        }
        // Shapes are kept only for texts the shared cache may hold.
        let shaped = sql.len() <= MAX_CACHED_LEN;
        if shaped
            && self
                .plain_shapes
                .iter()
                .any(|shape| has_masked_key(sql, shape, dialect))
        {
            return Found::PlainRead;
        }
        // Without the lexer only: that one costs more than the shared cache's lookup.
        let quick = shaped.then(|| quick_masked_key(sql, dialect)).flatten();
        let (analysis, kept) = guard.analysis_and_whether_kept(sql, dialect, quick.as_ref());
        // What the shared cache does not keep by its text would only push out the
        // statements this session does repeat.
        // Found out even when not remembered: it is less work than the judgement.
        let plain = is_plain_read(&analysis, &guard.audit_schema, dialect);
        if let (Some(Some((key, _))), true) = (quick, plain) {
            push_newest(&mut self.plain_shapes, key);
            return Found::PlainRead;
        }
        if kept && sql.len() <= MAX_SESSION_RECENT_LEN {
            push_newest(
                &mut self.entries,
                (sql.to_string(), dialect, Arc::clone(&analysis), plain),
            );
        }
        if plain {
            Found::PlainRead
        } else {
            Found::Other(analysis)
        }
    }
}

/// Puts `item` in front of a session's recent list, dropping the oldest when full.
fn push_newest<T>(list: &mut std::collections::VecDeque<T>, item: T) {
    if list.len() == SESSION_RECENT {
        list.pop_back();
    }
    list.push_front(item);
}

impl Hooks for Guard {
    fn session(&self, _: &SessionInfo) -> Box<dyn SessionHooks> {
        Box::new(GuardSession {
            guard: self.clone(),
            prepared: Prepared::new(),
            locking_prepared: HashSet::new(),
            extended: ExtendedStatements::default(),
            batch_wrapped: None,
            batch_mode: BatchMode::Plain,
            batch_in_transaction: false,
            schema_checked: false,
            pending_approval: None,
            held_used: false,
            recent: RecentAnalyses::default(),
        })
    }
}

/// What an extended-protocol prepared statement is, for its later Binds.
#[derive(Debug, Clone)]
enum Extended {
    /// A write, with what recording it needs.
    Write(RecordedWrite),
    /// Only reads.
    Read,
    /// Only reads, locking rows (`FOR UPDATE` / `SHARE`): they cannot run read-only.
    LockingRead,
    /// Additive DDL that runs none of the user's code (see `Statement::runs_user_code`).
    Ddl,
    /// Additive DDL that runs the user's code over rows, with the relations it fills.
    CodeDdl(Vec<QualifiedName>),
    /// `BEGIN` / `START TRANSACTION` that runs read-write (no access mode, which pgbelay
    /// runs as `READ WRITE`, or `READ WRITE` itself): what follows it in its batch runs
    /// read-write.
    Begin,
    /// Other transaction control (`COMMIT`, `ROLLBACK`, `SAVEPOINT`, `BEGIN READ ONLY`, …).
    Transaction,
    /// Anything else (session control).
    Other,
}

impl Extended {
    /// What this statement is when it comes later in a batch.
    fn later(&self) -> Later {
        match self {
            Extended::Read | Extended::Other => Later::Read,
            Extended::Begin | Extended::Transaction => Later::Transaction,
            Extended::Write(_) | Extended::LockingRead | Extended::Ddl | Extended::CodeDdl(_) => {
                Later::ReadWrite
            }
        }
    }
}

/// A session's protocol-level prepared statements by name. The unnamed one, which drivers
/// Parse again for every execution, has a slot of its own, so its Parse and Bind hash
/// nothing.
#[derive(Debug, Default)]
struct ExtendedStatements {
    unnamed: Option<Extended>,
    named: HashMap<String, Extended>,
}

impl ExtendedStatements {
    fn get(&self, name: &str) -> Option<&Extended> {
        if name.is_empty() {
            self.unnamed.as_ref()
        } else {
            self.named.get(name)
        }
    }

    /// Remembers `name` as `what`; a name Parsed again keeps its entry (and allocation).
    fn set(&mut self, name: &str, what: Extended) {
        if name.is_empty() {
            self.unnamed = Some(what);
        } else if let Some(slot) = self.named.get_mut(name) {
            *slot = what;
        } else {
            self.named.insert(name.to_string(), what);
        }
    }

    fn remove(&mut self, name: &str) {
        if name.is_empty() {
            self.unnamed = None;
        } else {
            self.named.remove(name);
        }
    }

    /// `DEALLOCATE ALL`: every named statement; the unnamed one is not among them.
    fn forget_named(&mut self) {
        self.named.clear();
    }
}

/// A statement later in an extended-protocol batch, where nothing can be put in front of
/// it, as [`GuardSession::mid_batch`] sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Later {
    /// Reads (also a resumed portal) and session control: safe where the batch stays
    /// read-only or is checked after.
    Read,
    /// What must run read-write (a write, DDL, a locking read): it needs a batch of its
    /// own, except where the batch is checked after anyway.
    ReadWrite,
    /// Transaction control: it could end or undo what keeps the batch guarded (commit
    /// before the check, release or roll back the read-only savepoint, begin read-write).
    Transaction,
}

/// How a batch runs once pgbelay wrapped its first statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BatchMode {
    /// Not wrapped: in autocommit the session's read-only default guards it, in the
    /// client's transaction nothing does.
    Plain,
    /// In the read-only savepoint.
    ReadOnly,
    /// Followed by the hidden-write check (locking read, DDL running user code).
    Checked,
    /// Read-write with nothing after it to check (a recorded write, DDL in autocommit).
    ReadWrite,
    /// Opened by the client's read-write `BEGIN` in autocommit (pgjdbc sends it in front
    /// of the transaction's first statement, in one batch): reads later in the batch are
    /// checked after it to have written nothing at all (the transaction has no
    /// transaction id yet).
    Begun,
    /// `Begun`, with the check already due after the batch.
    BegunChecked,
    /// Started, while earlier requests were in flight, by a statement that did not wait
    /// for them: the transaction status later statements would be judged on is not known
    /// (a BEGIN may be among those requests), so they are refused.
    Unknown,
}

/// One client's policy state.
#[derive(Debug)]
pub struct GuardSession {
    guard: Guard,
    /// SQL-level and protocol-level prepared statements (one namespace), for EXECUTE.
    prepared: Prepared,
    /// The prepared statements (SQL `PREPARE`, named Parse) that are locking reads: an
    /// `EXECUTE` of one is checked for hidden writes like the read itself, since it
    /// cannot run read-only.
    locking_prepared: HashSet<String>,
    /// Protocol-level prepared statements by name.
    extended: ExtendedStatements,
    /// The statement whose Parse started the current batch, judged (and wrapped where
    /// needed) at that Parse: its Bind in the same batch needs nothing more. Not set for a
    /// named write, whose every Bind is wrapped.
    batch_wrapped: Option<String>,
    /// How the current extended-protocol batch runs, as pgbelay wrapped it at its start;
    /// decides whether a statement later in the batch is still guarded.
    batch_mode: BatchMode,
    /// The current batch started inside the client's transaction block (known, nothing
    /// in flight): ending it early commits nothing.
    batch_in_transaction: bool,
    /// Whether this session already checked that the audit schema is installed.
    schema_checked: bool,
    /// A token presented with `SET pgbelay.approval`, for the next statement that needs one.
    pending_approval: Option<String>,
    /// Whether the statement being decided used the held token.
    held_used: bool,
    /// This session's latest analyses.
    recent: RecentAnalyses,
}

/// How a batch that a read-write `BEGIN` starts runs: checked after, from the start of
/// its transaction, when that start is certain (from autocommit, nothing in flight);
/// else what follows in the batch is refused.
fn begun(at: Position) -> BatchMode {
    if at.tx_status == TxStatus::Idle && !at.pipelined {
        BatchMode::Begun
    } else {
        BatchMode::ReadWrite
    }
}

/// How a refusal at a Bind names the statement.
fn execute_of(statement: &str) -> String {
    format!("EXECUTE of prepared statement \"{statement}\"")
}

/// The refusal as the client gets it (the relay logs it, in the session's span).
fn refuse(refusal: Refusal) -> Decision {
    Decision::Refuse(refusal.to_error())
}

impl GuardSession {
    /// The decision for one Query or Parse. A held token (`SET pgbelay.approval`) is
    /// consumed only by a final decision: `Wait` calls this again with the same statement.
    fn decide(
        &mut self,
        info: &SessionInfo,
        at: Position,
        sql: &str,
        parse_name: Option<&str>,
    ) -> Decision {
        self.held_used = false;
        let decision = self.decide_now(info, at, sql, parse_name);
        if parse_name.is_some() && at.batch_start && at.pipelined {
            self.status_unknown(&decision);
        }
        if self.held_used && !matches!(decision, Decision::Wait) {
            self.pending_approval = None;
        }
        decision
    }

    fn decide_now(
        &mut self,
        info: &SessionInfo,
        at: Position,
        sql: &str,
        parse_name: Option<&str>,
    ) -> Decision {
        if at.batch_start {
            self.new_batch(at);
        } else if parse_name.is_some() && parse_name == self.batch_wrapped.as_deref() {
            // The statement the batch was wrapped for is replaced: its next Bind is judged
            // afresh.
            self.batch_wrapped = None;
        }
        let dialect = Dialect {
            standard_conforming_strings: info.standard_conforming_strings,
        };
        let analysis = match self.recent.get(&self.guard, sql, dialect) {
            Found::PlainRead if super::settings::encoding_ok(&info.client_encoding) => {
                return self.plain_read(at, sql, parse_name);
            }
            // Judged below, to be refused for the encoding.
            Found::PlainRead => self.guard.analysis(sql, dialect),
            Found::Other(analysis) => analysis,
        };
        let ctx = self.guard.context(info, &self.prepared);
        let judgement = judge_analyzed(sql, &analysis, &ctx);
        if let Some(decision) = self.approval_setting(&analysis, sql, parse_name, at) {
            return decision;
        }
        // A token is looked for only where one could matter; the SET form is consumed by
        // the next statement that needs a token.
        let wants_token = match &judgement.verdict {
            Verdict::Refuse(r) => r.kind.approvable(),
            _ => judgement
                .statements
                .iter()
                .any(|s| matches!(s.class, StatementClass::Write(..))),
        };
        let approval = match wants_token
            .then(|| {
                token_in_comments(sql).map(str::to_string).or_else(|| {
                    self.held_used = true;
                    self.pending_approval.clone()
                })
            })
            .flatten()
        {
            None => None,
            Some(token) => match self.check_token(&token, sql, dialect) {
                // The statement is recorded with the spent token shortened to its id.
                Ok(approval) => Some((
                    sql.replace(token.as_str(), &format!("<token {}>", approval.id)),
                    approval,
                )),
                Err(why) => {
                    if let Some(name) = parse_name {
                        self.extended.remove(name);
                    }
                    return refuse(if self.held_used {
                        Refusal::held_approval(sql, &why)
                    } else {
                        Refusal::approval(sql, &why)
                    });
                }
            },
        };
        let verdict = match judgement.verdict {
            Verdict::Refuse(refusal) => {
                if let (Some((recorded_sql, approval)), [one]) =
                    (&approval, judgement.statements.as_slice())
                {
                    let recorder = &self.guard.recorder;
                    let kind = &refusal.kind;
                    return match recorder.approved(info, one, kind, recorded_sql, dialect, approval)
                    {
                        Ok(recorded) => {
                            tracing::info!(parent: &info.span, statement = %recorded_sql, token = %approval.id, by = %approval.by, "approved");
                            self.run_recorded(recorded, info, at, parse_name)
                        }
                        Err(refusal) => refuse(refusal),
                    };
                }
                if let Some(name) = parse_name {
                    self.extended.remove(name);
                }
                return refuse(refusal);
            }
            verdict => verdict,
        };
        // SPEC B4: additive DDL is allowed and logged.
        for s in &judgement.statements {
            if s.class == StatementClass::AdditiveDdl {
                let statement = crate::approval::redact_token(&s.text);
                tracing::info!(parent: &info.span, %statement, "additive ddl");
            }
        }
        tracing::debug!(parent: &info.span, verdict = ?verdict);
        if let (Ok([analyzed]), [one]) = (
            analysis.as_ref().as_ref().map(Vec::as_slice),
            judgement.statements.as_slice(),
        ) && let Some(reset) = analyzed.resets_session
            && one.class == StatementClass::ResetSession
        {
            return self.reset_session(reset, at, parse_name, sql);
        }
        for change in judgement.prepared {
            match change {
                PreparedChange::Add(name, class, locks) => {
                    // Reachable by a protocol Bind too (one namespace).
                    let what = match (&class, locks) {
                        (StatementClass::Read, false) => Extended::Read,
                        (StatementClass::Read, true) => Extended::LockingRead,
                        _ => Extended::Other,
                    };
                    self.note_locking(&name, locks);
                    self.extended.set(&name, what);
                    self.prepared.insert(name, class);
                }
                PreparedChange::Remove(name) => {
                    self.locking_prepared.remove(&name);
                    self.extended.remove(&name);
                    self.prepared.remove(&name);
                }
                PreparedChange::Clear => self.forget_prepared(),
            }
        }
        // A named Parse is reachable by SQL `EXECUTE name` too.
        if let (Some(name), [one]) = (parse_name, judgement.statements.as_slice())
            && !name.is_empty()
        {
            let locks = analysis.as_ref().as_ref().is_ok_and(|s| locks_rows(s));
            self.note_locking(name, locks);
            self.prepared.insert(name.to_string(), one.class.clone());
        }
        let statements = &judgement.statements;
        if let Some(write) = statements
            .iter()
            .find(|s| matches!(s.class, StatementClass::Write(..)))
        {
            if statements.len() > 1 {
                return refuse(Refusal::statement(
                    IrreversibleKind::Unrecordable(Unrecordable::MultiStatement),
                    sql,
                ));
            }
            let StatementClass::Write(kind, target) = &write.class else {
                return Decision::Forward;
            };
            let recorder = &self.guard.recorder;
            let source = Source {
                text: &write.text,
                client_sql: approval
                    .as_ref()
                    .map_or(sql, |(recorded_sql, _)| recorded_sql),
                dialect,
            };
            let approval = approval.as_ref().map(|(_, a)| a);
            let recorded = match recorder.write(info, *kind, target, source, approval) {
                Ok(w) => w,
                Err(refusal) => return refuse(refusal),
            };
            return self.run_recorded(recorded, info, at, parse_name);
        }
        let analyzed = analysis.as_ref().as_ref().map(Vec::as_slice).unwrap_or(&[]);
        let all_reads =
            !statements.is_empty() && statements.iter().all(|s| s.class == StatementClass::Read);
        // A BEGIN leaving the access mode to the session's default (read-only through
        // pgbelay) runs as BEGIN READ WRITE, so that it may write, as the client means.
        let begin_read_write = match analysis.as_ref().as_ref().map(Vec::as_slice) {
            Ok([one]) if statements.len() == 1 => match &one.transaction_start {
                Some(TransactionStart::Default(read_write)) => Some(read_write.clone()),
                _ => None,
            },
            _ => None,
        };
        // A read that locks rows cannot run read-only: in a transaction it is checked for
        // hidden writes instead; in autocommit the server refuses its locks. (From the
        // cached analysis, in the session's dialect.)
        let locking = all_reads
            && (parse_name.is_some() || at.tx_status == TxStatus::InTransaction)
            && analysis.as_ref().as_ref().is_ok_and(|s| {
                !s.is_empty()
                    && s.iter().all(|one| match &one.kind {
                        Kind::Execute(name) => self.locking_prepared.contains(name),
                        _ => one.locks_rows,
                    })
            });
        let guarded_read = all_reads && !locking;
        // SPEC B4: additive DDL is allowed; the read-only default must not refuse it.
        let all_ddl = !statements.is_empty()
            && statements
                .iter()
                .all(|s| s.class == StatementClass::AdditiveDdl);
        // DDL that runs user code over rows gets the hidden-write check, with what it fills
        // itself left out (from the cached analysis: no second parse). DDL reached through
        // EXECUTE of a prepared statement is not seen here, so it is checked too.
        let code_ddl = all_ddl
            .then(|| crate::sql::ddl_user_code(analyzed))
            .flatten();
        let ddl = all_ddl && code_ddl.is_none();
        if let Some(name) = parse_name {
            let what = if guarded_read {
                Extended::Read
            } else if locking {
                Extended::LockingRead
            } else if ddl {
                Extended::Ddl
            } else if let Some(targets) = &code_ddl {
                Extended::CodeDdl(targets.clone())
            } else if let [one] = analyzed
                && one.kind == Kind::TransactionControl
            {
                match one.transaction_start {
                    Some(TransactionStart::Default(_) | TransactionStart::ReadWrite) => {
                        Extended::Begin
                    }
                    _ => Extended::Transaction,
                }
            } else {
                Extended::Other
            };
            let later = what.later();
            if at.batch_start && matches!(what, Extended::Begin) {
                self.batch_mode = begun(at);
            }
            self.remember_parse(name, what, at);
            if !at.batch_start {
                let decision = self.mid_batch(at, later, || sql.to_owned());
                if matches!(decision, Decision::Refuse(_)) {
                    // The server never gets it: its Binds must not find it.
                    self.extended.remove(name);
                }
                return decision;
            }
        }
        if let Some(read_write) = begin_read_write {
            // Only the text changes, wherever it stands: inside a transaction it warns,
            // as a plain BEGIN does.
            return Decision::Rewrite(Plan {
                sql: Some(read_write),
                ..Plan::default()
            });
        }
        if (all_reads || all_ddl) && at.pipelined {
            return Decision::Wait;
        }
        if ddl && at.tx_status == TxStatus::Idle {
            self.batch_mode = BatchMode::ReadWrite;
            return Decision::Rewrite(self.guard.recorder.ddl_in_autocommit());
        }
        if let Some(targets) = &code_ddl
            && at.tx_status != TxStatus::Failed
        {
            let autocommit = at.tx_status == TxStatus::Idle;
            self.batch_mode = BatchMode::Checked;
            return Decision::Rewrite(
                self.guard
                    .recorder
                    .ddl_with_write_check(targets, autocommit),
            );
        }
        if guarded_read && at.tx_status == TxStatus::InTransaction {
            return self.read_only_batch();
        }
        if locking && at.tx_status == TxStatus::InTransaction {
            self.batch_mode = BatchMode::Checked;
            return Decision::Rewrite(self.guard.recorder.locking_read_in_transaction());
        }
        match verdict {
            Verdict::Rewrite(plan) => Decision::Rewrite(plan),
            _ => Decision::Forward,
        }
    }
}

impl GuardSession {
    /// A plain read ([`is_plain_read`]): forwarded as it is outside a transaction (the
    /// session's read-only default guards it), in the read-only savepoint inside one; held
    /// while a pipelining client leaves the transaction status unknown. A Parse of one is
    /// remembered for its Binds, and later in a batch it runs where the batch stays
    /// guarded.
    fn plain_read(&mut self, at: Position, sql: &str, parse_name: Option<&str>) -> Decision {
        if let Some(name) = parse_name {
            // A named Parse is reachable by SQL `EXECUTE name` too.
            if !name.is_empty() {
                self.note_locking(name, false);
                self.prepared.insert(name.to_string(), StatementClass::Read);
            }
            self.remember_parse(name, Extended::Read, at);
            if !at.batch_start {
                let decision = self.mid_batch(at, Later::Read, || sql.to_owned());
                if matches!(decision, Decision::Refuse(_)) {
                    // The server never gets it: its Binds must not find it.
                    self.extended.remove(name);
                }
                return decision;
            }
        }
        if at.pipelined {
            return Decision::Wait;
        }
        if at.tx_status == TxStatus::InTransaction {
            return self.read_only_batch();
        }
        Decision::Forward
    }

    /// Runs a recorded write (or an approved statement) where the session stands.
    fn run_recorded(
        &mut self,
        recorded: RecordedWrite,
        _info: &SessionInfo,
        at: Position,
        parse_name: Option<&str>,
    ) -> Decision {
        let recorder = &self.guard.recorder;
        if let Some(name) = parse_name {
            self.extended.set(name, Extended::Write(recorded.clone()));
            // Later in a batch that can still be ended, it starts a batch of its own.
            if !at.batch_start && self.can_end_batch(at) {
                return Decision::Wait;
            }
            // Only the text changes here, and its Bind decides (and refuses when it cannot
            // be wrapped), later in a batch and for an approved statement: a Parse sent
            // alone (tokio-postgres prepares first) would spend the token on nothing.
            if !at.batch_start || (!name.is_empty() && recorded.claims_token()) {
                return Decision::Rewrite(Recorder::text_only(&recorded));
            }
            // At a batch's start the Parse is wrapped like the write itself, whether or not
            // its Bind follows in the same batch: the unnamed statement always does, and
            // so does a named one from pgjdbc once prepareThreshold is reached (Parse S_1,
            // Bind S_1, Execute, Sync), where nothing could be put before the Bind. Later
            // Binds in batches of their own are wrapped again. A Parse sent alone (pgbench
            // -M prepared) runs the announcement for nothing; it leaves no change row.
            self.batch_wrapped = Some(name.to_string());
        }
        if at.pipelined {
            // The plan depends on the transaction status, known once earlier requests
            // are answered.
            return Decision::Wait;
        }
        let plan = recorder.plan(&recorded, at, !self.schema_checked);
        self.schema_checked = true;
        self.batch_mode = BatchMode::ReadWrite;
        Decision::Rewrite(plan)
    }

    /// A statement other than a write later in an extended-protocol batch, where nothing
    /// can be put around it: it passes where the batch is still guarded (read-only, or
    /// checked afterwards), and is refused where it would run read-write unchecked.
    /// Notes what a Parse (other than a write's) prepared; at a batch's start its Bind in
    /// the same batch is covered by this Parse's decision.
    fn note_locking(&mut self, name: &str, locks: bool) {
        if locks {
            self.locking_prepared.insert(name.to_string());
        } else {
            self.locking_prepared.remove(name);
        }
    }

    /// Whether the batch a message arrives in can be ended before it, by a Sync of the
    /// relay's own ([`Decision::Wait`]), without changing what the batch does: nothing in
    /// it has run yet (a Parse, Describe or Close commits nothing and leaves no portal);
    /// or it runs inside the client's transaction block, which a Sync neither commits nor
    /// ends (its portals stay; the read-only savepoint is released, not rolled back); or
    /// it only opened such a block with a read-write `BEGIN` (and read in it, with the
    /// check due after the batch). In autocommit the batch is one implicit transaction,
    /// which a Sync in the middle would split. pgjdbc sends `BEGIN` in the batch of a
    /// transaction's first statement, and a Close of a cached statement or cursor in front
    /// of one; asyncpg's `prepare()` leaves its batch open (Flush); psycopg's pipeline
    /// mode sends one Sync for many statements.
    fn can_end_batch(&self, at: Position) -> bool {
        !at.batch_ran
            || self.batch_in_transaction
            || matches!(self.batch_mode, BatchMode::Begun | BatchMode::BegunChecked)
    }

    /// A new extended-protocol batch (or a simple Query) at `at`: nothing wrapped yet.
    fn new_batch(&mut self, at: Position) {
        self.batch_wrapped = None;
        self.batch_mode = BatchMode::Plain;
        self.batch_in_transaction = at.tx_status == TxStatus::InTransaction && !at.pipelined;
    }

    /// A read in the client's transaction, in the read-only savepoint with what follows it
    /// in its batch.
    fn read_only_batch(&mut self) -> Decision {
        self.batch_mode = BatchMode::ReadOnly;
        Decision::Rewrite(self.guard.recorder.read_in_transaction())
    }

    /// A batch whose first statement went on without waiting for the requests in flight
    /// (`decision`) has no known transaction status for what follows it.
    fn status_unknown(&mut self, decision: &Decision) {
        if self.batch_mode == BatchMode::Plain
            && matches!(decision, Decision::Forward | Decision::Rewrite(_))
        {
            self.batch_mode = BatchMode::Unknown;
        }
    }

    /// `DEALLOCATE ALL` (also inside `DISCARD ALL`) drops every named prepared
    /// statement, SQL and protocol-level; the unnamed one is not among them.
    fn forget_prepared(&mut self) {
        self.locking_prepared.clear();
        self.prepared.clear();
        self.extended.forget_named();
    }

    fn remember_parse(&mut self, name: &str, what: Extended, at: Position) {
        self.extended.set(name, what);
        if at.batch_start {
            match &mut self.batch_wrapped {
                Some(wrapped) => {
                    wrapped.clear();
                    wrapped.push_str(name);
                }
                None => self.batch_wrapped = Some(name.to_string()),
            }
        }
    }

    /// A statement later in a batch: forwarded where the batch is still guarded (after a
    /// read-write `BEGIN`, with the check due after the batch), else refused (`statement`
    /// names it, built only then: Binds go through here). Transaction control is refused
    /// there in any batch.
    fn mid_batch(
        &mut self,
        at: Position,
        later: Later,
        statement: impl FnOnce() -> String,
    ) -> Decision {
        let guarded = match (self.batch_mode, later) {
            (_, Later::Transaction) => false,
            (BatchMode::ReadOnly | BatchMode::Checked, _) => true,
            (BatchMode::Plain, _) => at.tx_status != TxStatus::InTransaction,
            (BatchMode::Begun, Later::Read) => {
                self.batch_mode = BatchMode::BegunChecked;
                return Decision::Rewrite(self.guard.recorder.checked_since_begin());
            }
            (BatchMode::BegunChecked, Later::Read) => true,
            (
                BatchMode::Begun
                | BatchMode::BegunChecked
                | BatchMode::ReadWrite
                | BatchMode::Unknown,
                _,
            ) => false,
        };
        if guarded {
            Decision::Forward
        } else if self.can_end_batch(at) {
            // It starts a batch of its own instead, where it is judged again.
            Decision::Wait
        } else {
            refuse(Refusal::statement(
                IrreversibleKind::Unrecordable(Unrecordable::MidBatchUnguarded),
                &statement(),
            ))
        }
    }

    /// `SET pgbelay.approval = 'TOKEN'` holds the token for the next statement that needs
    /// one, and reaches the server as `SET pgbelay.approval TO DEFAULT` (same reply, and
    /// the token stays out of the server's settings and logs). `RESET` / `TO DEFAULT`
    /// drops a held token. `None` for any other statement.
    fn approval_setting(
        &mut self,
        analysis: &Analysis,
        sql: &str,
        parse_name: Option<&str>,
        at: Position,
    ) -> Option<Decision> {
        let Ok([one]) = analysis.as_ref().as_ref().map(Vec::as_slice) else {
            return None;
        };
        let [change] = one.settings.as_slice() else {
            return None;
        };
        if one.kind != Kind::SessionControl
            || change.name != SettingName::Named(crate::approval::SETTING.to_string())
        {
            return None;
        }
        if let Some(name) = parse_name {
            self.remember_parse(name, Extended::Other, at);
        }
        match &change.value {
            SettingValue::Literal(values) => {
                let [token] = values.as_slice() else {
                    return Some(refuse(Refusal::approval(
                        sql,
                        "SET pgbelay.approval takes one token",
                    )));
                };
                self.pending_approval = Some(token.clone());
                Some(Decision::Rewrite(Plan {
                    sql: Some(format!("SET {} TO DEFAULT", crate::approval::SETTING)),
                    ..Plan::default()
                }))
            }
            SettingValue::Default | SettingValue::Unknown => {
                self.pending_approval = None;
                None
            }
        }
    }

    /// Checks a presented token against this statement: form, signature, expiry, then
    /// the statement (its canonical text). Single use is checked in the server.
    fn check_token(&self, token: &str, sql: &str, dialect: Dialect) -> Result<Approval, String> {
        let approval =
            crate::approval::verify(self.guard.secret.as_deref(), token, SystemTime::now())
                .map_err(|e| e.to_string())?;
        let canonical = canonical(sql, dialect).map_err(|e| e.to_string())?;
        approval.covers(&canonical).map_err(|e| e.to_string())?;
        Ok(approval)
    }

    /// `DISCARD ALL` / `RESET ALL` on its own: it runs, and the guard's settings are set
    /// again right behind it, before anything else of the client's can run; a held
    /// approval is forgotten with the rest of the session's state. Through the extended
    /// protocol the reset would happen at an Execute, possibly in a later batch than the
    /// one the settings could follow, so it is refused there.
    fn reset_session(
        &mut self,
        reset: SessionReset,
        at: Position,
        parse_name: Option<&str>,
        sql: &str,
    ) -> Decision {
        if parse_name.is_some() {
            return refuse(Refusal::statement(
                IrreversibleKind::Unrecordable(Unrecordable::SessionReset),
                sql,
            ));
        }
        if at.pipelined {
            return Decision::Wait;
        }
        self.pending_approval = None;
        if reset == SessionReset::DiscardAll {
            self.forget_prepared();
        }
        Decision::Rewrite(Plan {
            after: self.guard.recorder.session_start(),
            ..Plan::default()
        })
    }
}

impl SessionHooks for GuardSession {
    fn on_query(&mut self, info: &SessionInfo, at: Position, sql: &str) -> Decision {
        self.decide(info, at, sql, None)
    }

    fn on_parse(&mut self, info: &SessionInfo, at: Position, name: &str, sql: &str) -> Decision {
        self.decide(info, at, sql, Some(name))
    }

    fn on_bind(&mut self, _: &SessionInfo, at: Position, statement: &str) -> Decision {
        if at.batch_start {
            self.new_batch(at);
        }
        let wrapped_here = self.batch_wrapped.as_deref() == Some(statement);
        match self.extended.get(statement) {
            // Not prepared through pgbelay (or forgotten since): nothing says how it must
            // run, so it does not (fail closed; the server would not know it either). In
            // the server's words and code, so a driver that prepares again on 26000
            // (after a DEALLOCATE ALL) still does.
            None => {
                let mut error = Refusal::statement(
                    IrreversibleKind::UnknownPrepared(statement.to_string()),
                    &execute_of(statement),
                )
                .to_error();
                error.code = crate::wire::sqlstate::SqlState::INVALID_SQL_STATEMENT_NAME;
                error.message = if statement.is_empty() {
                    "unnamed prepared statement does not exist".to_string()
                } else {
                    format!("prepared statement \"{statement}\" does not exist")
                };
                Decision::Refuse(error)
            }
            Some(Extended::Write(write)) => {
                if wrapped_here {
                    return Decision::Forward;
                }
                if !at.batch_start {
                    if self.can_end_batch(at) {
                        return Decision::Wait;
                    }
                    return refuse(Refusal::statement(
                        IrreversibleKind::Unrecordable(Unrecordable::MidBatch),
                        &execute_of(statement),
                    ));
                }
                if at.pipelined {
                    return Decision::Wait;
                }
                let plan = self
                    .guard
                    .recorder
                    .plan_bind(write, at, !self.schema_checked);
                self.schema_checked = true;
                self.batch_wrapped = Some(statement.to_string());
                self.batch_mode = BatchMode::ReadWrite;
                Decision::Rewrite(plan)
            }
            Some(what) if !wrapped_here && !at.batch_start => {
                let later = what.later();
                self.mid_batch(at, later, || execute_of(statement))
            }
            Some(Extended::Begin) if at.batch_start => {
                self.batch_mode = begun(at);
                Decision::Forward
            }
            Some(
                what @ (Extended::Read
                | Extended::LockingRead
                | Extended::Ddl
                | Extended::CodeDdl(_)),
            ) if !wrapped_here && at.batch_start => {
                if at.pipelined {
                    return Decision::Wait;
                }
                let recorder = &self.guard.recorder;
                let (plan, mode) = match (what, at.tx_status) {
                    (Extended::Ddl, TxStatus::Idle) => {
                        (recorder.ddl_in_autocommit(), BatchMode::ReadWrite)
                    }
                    (Extended::CodeDdl(targets), TxStatus::Idle | TxStatus::InTransaction) => (
                        recorder.ddl_with_write_check(targets, at.tx_status == TxStatus::Idle),
                        BatchMode::Checked,
                    ),
                    (Extended::Read, TxStatus::InTransaction) => {
                        (recorder.read_in_transaction(), BatchMode::ReadOnly)
                    }
                    (Extended::LockingRead, TxStatus::InTransaction) => {
                        (recorder.locking_read_in_transaction(), BatchMode::Checked)
                    }
                    _ => return Decision::Forward,
                };
                self.batch_wrapped = Some(statement.to_string());
                self.batch_mode = mode;
                Decision::Rewrite(plan)
            }
            _ => {
                if at.batch_start && at.pipelined {
                    self.status_unknown(&Decision::Forward);
                }
                Decision::Forward
            }
        }
    }

    /// A portal an earlier batch left suspended, run on: in the client's transaction
    /// its remaining rows run read-write unless wrapped again, so it runs in the
    /// read-only savepoint (a resumed write only returns rows it already computed; a
    /// resumed locking read goes on locking rows there, since PostgreSQL checks the access
    /// mode when a statement starts). In autocommit no portal outlives its batch.
    fn on_execute(&mut self, _: &SessionInfo, at: Position, portal: &str) -> Decision {
        let name = || format!("Execute of portal \"{portal}\"");
        if !at.batch_start {
            return self.mid_batch(at, Later::Read, name);
        }
        self.new_batch(at);
        if at.pipelined {
            return Decision::Wait;
        }
        if at.tx_status != TxStatus::InTransaction {
            return Decision::Forward;
        }
        self.read_only_batch()
    }

    fn on_ready(&mut self, _: &SessionInfo) -> Vec<String> {
        self.guard.recorder.session_start()
    }

    /// A statement of the client's that turned the read-only default off without saying
    /// so (a function calling `set_config`): it is set again before the client's next
    /// statement (one the client already pipelined behind it runs first).
    fn on_setting_reported(
        &mut self,
        _: &SessionInfo,
        name: &str,
        value: &str,
        by_client: bool,
    ) -> Option<Vec<String>> {
        if name != "default_transaction_read_only" {
            return None;
        }
        match (value, by_client) {
            ("on", _) => Some(Vec::new()),
            (_, true) => Some(self.guard.recorder.session_start()),
            (_, false) => None,
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::wire::TxStatus;
    use std::time::Instant;

    fn at() -> Position {
        Position {
            tx_status: TxStatus::Idle,
            pipelined: false,
            batch_start: true,
            batch_ran: false,
        }
    }

    fn info() -> SessionInfo {
        SessionInfo {
            client_encoding: "UTF8".into(),
            ..SessionInfo::default()
        }
    }

    #[test]
    fn set_approval_is_held_for_the_next_statement_that_needs_it() {
        let settings = Settings {
            approval_secret: Some("k".into()),
            ..Settings::default()
        };
        let guard = Guard::new(&settings);
        let mut session = guard.session(&info());
        let token = crate::approval::Approval::new(
            "TRUNCATE logs".into(),
            SystemTime::now(),
            std::time::Duration::from_secs(60),
            "a".into(),
            None,
            false,
        )
        .mint(&Secret::new("k"));
        let set = session.on_query(&info(), at(), &format!("SET pgbelay.approval = '{token}'"));
        assert!(
            matches!(&set, Decision::Rewrite(p) if p.sql.as_deref() == Some("SET pgbelay.approval TO DEFAULT")),
            "{set:?}"
        );
        assert!(matches!(
            session.on_query(&info(), at(), "SELECT 1"),
            Decision::Forward
        ));
        let truncate = session.on_query(&info(), at(), "TRUNCATE logs");
        assert!(matches!(truncate, Decision::Rewrite(_)), "{truncate:?}");
        let again = session.on_query(&info(), at(), "TRUNCATE logs");
        assert!(matches!(again, Decision::Refuse(_)), "{again:?}");
    }

    #[test]
    fn a_session_remembers_analyses_per_dialect() {
        // With standard strings the backslash is a character and a DROP follows; without
        // them the backslash escapes the quote and all of it is one literal.
        let sql = r"SELECT 'a\'; DROP TABLE t; --'";
        let guard = Guard::new(&Settings::default());
        let mut session = guard.session(&info());
        let with = |standard_conforming_strings| SessionInfo {
            standard_conforming_strings,
            ..info()
        };
        for _ in 0..2 {
            let escaped = session.on_query(&with(false), at(), sql);
            assert!(matches!(escaped, Decision::Forward), "{escaped:?}");
            let standard = session.on_query(&with(true), at(), sql);
            assert!(matches!(standard, Decision::Refuse(_)), "{standard:?}");
        }
    }

    #[test]
    fn a_session_matches_remembered_shapes_exactly() {
        let guard = Guard::new(&Settings::default());
        let mut session = guard.session(&info());
        let mut query = |sql| session.on_query(&info(), at(), sql);
        assert_eq!(query("SELECT v FROM t WHERE id = 1"), Decision::Forward);
        assert_eq!(query("SELECT v FROM t WHERE id = 22"), Decision::Forward);
        // The remembered shape is its whole text: more after it, or a word changed
        // around the number, is judged on its own.
        for refused in [
            "SELECT v FROM t WHERE id = 2; DROP TABLE t",
            "SELECT v FROM t WHERE id = 2 UNION SELECT lo_unlink(2)",
            "SELECT lo_unlink(v) FROM t WHERE id = 2",
        ] {
            assert!(matches!(query(refused), Decision::Refuse(_)), "{refused}");
        }
        assert_eq!(query("SELECT v FROM t WHERE id = 333"), Decision::Forward);
    }

    #[test]
    fn sessions_track_prepared_statements() {
        let guard = Guard::new(&Settings::default());
        let mut s = guard.session(&info());
        assert_eq!(
            s.on_query(&info(), at(), "prepare p as select $1::int"),
            Decision::Forward
        );
        assert_eq!(s.on_query(&info(), at(), "execute p(1)"), Decision::Forward);
        // A driver's named Parse of a write is recorded; EXECUTE of it from SQL is not.
        assert!(matches!(
            s.on_parse(&info(), at(), "w", "insert into t values ($1)"),
            Decision::Rewrite(_)
        ));
        assert!(matches!(
            s.on_query(&info(), at(), "execute w(1)"),
            Decision::Refuse(_)
        ));
        // Another session does not see this one's statements.
        let mut other = guard.session(&info());
        assert!(matches!(
            other.on_query(&info(), at(), "execute p(1)"),
            Decision::Refuse(_)
        ));
        // A refused Query changes nothing: p stays prepared.
        assert!(matches!(
            s.on_query(&info(), at(), "deallocate p; drop table t"),
            Decision::Refuse(_)
        ));
        assert_eq!(s.on_query(&info(), at(), "execute p(2)"), Decision::Forward);
    }

    #[test]
    fn discard_all_forgets_prepared_statements_and_reset_all_keeps_them() {
        let guard = Guard::new(&Settings::default());
        let mut s = guard.session(&info());
        s.on_query(&info(), at(), "prepare p as select $1::int");
        s.on_parse(&info(), at(), "q", "select 1");
        assert!(matches!(
            s.on_query(&info(), at(), "reset all"),
            Decision::Rewrite(_)
        ));
        assert_eq!(s.on_query(&info(), at(), "execute q"), Decision::Forward);
        assert_eq!(s.on_bind(&info(), at(), "p"), Decision::Forward);
        assert!(matches!(
            s.on_query(&info(), at(), "discard all"),
            Decision::Rewrite(_)
        ));
        assert!(matches!(
            s.on_query(&info(), at(), "execute q"),
            Decision::Refuse(_)
        ));
        assert!(matches!(s.on_bind(&info(), at(), "p"), Decision::Refuse(_)));
    }

    #[test]
    fn refusal_is_an_error_response() {
        let guard = Guard::new(&Settings::default());
        let mut s = guard.session(&info());
        let Decision::Refuse(e) = s.on_parse(&info(), at(), "", "truncate t") else {
            panic!()
        };
        assert_eq!(
            e.code,
            crate::wire::sqlstate::SqlState::INSUFFICIENT_PRIVILEGE
        );
        let sjis = SessionInfo {
            client_encoding: "SJIS".into(),
            ..info()
        };
        assert!(matches!(
            s.on_query(&sjis, at(), "select 1"),
            Decision::Refuse(_)
        ));
    }

    /// Prints the cost of a cache hit and a miss (run with `--nocapture`); no assertions
    /// on timing.
    #[test]
    fn cache_hit_and_miss_cost() {
        let sql = "UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2";
        let guard = Guard::with_cache(&Settings::default(), 1024);
        let prepared = Prepared::new();
        let n = 2000;
        let start = Instant::now();
        for i in 0..n {
            // Distinct texts: every call parses.
            let _ = guard.judge(&format!("{sql} /* {i} */"), &info(), &prepared);
        }
        let miss = start.elapsed() / n;
        let _ = guard.judge(sql, &info(), &prepared);
        let start = Instant::now();
        for _ in 0..n {
            let _ = guard.judge(sql, &info(), &prepared);
        }
        let hit = start.elapsed() / n;
        println!("policy cache: miss (parse + judge) {miss:?}, hit (judge only) {hit:?}");
    }

    #[test]
    fn numeric_shapes_share_an_analysis_but_keep_their_text() {
        let guard = Guard::new(&Settings::default());
        let prepared = Prepared::new();
        let a = guard.judge("SELECT v FROM t WHERE id = 1", &info(), &prepared);
        let b = guard.judge("SELECT v FROM t WHERE id = 2", &info(), &prepared);
        assert_eq!(a.verdict, Verdict::Allow);
        assert_eq!(b.verdict, Verdict::Allow);
        assert_eq!(b.statements[0].text, "SELECT v FROM t WHERE id = 2");
        // A refused shape never stands for others, and numbers in EXPLAIN are not masked.
        let refused = guard.judge(
            "EXPLAIN (ANALYZE 1) DELETE FROM t WHERE id = 1",
            &info(),
            &prepared,
        );
        assert!(matches!(refused.verdict, Verdict::Refuse(_)));
        let _ = guard.judge(
            "EXPLAIN (ANALYZE 0) DELETE FROM t WHERE id = 1",
            &info(),
            &prepared,
        );
        let again = guard.judge(
            "EXPLAIN (ANALYZE 1) DELETE FROM t WHERE id = 2",
            &info(),
            &prepared,
        );
        assert!(matches!(again.verdict, Verdict::Refuse(_)));
        let lo = guard.judge("SELECT lo_unlink(5)", &info(), &prepared);
        assert!(matches!(lo.verdict, Verdict::Refuse(_)));
        let lo = guard.judge("SELECT lo_unlink(6)", &info(), &prepared);
        assert!(matches!(lo.verdict, Verdict::Refuse(_)));
    }
}
