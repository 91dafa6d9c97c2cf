//! Settings the guard depends on, and the client encodings it can read.
//!
//! **Encodings.** pgbelay reads statement text as UTF-8. It accepts sessions whose
//! `client_encoding` is `UTF8` or `SQL_ASCII` (the session layer has already checked the
//! bytes are valid UTF-8) and refuses every statement of a session in any other encoding,
//! and any `SET client_encoding` / `SET NAMES` to one: in encodings such as SJIS or BIG5 a
//! multibyte character can end in the byte of a quote or a backslash, so the server and the
//! proxy would disagree about where a literal ends. Set `client_encoding` to UTF8
//! (`PGCLIENTENCODING=UTF8`, or `\encoding UTF8` in psql).
//!
//! **Guard settings.** A statement that would loosen one of these, by `SET`, `RESET`,
//! `set_config()` anywhere in a statement, or a `SET` clause of ALTER ROLE / DATABASE /
//! SYSTEM or CREATE FUNCTION, is refused.

use crate::sql::{SettingChange, SettingName, SettingValue};

/// Why a setting change is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuardBreach {
    /// A guard setting would be loosened; the name and why it matters.
    Guard(String, &'static str),
    /// `client_encoding` would become one pgbelay cannot read.
    Encoding(String),
}

/// Each guard setting, the values that keep it safe, and why it matters.
const GUARDS: &[(&str, &[&str], &str)] = &[
    (
        "default_transaction_read_only",
        TRUE,
        "pgbelay runs reads in read-only transactions",
    ),
    (
        "transaction_read_only",
        TRUE,
        "pgbelay runs reads in read-only transactions",
    ),
    (
        "session_replication_role",
        &["origin"],
        "`replica` silently disables triggers and foreign keys",
    ),
    (
        "standard_conforming_strings",
        TRUE,
        "it changes where a string literal ends, so the proxy and the server would read statements differently",
    ),
];

const TRUE: &[&str] = &["on", "true", "yes", "1"];

/// The settings through which pgbelay announces a write to the capture triggers
/// (`pgbelay.statement`, `.max_rows`, `.approval`, …): set only by pgbelay's own
/// statements. `pgbelay.approval` is the one a client sets (`SET pgbelay.approval`), and
/// the proxy intercepts it.
const RECORDING_PREFIX: &str = "pgbelay.";
const RECORDING_WHY: &str = "pgbelay's recording settings are set only by pgbelay itself";

/// Checks one setting change against the guard; `audit` are the protected schema names.
pub fn check(change: &SettingChange, audit: &[String]) -> Option<GuardBreach> {
    let name = match &change.name {
        SettingName::All => {
            return Some(GuardBreach::Guard(
                "ALL".into(),
                "resetting every setting resets the guard settings",
            ));
        }
        SettingName::Unknown => {
            return Some(GuardBreach::Guard(
                "(computed name)".into(),
                "pgbelay cannot tell which setting a computed name changes",
            ));
        }
        SettingName::Named(n) => n.as_str(),
    };
    if name == "client_encoding" {
        return match &change.value {
            SettingValue::Default => None,
            SettingValue::Literal(v) if v.len() == 1 && encoding_ok(&v[0]) => None,
            SettingValue::Literal(v) => Some(GuardBreach::Encoding(v.join(", "))),
            SettingValue::Unknown => Some(GuardBreach::Encoding("(computed)".into())),
        };
    }
    if name == "search_path" {
        let reason = "the audit schema must not be found through search_path";
        return match &change.value {
            SettingValue::Default => None,
            SettingValue::Literal(values) => values
                .iter()
                .flat_map(|v| split_path(v))
                .any(|schema| audit.contains(&schema))
                .then(|| GuardBreach::Guard(name.into(), reason)),
            SettingValue::Unknown => Some(GuardBreach::Guard(name.into(), reason)),
        };
    }
    if name.starts_with(RECORDING_PREFIX) && name != crate::approval::SETTING {
        return Some(GuardBreach::Guard(name.into(), RECORDING_WHY));
    }
    let (_, safe, why) = GUARDS.iter().find(|(n, _, _)| *n == name)?;
    match &change.value {
        SettingValue::Literal(v)
            if v.len() == 1 && safe.contains(&v[0].to_ascii_lowercase().as_str()) =>
        {
            None
        }
        _ => Some(GuardBreach::Guard(name.into(), why)),
    }
}

/// Why a change to the named guard setting is refused (for the refusal message).
pub fn why(name: &str) -> &'static str {
    match name {
        "ALL" => "resetting every setting resets the guard settings",
        "search_path" => "the audit schema must not be found through search_path",
        n if n.starts_with(RECORDING_PREFIX) => RECORDING_WHY,
        _ => GUARDS.iter().find(|(n, _, _)| *n == name).map_or(
            "pgbelay cannot tell which setting a computed name changes",
            |(_, _, why)| why,
        ),
    }
}

/// Whether pgbelay can read text in this encoding; names are compared as PostgreSQL does
/// (case and punctuation ignored: `UTF-8`, `utf8` and `Unicode` are the same). An empty
/// name means the server has not reported one yet; PostgreSQL always reports it before
/// the first query, so this only happens offline, where UTF-8 is assumed.
pub fn encoding_ok(name: &str) -> bool {
    // Judged with every statement: the server's own spelling first (ParameterStatus
    // reports `UTF8`), then compared without building the normalized name.
    if name == "UTF8" {
        return true;
    }
    let norm = name
        .bytes()
        .filter(u8::is_ascii_alphanumeric)
        .map(|b| b.to_ascii_lowercase());
    ["", "utf8", "unicode", "sqlascii"]
        .iter()
        .any(|ok| norm.clone().eq(ok.bytes()))
}

/// Splits a `search_path` value the way PostgreSQL does: comma-separated identifiers,
/// double quotes keep case (`""` is a quote), unquoted names fold to lower case.
fn split_path(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = value.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cur.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => cur.push(c),
            (false, '"') => quoted = true,
            (false, ',') => out.push(std::mem::take(&mut cur)),
            (false, c) if c.is_whitespace() => {}
            (false, c) => cur.extend(c.to_lowercase()),
        }
    }
    out.push(cur);
    out
}

#[cfg(test)]
mod test {
    use super::*;

    fn set(name: &str, v: &str) -> SettingChange {
        SettingChange {
            name: SettingName::Named(name.into()),
            value: SettingValue::Literal(vec![v.into()]),
        }
    }

    #[test]
    fn guards() {
        let audit = vec!["pgbelay".to_string(), "pgbelay_trash".to_string()];
        assert!(check(&set("default_transaction_read_only", "off"), &audit).is_some());
        assert!(check(&set("default_transaction_read_only", "on"), &audit).is_none());
        assert!(check(&set("session_replication_role", "replica"), &audit).is_some());
        assert!(check(&set("work_mem", "1GB"), &audit).is_none());
        assert!(check(&set("search_path", "public, \"PGBELAY\""), &audit).is_none());
        assert!(check(&set("search_path", "public, PGBelay"), &audit).is_some());
        assert!(check(&set("client_encoding", "SJIS"), &audit).is_some());
        assert!(check(&set("client_encoding", "UTF-8"), &audit).is_none());
        assert!(check(&set("pgbelay.max_rows", "-1"), &audit).is_some());
        assert!(check(&set("pgbelay.statement", "x"), &audit).is_some());
        assert!(check(&set("pgbelay.approval", "x"), &audit).is_none());
    }

    #[test]
    fn path_split() {
        assert_eq!(split_path(r#"a, "B""c" ,D"#), ["a", "B\"c", "d"]);
    }
}
