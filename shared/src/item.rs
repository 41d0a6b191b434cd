//! Small, explicit helpers to build and read DynamoDB items.

use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

pub type Item = HashMap<String, AttributeValue>;

pub fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub fn b(value: bool) -> AttributeValue {
    AttributeValue::Bool(value)
}

/// Typed reads of an item's attributes; absent or mistyped attributes read as None.
pub trait ItemExt {
    fn str(&self, name: &str) -> Option<&str>;
    fn string(&self, name: &str) -> Option<String> {
        self.str(name).map(str::to_owned)
    }
    fn num<T: std::str::FromStr>(&self, name: &str) -> Option<T>;
    fn flag(&self, name: &str) -> bool;
    fn string_set(&self, name: &str) -> Vec<String>;
    /// The attributes as an owned item.
    fn to_item(&self) -> Item;
}

impl ItemExt for Item {
    fn str(&self, name: &str) -> Option<&str> {
        match self.get(name) {
            Some(AttributeValue::S(v)) => Some(v.as_str()),
            _ => None,
        }
    }

    fn num<T: std::str::FromStr>(&self, name: &str) -> Option<T> {
        match self.get(name) {
            Some(AttributeValue::N(v)) => v.parse().ok(),
            _ => None,
        }
    }

    fn flag(&self, name: &str) -> bool {
        matches!(self.get(name), Some(AttributeValue::Bool(true)))
    }

    fn string_set(&self, name: &str) -> Vec<String> {
        match self.get(name) {
            Some(AttributeValue::Ss(values)) => values.clone(),
            _ => Vec::new(),
        }
    }

    fn to_item(&self) -> Item {
        self.clone()
    }
}

/// Builds an item attribute by attribute, skipping absent optionals.
#[derive(Default)]
pub struct ItemBuilder(Item);

impl ItemBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn set(mut self, name: &str, value: AttributeValue) -> Self {
        self.0.insert(name.to_owned(), value);
        self
    }

    pub fn str(self, name: &str, value: impl Into<String>) -> Self {
        self.set(name, s(value))
    }

    pub fn opt_str(self, name: &str, value: Option<impl Into<String>>) -> Self {
        match value {
            Some(v) => self.str(name, v),
            None => self,
        }
    }

    pub fn num(self, name: &str, value: impl ToString) -> Self {
        self.set(name, n(value))
    }

    pub fn opt_num(self, name: &str, value: Option<impl ToString>) -> Self {
        match value {
            Some(v) => self.num(name, v),
            None => self,
        }
    }

    pub fn flag(self, name: &str, value: bool) -> Self {
        self.set(name, b(value))
    }

    pub fn build(self) -> Item {
        self.0
    }
}

/// Expression attribute values from pairs.
pub fn values<const N: usize>(
    pairs: [(&str, AttributeValue); N],
) -> HashMap<String, AttributeValue> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_and_reader_round_trip() {
        let item = ItemBuilder::new()
            .str("name", "x")
            .opt_str("none", None::<String>)
            .num("count", 3)
            .flag("pinned", true)
            .set("members", AttributeValue::Ss(vec!["a".into()]))
            .build();
        assert_eq!(item.str("name"), Some("x"));
        assert!(!item.contains_key("none"));
        assert_eq!(item.num::<u32>("count"), Some(3));
        assert!(item.flag("pinned"));
        assert!(!item.flag("name"));
        assert_eq!(item.string_set("members"), vec!["a".to_string()]);
    }
}
