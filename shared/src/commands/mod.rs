//! The request bodies of every route as public types, and the validated commands
//! they turn into with `TryFrom`: a body is what a client may send (strict: unknown
//! fields are refused), a command is what the domain accepts (checked text, typed
//! ids and enums). Handlers parse a body, convert it, then decide who may do it.
//! Checks that depend on the caller (roles, membership) are not here.

pub mod conversations;
pub mod labels;
pub mod messages;
pub mod notify;
pub mod retention;
pub mod rooms;
pub mod teams;

use serde::{Deserialize, Deserializer};

/// Tells an absent field (None) from an explicit null (Some(None)).
pub fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}
