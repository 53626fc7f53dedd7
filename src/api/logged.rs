//! How text a client chose (a username, a request path, a method) appears in the log: escaped, so
//! it cannot break a line or forge one, and cut to a bounded prefix, so one request cannot cost a
//! large log line (a 60 KB username used to be logged whole on every throttled attempt).

use std::fmt;

/// Characters of a username a log line shows.
pub const NAME_CHARS: usize = 64;
/// Characters of a request path or method the access log shows.
pub const PATH_CHARS: usize = 256;

/// Client text as a log line shows it; cut texts end with `…` and their full length in bytes.
pub struct Logged<'a> {
    text: &'a str,
    max_chars: usize,
    quoted: bool,
}

impl<'a> Logged<'a> {
    /// A username, quoted: `"alice"`, `"xxxx…" (60000 bytes)`.
    pub fn name(text: &'a str) -> Self {
        Logged {
            text,
            max_chars: NAME_CHARS,
            quoted: true,
        }
    }

    /// A path or method, for inside the access log's own quotes.
    pub fn path(text: &'a str) -> Self {
        Logged {
            text,
            max_chars: PATH_CHARS,
            quoted: false,
        }
    }
}

impl fmt::Display for Logged<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cut = self.text.char_indices().nth(self.max_chars).map(|(i, _)| i);
        let shown = &self.text[..cut.unwrap_or(self.text.len())];
        if self.quoted {
            f.write_str("\"")?;
        }
        for c in shown.chars() {
            // escape_debug also escapes `'`, which needs no escaping here.
            match c {
                '\'' => f.write_str("'")?,
                c => write!(f, "{}", c.escape_debug())?,
            }
        }
        if self.quoted {
            f.write_str("\"")?;
        }
        if cut.is_some() {
            write!(f, "… ({} bytes)", self.text.len())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_escaped_whole_and_long_text_is_cut() {
        assert_eq!(Logged::name("alice").to_string(), r#""alice""#);
        assert_eq!(
            Logged::name("a\"b\nc\u{1b}").to_string(),
            r#""a\"b\nc\u{1b}""#
        );
        let long = "é".repeat(30_000);
        let shown = Logged::name(&long).to_string();
        assert_eq!(
            shown,
            format!("\"{}\"… (60000 bytes)", "é".repeat(NAME_CHARS))
        );
        let shown = Logged::path(&long).to_string();
        assert!(shown.len() < 2 * PATH_CHARS + 32, "{}", shown.len());
    }
}
