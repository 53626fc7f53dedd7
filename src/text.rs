//! Wording shared by the command line and the log.

/// "1 token", "2 tokens", "0 tokens": a count with its noun in the right number, never
/// "token(s)".
pub fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}
