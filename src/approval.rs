//! Approval tokens (SPEC §B5): an incident commander signs one exact statement, and the
//! proxy lets that statement through once.
//!
//! A token is `pgb1.<payload>.<mac>`: the payload is JSON (base64url) holding the
//! statement's canonical text ([`crate::sql::canonical`]), the expiry, a random id, who
//! approved and why, and whether the approval is `--hard`; the mac is HMAC-SHA256 over
//! `pgb1.<payload>` with `approval_secret`. The statement travels inside the token so a
//! refusal can say which statement a token was signed for. Single use is not the token's
//! business: the proxy claims its id in `<audit>.approvals` in the statement's own
//! transaction, so a second use fails even on another proxy.
//!
//! This module holds no IO: `pgbelay approve` mints, the policy verifies.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The token format's prefix (and version).
const PREFIX: &str = "pgb1";

/// Where a token is presented in a comment: `/* pgbelay:approve=TOKEN */`.
pub const COMMENT_MARKER: &str = "pgbelay:approve=";

/// The setting that presents a token for the next statement.
pub const SETTING: &str = "pgbelay.approval";

/// Longest token accepted (a statement of a few kilobytes fits).
const MAX_TOKEN_LEN: usize = 64 * 1024;

/// The HMAC key (`approval_secret`).
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// A key from the configured secret text.
    pub fn new(secret: &str) -> Self {
        Self(secret.as_bytes().to_vec())
    }

    fn mac(&self, signed: &str) -> Hmac<Sha256> {
        // HMAC takes a key of any length.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of every length"));
        mac.update(signed.as_bytes());
        mac
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// What a token says.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Approval {
    /// Random id, claimed in `<audit>.approvals` when used.
    pub id: String,
    /// The canonical text of the one statement it approves.
    pub statement: String,
    /// Expiry, seconds since the Unix epoch.
    pub expires: u64,
    /// Who approved.
    pub by: String,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `--hard`: a DROP TABLE really drops and a DELETE really deletes (recorded first),
    /// instead of the recycle bin and the soft delete.
    #[serde(default)]
    pub hard: bool,
}

impl Approval {
    /// A new approval of `statement` (already canonical) valid for `ttl` from `now`.
    pub fn new(
        statement: String,
        now: SystemTime,
        ttl: Duration,
        by: String,
        reason: Option<String>,
        hard: bool,
    ) -> Self {
        let id: [u8; 12] = rand::random();
        Self {
            id: id.iter().map(|b| format!("{b:02x}")).collect(),
            statement,
            expires: unix(now).saturating_add(ttl.as_secs()),
            by,
            reason,
            hard,
        }
    }

    /// The signed token.
    pub fn mint(&self, secret: &Secret) -> String {
        let payload = serde_json::to_vec(self).unwrap_or_default();
        let signed = format!("{PREFIX}.{}", URL_SAFE_NO_PAD.encode(payload));
        let mac = secret.mac(&signed).finalize().into_bytes();
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(mac))
    }

    /// The expiry as a time.
    pub fn expires_at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.expires)
    }
}

/// Why a token is not accepted; each check that fails says so.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// No `approval_secret` is configured.
    #[error("no approval_secret is configured, so no approval token is accepted")]
    NoSecret,
    /// Not a token at all.
    #[error("the approval token is malformed ({0})")]
    Malformed(&'static str),
    /// The signature does not match: altered, or signed with another secret.
    #[error(
        "the approval token's signature does not match (altered, or signed with another secret)"
    )]
    Signature,
    /// Past its expiry.
    #[error("the approval token expired at {}", humantime::format_rfc3339_seconds(*.0))]
    Expired(SystemTime),
    /// Signed for a different statement.
    #[error("the approval token was signed for another statement: {signed}")]
    OtherStatement {
        /// The statement it approves.
        signed: String,
    },
}

/// Checks `token`'s form, signature and expiry (in that order) and returns what it says.
/// Whether it covers the statement at hand is [`Approval::covers`].
pub fn verify(
    secret: Option<&Secret>,
    token: &str,
    now: SystemTime,
) -> Result<Approval, TokenError> {
    let secret = secret.ok_or(TokenError::NoSecret)?;
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed("too long"));
    }
    let mut parts = token.split('.');
    let (Some(prefix), Some(payload), Some(mac), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed("expected pgb1.<payload>.<signature>"));
    };
    if payload.is_empty() || mac.is_empty() {
        return Err(TokenError::Malformed("empty part"));
    }
    if prefix != PREFIX {
        return Err(TokenError::Malformed("unknown version"));
    }
    let mac = URL_SAFE_NO_PAD
        .decode(mac)
        .map_err(|_| TokenError::Malformed("signature is not base64url"))?;
    // Constant-time comparison; checked before the payload is even decoded.
    secret
        .mac(&format!("{prefix}.{payload}"))
        .verify_slice(&mac)
        .map_err(|_| TokenError::Signature)?;
    let json = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| TokenError::Malformed("payload is not base64url"))?;
    let approval: Approval = serde_json::from_slice(&json)
        .map_err(|_| TokenError::Malformed("payload is not an approval"))?;
    if unix(now) >= approval.expires {
        return Err(TokenError::Expired(approval.expires_at()));
    }
    Ok(approval)
}

impl Approval {
    /// Whether this approval is for the statement whose canonical text is `canonical`.
    pub fn covers(&self, canonical: &str) -> Result<(), TokenError> {
        if self.statement == canonical {
            Ok(())
        } else {
            Err(TokenError::OtherStatement {
                signed: self.statement.clone(),
            })
        }
    }
}

/// The token presented in a comment of `sql` (`/* pgbelay:approve=TOKEN */`), if any.
pub fn token_in_comments(sql: &str) -> Option<&str> {
    if !sql.contains(COMMENT_MARKER) {
        return None;
    }
    crate::sql::comments(sql).into_iter().find_map(|c| {
        let at = c.find(COMMENT_MARKER)?;
        let rest = &c[at + COMMENT_MARKER.len()..];
        let end = rest
            .find(|ch: char| !(ch.is_ascii_alphanumeric() || matches!(ch, '.' | '-' | '_')))
            .unwrap_or(rest.len());
        Some(&rest[..end])
    })
}

/// `sql` without its comments that carry an approval token (`/* pgbelay:approve=… */`,
/// `-- pgbelay:approve=…`): the statement as a hint should tell the DBA to approve it.
pub fn without_token_comments(sql: &str) -> std::borrow::Cow<'_, str> {
    if !sql.contains(COMMENT_MARKER) {
        return sql.into();
    }
    let mut out = String::with_capacity(sql.len());
    let mut from = 0;
    for comment in crate::sql::comments(sql) {
        if !comment.contains(COMMENT_MARKER) {
            continue;
        }
        // The comments are slices of `sql`.
        let start = comment.as_ptr() as usize - sql.as_ptr() as usize;
        out.push_str(&sql[from..start]);
        from = start + comment.len();
    }
    out.push_str(&sql[from..]);
    out.trim().to_string().into()
}

/// `sql` with a token in its comments replaced by `<token>`: what a log may keep (a token
/// its statement did not spend stays valid until it expires).
pub fn redact_token(sql: &str) -> std::borrow::Cow<'_, str> {
    match token_in_comments(sql) {
        Some(token) if !token.is_empty() => sql.replace(token, "<token>").into(),
        _ => sql.into(),
    }
}

/// `15m`, `2h`, `1h30m`, `90s`: a time-to-live.
pub fn parse_ttl(text: &str) -> Result<Duration, String> {
    let ttl =
        humantime::parse_duration(text).map_err(|e| format!("invalid --ttl {text:?}: {e}"))?;
    if ttl.is_zero() {
        return Err("--ttl must be longer than zero".into());
    }
    Ok(ttl)
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod test {
    use super::*;

    fn secret() -> Secret {
        Secret::new("s3cret")
    }

    fn approval(ttl: u64) -> Approval {
        Approval::new(
            "DROP TABLE t".into(),
            SystemTime::now(),
            Duration::from_secs(ttl),
            "alice".into(),
            Some("incident 7".into()),
            false,
        )
    }

    #[test]
    fn a_minted_token_verifies() {
        let a = approval(60);
        let token = a.mint(&secret());
        assert_eq!(
            verify(Some(&secret()), &token, SystemTime::now()),
            Ok(a.clone())
        );
        assert_eq!(a.covers("DROP TABLE t"), Ok(()));
        assert!(matches!(
            a.covers("DROP TABLE u"),
            Err(TokenError::OtherStatement { signed }) if signed == "DROP TABLE t"
        ));
    }

    #[test]
    fn every_flipped_character_is_caught() {
        let token = approval(60).mint(&secret());
        for i in 0..token.len() {
            let mut bytes = token.clone().into_bytes();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let Ok(tampered) = String::from_utf8(bytes) else {
                continue;
            };
            if tampered == token {
                continue;
            }
            assert!(
                verify(Some(&secret()), &tampered, SystemTime::now()).is_err(),
                "flipping byte {i} was not noticed"
            );
        }
    }

    #[test]
    fn another_secret_expiry_and_no_secret() {
        let token = approval(60).mint(&secret());
        assert_eq!(
            verify(Some(&Secret::new("other")), &token, SystemTime::now()),
            Err(TokenError::Signature)
        );
        assert_eq!(
            verify(None, &token, SystemTime::now()),
            Err(TokenError::NoSecret)
        );
        let later = SystemTime::now() + Duration::from_secs(61);
        assert!(matches!(
            verify(Some(&secret()), &token, later),
            Err(TokenError::Expired(_))
        ));
        for junk in ["", "pgb1", "pgb1..", "pgb2.a.b", "pgb1.a.b.c", "pgb1.!!.??"] {
            assert!(
                matches!(
                    verify(Some(&secret()), junk, SystemTime::now()),
                    Err(TokenError::Malformed(_))
                ),
                "{junk:?}"
            );
        }
    }

    #[test]
    fn tokens_are_found_in_comments_only() {
        assert_eq!(
            token_in_comments("/* pgbelay:approve=pgb1.ab-c.d_e */ DROP TABLE t"),
            Some("pgb1.ab-c.d_e")
        );
        assert_eq!(
            token_in_comments("-- pgbelay:approve=pgb1.x.y\nDROP TABLE t"),
            Some("pgb1.x.y")
        );
        assert_eq!(
            token_in_comments("SELECT '/* pgbelay:approve=pgb1.x.y */'"),
            None
        );
        assert_eq!(token_in_comments("DROP TABLE t"), None);
    }

    #[test]
    fn token_comments_are_left_out_of_hints_and_logs() {
        assert_eq!(
            without_token_comments("/* pgbelay:approve=pgb1.a.b */ DROP /* keep */ TABLE t"),
            "DROP /* keep */ TABLE t"
        );
        assert_eq!(
            without_token_comments("UPDATE t SET a = 1 WHERE id = 830 -- pgbelay:approve=pgb1.a.b"),
            "UPDATE t SET a = 1 WHERE id = 830"
        );
        assert_eq!(
            without_token_comments("SELECT '/* pgbelay:approve=x */'"),
            "SELECT '/* pgbelay:approve=x */'"
        );
        assert_eq!(
            redact_token("/* pgbelay:approve=pgb1.a.b */ DROP TABLE t"),
            "/* pgbelay:approve=<token> */ DROP TABLE t"
        );
        assert_eq!(redact_token("DROP TABLE t"), "DROP TABLE t");
    }

    #[test]
    fn ttl() {
        assert_eq!(parse_ttl("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_ttl("1h 30m"), Ok(Duration::from_secs(5400)));
        assert!(parse_ttl("0s").is_err());
        assert!(parse_ttl("soon").is_err());
    }
}
