//! `inquiry export`: every stored inquiry, out in a shape `inquiry import` reads back to the same
//! stored documents, byte for byte. NDJSON writes each document exactly as stored; `mongoexport`
//! writes what `mongoexport` of `rocketchat_livechat_inquiry` would (NDJSON, dates as
//! `{"$date": "…"}`), which import turns back into the same ISO strings.

use std::io::Write;

use serde_json::Value;

use crate::db::inquiries::{ExportError, Unservable};

/// The shape of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One stored document per line, exactly as stored
    Ndjson,
    /// As mongoexport writes it: NDJSON, dates as {"$date": "…"} (MongoDB Extended JSON)
    Mongoexport,
}

/// What an export wrote, and the rows it could not.
#[derive(Debug, Default)]
pub struct Exported {
    pub written: usize,
    pub skipped: Vec<Unservable>,
}

/// Writes every stored inquiry to `out` in `format`, in one read transaction (a consistent
/// snapshot while the server writes). A row the server cannot serve is not written, and listed.
pub fn export(
    conn: &mut rusqlite::Connection,
    format: Format,
    out: &mut impl Write,
) -> Result<Exported, ExportError> {
    let tx = conn.transaction()?;
    let mut done = Exported::default();
    crate::db::inquiries::for_each_document(&tx, |row| {
        match row {
            Ok(doc) => {
                match format {
                    Format::Ndjson => out.write_all(doc.as_bytes())?,
                    Format::Mongoexport => out.write_all(to_mongoexport(doc).as_bytes())?,
                }
                out.write_all(b"\n")?;
                done.written += 1;
            }
            Err(bad) => done.skipped.push(bad),
        }
        Ok(())
    })?;
    tx.finish()?;
    out.flush().map_err(ExportError::Write)?;
    Ok(done)
}

/// A stored document as mongoexport writes it: strings holding an ISO date the way Rocket.Chat's
/// REST API shows one (`2023-11-24T12:16:12.370Z`, which is what import makes of a `$date`)
/// become `{"$date": "…"}`. A document whose text a JSON tree would not give back unchanged (a
/// number written `1e3`, say) is written as stored, which import also reads back unchanged.
fn to_mongoexport(doc: &str) -> std::borrow::Cow<'_, str> {
    let Ok(value) = serde_json::from_str::<Value>(doc) else {
        return doc.into();
    };
    if serde_json::to_string(&value).ok().as_deref() != Some(doc) {
        return doc.into();
    }
    let wrapped = wrap_dates(value);
    serde_json::to_string(&wrapped).map_or_else(|_| doc.into(), Into::into)
}

fn wrap_dates(value: Value) -> Value {
    match value {
        Value::String(s) if is_api_date(&s) => serde_json::json!({ "$date": s }),
        Value::Array(items) => Value::Array(items.into_iter().map(wrap_dates).collect()),
        Value::Object(map) => {
            Value::Object(map.into_iter().map(|(k, v)| (k, wrap_dates(v))).collect())
        }
        other => other,
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`, a date that reads back as itself.
fn is_api_date(s: &str) -> bool {
    s.len() == 24
        && s.ends_with('Z')
        && chrono::DateTime::parse_from_rfc3339(s).is_ok_and(|d| {
            d.with_timezone(&chrono::Utc)
                .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                .to_string()
                == s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_wrapped_and_other_text_kept() {
        let doc = r#"{"_id":"a","rid":"r","ts":"2023-11-24T12:16:12.370Z","n":"2023-11-24","v":{"at":["2023-11-24T12:16:12.000Z"]}}"#;
        assert_eq!(
            to_mongoexport(doc),
            r#"{"_id":"a","rid":"r","ts":{"$date":"2023-11-24T12:16:12.370Z"},"n":"2023-11-24","v":{"at":[{"$date":"2023-11-24T12:16:12.000Z"}]}}"#
        );
        let lossy = r#"{"_id":"a","rid":"r","x":1e3,"ts":"2023-11-24T12:16:12.370Z"}"#;
        assert_eq!(to_mongoexport(lossy), lossy);
    }
}
