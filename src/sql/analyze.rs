//! What one statement is and what it would do, read from its parse tree: the facts the
//! policy judges. This module says what a statement *does*; whether that is allowed is
//! `policy`'s business.

use pg_query::NodeRef;
use pg_query::protobuf::{
    self as pb, Node, ObjectType, VariableSetKind, a_const::Val, node::Node as N,
};

use super::parse::{Dialect, ParseError, RawStatement, parse};
use super::walk::{Step, walk};

/// A name as the parser read it: quotes removed, unquoted parts folded to lower case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct QualifiedName {
    /// Schema, when the statement names one; otherwise `search_path` decides.
    pub schema: Option<String>,
    /// Object name.
    pub name: String,
}

/// Prints the name as SQL would need it: parts that are not plain lower-case identifiers
/// are double-quoted, so `"a.b"` and `a.b` stay distinct.
impl std::fmt::Display for QualifiedName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(s) = &self.schema {
            write_ident(f, s)?;
            f.write_str(".")?;
        }
        write_ident(f, &self.name)
    }
}

fn write_ident(f: &mut std::fmt::Formatter<'_>, ident: &str) -> std::fmt::Result {
    let plain = ident
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && ident
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        f.write_str(ident)
    } else {
        write!(f, "\"{}\"", ident.replace('"', "\"\""))
    }
}

/// The kinds of statement that change rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteKind {
    /// INSERT.
    Insert,
    /// UPDATE.
    Update,
    /// DELETE.
    Delete,
    /// MERGE.
    Merge,
    /// COPY … FROM.
    CopyFrom,
}

/// One row-changing statement found in the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// What kind of write.
    pub kind: WriteKind,
    /// The table it changes.
    pub target: QualifiedName,
    /// UPDATE/DELETE: whether it has a WHERE (or WHERE CURRENT OF); true for the others.
    pub filtered: bool,
}

/// A change to a run-time setting, by `SET`, `RESET`, `set_config()` or a `SET` clause of
/// another statement (ALTER ROLE/DATABASE/SYSTEM, CREATE FUNCTION).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingChange {
    /// Which setting.
    pub name: SettingName,
    /// To what.
    pub value: SettingValue,
}

/// The setting a change names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettingName {
    /// One setting, lower-cased (setting names are case-insensitive).
    Named(String),
    /// `RESET ALL` / `DISCARD ALL`: every setting.
    All,
    /// `set_config()` with a name that is not a literal.
    Unknown,
}

/// The value a change sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettingValue {
    /// Literal values, as text (`SET search_path = a, b` has two).
    Literal(Vec<String>),
    /// `DEFAULT` or `RESET`: back to the session's default.
    Default,
    /// Not a literal (`set_config('x', $1, false)`).
    Unknown,
}

/// ALTER TABLE actions that matter to the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlterAction {
    /// Loses a column's data.
    DropColumn,
    /// Rewrites a column's data.
    AlterColumnType,
    /// Loses a constraint definition.
    DropConstraint,
    /// Loses a generated column's expression.
    DropExpression,
    /// `ALTER COLUMN … RESTART`: loses an identity column's sequence position.
    RestartIdentity,
    /// `INHERIT parent`: the parent's statements reach this table's rows from now on.
    Inherit,
    /// Anything that a later ALTER can undo.
    Other,
}

/// What the top of the statement is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// SELECT, VALUES, TABLE, SHOW, cursor commands, LISTEN/NOTIFY, EXPLAIN without
    /// ANALYZE, and maintenance that keeps data (VACUUM, ANALYZE, …).
    Read,
    /// INSERT / UPDATE / DELETE / MERGE / COPY FROM at the top of the statement.
    Write(WriteKind),
    /// `SELECT … INTO new_table`.
    SelectInto,
    /// `EXPLAIN ANALYZE` (runs the statement): the inner statement.
    ExplainAnalyze(Box<Kind>),
    /// COPY … TO STDOUT (of a table or a query).
    CopyTo,
    /// COPY to or from a file or program on the server.
    CopyServerSide,
    /// `PREPARE name AS …`: the prepared statement's own analysis.
    Prepare(String, Box<Statement>),
    /// `EXECUTE name`.
    Execute(String),
    /// `DEALLOCATE name`, or `None` for ALL.
    Deallocate(Option<String>),
    /// DDL that adds, or that a later DDL undoes (CREATE …, ALTER … ADD, RENAME, GRANT…).
    AdditiveDdl,
    /// `CREATE OR REPLACE` of an existing definition (the old one is lost).
    Replace,
    /// DROP of any object (also `DROP OWNED`, `REASSIGN OWNED`).
    Drop,
    /// TRUNCATE.
    Truncate,
    /// ALTER TABLE with these actions.
    AlterTable(Vec<AlterAction>),
    /// CREATE RULE.
    CreateRule,
    /// DO block.
    Do,
    /// CALL.
    Call,
    /// SET / RESET / DISCARD and other session state.
    SessionControl,
    /// BEGIN / COMMIT / ROLLBACK / SAVEPOINT …
    TransactionControl,
    /// PREPARE TRANSACTION / COMMIT PREPARED / ROLLBACK PREPARED: two-phase commit
    /// outlives the session.
    TwoPhase,
    /// DDL that renames, drops, disables or re-enables pgbelay's capture triggers
    /// (`pgbelay_capture_*`), by name or with `ALL` / `USER`: what it would do to them.
    CaptureTriggers(&'static str),
    /// `ALTER SEQUENCE … RESTART`: loses the sequence's position.
    SequenceRestart,
    /// `CREATE TABLE … INHERITS (parent)` (not a partition): the parent's statements
    /// reach the new table's rows, and undo cannot tell them from the parent's own.
    Inherits,
    /// A statement type pgbelay does not judge (refused: fail closed).
    Unsupported(&'static str),
}

/// One statement of a Query: its text, its kind, and everything it would do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// Source text of this statement.
    pub text: String,
    /// What the top of the statement is.
    pub kind: Kind,
    /// Every row change the statement would run, including the top one.
    pub writes: Vec<Write>,
    /// Every function the statement would call, as written (schema when given).
    pub functions: Vec<QualifiedName>,
    /// Every setting it would change.
    pub settings: Vec<SettingChange>,
    /// Every relation a DDL or write statement names, and every schema a DDL names (as a
    /// name with no schema), so the policy can protect the audit schema.
    pub touched: Vec<QualifiedName>,
    /// For DDL that evaluates expressions over rows as it runs, so may call any function
    /// (CREATE TABLE AS, REFRESH MATERIALIZED VIEW, ALTER TABLE, ALTER DOMAIN): the
    /// relations it fills or alters itself. `None` for everything else, DDL that runs none
    /// of the session's code included (index expressions must be IMMUTABLE, and
    /// PostgreSQL runs non-volatile functions read-only; CREATE EXTENSION runs the
    /// server's installed script).
    pub runs_user_code: Option<Vec<QualifiedName>>,
    /// A SELECT in it has a row-locking clause (PostgreSQL refuses those read-only).
    pub locks_rows: bool,
    /// For `BEGIN` / `START TRANSACTION`: the access mode it asks for.
    pub transaction_start: Option<super::TransactionStart>,
    /// `DISCARD ALL` or `RESET ALL` itself (not the `RESET ALL` of an ALTER ROLE /
    /// DATABASE): it puts every session setting back to its default, the guard's too.
    pub resets_session: Option<SessionReset>,
    /// `DECLARE … WITH HOLD`: the cursor's query runs (again, in full) when the
    /// transaction commits, to keep its rows past the end of the transaction.
    pub holds_cursor: bool,
}

/// A statement that puts the session's settings back to their defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionReset {
    /// `DISCARD ALL`: also drops every prepared statement (SQL and protocol-level named).
    DiscardAll,
    /// `RESET ALL`: the settings only.
    ResetAll,
}

/// Parses `sql` and analyses each of its statements.
pub fn analyze(sql: &str, dialect: Dialect) -> Result<Vec<Statement>, ParseError> {
    Ok(parse(sql, dialect)?
        .into_iter()
        .filter_map(|RawStatement { text, tree }| tree.map(|t| statement(text, &t)))
        .collect())
}

fn statement(text: &str, tree: &Node) -> Statement {
    let mut s = Statement {
        text: text.to_string(),
        kind: Kind::Read,
        writes: Vec::new(),
        functions: Vec::new(),
        settings: Vec::new(),
        touched: Vec::new(),
        runs_user_code: None,
        locks_rows: super::parse::locks(tree),
        transaction_start: super::parse::transaction_start(tree),
        resets_session: resets_session(tree),
        holds_cursor: holds_cursor(tree),
    };
    if let Some(n) = &tree.node {
        s.kind = kind(n, &mut s);
        s.runs_user_code = runs_user_code(n);
    }
    collect(tree, &mut s);
    if !matches!(s.kind, Kind::Read | Kind::SessionControl) {
        touched(tree, &mut s.touched);
    }
    s
}

/// `DECLARE … WITH HOLD` at the top of a statement.
fn holds_cursor(tree: &Node) -> bool {
    /// PostgreSQL's `CURSOR_OPT_HOLD` (parsenodes.h).
    const CURSOR_OPT_HOLD: i32 = 0x0020;
    matches!(&tree.node, Some(N::DeclareCursorStmt(d)) if d.options & CURSOR_OPT_HOLD != 0)
}

/// `DISCARD ALL` or `RESET ALL` at the top of a statement.
fn resets_session(tree: &Node) -> Option<SessionReset> {
    match &tree.node {
        Some(N::DiscardStmt(d)) if d.target == pb::DiscardMode::DiscardAll as i32 => {
            Some(SessionReset::DiscardAll)
        }
        Some(N::VariableSetStmt(v))
            if VariableSetKind::try_from(v.kind) == Ok(VariableSetKind::VarResetAll) =>
        {
            Some(SessionReset::ResetAll)
        }
        _ => None,
    }
}

/// Whether reads must run without the read-only guard because they lock rows: every
/// statement has a locking clause (with one that does not, that one would run unguarded
/// too). A missed lock only makes the read fail read-only (25006).
pub fn locks_rows(statements: &[Statement]) -> bool {
    !statements.is_empty() && statements.iter().all(|s| s.locks_rows)
}

/// How DDL statements run, as the guard needs to know: `None` when none of them runs
/// the session's code (the read-only default may be switched off around them); else the
/// relations they fill or alter themselves, which the hidden-write check leaves out.
/// Anything not plainly DDL here (EXECUTE of a prepared statement) counts as running code.
pub fn ddl_user_code(statements: &[Statement]) -> Option<Vec<QualifiedName>> {
    let direct = !statements.is_empty()
        && statements
            .iter()
            .all(|s| matches!(s.kind, Kind::AdditiveDdl | Kind::AlterTable(_)));
    let runs = statements.iter().any(|s| s.runs_user_code.is_some());
    (!direct || runs).then(|| {
        statements
            .iter()
            .filter_map(|s| s.runs_user_code.as_deref())
            .flatten()
            .cloned()
            .collect()
    })
}

/// See [`Statement::runs_user_code`].
fn runs_user_code(n: &N) -> Option<Vec<QualifiedName>> {
    let own = |rel: Option<&pb::RangeVar>| rel.map(range_var).into_iter().collect();
    match n {
        N::CreateTableAsStmt(c) => Some(own(c.into.as_ref().and_then(|i| i.rel.as_ref()))),
        N::RefreshMatViewStmt(r) => Some(own(r.relation.as_ref())),
        N::AlterTableStmt(a) => Some(own(a.relation.as_ref())),
        N::AlterDomainStmt(_) => Some(Vec::new()),
        // An index on expressions or with a predicate evaluates them over every row, and an
        // IMMUTABLE function there may call any other. (CONCURRENTLY cannot run in the
        // transaction the check needs: left unchecked.)
        N::IndexStmt(i)
            if !i.concurrent
                && (i.where_clause.is_some()
                    || i.index_params
                        .iter()
                        .any(|p| matches!(&p.node, Some(N::IndexElem(e)) if e.expr.is_some()))) =>
        {
            Some(Vec::new())
        }
        _ => None,
    }
}

/// The top-level kind; PREPARE and EXPLAIN recurse into their statement.
fn kind(n: &N, s: &mut Statement) -> Kind {
    use Kind as K;
    match n {
        N::SelectStmt(sel) if leftmost(sel).into_clause.is_some() => K::SelectInto,
        N::SelectStmt(_) | N::VariableShowStmt(_) => K::Read,
        N::InsertStmt(_) => K::Write(WriteKind::Insert),
        N::UpdateStmt(_) => K::Write(WriteKind::Update),
        N::DeleteStmt(_) => K::Write(WriteKind::Delete),
        N::MergeStmt(_) => K::Write(WriteKind::Merge),
        N::CopyStmt(c) if c.is_program || !c.filename.is_empty() => K::CopyServerSide,
        N::CopyStmt(c) if c.is_from => K::Write(WriteKind::CopyFrom),
        N::CopyStmt(_) => K::CopyTo,
        N::ExplainStmt(e) if explain_analyzes(e) => {
            match e.query.as_ref().and_then(|q| q.node.as_ref()) {
                Some(inner) => K::ExplainAnalyze(Box::new(kind(inner, s))),
                None => K::Read,
            }
        }
        N::ExplainStmt(_) => K::Read,
        N::PrepareStmt(p) => {
            let inner = p.query.as_deref().map(|q| statement(&s.text, q));
            match inner {
                Some(inner) => K::Prepare(p.name.clone(), Box::new(inner)),
                None => K::Unsupported("PREPARE without a statement"),
            }
        }
        N::ExecuteStmt(e) => K::Execute(e.name.clone()),
        N::DeallocateStmt(d) if d.isall => K::Deallocate(None),
        N::DeallocateStmt(d) => K::Deallocate(Some(d.name.clone())),
        N::VariableSetStmt(_)
        | N::DiscardStmt(_)
        | N::ListenStmt(_)
        | N::UnlistenStmt(_)
        | N::NotifyStmt(_) => K::SessionControl,
        N::AlterSystemStmt(_) | N::AlterDatabaseSetStmt(_) | N::AlterRoleSetStmt(_) => {
            K::SessionControl
        }
        N::TransactionStmt(t) => transaction_kind(t),
        N::DeclareCursorStmt(_)
        | N::FetchStmt(_)
        | N::ClosePortalStmt(_)
        | N::LockStmt(_)
        | N::VacuumStmt(_)
        | N::CheckPointStmt(_)
        | N::ConstraintsSetStmt(_) => K::Read,
        N::ReindexStmt(_) | N::ClusterStmt(_) => K::Read,
        _ => match capture_triggers(n) {
            Some(what) => K::CaptureTriggers(what),
            None => ddl_kind(n),
        },
    }
}

/// The prefix of the triggers pgbelay puts on every table it records.
const CAPTURE_TRIGGER_PREFIX: &str = "pgbelay_capture_";

/// What DDL would do to pgbelay's capture triggers, if anything. Renamed, one would run
/// beside the copy pgbelay recreates (every write recorded twice); dropped or disabled,
/// writes go unrecorded; `ENABLE TRIGGER` takes away the `ALWAYS` that keeps them firing
/// under `session_replication_role = replica`. `ALL` and `USER` include them (and `ALL`
/// the foreign keys' triggers).
fn capture_triggers(n: &N) -> Option<&'static str> {
    use pb::AlterTableType as A;
    let ours = |name: &str| name.starts_with(CAPTURE_TRIGGER_PREFIX);
    let trigger = ObjectType::ObjectTrigger as i32;
    match n {
        N::RenameStmt(r) if r.rename_type == trigger && ours(&r.subname) => Some("renames"),
        N::DropStmt(d)
            if d.remove_type == trigger
                && d.objects.iter().any(|o| match &o.node {
                    Some(N::List(l)) => l.items.last().is_some_and(
                        |i| matches!(&i.node, Some(N::String(name)) if ours(&name.sval)),
                    ),
                    _ => false,
                }) =>
        {
            Some("drops")
        }
        N::AlterTableStmt(a) => a.cmds.iter().find_map(|cmd| {
            let Some(N::AlterTableCmd(c)) = &cmd.node else {
                return None;
            };
            match A::try_from(c.subtype) {
                Ok(A::AtDisableTrigAll | A::AtDisableTrigUser) => Some("disables"),
                Ok(A::AtEnableTrigAll | A::AtEnableTrigUser) => Some("re-enables"),
                Ok(A::AtDisableTrig) if ours(&c.name) => Some("disables"),
                Ok(A::AtEnableTrig | A::AtEnableAlwaysTrig | A::AtEnableReplicaTrig)
                    if ours(&c.name) =>
                {
                    Some("re-enables")
                }
                _ => None,
            }
        }),
        _ => None,
    }
}

/// The SELECT whose INTO counts: PostgreSQL takes it from the leftmost branch of a set
/// operation (`transformOptionalSelectInto`), so `SELECT 1 INTO t UNION SELECT 2` is a
/// SELECT INTO although the top node has no INTO.
fn leftmost(sel: &pb::SelectStmt) -> &pb::SelectStmt {
    let mut sel = sel;
    while let Some(larg) = sel.larg.as_deref() {
        sel = larg;
    }
    sel
}

/// DDL and the other statements that change definitions rather than rows. Anything not
/// listed (LOAD, CREATE TABLESPACE, SECURITY LABEL, …) is unsupported, so refused.
fn ddl_kind(n: &N) -> Kind {
    use Kind as K;
    match n {
        // REFRESH replaces a materialized view's rows (PostgreSQL refuses it in a read-only
        // transaction), recomputed from its query like CREATE MATERIALIZED VIEW.
        N::CreateTableAsStmt(_) | N::RefreshMatViewStmt(_) => K::AdditiveDdl,
        N::CreateStmt(c) if !c.inh_relations.is_empty() && c.partbound.is_none() => K::Inherits,
        N::CreateStmt(_)
        | N::IndexStmt(_)
        | N::CreateSchemaStmt(_)
        | N::CreateSeqStmt(_)
        | N::CreateDomainStmt(_)
        | N::CompositeTypeStmt(_)
        | N::CreateEnumStmt(_)
        | N::CreateRangeStmt(_)
        | N::AlterEnumStmt(_)
        | N::CreateExtensionStmt(_)
        | N::CreateRoleStmt(_)
        | N::AlterRoleStmt(_)
        | N::GrantStmt(_)
        | N::GrantRoleStmt(_)
        | N::AlterDefaultPrivilegesStmt(_)
        | N::CommentStmt(_)
        | N::RenameStmt(_)
        | N::AlterObjectSchemaStmt(_)
        | N::AlterOwnerStmt(_)
        | N::CreateStatsStmt(_)
        | N::CreatePolicyStmt(_)
        | N::CreateEventTrigStmt(_)
        | N::AlterDomainStmt(_)
        | N::DefineStmt(_)
        | N::CreatedbStmt(_)
        | N::AlterFunctionStmt(_) => K::AdditiveDdl,
        N::ViewStmt(v) if v.replace => K::Replace,
        N::CreateFunctionStmt(f) if f.replace => K::Replace,
        N::CreateTrigStmt(t) if t.replace => K::Replace,
        N::ViewStmt(_) | N::CreateFunctionStmt(_) | N::CreateTrigStmt(_) => K::AdditiveDdl,
        N::AlterTableStmt(a) => K::AlterTable(a.cmds.iter().filter_map(alter_action).collect()),
        N::AlterSeqStmt(a) if restarts(&a.options) => K::SequenceRestart,
        N::AlterSeqStmt(_) => K::AdditiveDdl,
        N::DropStmt(_)
        | N::DropOwnedStmt(_)
        | N::DropRoleStmt(_)
        | N::DropdbStmt(_)
        | N::DropTableSpaceStmt(_)
        | N::DropSubscriptionStmt(_)
        | N::DropUserMappingStmt(_) => K::Drop,
        N::TruncateStmt(_) => K::Truncate,
        N::RuleStmt(_) => K::CreateRule,
        N::DoStmt(_) => K::Do,
        N::CallStmt(_) => K::Call,
        _ => K::Unsupported(unsupported_name(n)),
    }
}

/// What a refusal calls a statement type pgbelay does not judge.
fn unsupported_name(n: &N) -> &'static str {
    match n {
        N::SecLabelStmt(_) => "SECURITY LABEL statements",
        N::AlterEventTrigStmt(_) => "ALTER EVENT TRIGGER statements",
        N::ReassignOwnedStmt(_) => "REASSIGN OWNED statements",
        N::LoadStmt(_) => "LOAD statements",
        N::CreateTableSpaceStmt(_) => "CREATE TABLESPACE statements",
        N::AlterTableSpaceOptionsStmt(_) => "ALTER TABLESPACE statements",
        N::AlterTableMoveAllStmt(_) => "ALTER … ALL IN TABLESPACE statements",
        N::CreateFdwStmt(_) | N::AlterFdwStmt(_) => "foreign-data wrapper statements",
        N::CreateForeignServerStmt(_) | N::AlterForeignServerStmt(_) => "foreign server statements",
        N::CreateUserMappingStmt(_) | N::AlterUserMappingStmt(_) => "user mapping statements",
        N::CreateForeignTableStmt(_) | N::ImportForeignSchemaStmt(_) => "foreign table statements",
        N::CreatePublicationStmt(_) | N::AlterPublicationStmt(_) => "publication statements",
        N::CreateSubscriptionStmt(_) | N::AlterSubscriptionStmt(_) => "subscription statements",
        N::AlterDatabaseStmt(_) | N::AlterDatabaseRefreshCollStmt(_) => "ALTER DATABASE statements",
        N::AlterExtensionStmt(_) | N::AlterExtensionContentsStmt(_) => "ALTER EXTENSION statements",
        N::AlterObjectDependsStmt(_) => "ALTER … DEPENDS ON EXTENSION statements",
        N::AlterTypeStmt(_) | N::AlterOperatorStmt(_) => "ALTER TYPE / OPERATOR statements",
        N::AlterPolicyStmt(_) => "ALTER POLICY statements",
        N::AlterStatsStmt(_) => "ALTER STATISTICS statements",
        N::AlterCollationStmt(_) => "ALTER COLLATION statements",
        N::CreateCastStmt(_)
        | N::CreateConversionStmt(_)
        | N::CreateOpClassStmt(_)
        | N::CreateOpFamilyStmt(_)
        | N::AlterOpFamilyStmt(_)
        | N::CreatePlangStmt(_)
        | N::CreateTransformStmt(_)
        | N::CreateAmStmt(_) => {
            "this kind of CREATE statement (cast, conversion, operator class, language, transform, access method)"
        }
        N::AlterTsdictionaryStmt(_) | N::AlterTsconfigurationStmt(_) => {
            "text search configuration statements"
        }
        _ => "this kind of statement",
    }
}

fn transaction_kind(t: &pb::TransactionStmt) -> Kind {
    use pb::TransactionStmtKind as T;
    match T::try_from(t.kind) {
        Ok(T::TransStmtPrepare | T::TransStmtCommitPrepared | T::TransStmtRollbackPrepared) => {
            Kind::TwoPhase
        }
        Ok(_) => Kind::TransactionControl,
        Err(_) => Kind::Unsupported("this transaction statement"),
    }
}

fn alter_action(cmd: &Node) -> Option<AlterAction> {
    use pb::AlterTableType as A;
    let Some(N::AlterTableCmd(c)) = &cmd.node else {
        return None;
    };
    Some(match A::try_from(c.subtype) {
        Ok(A::AtDropColumn) => AlterAction::DropColumn,
        Ok(A::AtAlterColumnType) => AlterAction::AlterColumnType,
        Ok(A::AtDropConstraint) => AlterAction::DropConstraint,
        Ok(A::AtDropExpression) => AlterAction::DropExpression,
        Ok(A::AtAddInherit) => AlterAction::Inherit,
        Ok(A::AtSetIdentity) if matches!(c.def.as_deref().and_then(|d| d.node.as_ref()), Some(N::List(l)) if restarts(&l.items)) => {
            AlterAction::RestartIdentity
        }
        _ => AlterAction::Other,
    })
}

/// Sequence options with `RESTART [WITH n]`: the old position is lost (the next value
/// may collide with rows already there), and no record can say what it was.
fn restarts(options: &[Node]) -> bool {
    options
        .iter()
        .any(|o| matches!(&o.node, Some(N::DefElem(d)) if d.defname == "restart"))
}

/// `EXPLAIN ANALYZE x` or `EXPLAIN (ANALYZE [true|on|1…]) x`; `ANALYZE false/off/0` does not run x.
fn explain_analyzes(e: &pb::ExplainStmt) -> bool {
    e.options.iter().any(|o| match &o.node {
        Some(N::DefElem(d)) if d.defname == "analyze" => {
            match d.arg.as_deref().and_then(|a| a.node.as_ref()) {
                None => true,
                Some(arg) => match literal(arg) {
                    Some(v) => !matches!(
                        v.to_ascii_lowercase().as_str(),
                        "false" | "off" | "0" | "no" | "f" | "n"
                    ),
                    None => true,
                },
            }
        }
        _ => false,
    })
}

/// Walks the tree for what would execute: writes, function calls, setting changes.
fn collect(tree: &Node, s: &mut Statement) {
    let mut writes = Vec::new();
    let mut functions = Vec::new();
    let mut settings = Vec::new();
    walk(tree, &mut |n| {
        match n {
            // Not run: EXPLAIN only plans; PREPARE's statement is analysed on its own.
            NodeRef::ExplainStmt(e) if !explain_analyzes(e) => return Step::Skip,
            NodeRef::PrepareStmt(_) => return Step::Skip,
            // A rule's actions run when a later statement fires it.
            NodeRef::RuleStmt(_) => return Step::Skip,
            // A function body runs later, under its own checks; its SET clauses stay.
            NodeRef::CreateFunctionStmt(f) => {
                walk(&f.options, &mut |n| {
                    if let NodeRef::VariableSetStmt(v) = n {
                        settings.push(set_stmt(v));
                    }
                    Step::Into
                });
                return Step::Skip;
            }
            NodeRef::InsertStmt(i) => {
                writes.push(write(WriteKind::Insert, i.relation.as_ref(), true))
            }
            NodeRef::UpdateStmt(u) => writes.push(write(
                WriteKind::Update,
                u.relation.as_ref(),
                u.where_clause.is_some(),
            )),
            NodeRef::DeleteStmt(d) => writes.push(write(
                WriteKind::Delete,
                d.relation.as_ref(),
                d.where_clause.is_some(),
            )),
            NodeRef::MergeStmt(m) => {
                writes.push(write(WriteKind::Merge, m.relation.as_ref(), true))
            }
            NodeRef::CopyStmt(c) if c.is_from => {
                writes.push(write(WriteKind::CopyFrom, c.relation.as_ref(), true))
            }
            NodeRef::VariableSetStmt(v) => settings.push(set_stmt(v)),
            NodeRef::DiscardStmt(d) if d.target == pb::DiscardMode::DiscardAll as i32 => {
                settings.push(SettingChange {
                    name: SettingName::All,
                    value: SettingValue::Default,
                });
            }
            NodeRef::FuncCall(f) => {
                let name = func_name(&f.funcname);
                if let Some(change) = set_config(&name, &f.args) {
                    settings.push(change);
                }
                functions.push(name);
            }
            _ => {}
        }
        Step::Into
    });
    s.writes = writes;
    s.functions = functions;
    s.settings = settings;
}

fn write(kind: WriteKind, rel: Option<&pb::RangeVar>, filtered: bool) -> Write {
    Write {
        kind,
        target: rel.map(range_var).unwrap_or_else(|| QualifiedName {
            schema: None,
            name: String::new(),
        }),
        filtered,
    }
}

pub(super) fn range_var(r: &pb::RangeVar) -> QualifiedName {
    QualifiedName {
        schema: (!r.schemaname.is_empty()).then(|| r.schemaname.clone()),
        name: r.relname.clone(),
    }
}

/// A dotted name from a list of String nodes (`pg_catalog.lo_unlink` → schema + name).
/// `schema.name` from the first two of a list of names (`schema.table.column` gives the
/// table), or a bare name.
fn qualified_prefix(parts: &[Node]) -> QualifiedName {
    match parts {
        [_, _, ..] => func_name(&parts[..2]),
        _ => func_name(parts),
    }
}

pub(super) fn func_name(parts: &[Node]) -> QualifiedName {
    let parts: Vec<&str> = parts
        .iter()
        .filter_map(|p| match &p.node {
            Some(N::String(s)) => Some(s.sval.as_str()),
            _ => None,
        })
        .collect();
    match parts.as_slice() {
        [.., schema, name] => QualifiedName {
            schema: Some((*schema).to_string()),
            name: (*name).to_string(),
        },
        [name] => QualifiedName {
            schema: None,
            name: (*name).to_string(),
        },
        [] => QualifiedName {
            schema: None,
            name: String::new(),
        },
    }
}

/// `set_config(name, value, is_local)` changes a setting like SET does.
fn set_config(name: &QualifiedName, args: &[Node]) -> Option<SettingChange> {
    if name.name != "set_config" || name.schema.as_deref().is_some_and(|s| s != "pg_catalog") {
        return None;
    }
    let text = |i: usize| args.get(i).and_then(|a| a.node.as_ref()).and_then(literal);
    Some(SettingChange {
        name: text(0).map_or(SettingName::Unknown, |n| {
            SettingName::Named(n.to_ascii_lowercase())
        }),
        value: text(1).map_or(SettingValue::Unknown, |v| SettingValue::Literal(vec![v])),
    })
}

fn set_stmt(v: &pb::VariableSetStmt) -> SettingChange {
    use VariableSetKind as V;
    let named = |n: &str| SettingName::Named(n.to_ascii_lowercase());
    match V::try_from(v.kind) {
        Ok(V::VarResetAll) => SettingChange {
            name: SettingName::All,
            value: SettingValue::Default,
        },
        Ok(V::VarReset | V::VarSetDefault) => SettingChange {
            name: named(&v.name),
            value: SettingValue::Default,
        },
        Ok(V::VarSetValue) => {
            let values: Option<Vec<String>> = v
                .args
                .iter()
                .map(|a| a.node.as_ref().and_then(literal))
                .collect();
            SettingChange {
                name: named(&v.name),
                value: values.map_or(SettingValue::Unknown, SettingValue::Literal),
            }
        }
        // SET TRANSACTION … / SET SESSION CHARACTERISTICS AS TRANSACTION …: a list of
        // `transaction_*` options; for the session they set the `default_` settings.
        Ok(V::VarSetMulti) => {
            let prefix = if v.name == "SESSION CHARACTERISTICS" {
                "default_"
            } else {
                ""
            };
            let mut read_only = None;
            for a in &v.args {
                if let Some(N::DefElem(d)) = &a.node {
                    if d.defname == "transaction_read_only" {
                        read_only = Some(
                            d.arg
                                .as_deref()
                                .and_then(|a| a.node.as_ref())
                                .and_then(literal),
                        );
                    }
                }
            }
            match read_only {
                Some(value) => SettingChange {
                    name: named(&format!("{prefix}transaction_read_only")),
                    value: value.map_or(SettingValue::Unknown, |v| SettingValue::Literal(vec![v])),
                },
                None => SettingChange {
                    name: named(&format!("{prefix}transaction_isolation")),
                    value: SettingValue::Unknown,
                },
            }
        }
        // SET x FROM CURRENT, or a kind this build does not know.
        _ => SettingChange {
            name: named(&v.name),
            value: SettingValue::Unknown,
        },
    }
}

/// The text of a constant (`'x'`, `1`, `true`, `'x'::text`), or `None` for anything else.
fn literal(n: &N) -> Option<String> {
    match n {
        N::AConst(c) => match &c.val {
            Some(Val::Sval(s)) => Some(s.sval.clone()),
            Some(Val::Ival(i)) => Some(i.ival.to_string()),
            Some(Val::Fval(f)) => Some(f.fval.clone()),
            Some(Val::Boolval(b)) => Some(if b.boolval { "on" } else { "off" }.to_string()),
            Some(Val::Bsval(_)) | None => None,
        },
        N::TypeCast(t) => t
            .arg
            .as_deref()
            .and_then(|a| a.node.as_ref())
            .and_then(literal),
        N::String(s) => Some(s.sval.clone()),
        N::Integer(i) => Some(i.ival.to_string()),
        N::Boolean(b) => Some(if b.boolval { "on" } else { "off" }.to_string()),
        _ => None,
    }
}

/// Every relation and schema a non-read statement names.
fn touched(tree: &Node, out: &mut Vec<QualifiedName>) {
    let schema = |name: &str| QualifiedName {
        schema: None,
        name: name.to_string(),
    };
    walk(tree, &mut |n| {
        match n {
            NodeRef::RangeVar(r) => out.push(range_var(r)),
            NodeRef::CreateSchemaStmt(c) => out.push(schema(&c.schemaname)),
            NodeRef::DropStmt(d) => {
                // A trigger, policy or rule is named `[schema.]table.name`: its table counts.
                let on_table = [
                    ObjectType::ObjectTrigger,
                    ObjectType::ObjectPolicy,
                    ObjectType::ObjectRule,
                ]
                .iter()
                .any(|t| *t as i32 == d.remove_type);
                for o in &d.objects {
                    match &o.node {
                        Some(N::List(l)) if on_table && l.items.len() > 1 => {
                            out.push(func_name(&l.items[..l.items.len() - 1]));
                        }
                        Some(N::List(l)) => out.push(func_name(&l.items)),
                        Some(N::String(s)) => out.push(schema(&s.sval)),
                        Some(N::TypeName(t)) => out.push(func_name(&t.names)),
                        Some(N::ObjectWithArgs(f)) => out.push(func_name(&f.objname)),
                        _ => {}
                    }
                }
            }
            NodeRef::RenameStmt(r) if r.rename_type == ObjectType::ObjectSchema as i32 => {
                out.push(schema(&r.subname));
                out.push(schema(&r.newname));
            }
            NodeRef::AlterObjectSchemaStmt(a) => out.push(schema(&a.newschema)),
            // COMMENT ON names its object without a RangeVar: a schema as a bare string, a
            // table, column, function, … as a list of names whose first is the schema when
            // it is qualified (a column's last is the column).
            NodeRef::CommentStmt(c) => match c.object.as_deref().and_then(|o| o.node.as_ref()) {
                Some(N::String(s)) => out.push(schema(&s.sval)),
                Some(N::List(l)) => out.push(qualified_prefix(&l.items)),
                Some(N::TypeName(t)) => out.push(func_name(&t.names)),
                Some(N::ObjectWithArgs(f)) => out.push(func_name(&f.objname)),
                _ => {}
            },
            // GRANT … ON SCHEMA s / ON ALL TABLES IN SCHEMA s name schemas as bare strings.
            NodeRef::GrantStmt(g) => {
                for o in &g.objects {
                    if let Some(N::String(s)) = &o.node {
                        out.push(schema(&s.sval));
                    }
                }
            }
            _ => {}
        }
        Step::Into
    });
}

#[cfg(test)]
mod test {
    use super::*;

    fn locking(sql: &str, d: Dialect) -> bool {
        analyze(sql, d).is_ok_and(|s| locks_rows(&s))
    }

    #[test]
    fn locking_clauses_come_from_the_tree() {
        let d = Dialect::default();
        let off = Dialect {
            standard_conforming_strings: false,
        };
        assert!(locking("SELECT * FROM t WHERE id = 1 FOR UPDATE", d));
        assert!(locking("select 1 from t for no key update skip locked", d));
        assert!(locking("SELECT 1 FROM t FOR KEY SHARE OF t", d));
        assert!(locking("SELECT 1 FROM (SELECT * FROM t FOR SHARE) x", d));
        assert!(!locking("SELECT substring('abc' FROM 1 FOR 2)", d));
        assert!(!locking("SELECT 'for update'", d));
        assert!(!locking("  ", d));
        // Lock-like tokens that are no locking clause.
        assert!(!locking(
            "select pg_sleep(1), substring(s FROM 1 FOR update) from (select 'abc' s, 2 \"update\") x",
            d
        ));
        // Where a literal ends depends on the session's dialect.
        assert!(locking(r"SELECT f(), '\' FROM t FOR UPDATE --'", d));
        assert!(!locking(r"SELECT f(), '\' FROM t FOR UPDATE --'", off));
        assert!(locking("SELECT f(), 'x' FROM t FOR UPDATE -- '", d));
        // Every statement must lock: the other would run unguarded too.
        assert!(!locking("SELECT 1 FROM t FOR UPDATE; SELECT f()", d));
    }

    /// The relations DDL that runs user code fills, as the guard gets them (`None`: does
    /// not parse).
    fn ddl_targets(sql: &str, d: Dialect) -> Option<Vec<QualifiedName>> {
        Some(ddl_user_code(&analyze(sql, d).ok()?).unwrap_or_default())
    }

    /// Whether the guard may run `sql` with the read-only default switched off.
    fn ddl_runs_no_user_code(sql: &str, d: Dialect) -> bool {
        analyze(sql, d).is_ok_and(|statements| ddl_user_code(&statements).is_none())
    }

    #[test]
    fn ddl_targets_are_the_relations_it_fills() {
        let d = Dialect::default();
        let names = |sql| {
            ddl_targets(sql, d).map(|t| t.iter().map(ToString::to_string).collect::<Vec<_>>())
        };
        assert_eq!(
            names(
                "CREATE TABLE s.\"New\" AS SELECT 1; REFRESH MATERIALIZED VIEW m; ALTER TABLE t ADD c int"
            ),
            Some(vec![
                "s.\"New\"".to_string(),
                "m".to_string(),
                "t".to_string()
            ])
        );
        assert_eq!(names("CREATE INDEX ON t (c)"), Some(vec![]));
        assert_eq!(names("CREATE TABLE ("), None);
    }

    #[test]
    fn ddl_that_runs_no_user_code() {
        let d = Dialect::default();
        for sql in [
            "CREATE TABLE t (id int DEFAULT f())",
            "CREATE INDEX CONCURRENTLY i ON t (lower(v))",
            "CREATE VIEW v AS SELECT f()",
            "GRANT SELECT ON t TO r; COMMENT ON TABLE t IS 'x'",
            "CREATE EXTENSION x",
        ] {
            assert!(ddl_runs_no_user_code(sql, d), "{sql}");
        }
        for sql in [
            "CREATE TABLE t AS SELECT f()",
            "REFRESH MATERIALIZED VIEW m",
            "ALTER TABLE t ADD COLUMN c int DEFAULT f()",
            "CREATE TABLE t (id int); SELECT f()",
            "CREATE TABLE (",
            "",
        ] {
            assert!(!ddl_runs_no_user_code(sql, d), "{sql}");
        }
    }
}
