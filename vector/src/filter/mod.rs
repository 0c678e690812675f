//! The filter language: parsed from JSON against a collection's schema.
//!
//! ```text
//! {"color": "red"}                          shorthand for eq
//! {"color": {"eq": "red"}}                  eq, ne
//! {"color": {"in": ["red", "blue"]}}        in, not_in (also "nin")
//! {"price": {"gte": 10, "lt": 20}}          lt, lte, gt, gte on integer and float
//! {"tags": {"contains": "sale"}}            contains on string_list
//! {"color": {"exists": true}}               exists (false: the attribute is absent)
//! {"and": [f, ...]}  {"or": [f, ...]}  {"not": f}
//! {"color": "red", "size": {"gt": 3}}       several fields in one object: and
//! ```
//!
//! `ne` and `not_in` match records that have the attribute with another value; `not`
//! matches every record its operand does not.

pub(crate) mod eval;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::model::{AttributeType, AttributeValue, CollectionSpec, json_kind};

/// The deepest filter nesting accepted.
pub const MAX_FILTER_DEPTH: usize = 32;
/// The most values an `in` or `not_in` list may hold.
pub const MAX_IN_VALUES: usize = 10_000;

/// One end of a numeric range.
#[derive(Debug, Clone, PartialEq)]
pub struct Bound {
    /// The bounding value (of the attribute's type).
    pub value: AttributeValue,
    /// Whether the value itself is inside the range.
    pub inclusive: bool,
}

/// A parsed, schema-checked filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// The attribute equals the value (for lists: the list contains it).
    Eq(String, AttributeValue),
    /// The attribute exists and differs from the value.
    Ne(String, AttributeValue),
    /// The attribute equals one of the values.
    In(String, Vec<AttributeValue>),
    /// The attribute exists and equals none of the values.
    NotIn(String, Vec<AttributeValue>),
    /// The numeric attribute is inside the range.
    Range {
        /// The attribute.
        field: String,
        /// The lower end, if any.
        lower: Option<Bound>,
        /// The upper end, if any.
        upper: Option<Bound>,
    },
    /// The list attribute contains the string.
    Contains(String, String),
    /// The attribute is present.
    Exists(String),
    /// All of the filters match (an empty list matches everything).
    And(Vec<Filter>),
    /// Any of the filters matches (an empty list matches nothing).
    Or(Vec<Filter>),
    /// The filter does not match.
    Not(Box<Filter>),
}

impl Filter {
    /// Parses `value` against `spec`'s attributes.
    pub fn from_json(value: &Value, spec: &CollectionSpec) -> Result<Filter> {
        parse(value, spec, 0).map_err(|e| match e {
            Error::InvalidInput(m) => Error::InvalidInput(format!("filter: {m}")),
            other => other,
        })
    }

    /// Parses a JSON text.
    pub fn from_json_str(text: &str, spec: &CollectionSpec) -> Result<Filter> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| Error::invalid(format!("filter is not valid JSON: {e}")))?;
        Self::from_json(&value, spec)
    }
}

fn parse(value: &Value, spec: &CollectionSpec, depth: usize) -> Result<Filter> {
    if depth > MAX_FILTER_DEPTH {
        return Err(Error::invalid(format!(
            "nested deeper than {MAX_FILTER_DEPTH} levels"
        )));
    }
    let Value::Object(map) = value else {
        return Err(Error::invalid(format!(
            "expected an object, got {}",
            json_kind(value)
        )));
    };
    if map.is_empty() {
        return Err(Error::invalid(
            "empty object; name an attribute or and/or/not",
        ));
    }
    let mut parts = Vec::with_capacity(map.len());
    for (key, v) in map {
        let part = match key.as_str() {
            "and" | "or" => {
                let Value::Array(items) = v else {
                    return Err(Error::invalid(format!(
                        "{key:?} takes a list of filters, got {}",
                        json_kind(v)
                    )));
                };
                let subs = items
                    .iter()
                    .map(|i| parse(i, spec, depth + 1))
                    .collect::<Result<Vec<_>>>()?;
                if key == "and" {
                    Filter::And(subs)
                } else {
                    Filter::Or(subs)
                }
            }
            "not" => Filter::Not(Box::new(parse(v, spec, depth + 1)?)),
            field => parse_field(field, v, spec)?,
        };
        parts.push(part);
    }
    Ok(if parts.len() == 1 {
        parts.pop().expect("one part")
    } else {
        Filter::And(parts)
    })
}

fn parse_field(field: &str, v: &Value, spec: &CollectionSpec) -> Result<Filter> {
    let ty = *spec.attributes.get(field).ok_or_else(|| {
        Error::invalid(format!(
            "unknown attribute {field:?} in collection {:?}",
            spec.name
        ))
    })?;
    let ops = match v {
        Value::Object(ops) => ops,
        // Shorthand: {"field": value} is eq.
        other => return eq_filter(field, ty, other),
    };
    if ops.is_empty() {
        return Err(Error::invalid(format!(
            "attribute {field:?}: empty operator object"
        )));
    }
    let mut parts = Vec::new();
    let mut lower: Option<Bound> = None;
    let mut upper: Option<Bound> = None;
    for (op, arg) in ops {
        match op.as_str() {
            "eq" => parts.push(eq_filter(field, ty, arg)?),
            "ne" => {
                let Filter::Eq(f, val) = eq_filter(field, ty, arg)? else {
                    unreachable!("eq_filter returns Eq")
                };
                parts.push(Filter::Ne(f, val));
            }
            "in" | "not_in" | "nin" => {
                let Value::Array(items) = arg else {
                    return Err(Error::invalid(format!(
                        "attribute {field:?}: {op:?} takes a list, got {}",
                        json_kind(arg)
                    )));
                };
                if items.len() > MAX_IN_VALUES {
                    return Err(Error::invalid(format!(
                        "attribute {field:?}: {op:?} list of {} values is longer than {MAX_IN_VALUES}",
                        items.len()
                    )));
                }
                let vals = items
                    .iter()
                    .map(|i| scalar(field, ty, i))
                    .collect::<Result<Vec<_>>>()?;
                parts.push(if op == "in" {
                    Filter::In(field.to_string(), vals)
                } else {
                    Filter::NotIn(field.to_string(), vals)
                });
            }
            "lt" | "lte" | "gt" | "gte" => {
                if !matches!(ty, AttributeType::Integer | AttributeType::Float) {
                    return Err(Error::invalid(format!(
                        "attribute {field:?} is {}; {op:?} needs an integer or float attribute",
                        ty.name()
                    )));
                }
                let value = AttributeValue::from_json(field, ty, arg)?;
                let bound = Bound {
                    value,
                    inclusive: op.ends_with('e'),
                };
                let slot = if op.starts_with('l') {
                    &mut upper
                } else {
                    &mut lower
                };
                if slot.is_some() {
                    return Err(Error::invalid(format!(
                        "attribute {field:?}: two {} bounds",
                        if op.starts_with('l') {
                            "upper"
                        } else {
                            "lower"
                        }
                    )));
                }
                *slot = Some(bound);
            }
            "contains" => {
                if ty != AttributeType::StringList {
                    return Err(Error::invalid(format!(
                        "attribute {field:?} is {}; contains needs a string_list attribute",
                        ty.name()
                    )));
                }
                let Value::String(s) = arg else {
                    return Err(Error::invalid(format!(
                        "attribute {field:?}: contains takes a string, got {}",
                        json_kind(arg)
                    )));
                };
                parts.push(Filter::Contains(field.to_string(), s.clone()));
            }
            "exists" => {
                let Value::Bool(b) = arg else {
                    return Err(Error::invalid(format!(
                        "attribute {field:?}: exists takes true or false, got {}",
                        json_kind(arg)
                    )));
                };
                let f = Filter::Exists(field.to_string());
                parts.push(if *b { f } else { Filter::Not(Box::new(f)) });
            }
            other => {
                return Err(Error::invalid(format!(
                    "attribute {field:?}: unknown operator {other:?}; expected eq, ne, in, not_in, lt, lte, gt, gte, contains or exists"
                )));
            }
        }
    }
    if lower.is_some() || upper.is_some() {
        parts.push(Filter::Range {
            field: field.to_string(),
            lower,
            upper,
        });
    }
    Ok(if parts.len() == 1 {
        parts.pop().expect("one part")
    } else {
        Filter::And(parts)
    })
}

/// An equality on `field`: for list attributes, the list contains the string.
fn eq_filter(field: &str, ty: AttributeType, v: &Value) -> Result<Filter> {
    Ok(Filter::Eq(field.to_string(), scalar(field, ty, v)?))
}

/// A single comparable value of `field`'s type (a string for list attributes).
fn scalar(field: &str, ty: AttributeType, v: &Value) -> Result<AttributeValue> {
    if ty == AttributeType::StringList {
        return match v {
            Value::String(s) => Ok(AttributeValue::String(s.clone())),
            other => Err(Error::invalid(format!(
                "attribute {field:?} is string_list; compare it with a string, got {}",
                json_kind(other)
            ))),
        };
    }
    AttributeValue::from_json(field, ty, v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Metric;
    use serde_json::json;

    fn spec() -> CollectionSpec {
        CollectionSpec::new("c", 2, Metric::L2)
            .with_attribute("color", AttributeType::String)
            .with_attribute("size", AttributeType::Integer)
            .with_attribute("price", AttributeType::Float)
            .with_attribute("tags", AttributeType::StringList)
            .with_attribute("ok", AttributeType::Bool)
    }

    #[test]
    fn should_parse_every_operator() {
        let s = spec();
        let f = Filter::from_json(
            &json!({"and": [
                {"color": "red"},
                {"color": {"ne": "blue"}},
                {"size": {"in": [1, 2]}},
                {"size": {"not_in": [3]}},
                {"price": {"gte": 1, "lt": 2.5}},
                {"tags": {"contains": "x"}},
                {"ok": {"exists": true}},
                {"or": [{"ok": true}, {"not": {"color": {"eq": "red"}}}]}
            ]}),
            &s,
        )
        .unwrap();
        let Filter::And(parts) = f else { panic!() };
        assert_eq!(parts.len(), 8);
        assert_eq!(
            parts[4],
            Filter::Range {
                field: "price".into(),
                lower: Some(Bound {
                    value: AttributeValue::Float(1.0),
                    inclusive: true
                }),
                upper: Some(Bound {
                    value: AttributeValue::Float(2.5),
                    inclusive: false
                }),
            }
        );
    }

    #[test]
    fn should_reject_malformed_filters_with_a_message() {
        let s = spec();
        for (f, needle) in [
            (json!({"nope": 1}), "unknown attribute \"nope\""),
            (json!({"size": "big"}), "attribute \"size\" is integer"),
            (json!({"color": {"lt": "a"}}), "needs an integer or float"),
            (
                json!({"size": {"contains": "a"}}),
                "contains needs a string_list",
            ),
            (json!({"size": {"like": 1}}), "unknown operator \"like\""),
            (json!({"and": 3}), "takes a list"),
            (json!([1]), "expected an object"),
            (json!({}), "empty object"),
            (json!({"price": {"gt": 1, "gte": 2}}), "two lower bounds"),
        ] {
            let err = Filter::from_json(&f, &s).unwrap_err().to_string();
            assert!(err.contains(needle), "{f}: {err}");
        }
    }

    #[test]
    fn should_reject_too_deep_nesting() {
        let mut v = json!({"color": "red"});
        for _ in 0..40 {
            v = json!({ "not": v });
        }
        let err = Filter::from_json(&v, &spec()).unwrap_err().to_string();
        assert!(err.contains("nested deeper"), "{err}");
    }
}
