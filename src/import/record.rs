//! Record checks: one document's text is checked with the test every read applies
//! ([`document::check`]) and brought to compact form, Extended JSON rewritten on the way.

use serde_json::Value;

use super::extended::{WRAPPER_DEPTH, from_extended};
use crate::db::inquiries::InquiryRecord;
use crate::document;

/// Checks one document's text and produces its compact form, turning Extended JSON into what
/// Rocket.Chat's REST API shows. Whatever is stored passes [`document::check`], the test every
/// read applies, so the server can serve every record an import accepts.
pub(super) fn record(text: &str) -> Result<InquiryRecord<'_>, String> {
    if text.contains("\"$") {
        // Extended JSON (keys like `$date`): rewrite through a tree, once the text is known to
        // be one that parses into a tree and back without loss.
        document::check_extended(text, WRAPPER_DEPTH).map_err(located)?;
        let value: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let Value::Object(map) = from_extended(value, "")? else {
            return Err("not a JSON object".into());
        };
        let doc = serde_json::to_string(&map).map_err(|e| format!("cannot serialise: {e}"))?;
        let checked = document::check(&doc).map_err(|p| p.to_string())?;
        let (id, rid) = (checked.id.into_owned(), checked.rid.into_owned());
        return Ok(InquiryRecord {
            id,
            rid,
            doc: doc.into(),
        });
    }
    // Plain JSON: stream it to compact form, keeping key order and numbers, without a tree.
    let checked = document::check(text).map_err(located)?;
    let (id, rid) = (checked.id.into_owned(), checked.rid.into_owned());
    if is_compact(text) {
        // Already compact (mongoexport and most exports are): store the text as it came.
        return Ok(InquiryRecord {
            id,
            rid,
            doc: text.into(),
        });
    }
    let mut doc = Vec::with_capacity(text.len());
    let mut de = serde_json::Deserializer::from_str(text);
    serde_transcode::transcode(&mut de, &mut serde_json::Serializer::new(&mut doc))
        .map_err(|e| format!("cannot compact: {e}"))?;
    let doc = String::from_utf8(doc).map_err(|e| format!("cannot compact: {e}"))?;
    Ok(InquiryRecord {
        id,
        rid,
        doc: doc.into(),
    })
}

/// A problem with a record's text, ending with its position in that text the way serde_json ends
/// its messages (` at line L column C`), which [`line_error`] turns into the file's line and column.
fn located(p: document::Problem) -> String {
    match p.at {
        Some((line, column)) => format!("{p} at line {line} column {column}"),
        None => p.to_string(),
    }
}

/// Whether valid JSON text has no whitespace outside its strings.
pub(super) fn is_compact(text: &str) -> bool {
    let mut in_string = false;
    let mut escaped = false;
    for b in text.bytes() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
        } else {
            match b {
                b'"' => in_string = true,
                b' ' | b'\n' | b'\r' | b'\t' => return false,
                _ => {}
            }
        }
    }
    true
}
