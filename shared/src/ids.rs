//! Validated identifiers. Every id that reaches a key string went through `parse`,
//! so no id can smuggle the key separator `#` into another partition.

use crate::error::ApiError;
use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

fn valid_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@' | ':' | '+')
}

macro_rules! name_id {
    ($name:ident, $what:literal, $max:expr) => {
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub const MAX_LEN: usize = $max;

            pub fn parse(raw: &str) -> Result<Self, String> {
                if raw.is_empty() || raw.len() > Self::MAX_LEN {
                    return Err(format!(
                        "{} must be 1 to {} characters",
                        $what,
                        Self::MAX_LEN
                    ));
                }
                if !raw.chars().all(valid_name_char) {
                    return Err(format!(
                        "{} may contain only letters, digits and - _ . @ : +",
                        $what
                    ));
                }
                Ok(Self(raw.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

name_id!(OrgId, "tenant id", 64);
name_id!(UserId, "user id", 128);

/// Accepts a JSON string or integer (clients send `agent_id: 5`); stored as a string.
impl<'de> Deserialize<'de> for UserId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Number(u64),
        }
        let raw = match Raw::deserialize(deserializer)
            .map_err(|_| serde::de::Error::custom("expected a string or a non-negative integer"))?
        {
            Raw::Text(s) => s,
            Raw::Number(n) => n.to_string(),
        };
        UserId::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// A ULID: 48-bit millisecond time + 80 random bits, Crockford base32. Sorts by time,
/// so message keys give a stable total order.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Ulid(String);

impl Ulid {
    pub fn generate() -> Self {
        let millis = crate::time::now().unix_timestamp_nanos() / 1_000_000;
        Self::from_parts(millis as u64, rand::random::<u128>())
    }

    pub fn from_parts(millis: u64, random: u128) -> Self {
        let value: u128 =
            ((millis as u128 & 0xFFFF_FFFF_FFFF) << 80) | (random & ((1u128 << 80) - 1));
        let mut out = [0u8; 26];
        for (i, slot) in out.iter_mut().enumerate() {
            let shift = 5 * (25 - i);
            *slot = CROCKFORD[((value >> shift) & 0x1F) as usize];
        }
        Ulid(String::from_utf8(out.to_vec()).expect("ascii"))
    }

    pub fn parse(raw: &str) -> Result<Self, String> {
        let ok = raw.len() == 26
            && raw.bytes().all(|b| CROCKFORD.contains(&b))
            && raw.as_bytes()[0] <= b'7';
        if ok {
            Ok(Ulid(raw.to_owned()))
        } else {
            Err("must be a 26-character ULID".to_owned())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The millisecond it was made at (its first ten characters).
    pub fn millis(&self) -> u64 {
        self.0.bytes().take(10).fold(0u64, |acc, b| {
            let digit = CROCKFORD.iter().position(|c| *c == b).unwrap_or(0) as u64;
            (acc << 5) | digit
        })
    }
}

impl fmt::Display for Ulid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Ulid {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Ulid::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// Ids of different things are different types, all ULIDs.
macro_rules! ulid_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Ulid);

        impl $name {
            pub fn generate() -> Self {
                Self(Ulid::generate())
            }

            pub fn from_parts(millis: u64, random: u128) -> Self {
                Self(Ulid::from_parts(millis, random))
            }

            /// A new id of the millisecond of `at` (one of our timestamps), so that the
            /// id and the time written beside it name the same day.
            pub fn at(at: &str) -> Self {
                match crate::time::parse(at) {
                    Some(at) => Self::from_parts(
                        crate::time::millis(at) as u64,
                        rand::random::<u128>(),
                    ),
                    None => Self::generate(),
                }
            }

            /// The millisecond it was made at.
            pub fn millis(&self) -> u64 {
                self.0.millis()
            }

            pub fn parse(raw: &str) -> Result<Self, String> {
                Ulid::parse(raw).map(Self)
            }

            pub fn as_str(&self) -> &str {
                self.0.as_str()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromPath for $name {
            fn parse_path(raw: &str) -> Option<Self> {
                Self::parse(raw).ok()
            }
        }
    };
}

ulid_id!(
    /// A room (a conversation is a room seen from a member's inbox).
    RoomId
);
ulid_id!(
    /// A message; its order within the room is the list order.
    MessageId
);
ulid_id!(
    /// A tenant's webhook endpoint.
    WebhookId
);
ulid_id!(
    /// A tenant's support team.
    TeamId
);
ulid_id!(
    /// One export of a person's data.
    ExportId
);
ulid_id!(
    /// One erasure of a person.
    ErasureId
);
ulid_id!(
    /// One event's delivery to one endpoint: the `webhook-id` header of each of its
    /// attempts.
    DeliveryId
);

/// An id a path or query names.
pub trait FromPath: Sized {
    fn parse_path(raw: &str) -> Option<Self>;
}

/// An upload's id in a path.
impl FromPath for Ulid {
    fn parse_path(raw: &str) -> Option<Self> {
        Ulid::parse(raw).ok()
    }
}

/// Parses a path or query value into an id, answering 404 for ids that cannot exist
/// (a malformed id names nothing, and saying so leaks nothing).
pub fn path_id<T: FromPath>(raw: Option<&str>, what: &'static str) -> Result<T, ApiError> {
    raw.and_then(T::parse_path).ok_or(ApiError::NotFound(what))
}

/// The caller's role, from the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Customer,
    Agent,
    Admin,
}

impl Role {
    pub fn parse(raw: &str) -> Option<Role> {
        match raw {
            "customer" => Some(Role::Customer),
            "agent" => Some(Role::Agent),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::Agent => "agent",
            Role::Admin => "admin",
        }
    }

    /// Agents and admins staff the tenant's support desk.
    pub fn is_staff(self) -> bool {
        matches!(self, Role::Agent | Role::Admin)
    }

    /// The `sender` value the seed clients expect for this role's messages.
    pub fn sender_type(self) -> &'static str {
        if self.is_staff() { "agent" } else { "user" }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_arrive_as_strings_or_integers() {
        let from_int: UserId = serde_json::from_str("5").unwrap();
        let from_str: UserId = serde_json::from_str("\"5\"").unwrap();
        assert_eq!(from_int, from_str);
        assert_eq!(from_int.as_str(), "5");
        assert!(serde_json::from_str::<UserId>("-1").is_err());
        assert!(serde_json::from_str::<UserId>("\"a#b\"").is_err());
        assert!(serde_json::from_str::<UserId>("\"\"").is_err());
        assert!(serde_json::from_str::<UserId>("1.5").is_err());
    }

    #[test]
    fn ids_cannot_carry_the_key_separator() {
        assert!(OrgId::parse("acme#ROOM").is_err());
        assert!(UserId::parse(&"x".repeat(129)).is_err());
        assert!(UserId::parse("auth0|123").is_err());
        assert!(UserId::parse("3f2a-9c@example.com").is_ok());
    }

    #[test]
    fn ulids_sort_by_time_and_round_trip() {
        assert_eq!(
            Ulid::from_parts(1_733_356_800_123, 42).millis(),
            1_733_356_800_123
        );
        let at = MessageId::at("2026-12-04T23:59:59.999Z");
        assert_eq!(at.millis(), 1_796_428_799_999);
        let a = Ulid::from_parts(1_000, u128::MAX);
        let b = Ulid::from_parts(1_001, 0);
        assert!(a < b);
        assert_eq!(Ulid::parse(a.as_str()).unwrap(), a);
        let fresh = Ulid::generate();
        assert_eq!(fresh.as_str().len(), 26);
        assert!(Ulid::parse(fresh.as_str()).is_ok());
        assert!(
            Ulid::parse("01HZX3K7Q8R9S0T1V2W3X4Y5ZU").is_err(),
            "U is not Crockford"
        );
        assert!(
            Ulid::parse("81HZX3K7Q8R9S0T1V2W3X4Y5Z6").is_err(),
            "overflows 128 bits"
        );
    }

    #[test]
    fn malformed_path_ids_are_not_found() {
        assert!(matches!(
            path_id::<RoomId>(Some("nope"), "room"),
            Err(ApiError::NotFound("room"))
        ));
        assert!(path_id::<RoomId>(Some("01HZX3K7Q8R9S0T1V2W3X4Y5Z6"), "room").is_ok());
        assert!(path_id::<MessageId>(None, "message").is_err());
    }
}
