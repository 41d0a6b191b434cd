//! DynamoDB's JSON (`{"attr": {"S": "…"}, …}`), read by serde: the one reader of that
//! format, for stream records' images and for the table layer's Query answers.
//!
//! A Query answer is read into [`Row`]s that borrow their strings from the answer's
//! text: no map and no owned string per attribute. A 50-message page spent more
//! reading its answer into attribute maps (by the SDK's reader or any other) than our
//! code spent on everything else (docs/performance-notes.md). The item types read a
//! `Row` and an [`Item`] alike, through [`ItemExt`], so each mapping is written once.

use crate::item::{Item, ItemExt};
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::fmt;

/// An item read from DynamoDB's JSON, its strings borrowed from the text where they
/// hold no escapes. Attributes in the order they came; lookups are linear, which for
/// items of a few dozen attributes beats hashing every name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Row<'a>(Vec<(Text<'a>, Attr<'a>)>);

/// One attribute's value: strings and numbers as text, the rest as the SDK's type.
#[derive(Debug, Clone, PartialEq)]
pub enum Attr<'a> {
    S(Text<'a>),
    N(Text<'a>),
    Bool(bool),
    Ss(Vec<Text<'a>>),
    /// Rare in our items (lists, maps, binary, null): boxed, to keep rows small.
    Other(Box<AttributeValue>),
}

/// A string of the answer, borrowed unless it held escapes.
#[derive(Debug, Clone, PartialEq)]
pub struct Text<'a>(Cow<'a, str>);

impl Text<'_> {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'a> Row<'a> {
    fn get(&self, name: &str) -> Option<&Attr<'a>> {
        self.0
            .iter()
            .find(|(n, _)| n.as_str() == name)
            .map(|(_, v)| v)
    }

    /// A row reading an item's attributes (borrowed).
    pub fn of_item(item: &'a Item) -> Self {
        Row(item
            .iter()
            .map(|(name, value)| (Text(Cow::Borrowed(name)), Attr::of(value)))
            .collect())
    }
}

impl<'a> Attr<'a> {
    fn of(value: &'a AttributeValue) -> Self {
        let text = |s: &'a String| Text(Cow::Borrowed(s.as_str()));
        match value {
            AttributeValue::S(s) => Attr::S(text(s)),
            AttributeValue::N(n) => Attr::N(text(n)),
            AttributeValue::Bool(b) => Attr::Bool(*b),
            AttributeValue::Ss(set) => Attr::Ss(set.iter().map(text).collect()),
            other => Attr::other(other.clone()),
        }
    }

    fn other(value: AttributeValue) -> Self {
        Attr::Other(Box::new(value))
    }

    fn to_attribute(&self) -> AttributeValue {
        match self {
            Attr::S(s) => AttributeValue::S(s.as_str().to_owned()),
            Attr::N(n) => AttributeValue::N(n.as_str().to_owned()),
            Attr::Bool(b) => AttributeValue::Bool(*b),
            Attr::Ss(set) => {
                AttributeValue::Ss(set.iter().map(|s| s.as_str().to_owned()).collect())
            }
            Attr::Other(value) => (**value).clone(),
        }
    }
}

impl ItemExt for Row<'_> {
    fn str(&self, name: &str) -> Option<&str> {
        match self.get(name)? {
            Attr::S(s) => Some(s.as_str()),
            _ => None,
        }
    }

    fn num<T: std::str::FromStr>(&self, name: &str) -> Option<T> {
        match self.get(name)? {
            Attr::N(n) => n.as_str().parse().ok(),
            _ => None,
        }
    }

    fn flag(&self, name: &str) -> bool {
        matches!(self.get(name), Some(Attr::Bool(true)))
    }

    fn string_set(&self, name: &str) -> Vec<String> {
        match self.get(name) {
            Some(Attr::Ss(set)) => set.iter().map(|s| s.as_str().to_owned()).collect(),
            _ => Vec::new(),
        }
    }

    /// The row as an owned item (for keys that go back out as cursors).
    fn to_item(&self) -> Item {
        self.0
            .iter()
            .map(|(name, value)| (name.as_str().to_owned(), value.to_attribute()))
            .collect()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Str<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for Str<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(Str(std::marker::PhantomData))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Row<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Attributes<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for Attributes<'a> {
            type Value = Row<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a DynamoDB item")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Row<'a>, A::Error> {
                let mut row = Vec::with_capacity(map.size_hint().unwrap_or(16));
                while let Some(name) = map.next_key::<Text<'a>>()? {
                    row.push((name, map.next_value::<Attr<'a>>()?));
                }
                Ok(Row(row))
            }
        }
        deserializer.deserialize_map(Attributes(std::marker::PhantomData))
    }
}

/// The type names of DynamoDB's JSON, read without allocating.
enum Kind {
    S,
    N,
    Bool,
    Null,
    Ss,
    Ns,
    B,
    Bs,
    L,
    M,
}

const KINDS: &[&str] = &["S", "N", "BOOL", "NULL", "SS", "NS", "B", "BS", "L", "M"];

impl<'de> Deserialize<'de> for Kind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Name;
        impl Visitor<'_> for Name {
            type Value = Kind;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a DynamoDB type name")
            }
            fn visit_str<E: de::Error>(self, name: &str) -> Result<Kind, E> {
                Ok(match name {
                    "S" => Kind::S,
                    "N" => Kind::N,
                    "BOOL" => Kind::Bool,
                    "NULL" => Kind::Null,
                    "SS" => Kind::Ss,
                    "NS" => Kind::Ns,
                    "B" => Kind::B,
                    "BS" => Kind::Bs,
                    "L" => Kind::L,
                    "M" => Kind::M,
                    other => return Err(E::unknown_variant(other, KINDS)),
                })
            }
        }
        deserializer.deserialize_identifier(Name)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Attr<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Typed<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for Typed<'a> {
            type Value = Attr<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a DynamoDB attribute value: an object of one member named by its type")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Attr<'a>, A::Error> {
                let Some(kind) = map.next_key::<Kind>()? else {
                    return Err(de::Error::invalid_length(0, &self));
                };
                let value = match kind {
                    Kind::S => Attr::S(map.next_value()?),
                    Kind::N => Attr::N(map.next_value()?),
                    Kind::Bool => Attr::Bool(map.next_value()?),
                    Kind::Ss => Attr::Ss(map.next_value()?),
                    Kind::Null => Attr::other(AttributeValue::Null(map.next_value()?)),
                    Kind::Ns => Attr::other(AttributeValue::Ns(map.next_value()?)),
                    Kind::B => Attr::other(AttributeValue::B(blob(map.next_value()?)?)),
                    Kind::Bs => Attr::other(AttributeValue::Bs(
                        map.next_value::<Vec<String>>()?
                            .into_iter()
                            .map(blob)
                            .collect::<Result<_, _>>()?,
                    )),
                    Kind::L => Attr::other(AttributeValue::L(map.next_value::<List>()?.0)),
                    Kind::M => Attr::other(AttributeValue::M(map.next_value::<Row>()?.to_item())),
                };
                if map.next_key::<de::IgnoredAny>()?.is_some() {
                    return Err(de::Error::custom("an attribute value has one type"));
                }
                Ok(value)
            }
        }
        deserializer.deserialize_map(Typed(std::marker::PhantomData))
    }
}

fn blob<E: de::Error>(text: String) -> Result<Blob, E> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map(Blob::new)
        .map_err(E::custom)
}

/// The members of an `L`.
struct List(Vec<AttributeValue>);

impl<'de> Deserialize<'de> for List {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Values;
        impl<'de> Visitor<'de> for Values {
            type Value = List;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of DynamoDB attribute values")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<List, A::Error> {
                let mut values = Vec::new();
                while let Some(value) = seq.next_element::<Attr>()? {
                    values.push(value.to_attribute());
                }
                Ok(List(values))
            }
        }
        deserializer.deserialize_seq(Values)
    }
}

/// An item from a stream record's image.
pub fn item_of(image: &serde_json::Value) -> Option<Item> {
    Row::deserialize(image).ok().map(|row| row.to_item())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::item::{n, s};

    #[test]
    fn every_type_of_dynamodb_json_is_read() {
        let text = r#"{"s":{"S":"a \"quoted\" é"},"n":{"N":"-1.5"},"t":{"BOOL":true},
            "z":{"NULL":true},"ss":{"SS":["a","b"]},"ns":{"NS":["1","2"]},
            "b":{"B":"aGk="},"bs":{"BS":["aGk=","eW8="]},
            "l":{"L":[{"S":"x"},{"N":"2"},{"M":{"k":{"S":"v"}}}]},
            "m":{"M":{"inner":{"L":[]}}}}"#;
        let row: Row = serde_json::from_str(text).unwrap();
        let value: serde_json::Value = serde_json::from_str(text).unwrap();
        let item = item_of(&value).unwrap();
        assert_eq!(row.to_item(), item);
        for reader in [&row as &dyn Check, &item as &dyn Check] {
            reader.check();
        }
        assert_eq!(item.get("z"), Some(&AttributeValue::Null(true)));
        assert_eq!(
            item.get("ns"),
            Some(&AttributeValue::Ns(vec!["1".into(), "2".into()]))
        );
        let blob = |b: &[u8]| Blob::new(b.to_vec());
        assert_eq!(item.get("b"), Some(&AttributeValue::B(blob(b"hi"))));
        assert_eq!(
            item.get("bs"),
            Some(&AttributeValue::Bs(vec![blob(b"hi"), blob(b"yo")]))
        );
        let inner: Item = [("k".to_owned(), s("v"))].into();
        assert_eq!(
            item.get("l"),
            Some(&AttributeValue::L(vec![
                s("x"),
                n(2),
                AttributeValue::M(inner)
            ]))
        );
        let m: Item = [("inner".to_owned(), AttributeValue::L(vec![]))].into();
        assert_eq!(item.get("m"), Some(&AttributeValue::M(m)));
        assert_eq!(Row::of_item(&item).to_item(), item);
    }

    /// What a row and an item read alike.
    trait Check {
        fn check(&self);
    }

    impl<T: ItemExt> Check for T {
        fn check(&self) {
            assert_eq!(self.str("s"), Some("a \"quoted\" é"));
            assert_eq!(self.num::<f64>("n"), Some(-1.5));
            assert!(self.flag("t"));
            assert!(!self.flag("s"));
            assert_eq!(self.str("n"), None);
            assert_eq!(self.string_set("ss"), ["a", "b"]);
            assert_eq!(self.str("absent"), None);
        }
    }

    #[test]
    fn strings_without_escapes_are_borrowed_from_the_text() {
        let row: Row = serde_json::from_str(r#"{"a":{"S":"plain"},"b":{"S":"tab\t"}}"#).unwrap();
        assert!(matches!(&row.0[0].1, Attr::S(Text(Cow::Borrowed("plain")))));
        assert!(matches!(&row.0[1].1, Attr::S(Text(Cow::Owned(_)))));
    }

    #[test]
    fn malformed_dynamodb_json_is_refused() {
        for bad in [
            r#"{"a":{"X":"1"}}"#,
            r#"{"a":{"S":1}}"#,
            r#"{"a":{}}"#,
            r#"{"a":{"S":"x","N":"1"}}"#,
            r#"{"a":{"B":"not base64!"}}"#,
            r#"{"a":"bare"}"#,
        ] {
            assert!(serde_json::from_str::<Row>(bad).is_err(), "{bad}");
        }
    }
}
