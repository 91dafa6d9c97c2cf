//! From the facts `sql` found to a [`StatementClass`]: the rules of SPEC §B4.

use crate::sql::{AlterAction, Kind, QualifiedName, Statement, WriteKind};

use super::class::{IrreversibleKind as I, StatementClass as C};
use super::{Context, Prepared, functions, settings};

/// Classifies one statement. `prepared` holds the session's prepared statements as they
/// stand when this statement runs.
pub(crate) fn classify(s: &Statement, ctx: &Context<'_>, prepared: &Prepared) -> C {
    // It changes every setting, the guard's too; the guard sets them again after it.
    if s.resets_session.is_some() {
        return C::ResetSession;
    }
    if let Some(refused) = guarded(s, ctx) {
        return C::Irreversible(refused);
    }
    // Its query runs again at COMMIT, read-write, to keep the rows past the transaction.
    if s.holds_cursor {
        return C::Irreversible(I::Unrecordable(super::class::Unrecordable::HoldCursor));
    }
    let first_write = s.writes.first().map(|w| w.kind);
    let class = match (&s.kind, first_write) {
        (Kind::Write(_), _) => return write(s),
        (Kind::ExplainAnalyze(_), Some(k)) => I::ExplainAnalyzeWrite(k),
        (Kind::CopyTo, Some(k)) => I::CopyWrite(k),
        (Kind::SelectInto, _) => I::SelectInto,
        (Kind::CopyServerSide, _) => I::ServerSideCopy,
        (Kind::Prepare(..), _) => return prepare(s, ctx, prepared),
        (_, Some(k)) => I::HiddenWrite(k),
        (kind, None) => return by_kind(kind, prepared),
    };
    C::Irreversible(class)
}

/// Guard settings, destructive functions, the audit schema: refused whatever the kind.
fn guarded(s: &Statement, ctx: &Context<'_>) -> Option<I> {
    // Built only for a statement that sets something or is no plain read.
    let audit = std::cell::OnceCell::new();
    let audit = || audit.get_or_init(|| ctx.audit_schemas());
    for change in &s.settings {
        match settings::check(change, audit()) {
            Some(settings::GuardBreach::Guard(name, _)) => return Some(I::GuardSetting(name)),
            Some(settings::GuardBreach::Encoding(e)) => return Some(I::Encoding(e)),
            None => {}
        }
    }
    if let Some((name, _)) = s.functions.iter().find_map(functions::destructive) {
        return Some(I::DestructiveFunction((*name).to_string()));
    }
    let in_audit = |q: &QualifiedName| match &q.schema {
        Some(schema) => audit().contains(schema),
        // A bare name in a DDL may be a schema (DROP SCHEMA pgbelay): erring safe.
        None => audit().contains(&q.name),
    };
    let hit = match &s.kind {
        Kind::Read | Kind::CopyTo | Kind::SessionControl | Kind::TransactionControl => None,
        Kind::Write(_) => s
            .writes
            .iter()
            .map(|w| &w.target)
            .find(|t| t.schema.as_ref().is_some_and(|sc| audit().contains(sc))),
        _ => s.touched.iter().find(|q| in_audit(q)),
    };
    if let Some(q) = hit {
        return Some(I::AuditSchema(
            q.schema.clone().unwrap_or_else(|| q.name.clone()),
        ));
    }
    None
}

/// A top-level INSERT / UPDATE / DELETE / MERGE / COPY FROM.
fn write(s: &Statement) -> C {
    match s.writes.as_slice() {
        [w] if w.kind == WriteKind::Merge => C::Irreversible(I::Merge),
        [w] if !w.filtered => C::Irreversible(I::Unfiltered(w.kind)),
        [w] => C::Write(w.kind, w.target.clone()),
        // A data-modifying CTE under the top write: report the nested one.
        [.., w] => C::Irreversible(I::HiddenWrite(w.kind)),
        [] => C::Irreversible(I::Unsupported("a write without a target table".into())),
    }
}

fn prepare(s: &Statement, ctx: &Context<'_>, prepared: &Prepared) -> C {
    let Kind::Prepare(_, inner) = &s.kind else {
        return C::SessionControl;
    };
    match classify(inner, ctx, prepared) {
        C::Write(k, _) => C::Irreversible(I::PrepareWrite(k)),
        C::Irreversible(k) => C::Irreversible(k),
        _ => C::SessionControl,
    }
}

/// Statements with no writes inside, by their kind.
fn by_kind(kind: &Kind, prepared: &Prepared) -> C {
    let refused = match kind {
        Kind::Read | Kind::CopyTo => return C::Read,
        Kind::AdditiveDdl => return C::AdditiveDdl,
        Kind::SessionControl | Kind::Deallocate(_) => return C::SessionControl,
        Kind::TransactionControl => return C::TransactionControl,
        Kind::ExplainAnalyze(inner) => return by_kind(inner, prepared),
        Kind::Execute(name) => match prepared.get(name) {
            Some(C::Write(k, _)) => I::ExecuteWrite(*k),
            Some(class) => return class.clone(),
            None => I::UnknownPrepared(name.clone()),
        },
        Kind::AlterTable(actions) => match actions.iter().find(|a| **a != AlterAction::Other) {
            Some(AlterAction::DropColumn) => I::DropColumn,
            Some(AlterAction::AlterColumnType) => I::AlterColumnType,
            Some(AlterAction::DropConstraint) => I::DropConstraint,
            Some(AlterAction::DropExpression) => I::DropExpression,
            Some(AlterAction::RestartIdentity) => I::SequenceRestart,
            Some(AlterAction::Inherit) => I::Inherits,
            Some(AlterAction::Other) | None => return C::AdditiveDdl,
        },
        Kind::Drop => I::Drop,
        Kind::SequenceRestart => I::SequenceRestart,
        Kind::Inherits => I::Inherits,
        Kind::Truncate => I::Truncate,
        Kind::Replace => I::Replace,
        Kind::CreateRule => I::CreateRule,
        Kind::Do => I::Do,
        Kind::Call => I::Call,
        Kind::TwoPhase => I::TwoPhase,
        Kind::CopyServerSide => I::ServerSideCopy,
        Kind::SelectInto => I::SelectInto,
        Kind::CaptureTriggers(what) => I::CaptureTriggers((*what).to_string()),
        Kind::Unsupported(what) => I::Unsupported((*what).to_string()),
        // Handled by `classify` before this point.
        Kind::Write(_) | Kind::Prepare(..) => I::Unsupported("this statement".into()),
    };
    C::Irreversible(refused)
}
