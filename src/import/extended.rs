//! MongoDB Extended JSON, as `mongoexport` writes it: `$date`, `$oid`, `$numberLong`,
//! `$numberInt` and `$numberDouble` wrappers become the plain values Rocket.Chat's REST API shows.

use serde_json::{Map, Value};

/// Levels of nesting MongoDB Extended JSON wrappers add to a value (`{"$date": {"$numberLong":
/// …}}`), allowed before they are turned into plain values.
pub(super) const WRAPPER_DEPTH: usize = 2;

/// Rewrites MongoDB Extended JSON wrappers (`$date`, `$oid`, `$numberLong`, `$numberInt`,
/// `$numberDouble`) into plain values; `at` is the JSON Pointer for error messages.
pub(super) fn from_extended(value: Value, at: &str) -> Result<Value, String> {
    match value {
        Value::Object(map) => {
            if map.len() == 1 {
                let (key, inner) = map
                    .iter()
                    .next()
                    .map(|(k, v)| (k.as_str(), v))
                    .unwrap_or(("", &Value::Null));
                match key {
                    "$date" => return date(inner).map_err(|e| format!("field {at:?}: {e}")),
                    "$oid" => {
                        return inner
                            .as_str()
                            .map(|s| Value::String(s.to_string()))
                            .ok_or_else(|| format!("field {at:?}: $oid must be a string"));
                    }
                    "$numberLong" | "$numberInt" => {
                        return inner
                            .as_str()
                            .and_then(|s| s.parse::<i64>().ok())
                            .map(Value::from)
                            .ok_or_else(|| {
                                format!("field {at:?}: {key} must be an integer string")
                            });
                    }
                    "$numberDouble" => {
                        return inner
                            .as_str()
                            .and_then(|s| s.parse::<f64>().ok())
                            .and_then(serde_json::Number::from_f64)
                            .map(Value::Number)
                            .ok_or_else(|| {
                                format!(
                                    "field {at:?}: $numberDouble must be a finite number string"
                                )
                            });
                    }
                    _ => {}
                }
            }
            let mut out = Map::with_capacity(map.len());
            for (k, v) in map {
                let path = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                let v = from_extended(v, &path)?;
                out.insert(k, v);
            }
            Ok(Value::Object(out))
        }
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, v)| from_extended(v, &format!("{at}/{i}")))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        other => Ok(other),
    }
}

/// `{"$date": …}` in any of mongoexport's forms → the ISO string Rocket.Chat's REST API shows
/// (UTC, milliseconds, `Z`).
fn date(inner: &Value) -> Result<Value, String> {
    let millis = match inner {
        Value::String(s) => {
            let parsed = chrono::DateTime::parse_from_rfc3339(s)
                .map_err(|e| format!("$date {s:?} is not an ISO-8601 date: {e}"))?;
            parsed.timestamp_millis()
        }
        Value::Number(n) => n
            .as_i64()
            .ok_or("$date number must be whole milliseconds")?,
        Value::Object(o) => match o.get("$numberLong").and_then(Value::as_str) {
            Some(s) if o.len() == 1 => s
                .parse::<i64>()
                .map_err(|_| format!("$date.$numberLong {s:?} is not an integer"))?,
            _ => return Err("$date object must be {\"$numberLong\": \"<ms>\"}".into()),
        },
        _ => return Err("$date must be a string, a number or {\"$numberLong\": …}".into()),
    };
    let dt = chrono::DateTime::from_timestamp_millis(millis)
        .ok_or_else(|| format!("$date {millis} is out of range"))?;
    Ok(Value::String(
        dt.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
    ))
}
