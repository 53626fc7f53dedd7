//! Rocket.Chat's pagination (`getPaginationItems`): `offset` and `count` read as JavaScript's
//! `parseInt` reads them, `count` defaulting to 50 and capped at 100, `count=0` meaning no limit
//! (`API_Allow_Infinite_Count` is on by default). Answers carry `total`, the number of matches
//! ignoring offset and count.

/// `API_Default_Count`.
pub const DEFAULT_COUNT: i64 = 50;
/// `API_Upper_Count_Limit`.
pub const MAX_COUNT: i64 = 100;

/// Where a page starts and how long it is; `limit` is `None` for "no limit" (`count=0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub offset: i64,
    pub limit: Option<i64>,
}

impl Page {
    /// The page that `offset` and `count` (raw query values, when present) ask for. What
    /// `parseInt` cannot read (`count=abc`), and negative values, which Rocket.Chat passes on to
    /// Mongo (an error, or its own reading of a negative limit), fall back to the defaults.
    pub fn from_params(offset: Option<&str>, count: Option<&str>) -> Page {
        let offset = offset.and_then(parse_int).filter(|o| *o >= 0).unwrap_or(0);
        let count = match count {
            None => DEFAULT_COUNT,
            // `parseInt(String(params.count || 0))`: an empty value reads as 0.
            Some("") => 0,
            Some(c) => parse_int(c).filter(|c| *c >= 0).unwrap_or(DEFAULT_COUNT),
        };
        Page {
            offset,
            limit: (count != 0).then_some(count.min(MAX_COUNT)),
        }
    }

    /// The `LIMIT` of an SQL query: -1 is SQLite's "no limit".
    pub fn sql_limit(&self) -> i64 {
        self.limit.unwrap_or(-1)
    }
}

/// JavaScript's `parseInt(text, 10)`: optional leading whitespace and sign, then the longest run
/// of digits; `None` (NaN) when there is none. Saturates instead of losing precision.
pub fn parse_int(text: &str) -> Option<i64> {
    let t = text.trim_start();
    let (negative, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    if end == 0 {
        return None;
    }
    let value = digits[..end].bytes().fold(0i64, |n, d| {
        n.saturating_mul(10).saturating_add(i64::from(d - b'0'))
    });
    Some(if negative { -value } else { value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_offset_and_count_as_rocketchat_does() {
        let page = |o, c| Page::from_params(o, c);
        assert_eq!(
            page(None, None),
            Page {
                offset: 0,
                limit: Some(50)
            }
        );
        assert_eq!(page(Some("5"), Some("10")).offset, 5);
        assert_eq!(page(None, Some("10")).limit, Some(10));
        assert_eq!(page(None, Some("1000")).limit, Some(100));
        assert_eq!(page(None, Some("0")).limit, None);
        assert_eq!(page(None, Some("")).limit, None);
        assert_eq!(page(None, Some("12abc")).limit, Some(12));
        assert_eq!(page(None, Some("abc")).limit, Some(50));
        assert_eq!(page(None, Some("-3")).limit, Some(50));
        assert_eq!(page(Some("-3"), None).offset, 0);
        assert_eq!(page(Some("x"), None).offset, 0);
        assert_eq!(parse_int(" +7"), Some(7));
        assert_eq!(parse_int("99999999999999999999999"), Some(i64::MAX));
    }
}
