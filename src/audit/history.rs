//! Reading the audit trail (SPEC §B11, `pgbelay changes` and `pgbelay show`): recent
//! changes with filters, and one change with a readable before/after diff of its rows.
//! Read-only: nothing here writes.

use tokio_postgres::Client;
use tokio_postgres::types::ToSql;

use super::images::{self, Change, Images, change_columns, change_from_row};
use super::schema::{SCHEMA_VERSION, quote_ident};

/// Why reading the trail failed.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// `--since` is neither a duration nor a timestamp the server reads.
    #[error("invalid --since {0:?}: expected a duration (30s, 15m, 2h, 1d, 1w) or a timestamp")]
    InvalidSince(String),
    /// `--table` is not `name` or `schema.name`.
    #[error("invalid --table {0:?}: expected name or schema.name")]
    InvalidTable(String),
    /// No change with that id.
    #[error("no change {0}")]
    NotFound(i64),
    /// The audit schema is missing or older than this pgbelay.
    #[error(
        "the audit schema {schema} is not installed at version {SCHEMA_VERSION} in this database (found {found}); run pgbelay init"
    )]
    NotInstalled {
        /// The audit schema.
        schema: String,
        /// The version found ("none" when missing).
        found: String,
    },
    /// The audit schema name is unusable.
    #[error(transparent)]
    Audit(#[from] super::AuditError),
    /// The server failed a query.
    #[error("cannot {what}: {source}")]
    Postgres {
        /// What was being done.
        what: &'static str,
        /// The server's (or the connection's) error.
        source: tokio_postgres::Error,
    },
}

fn pg(what: &'static str) -> impl FnOnce(tokio_postgres::Error) -> HistoryError {
    move |source| HistoryError::Postgres { what, source }
}

/// Where `--since` starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Since {
    /// That many seconds before now.
    Ago(i64),
    /// A timestamp, as the server reads `timestamptz` input.
    At(String),
}

impl Since {
    /// `30s`, `15m`, `2h`, `1d`, `1w` (a number and one unit) is a duration back from now;
    /// anything else is taken as a timestamp (checked by the server).
    pub fn parse(text: &str) -> Result<Since, HistoryError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(HistoryError::InvalidSince(text.into()));
        }
        let unit = match text.chars().last() {
            Some('s') => Some(1),
            Some('m') => Some(60),
            Some('h') => Some(3600),
            Some('d') => Some(86_400),
            Some('w') => Some(604_800),
            _ => None,
        };
        // The unit is one ASCII byte, so this cuts on a character boundary.
        let number = unit.map_or("", |_| &text[..text.len() - 1]);
        match unit {
            Some(unit) if !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()) => {
                number
                    .parse::<i64>()
                    .ok()
                    .and_then(|n| n.checked_mul(unit))
                    .map(Since::Ago)
                    .ok_or_else(|| HistoryError::InvalidSince(text.into()))
            }
            _ => Ok(Since::At(text.into())),
        }
    }
}

/// Which changes [`changes`] lists.
#[derive(Debug, Clone, Default)]
pub struct ChangeFilter {
    /// Only changes at or after this.
    pub since: Option<Since>,
    /// Only changes of this table: `name` or `schema.name`, in SQL syntax (`"My T"`).
    pub table: Option<String>,
    /// Only changes by this session user.
    pub user: Option<String>,
    /// At most this many (newest first); `None` is 50.
    pub limit: Option<i64>,
}

/// Checks that `audit` is installed at this pgbelay's version.
pub(crate) async fn check_installed(client: &Client, audit: &str) -> Result<(), HistoryError> {
    match super::installed_version(client, audit).await? {
        Some(v) if v >= SCHEMA_VERSION => Ok(()),
        found => Err(HistoryError::NotInstalled {
            schema: audit.to_string(),
            found: found.map_or_else(|| "none".to_string(), |v| v.to_string()),
        }),
    }
}

/// Recent changes, newest first.
pub async fn changes(
    client: &Client,
    audit: &str,
    filter: &ChangeFilter,
) -> Result<Vec<Change>, HistoryError> {
    check_installed(client, audit).await?;
    let mut conditions: Vec<String> = Vec::new();
    let mut params: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
    let next = |value: Box<dyn ToSql + Sync + Send>, params: &mut Vec<_>| {
        params.push(value);
        params.len()
    };
    match &filter.since {
        Some(Since::Ago(seconds)) => {
            let n = next(Box::new(*seconds), &mut params);
            conditions.push(format!(
                "c.at >= pg_catalog.now() - ${n}::bigint * interval '1 second'"
            ));
        }
        Some(Since::At(text)) => {
            let valid = client
                .query_one("SELECT $1::text::timestamptz IS NOT NULL", &[text])
                .await;
            if valid.is_err() {
                return Err(HistoryError::InvalidSince(text.clone()));
            }
            let n = next(Box::new(text.clone()), &mut params);
            conditions.push(format!("c.at >= ${n}::text::timestamptz"));
        }
        None => {}
    }
    if let Some(table) = &filter.table {
        // The server's own identifier rules (quotes, case folding).
        let parts: Vec<String> = client
            .query_one("SELECT pg_catalog.parse_ident($1)::text[]", &[table])
            .await
            .map_err(|_| HistoryError::InvalidTable(table.clone()))?
            .try_get(0)
            .map_err(pg("read the table name"))?;
        match parts.as_slice() {
            [name] => {
                let n = next(Box::new(name.clone()), &mut params);
                conditions.push(format!("c.table_name = ${n}"));
            }
            [schema, name] => {
                let n = next(Box::new(schema.clone()), &mut params);
                conditions.push(format!("c.table_schema = ${n}"));
                let n = next(Box::new(name.clone()), &mut params);
                conditions.push(format!("c.table_name = ${n}"));
            }
            _ => return Err(HistoryError::InvalidTable(table.clone())),
        }
    }
    if let Some(user) = &filter.user {
        let n = next(Box::new(user.clone()), &mut params);
        conditions.push(format!("c.\"session_user\" = ${n}"));
    }
    let limit = filter.limit.unwrap_or(50).max(0);
    let n = next(Box::new(limit), &mut params);
    let sql = format!(
        "SELECT {} FROM {}.changes c {} ORDER BY c.id DESC LIMIT ${n}",
        change_columns(audit),
        quote_ident(audit),
        if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        }
    );
    let refs: Vec<&(dyn ToSql + Sync)> = params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect();
    client
        .query(&sql, &refs)
        .await
        .map_err(pg("list changes"))?
        .iter()
        .map(change_from_row)
        .collect::<Result<_, _>>()
        .map_err(pg("read changes"))
}

/// One change by id.
pub(crate) async fn change(client: &Client, audit: &str, id: i64) -> Result<Change, HistoryError> {
    let sql = format!(
        "SELECT {} FROM {}.changes c WHERE c.id = $1",
        change_columns(audit),
        quote_ident(audit)
    );
    let row = client
        .query_opt(&sql, &[&id])
        .await
        .map_err(pg("read the change"))?
        .ok_or(HistoryError::NotFound(id))?;
    change_from_row(&row).map_err(pg("read the change"))
}

/// What a change did to one row (one primary key).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RowOp {
    /// Before- and after-image: the row was updated (or soft-deleted).
    Update,
    /// Before-image only: the row was removed (hard delete, truncate, a drop's undo …).
    Delete,
    /// After-image only: the row was added.
    Insert,
}

/// One column of a row diff.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ColumnDiff {
    /// Column name.
    pub column: String,
    /// Value in the before-image (text form; `None` is NULL or no before-image).
    pub before: Option<String>,
    /// Value in the after-image.
    pub after: Option<String>,
}

/// One row of a change.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RowDiff {
    /// What happened to it.
    pub op: RowOp,
    /// Its primary key, `[column, value]` pairs (empty when the table has no usable key:
    /// images are then listed one by one, not paired).
    pub key: Vec<(String, Option<String>)>,
    /// For an update the columns that changed; otherwise every column of the image.
    pub columns: Vec<ColumnDiff>,
}

/// A table in the recycle bin (a `drop` change).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TrashEntry {
    /// Its name in `<audit>_trash`.
    pub trash_name: String,
    /// The change that moved it back, if any.
    pub restored_by: Option<i64>,
}

/// A change with its children and rows, for `pgbelay show`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ChangeDetail {
    /// The change.
    #[serde(flatten)]
    pub change: Change,
    /// Changes whose parent it is (cascades, the writes of an undo).
    pub children: Vec<Change>,
    /// For a drop: where the table lies.
    pub trash: Option<TrashEntry>,
    /// The key the rows are matched by (the table's primary key now).
    pub key_columns: Vec<String>,
    /// The first rows.
    pub diff: Vec<RowDiff>,
    /// Rows not listed.
    pub more_rows: i64,
}

/// One change with a diff of up to `max_rows` rows.
pub async fn show(
    client: &Client,
    audit: &str,
    id: i64,
    max_rows: i64,
) -> Result<ChangeDetail, HistoryError> {
    check_installed(client, audit).await?;
    let change = change(client, audit, id).await?;
    let children_sql = format!(
        "SELECT {} FROM {}.changes c WHERE c.parent_id = $1 ORDER BY c.id",
        change_columns(audit),
        quote_ident(audit)
    );
    let children = client
        .query(&children_sql, &[&id])
        .await
        .map_err(pg("read child changes"))?
        .iter()
        .map(change_from_row)
        .collect::<Result<Vec<_>, _>>()
        .map_err(pg("read child changes"))?;
    let trash_sql = format!(
        "SELECT trash_name::text, restored_by FROM {}.trash WHERE change_id = $1",
        quote_ident(audit)
    );
    let trash = client
        .query_opt(&trash_sql, &[&id])
        .await
        .map_err(pg("read the recycle bin"))?
        .map(|r| {
            Ok::<_, tokio_postgres::Error>(TrashEntry {
                trash_name: r.try_get(0)?,
                restored_by: r.try_get(1)?,
            })
        })
        .transpose()
        .map_err(pg("read the recycle bin"))?;
    let mut detail = ChangeDetail {
        change,
        children,
        trash,
        key_columns: Vec::new(),
        diff: Vec::new(),
        more_rows: 0,
    };
    let Some(shadow) = detail.change.shadow_table.clone() else {
        return Ok(detail);
    };
    let Some(images) = images::load(client, audit, &shadow)
        .await
        .map_err(pg("read the change's table"))?
    else {
        return Ok(detail);
    };
    let (diff, more) = diff(client, &images, id, max_rows.max(0)).await?;
    if images.key_recorded() {
        detail.key_columns = images.key.clone();
    }
    detail.diff = diff;
    detail.more_rows = more;
    Ok(detail)
}

/// The rows of change `id` as diffs, paired by primary key when there is one.
async fn diff(
    client: &Client,
    images: &Images,
    id: i64,
    max_rows: i64,
) -> Result<(Vec<RowDiff>, i64), HistoryError> {
    let columns = &images.shadow_columns;
    let values = |alias: &str| {
        let parts: Vec<String> = columns
            .iter()
            .map(|c| format!("{alias}.{}::text", quote_ident(c)))
            .collect();
        format!("ARRAY[{}]::text[]", parts.join(", "))
    };
    let paired = images.key_recorded();
    let on = if paired {
        images.key_eq("a", "b")
    } else {
        "false".to_string()
    };
    let order = if paired {
        images
            .key
            .iter()
            .map(|k| {
                let k = quote_ident(k);
                format!("coalesce(b.{k}, a.{k})")
            })
            .collect::<Vec<_>>()
            .join(", ")
    } else {
        "b.pgbelay_change_id, 1".to_string()
    };
    let from = format!(
        "FROM (SELECT * FROM {s} WHERE pgbelay_change_id = $1 AND pgbelay_image = 'before') b \
         FULL JOIN (SELECT * FROM {s} WHERE pgbelay_change_id = $1 AND pgbelay_image = 'after') a \
           ON {on}",
        s = images.shadow,
    );
    let total: i64 = client
        .query_one(&format!("SELECT pg_catalog.count(*) {from}"), &[&id])
        .await
        .map_err(pg("count the images"))?
        .try_get(0)
        .map_err(pg("count the images"))?;
    let sql = format!(
        "SELECT b.pgbelay_change_id IS NOT NULL, a.pgbelay_change_id IS NOT NULL, {}, {} \
         {from} ORDER BY {order} LIMIT $2",
        values("b"),
        values("a"),
    );
    let rows = client
        .query(&sql, &[&id, &max_rows])
        .await
        .map_err(pg("read the images"))?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let has_before: bool = row.try_get(0).map_err(pg("read the images"))?;
        let has_after: bool = row.try_get(1).map_err(pg("read the images"))?;
        let before: Vec<Option<String>> = row.try_get(2).map_err(pg("read the images"))?;
        let after: Vec<Option<String>> = row.try_get(3).map_err(pg("read the images"))?;
        let op = match (has_before, has_after) {
            (true, true) => RowOp::Update,
            (true, false) => RowOp::Delete,
            _ => RowOp::Insert,
        };
        let key = if paired {
            images
                .key
                .iter()
                .filter_map(|k| columns.iter().position(|c| c == k).map(|i| (k, i)))
                .map(|(k, i)| {
                    let value = if has_before { &before[i] } else { &after[i] };
                    (k.clone(), value.clone())
                })
                .collect()
        } else {
            Vec::new()
        };
        let columns = columns
            .iter()
            .enumerate()
            .filter(|(i, _)| match op {
                RowOp::Update => before[*i] != after[*i],
                // Columns the table no longer has and that hold nothing are noise.
                RowOp::Delete => before[*i].is_some() || is_live(images, &columns[*i]),
                RowOp::Insert => after[*i].is_some() || is_live(images, &columns[*i]),
            })
            .map(|(i, c)| ColumnDiff {
                column: c.clone(),
                before: has_before.then(|| before[i].clone()).flatten(),
                after: has_after.then(|| after[i].clone()).flatten(),
            })
            .collect();
        out.push(RowDiff { op, key, columns });
    }
    let shown = i64::try_from(out.len()).unwrap_or(i64::MAX);
    Ok((out, (total - shown).max(0)))
}

fn is_live(images: &Images, column: &str) -> bool {
    images.columns.iter().any(|c| c.name == column)
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn since_durations_and_timestamps() {
        assert_eq!(Since::parse("30m").unwrap(), Since::Ago(1800));
        assert_eq!(Since::parse("2h").unwrap(), Since::Ago(7200));
        assert_eq!(Since::parse("1d").unwrap(), Since::Ago(86_400));
        assert_eq!(Since::parse("45s").unwrap(), Since::Ago(45));
        assert_eq!(Since::parse("1w").unwrap(), Since::Ago(604_800));
        assert_eq!(
            Since::parse("2026-01-02 03:04").unwrap(),
            Since::At("2026-01-02 03:04".into())
        );
        assert!(matches!(
            Since::parse("99999999999999999999d"),
            Err(HistoryError::InvalidSince(_))
        ));
        assert!(matches!(
            Since::parse(""),
            Err(HistoryError::InvalidSince(_))
        ));
    }
}
