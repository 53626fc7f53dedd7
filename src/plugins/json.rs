//! Parsing a plugin or table file into a [`Value`] with a budget on the number of values it holds.
//!
//! A parsed value costs far more than its text: `[]` is two bytes of file and 72 of heap, so a
//! 16 MiB table of empty arrays took 430 MB. Counting the values as they are built, and
//! stopping at the budget, bounds that cost by the budget instead of by what the text expands to;
//! the error carries the line and column where the budget ran out, as any syntax error does.

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Parses `bytes` as one JSON value holding at most `budget` values (every scalar, array and
/// object counts one; object keys do not). Returns the value and how many values it holds.
pub fn parse(bytes: &[u8], budget: usize) -> Result<(Value, usize), serde_json::Error> {
    let left = Cell::new(budget);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = Counted {
        left: &left,
        budget,
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok((value, budget - left.get()))
}

#[derive(Clone, Copy)]
struct Counted<'a> {
    left: &'a Cell<usize>,
    budget: usize,
}

impl Counted<'_> {
    fn take<E: de::Error>(self) -> Result<(), E> {
        match self.left.get().checked_sub(1) {
            Some(n) => {
                self.left.set(n);
                Ok(())
            }
            None => Err(E::custom(format_args!(
                "over the budget of {} JSON values",
                self.budget
            ))),
        }
    }
}

impl<'de> DeserializeSeed<'de> for Counted<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Counted<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        self.take()?;
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        self.take()?;
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        self.take()?;
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        self.take()?;
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        self.take()?;
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        self.take()?;
        Ok(Value::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        self.take()?;
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        self.visit_unit()
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.take()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.take()?;
        let mut members = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(self)?;
            members.insert(key, value);
        }
        Ok(Value::Object(members))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_serde_json_and_counts_values() {
        let text = br#"{"a":[1,-2,3.5,"x",true,null,{}],"b":{"c":[]},"a":0}"#;
        let (v, n) = parse(text, 100).expect("parses");
        assert_eq!(v, serde_json::from_slice::<Value>(text).expect("parses"));
        // the duplicate "a" replaces the first, as serde_json does, but both were built
        assert_eq!(n, 12);
        assert!(parse(text, 11).is_err());
        let e = parse(b"[[],[],[]]", 3).expect_err("over");
        assert!(
            e.to_string().contains("over the budget of 3 JSON values"),
            "{e}"
        );
        assert_eq!((e.line(), e.column()), (1, 9));
        assert!(parse(b"[] x", 10).is_err(), "trailing characters");
        assert!(parse(b"[", 10).is_err());
    }
}
