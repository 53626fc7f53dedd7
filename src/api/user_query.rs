//! `users.list`'s deprecated `query` parameter, in the one shape Rocket.Chat 7.x's clients send:
//! a JSON object whose keys are ANDed, each either `$or`/`$and` over such objects or a user
//! field (`username`, `name`, `emails.address`) matched by a string (equality) or by
//! `{"$regex": "…", "$options": "i"}`. Rocket.Chat cleans `query` down to `$or`/`$and`/`$regex`
//! (§0.4 of the admin routes reference); anything outside this shape is refused whole with a 400
//! naming the problem instead of being silently dropped, so a search never answers more users
//! than it asked for.

use regex_automata::meta::Regex;
use regex_automata::util::syntax;
use serde_json::{Map, Value, json};

use super::ApiError;
use crate::db::users::UserRow;

/// A parsed `query`: true for the users it selects.
#[derive(Debug)]
pub enum UserQuery {
    All(Vec<UserQuery>),
    Any(Vec<UserQuery>),
    Field(Field, Matcher),
}

#[derive(Debug, Clone, Copy)]
pub enum Field {
    Username,
    Name,
    Email,
}

#[derive(Debug)]
pub enum Matcher {
    Equals(String),
    Regex(Regex),
}

/// The most nested `$or`/`$and` levels one query may hold: a search needs two.
const MAX_DEPTH: usize = 8;

impl UserQuery {
    /// Whether the query reads `emails.address` (which only callers who may see others' emails
    /// may search: a regex on it would reveal an address a character at a time).
    pub fn reads_email(&self) -> bool {
        match self {
            UserQuery::All(parts) | UserQuery::Any(parts) => {
                parts.iter().any(UserQuery::reads_email)
            }
            UserQuery::Field(field, _) => matches!(field, Field::Email),
        }
    }

    /// Parses `raw` (the parameter's text). On failure: 400 `error-invalid-query` (Rocket.Chat's
    /// own type and message for a query it cannot parse), with why appended when the JSON parsed
    /// but asks for something this server cannot filter on.
    pub fn parse(raw: &str) -> Result<UserQuery, ApiError> {
        let invalid = |why: Option<String>| {
            let mut reason = format!("Invalid query parameter provided: \"{raw}\"");
            if let Some(why) = why {
                reason.push_str(": ");
                reason.push_str(&why);
            }
            ApiError::meteor(
                "error-invalid-query",
                reason,
                Some(json!({"helperMethod": "parseJsonQuery"})),
            )
        };
        let value: Value = serde_json::from_str(raw).map_err(|_| invalid(None))?;
        let Value::Object(map) = value else {
            return Err(invalid(Some("a query is a JSON object".into())));
        };
        object(&map, 0).map_err(|why| invalid(Some(why)))
    }

    /// Whether `user` is selected.
    pub fn matches(&self, user: &UserRow) -> bool {
        match self {
            UserQuery::All(parts) => parts.iter().all(|p| p.matches(user)),
            UserQuery::Any(parts) => parts.iter().any(|p| p.matches(user)),
            UserQuery::Field(field, matcher) => {
                let text = match field {
                    Field::Username => Some(user.username.as_str()),
                    Field::Name => Some(user.name.as_str()),
                    Field::Email => user.email.as_deref(),
                };
                // MongoDB: a field the document lacks matches neither a string nor a $regex
                text.is_some_and(|t| match matcher {
                    Matcher::Equals(s) => s == t,
                    Matcher::Regex(re) => re.is_match(t),
                })
            }
        }
    }
}

fn object(map: &Map<String, Value>, depth: usize) -> Result<UserQuery, String> {
    if depth > MAX_DEPTH {
        return Err(format!("more than {MAX_DEPTH} nested $or/$and"));
    }
    let mut parts = Vec::with_capacity(map.len());
    for (key, value) in map {
        parts.push(match key.as_str() {
            op @ ("$or" | "$and") => {
                let items = match value {
                    Value::Array(items) if !items.is_empty() => items,
                    _ => return Err(format!("{op} takes a non-empty array of objects")),
                };
                let inner = items
                    .iter()
                    .map(|item| match item {
                        Value::Object(m) => object(m, depth + 1),
                        _ => Err(format!("{op} takes a non-empty array of objects")),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                if op == "$or" {
                    UserQuery::Any(inner)
                } else {
                    UserQuery::All(inner)
                }
            }
            "username" => UserQuery::Field(Field::Username, matcher(key, value)?),
            "name" => UserQuery::Field(Field::Name, matcher(key, value)?),
            "emails.address" => UserQuery::Field(Field::Email, matcher(key, value)?),
            other => {
                return Err(format!(
                    "{other} cannot be searched (username, name, emails.address, $or and $and can)"
                ));
            }
        });
    }
    Ok(UserQuery::All(parts))
}

fn matcher(field: &str, value: &Value) -> Result<Matcher, String> {
    let shape =
        || format!("{field} takes a string or {{\"$regex\": string, \"$options\": string}}");
    match value {
        Value::String(s) => Ok(Matcher::Equals(s.clone())),
        Value::Object(m) => {
            let Some(Value::String(pattern)) = m.get("$regex") else {
                return Err(shape());
            };
            let options = match m.get("$options") {
                None => "",
                Some(Value::String(o)) => o.as_str(),
                Some(_) => return Err(shape()),
            };
            if m.keys().any(|k| k != "$regex" && k != "$options") {
                return Err(shape());
            }
            let mut config = syntax::Config::new();
            for option in options.chars() {
                config = match option {
                    'i' => config.case_insensitive(true),
                    'm' => config.multi_line(true),
                    's' => config.dot_matches_new_line(true),
                    'x' => config.ignore_whitespace(true),
                    other => {
                        return Err(format!(
                            "{field}: unknown $options flag {other:?} (i, m, s and x are known)"
                        ));
                    }
                };
            }
            Regex::builder()
                .syntax(config)
                .build(pattern)
                .map(Matcher::Regex)
                .map_err(|e| format!("{field}: $regex does not compile: {e}"))
        }
        _ => Err(shape()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::UserId;

    fn user(username: &str, name: &str, email: Option<&str>) -> UserRow {
        UserRow {
            id: UserId(format!("id-{username}")),
            username: username.into(),
            name: name.into(),
            active: true,
            roles: vec![],
            password_hash: None,
            email: email.map(str::to_owned),
            created_at: 0,
        }
    }

    #[test]
    fn the_consoles_search_matches_username_or_name_without_case() {
        let q = UserQuery::parse(
            r#"{"$or":[{"username":{"$regex":"e2e\\.ag","$options":"i"}},{"name":{"$regex":"e2e\\.ag","$options":"i"}}]}"#,
        )
        .unwrap();
        assert!(q.matches(&user("E2E.agent", "x", None)));
        assert!(q.matches(&user("someone", "the e2e.Agent", None)));
        assert!(
            !q.matches(&user("e2eXagent", "nobody", None)),
            "the dot is escaped"
        );
    }

    #[test]
    fn a_string_is_equality_and_a_missing_email_matches_nothing() {
        let q = UserQuery::parse(r#"{"username":"bob","emails.address":{"$regex":"."}}"#).unwrap();
        assert!(q.matches(&user("bob", "", Some("b@x.org"))));
        assert!(!q.matches(&user("bob", "", None)));
        assert!(!q.matches(&user("bobby", "", Some("b@x.org"))));
    }

    #[test]
    fn what_cannot_be_filtered_is_refused_with_the_reason() {
        for (raw, why) in [
            ("{", ""),
            ("[]", "a query is a JSON object"),
            (r#"{"roles":"admin"}"#, "roles cannot be searched"),
            (r#"{"$where":"1"}"#, "$where cannot be searched"),
            (r#"{"$or":{}}"#, "$or takes a non-empty array"),
            (r#"{"$or":[]}"#, "$or takes a non-empty array"),
            (r#"{"name":{"$regex":"("}}"#, "$regex does not compile"),
            (
                r#"{"name":{"$regex":"a","$options":"q"}}"#,
                "unknown $options flag 'q'",
            ),
            (r#"{"name":{"$ne":"a"}}"#, "name takes a string or"),
            (r#"{"name":5}"#, "name takes a string or"),
        ] {
            let err = UserQuery::parse(raw).unwrap_err().to_string();
            assert!(
                err.contains("Invalid query parameter provided"),
                "{raw}: {err}"
            );
            assert!(err.contains(why), "{raw}: {err}");
        }
    }

    #[test]
    fn nesting_is_bounded() {
        let mut raw = r#"{"username":"a"}"#.to_string();
        for _ in 0..=MAX_DEPTH {
            raw = format!(r#"{{"$and":[{raw}]}}"#);
        }
        let err = UserQuery::parse(&raw).unwrap_err().to_string();
        assert!(err.contains("nested"), "{err}");
    }
}
