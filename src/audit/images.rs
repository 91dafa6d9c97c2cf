//! What `show` and `undo` need to read a change's images: the change's source table as it
//! is now (columns, primary key) and its shadow table's columns, looked up by oid so that
//! a table renamed since is still found.

use tokio_postgres::Client;

use super::schema::{quote_ident, quote_literal};

/// A change row of `<audit>.changes`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Change {
    /// `changes.id`.
    pub id: i64,
    /// When its transaction started, RFC 3339 in the session's time zone.
    pub at: String,
    /// The transaction id.
    pub txid: i64,
    /// `session_user` of the writer.
    pub session_user: String,
    /// The client's address as the proxy saw it.
    pub client_addr: Option<String>,
    /// The client's `application_name`.
    pub application_name: Option<String>,
    /// insert / update / delete / truncate / drop / undo.
    pub kind: String,
    /// Schema of the table, when recorded.
    pub table_schema: Option<String>,
    /// Name of the table, when recorded.
    pub table_name: Option<String>,
    /// Rows changed.
    pub rows: Option<i64>,
    /// The statement as the client sent it.
    pub statement: Option<String>,
    /// What ran in the server.
    pub executed: Option<String>,
    /// Approval token id.
    pub approval: Option<String>,
    /// Who approved.
    pub approved_by: Option<String>,
    /// Why.
    pub reason: Option<String>,
    /// The parent change (a cascade, or the undo this write belongs to).
    pub parent_id: Option<i64>,
    /// The undo in effect for this change, if it has been undone.
    pub undone_by: Option<i64>,
    /// For an undo: the change it reversed.
    pub undo_of: Option<i64>,
    /// Qualified name of the shadow table holding the images.
    #[serde(skip)]
    pub shadow_table: Option<String>,
}

impl Change {
    /// `schema.table` for messages (identifiers quoted only where needed is not worth a
    /// catalog round trip; names are shown as stored).
    pub fn table(&self) -> String {
        match (&self.table_schema, &self.table_name) {
            (Some(schema), Some(name)) => format!("{schema}.{name}"),
            (None, Some(name)) => name.clone(),
            _ => String::new(),
        }
    }
}

/// The select list for [`Change`], over `<audit>.changes c` (see [`change_from_row`]).
pub(crate) fn change_columns(audit: &str) -> String {
    let s = quote_ident(audit);
    format!(
        "c.id, pg_catalog.to_json(c.at) #>> '{{}}', c.txid, c.\"session_user\", c.client_addr, \
         c.application_name, c.kind, c.table_schema, c.table_name, c.rows, c.statement, c.executed, \
         c.approval, c.approved_by, c.reason, c.parent_id, {s}.undone_by(c.id), \
         (SELECT u.change_id FROM {s}.undos u WHERE u.undo_id = c.id), c.shadow_table"
    )
}

/// Reads a row selected with [`change_columns`].
pub(crate) fn change_from_row(row: &tokio_postgres::Row) -> Result<Change, tokio_postgres::Error> {
    Ok(Change {
        id: row.try_get(0)?,
        at: row.try_get(1)?,
        txid: row.try_get(2)?,
        session_user: row.try_get(3)?,
        client_addr: row.try_get(4)?,
        application_name: row.try_get(5)?,
        kind: row.try_get(6)?,
        table_schema: row.try_get(7)?,
        table_name: row.try_get(8)?,
        rows: row.try_get(9)?,
        statement: row.try_get(10)?,
        executed: row.try_get(11)?,
        approval: row.try_get(12)?,
        approved_by: row.try_get(13)?,
        reason: row.try_get(14)?,
        parent_id: row.try_get(15)?,
        undone_by: row.try_get(16)?,
        undo_of: row.try_get(17)?,
        shadow_table: row.try_get(18)?,
    })
}

/// A column of the source table as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Column {
    pub name: String,
    /// `GENERATED ALWAYS AS (...) STORED`: never written.
    pub generated: bool,
    /// `GENERATED ALWAYS AS IDENTITY`: written with OVERRIDING SYSTEM VALUE.
    pub identity_always: bool,
}

/// The images of one change and the table they belong to.
#[derive(Debug, Clone)]
pub(crate) struct Images {
    /// The source table's oid.
    pub relid: u32,
    /// Its schema and name now.
    pub schema: String,
    pub name: String,
    /// It now lies in the recycle bin.
    pub in_trash: bool,
    /// It still exists (in the bin or not); when not, `columns` and `key` are empty and
    /// `schema`/`name` are its last known ones.
    pub exists: bool,
    /// Its columns now, in order.
    pub columns: Vec<Column>,
    /// Its primary key now (empty: none).
    pub key: Vec<String>,
    /// The shadow table, quoted and qualified.
    pub shadow: String,
    /// The shadow's image columns, in order (old columns of the source included).
    pub shadow_columns: Vec<String>,
}

impl Images {
    /// The source table, quoted and qualified.
    pub fn table_sql(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.name))
    }

    /// `schema.name` for messages.
    pub fn table_label(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }

    /// Whether every key column has images (a key added since may not).
    pub fn key_recorded(&self) -> bool {
        !self.key.is_empty() && self.key.iter().all(|k| self.shadow_columns.contains(k))
    }

    /// Columns of the table now that have images, in the table's order.
    pub fn common(&self) -> impl Iterator<Item = &Column> {
        self.columns
            .iter()
            .filter(|c| self.shadow_columns.contains(&c.name))
    }

    /// Shadow columns the table no longer has (dropped, or changed type since: the old
    /// images then sit in a column renamed `<name>~<n>`).
    pub fn lost(&self) -> Vec<&String> {
        self.shadow_columns
            .iter()
            .filter(|s| !self.columns.iter().any(|c| &c.name == *s))
            .collect()
    }

    /// `l.k1 = r.k1 AND l.k2 = r.k2` over the key.
    pub fn key_eq(&self, left: &str, right: &str) -> String {
        self.key
            .iter()
            .map(|k| {
                let k = quote_ident(k);
                format!("{left}.{k} = {right}.{k}")
            })
            .collect::<Vec<_>>()
            .join(" AND ")
    }

    /// `ARRAY[a.k1::text, ...]`: the key as text, for messages.
    pub fn key_text(&self, alias: &str) -> String {
        let parts: Vec<String> = self
            .key
            .iter()
            .map(|k| format!("{alias}.{}::text", quote_ident(k)))
            .collect();
        format!("ARRAY[{}]::text[]", parts.join(", "))
    }
}

/// Loads the images' table for a change recorded in `shadow` (qualified, as in
/// `changes.shadow_table`); `None` when no shadow of that name is known.
pub(crate) async fn load(
    client: &Client,
    audit: &str,
    shadow: &str,
) -> Result<Option<Images>, tokio_postgres::Error> {
    let s = quote_ident(audit);
    let audit_lit = quote_literal(audit).unwrap_or_else(|_| "''".into());
    let trash_lit = quote_literal(&format!("{audit}_trash")).unwrap_or_else(|_| "''".into());
    let sql = format!(
        "SELECT st.relid, st.shadow_table::text, coalesce(n.nspname, st.source_schema)::text, \
                coalesce(c.relname, st.source_table)::text, coalesce(n.nspname = {trash_lit}, false), \
                ARRAY(SELECT a.attname::text FROM pg_catalog.pg_index i, \
                             unnest(i.indkey) WITH ORDINALITY k(attnum, ord), pg_catalog.pg_attribute a \
                       WHERE i.indrelid = c.oid AND i.indisprimary \
                         AND a.attrelid = c.oid AND a.attnum = k.attnum ORDER BY k.ord), \
                c.oid IS NOT NULL \
           FROM {s}.shadow_tables st \
           LEFT JOIN pg_catalog.pg_class c ON c.oid = st.relid \
           LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
          WHERE pg_catalog.format('%I.%I', {audit_lit}::text, st.shadow_table) = $1"
    );
    let Some(row) = client.query_opt(&sql, &[&shadow]).await? else {
        return Ok(None);
    };
    let relid: u32 = row.try_get(0)?;
    let shadow_name: String = row.try_get(1)?;
    let columns = client
        .query(
            "SELECT attname::text, attgenerated <> '', attidentity = 'a' \
               FROM pg_catalog.pg_attribute \
              WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            &[&relid],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(Column {
                name: r.try_get(0)?,
                generated: r.try_get(1)?,
                identity_always: r.try_get(2)?,
            })
        })
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()?;
    let shadow_sql = format!("{s}.{}", quote_ident(&shadow_name));
    let shadow_columns = client
        .query(
            "SELECT attname::text FROM pg_catalog.pg_attribute \
              WHERE attrelid = $1::text::regclass AND attnum > 0 AND NOT attisdropped \
                AND attname NOT IN ('pgbelay_change_id', 'pgbelay_image') ORDER BY attnum",
            &[&shadow_sql],
        )
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<Vec<String>, _>>()?;
    Ok(Some(Images {
        relid,
        schema: row.try_get(2)?,
        name: row.try_get(3)?,
        in_trash: row.try_get(4)?,
        exists: row.try_get(6)?,
        columns,
        key: row.try_get(5)?,
        shadow: shadow_sql,
        shadow_columns,
    }))
}
