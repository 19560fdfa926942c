//! Comparing the live state a plan recorded with the live state now.
//!
//! A plan records each object it read as normalized JSON ([`crate::observed::Observed::snapshot`]).
//! Before its first mutation, apply takes a new snapshot. Any key whose value differs makes the
//! plan stale, and the differences are listed field by field with both values. Normalization
//! happens when the state is read (DNS names lowercase without the trailing dot, ids as AWS
//! spells them), so two spellings of one value are never a difference here.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use serde_json::Value;

/// At most this many differing fields are listed per object; the rest are counted.
const MAX_FIELDS_LISTED: usize = 4;

/// An object whose recorded value differs from its current one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changed {
    /// The snapshot key, such as `vpc/vpc-0abc` or `records/Z0123`.
    pub key: String,
    /// The differing fields, each with its path (empty for the whole value), the planned value
    /// and the current one.
    pub fields: Vec<FieldChange>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldChange {
    pub path: String,
    pub planned: String,
    pub current: String,
    /// Whether the field is a list compared as a set. Then `planned` contains the items only the
    /// plan saw, and `current` those only the new read sees.
    pub as_set: bool,
}

/// Returns the objects of `planned` whose value in `current` differs, in key order. A key absent
/// from `current` counts as not read, shown as `(not read)`.
pub fn compare(
    planned: &BTreeMap<String, String>,
    current: &BTreeMap<String, String>,
) -> Vec<Changed> {
    planned
        .iter()
        .filter_map(|(key, recorded)| {
            let now = current.get(key);
            if now == Some(recorded) {
                return None;
            }
            let recorded = parse(recorded);
            let fields = match now {
                Some(now) => {
                    let mut fields = Vec::new();
                    differences(&recorded, &parse(now), String::new(), &mut fields);
                    fields
                }
                None => vec![FieldChange {
                    path: String::new(),
                    planned: display_value(&recorded),
                    current: "(not read)".to_string(),
                    as_set: false,
                }],
            };
            Some(Changed {
                key: key.clone(),
                fields,
            })
        })
        .collect()
}

fn parse(text: &str) -> Value {
    // A value that is not JSON (a plan file of an older layout) is compared as a string.
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

/// Collects the leaf differences between `planned` and `current` under `path`. Objects are
/// compared key by key, lists of objects of equal length item by item, and anything else whole.
fn differences(planned: &Value, current: &Value, path: String, out: &mut Vec<FieldChange>) {
    if planned == current {
        return;
    }
    match (planned, current) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for key in keys {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                differences(
                    a.get(key).unwrap_or(&Value::Null),
                    b.get(key).unwrap_or(&Value::Null),
                    child,
                    out,
                );
            }
        }
        (Value::Array(a), Value::Array(b)) if let (Some(a), Some(b)) = (keyed(a), keyed(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for key in keys {
                differences(
                    a.get(key).copied().unwrap_or(&Value::Null),
                    b.get(key).copied().unwrap_or(&Value::Null),
                    format!("{path}[{key}]"),
                    out,
                );
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() && a.iter().all(is_object) => {
            for (index, (x, y)) in a.iter().zip(b).enumerate() {
                differences(x, y, format!("{path}[{index}]"), out);
            }
        }
        // Lists of plain values, such as a zone's (VPC, region) pairs, are sets: only the
        // items that differ are shown.
        (Value::Array(a), Value::Array(b))
            if !a.iter().any(is_object) && !b.iter().any(is_object) =>
        {
            // A set of the other side keeps this linear in the lengths of the lists.
            let only = |x: &[Value], y: &[Value]| -> Vec<String> {
                let others: HashSet<String> = y.iter().map(Value::to_string).collect();
                x.iter()
                    .map(Value::to_string)
                    .filter(|v| !others.contains(v))
                    .collect()
            };
            out.push(FieldChange {
                path,
                planned: only(a, b).join(", "),
                current: only(b, a).join(", "),
                as_set: true,
            });
        }
        _ => out.push(FieldChange {
            path,
            planned: display_value(planned),
            current: display_value(current),
            as_set: false,
        }),
    }
}

fn is_object(value: &Value) -> bool {
    value.is_object()
}

/// Fields that name an item of a list, tried in order: records by name and type, routes by
/// destination, rules by source, and objects by their id.
const IDENTITY_FIELDS: [&str; 6] = [
    "name",
    "destination_cidr",
    "source",
    "endpoint_id",
    "group_id",
    "peering_id",
];

/// Returns the items of `items` by what names each, when every item is an object with a
/// distinct name. A list of records is keyed by name and type, such as `relay.example.com A`.
fn keyed(items: &[Value]) -> Option<BTreeMap<String, &Value>> {
    let mut map = BTreeMap::new();
    for item in items {
        let object = item.as_object()?;
        let field = IDENTITY_FIELDS
            .iter()
            .find_map(|field| object.get(*field).and_then(Value::as_str))?;
        let key = match object.get("record_type").and_then(Value::as_str) {
            Some(kind) => format!("{field} {kind}"),
            None => field.to_string(),
        };
        if map.insert(key, item).is_some() {
            return None;
        }
    }
    Some(map)
}

/// Formats a value for a message: `absent` for null, strings without quotes, the rest as JSON.
fn display_value(value: &Value) -> String {
    match value {
        Value::Null => "absent".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl fmt::Display for Changed {
    /// Formats as `` `vpc/vpc-0abc`: dns_hostnames was true, is now false ``.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`: ", self.key)?;
        let listed: Vec<String> = self
            .fields
            .iter()
            .take(MAX_FIELDS_LISTED)
            .map(|field| {
                let subject = if field.path.is_empty() {
                    String::new()
                } else {
                    format!("{} ", field.path)
                };
                if field.as_set {
                    let mut parts = Vec::new();
                    if !field.planned.is_empty() {
                        parts.push(format!("lost {}", field.planned));
                    }
                    if !field.current.is_empty() {
                        parts.push(format!("gained {}", field.current));
                    }
                    if parts.is_empty() {
                        parts.push("changed order".to_string());
                    }
                    return format!("{subject}{} since planned", parts.join(" and "));
                }
                format!(
                    "{subject}was {} when planned, is now {}",
                    field.planned, field.current
                )
            })
            .collect();
        write!(f, "{}", listed.join("; "))?;
        if self.fields.len() > MAX_FIELDS_LISTED {
            write!(f, "; and {} more", self.fields.len() - MAX_FIELDS_LISTED)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
        entries
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    #[test]
    fn equal_snapshots_have_no_changes() {
        let planned = map(&[("vpc/vpc-1", r#"{"dns_hostnames":true}"#)]);
        assert!(compare(&planned, &planned.clone()).is_empty());
    }

    #[test]
    fn changed_field_names_both_values() {
        let planned = map(&[("vpc/vpc-1", r#"{"dns_hostnames":true,"dns_support":true}"#)]);
        let current = map(&[("vpc/vpc-1", r#"{"dns_hostnames":false,"dns_support":true}"#)]);
        let changed = compare(&planned, &current);
        assert_eq!(
            changed.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["`vpc/vpc-1`: dns_hostnames was true when planned, is now false"]
        );
    }

    #[test]
    fn object_that_appeared_or_vanished_is_shown_whole() {
        let planned = map(&[("vpc/vpc-1", "null"), ("endpoints", r#"["vpce-1"]"#)]);
        let current = map(&[
            ("vpc/vpc-1", r#"{"owner_id":"1"}"#),
            ("endpoints", r#"["vpce-1","vpce-2"]"#),
        ]);
        let changed: Vec<String> = compare(&planned, &current)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            changed,
            [
                r#"`endpoints`: gained "vpce-2" since planned"#,
                r#"`vpc/vpc-1`: was absent when planned, is now {"owner_id":"1"}"#,
            ]
        );
    }

    #[test]
    fn named_items_are_compared_by_name() {
        let planned = map(&[(
            "records/Z1",
            r#"[{"name":"app.example.com","record_type":"A","alias":{"dns_name":"a"}},{"name":"relay.example.com","record_type":"A","alias":{"dns_name":"r"}}]"#,
        )]);
        let current = map(&[(
            "records/Z1",
            r#"[{"name":"relay.example.com","record_type":"A","alias":{"dns_name":"a"}}]"#,
        )]);
        let text = compare(&planned, &current)[0].to_string();
        assert_eq!(
            text,
            r#"`records/Z1`: [app.example.com A] was {"alias":{"dns_name":"a"},"name":"app.example.com","record_type":"A"} when planned, is now absent; [relay.example.com A].alias.dns_name was r when planned, is now a"#
        );
    }

    #[test]
    fn plain_lists_show_only_what_changed() {
        let planned = map(&[(
            "hosted-zone/Z1",
            r#"{"vpcs":[["vpc-1","us-east-1"],["vpc-2","eu-west-1"]]}"#,
        )]);
        let current = map(&[(
            "hosted-zone/Z1",
            r#"{"vpcs":[["vpc-1","us-east-1"],["vpc-3","us-west-2"]]}"#,
        )]);
        assert_eq!(
            compare(&planned, &current)[0].to_string(),
            r#"`hosted-zone/Z1`: vpcs lost ["vpc-2","eu-west-1"] and gained ["vpc-3","us-west-2"] since planned"#
        );
    }

    #[test]
    fn routes_are_compared_by_destination() {
        let planned = map(&[(
            "route-table/rtb-1",
            r#"{"routes":[{"destination_cidr":"10.0.0.0/16","target":"local"},{"destination_cidr":"10.9.0.0/16","target":"pcx-1"}]}"#,
        )]);
        let current = map(&[(
            "route-table/rtb-1",
            r#"{"routes":[{"destination_cidr":"10.0.0.0/16","target":"local"}]}"#,
        )]);
        let text = compare(&planned, &current)[0].to_string();
        assert_eq!(
            text,
            r#"`route-table/rtb-1`: routes[10.9.0.0/16] was {"destination_cidr":"10.9.0.0/16","target":"pcx-1"} when planned, is now absent"#
        );
    }

    #[test]
    fn lists_of_objects_are_compared_item_by_item() {
        let planned = map(&[(
            "route-table/rtb-1",
            r#"{"routes":[{"target":"local"},{"target":"pcx-1"}]}"#,
        )]);
        let current = map(&[(
            "route-table/rtb-1",
            r#"{"routes":[{"target":"local"},{"target":"igw-1"}]}"#,
        )]);
        assert_eq!(
            compare(&planned, &current)[0].to_string(),
            "`route-table/rtb-1`: routes[1].target was pcx-1 when planned, is now igw-1"
        );
    }

    #[test]
    fn many_fields_are_counted_beyond_the_first_few() {
        let planned = map(&[("x", r#"{"a":1,"b":1,"c":1,"d":1,"e":1,"f":1}"#)]);
        let current = map(&[("x", r#"{"a":2,"b":2,"c":2,"d":2,"e":2,"f":2}"#)]);
        let text = compare(&planned, &current)[0].to_string();
        assert!(text.ends_with("; and 2 more"), "{text}");
        assert_eq!(
            text.matches(" when planned").count(),
            MAX_FIELDS_LISTED,
            "only the first fields are listed: {text}"
        );
    }

    #[test]
    fn key_missing_now_is_not_read() {
        let planned = map(&[("identity/us-west-2", r#"{"account_id":"1"}"#)]);
        let changed = compare(&planned, &BTreeMap::new());
        assert_eq!(changed[0].fields[0].current, "(not read)");
    }
}
