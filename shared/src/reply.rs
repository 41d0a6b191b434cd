//! The reply address of a conversation's emails: `reply+{room}.{tag}@{inbound domain}`.
//!
//! `{room}` is the conversation's id in lower case (a ULID: 26 characters), `{tag}` the
//! first 10 bytes of HMAC-SHA256 over `reply:v1:{org}:{room}` under the stack's
//! `EMAIL_LINK_SECRET`, as 20 lower-case hex digits. The local part is 53 characters
//! (the limit is 64). The tenant is not spelt out (a tenant id can be 64 characters of
//! its own): it is found from the room id ([`crate::store::Store::reply_room_org`]) and
//! the tag binds it, so a token made for one tenant's room verifies for no other, and
//! nobody without the key can make one. Only the one spelling verifies: upper case,
//! another separator or a shortened tag names nothing.

use crate::ids::{OrgId, RoomId};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The local part's fixed start.
pub const PREFIX: &str = "reply+";
const TAG_BYTES: usize = 10;

fn tag(secret: &str, org: &OrgId, room: &RoomId) -> [u8; TAG_BYTES] {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(format!("reply:v1:{org}:{room}").as_bytes());
    let full = mac.finalize().into_bytes();
    let mut out = [0u8; TAG_BYTES];
    out.copy_from_slice(&full[..TAG_BYTES]);
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The reply address of `room` of `org`.
pub fn address(secret: &str, domain: &str, org: &OrgId, room: &RoomId) -> String {
    let room_lower = room.as_str().to_ascii_lowercase();
    format!(
        "{PREFIX}{room_lower}.{}@{domain}",
        hex(&tag(secret, org, room))
    )
}

/// A reply address's token, read but not yet verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub room: RoomId,
    tag: String,
}

impl Token {
    /// The token of `address` when it is a reply address on `domain` (the domain is
    /// compared without case, as DNS does; the local part exactly).
    pub fn of(address: &str, domain: &str) -> Option<Token> {
        let (local, at) = address.rsplit_once('@')?;
        if !at.eq_ignore_ascii_case(domain) {
            return None;
        }
        let rest = local.strip_prefix(PREFIX)?;
        let (room, tag) = rest.split_once('.')?;
        let lower = |s: &str| {
            s.bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
        };
        if !lower(room) || tag.len() != 2 * TAG_BYTES || !tag.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return None;
        }
        if !lower(tag) {
            return None;
        }
        let room = RoomId::parse(&room.to_ascii_uppercase()).ok()?;
        Some(Token {
            room,
            tag: tag.to_owned(),
        })
    }

    /// Whether the token was made for its room of `org` under `secret` (in constant
    /// time).
    pub fn verifies(&self, secret: &str, org: &OrgId) -> bool {
        let expected = hex(&tag(secret, org, &self.room));
        expected.len() == self.tag.len()
            && expected
                .bytes()
                .zip(self.tag.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

/// The id every mail of a conversation refers to (`References`, `In-Reply-To`), so
/// mail clients group them: SES gives each mail its own `Message-ID`.
pub fn thread_id(domain: &str, room: &RoomId) -> String {
    format!(
        "<conversation.{}@{domain}>",
        room.as_str().to_ascii_lowercase()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "a-test-key-of-thirty-two-bytes!!";
    const DOMAIN: &str = "reply.example.com";

    fn ids() -> (OrgId, RoomId) {
        (
            OrgId::parse("acme").unwrap(),
            RoomId::parse("01JF0000000000000000000000").unwrap(),
        )
    }

    #[test]
    fn an_address_names_its_room_and_verifies_for_its_tenant_only() {
        let (org, room) = ids();
        let address = address(KEY, DOMAIN, &org, &room);
        let local = address.split('@').next().unwrap();
        assert!(local.len() <= 64, "{local}: {} characters", local.len());
        assert_eq!(local.len(), 53);
        let token = Token::of(&address, DOMAIN).expect("its own address reads");
        assert_eq!(token.room, room);
        assert!(token.verifies(KEY, &org));
        assert!(!token.verifies(KEY, &OrgId::parse("globex").unwrap()));
        assert!(!token.verifies("another-key-of-thirty-two-bytes!", &org));
        // The domain is compared as DNS does.
        assert!(Token::of(&address.replace(DOMAIN, "Reply.Example.COM"), DOMAIN).is_some());
    }

    #[test]
    fn every_other_spelling_of_an_address_names_nothing() {
        let (org, room) = ids();
        let good = address(KEY, DOMAIN, &org, &room);
        let (local, _) = good.split_once('@').unwrap();
        let (_, tag) = local.split_once('.').unwrap();
        let other_room = format!(
            "{PREFIX}{}.{tag}@{DOMAIN}",
            "01JF0000000000000000000001".to_ascii_lowercase()
        );
        let mut flipped = tag.to_owned();
        flipped.replace_range(0..1, if tag.starts_with('0') { "1" } else { "0" });
        let spellings = [
            good.to_ascii_uppercase(),
            good.replacen(PREFIX, "Reply+", 1),
            good.replacen('+', "-", 1),
            good.replacen('.', "+", 1),
            good.replace(DOMAIN, "reply.example.org"),
            good.replace(tag, &tag.to_ascii_uppercase()),
            good.replace(tag, &tag[..18]),
            good.replace(tag, &format!("{tag}00")),
            good.replace(tag, &flipped),
            other_room,
            format!("{PREFIX}{}.{tag}@{DOMAIN}", room.as_str()),
            good.replace('@', "@@"),
            local.to_owned(),
            String::new(),
        ];
        for spelling in spellings {
            let verified = Token::of(&spelling, DOMAIN).is_some_and(|t| t.verifies(KEY, &org));
            assert!(!verified, "{spelling:?} verified");
        }
    }

    #[test]
    fn a_thread_id_is_the_conversations_own() {
        let (_, room) = ids();
        assert_eq!(
            thread_id(DOMAIN, &room),
            "<conversation.01jf0000000000000000000000@reply.example.com>"
        );
    }
}
