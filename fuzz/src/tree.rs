//! Parse trees as generic JSON (pg_query's protobuf types are `serde::Serialize`), so the
//! checks can look at every node without sharing pgbelay's own walker (`sql/walk.rs`).

use serde_json::Value;

/// A protobuf message as JSON; `Null` if it cannot be serialized (never seen).
pub fn json<T: serde::Serialize>(message: &T) -> Value {
    serde_json::to_value(message).unwrap_or(Value::Null)
}

/// Every node type anywhere in `v`: a `Node` serializes as `{"node": {"SelectStmt": {…}}}`,
/// and only the oneof variants have CamelCase keys (fields are snake_case).
pub fn node_types(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (key, value) in map {
                if key.starts_with(|c: char| c.is_ascii_uppercase()) {
                    out.push(key.clone());
                }
                node_types(value, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| node_types(i, out)),
        _ => {}
    }
}

/// Whether any object in `v` has a non-empty array under `field` (e.g. `locking_clause`).
pub fn has_nonempty(v: &Value, field: &str) -> bool {
    match v {
        Value::Object(map) => map.iter().any(|(key, value)| {
            (key == field && value.as_array().is_some_and(|a| !a.is_empty()))
                || has_nonempty(value, field)
        }),
        Value::Array(items) => items.iter().any(|i| has_nonempty(i, field)),
        _ => false,
    }
}

/// `v` without source positions, so trees parsed from different texts compare by meaning.
pub fn without_locations(v: &Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(key, _)| !is_position(key))
                .map(|(key, value)| (key.clone(), without_locations(value)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_locations).collect()),
        other => other.clone(),
    }
}

/// Fields that hold source offsets (`location`, `stmt_len`, PostgreSQL 18's
/// `rexpr_list_start`/`_end`, …), which differ between texts of the same meaning.
fn is_position(key: &str) -> bool {
    key.ends_with("location")
        || key.ends_with("list_start")
        || key.ends_with("list_end")
        || key == "stmt_len"
}
