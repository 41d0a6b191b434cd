//! The signed links of notification emails, which act without signing in: the
//! one in every mail that turns the recipient's email off (RFC 8058 one-click
//! unsubscribe), and the one in a rating request that rates one resolution of one
//! conversation ([`RatingLink`]).
//!
//! A token is `{payload}.{mac}`: the payload names the tenant and user
//! (`v2/{org}/{user}`, base64url without padding), the mac is HMAC-SHA256 of the
//! payload's text under the stack's `EMAIL_LINK_SECRET`, base64url without padding.
//! Only one spelling of a token verifies: other base64 alphabets, padding, a changed
//! payload or a mac made with another key are refused. A link does not expire: a mail
//! read a year later must still unsubscribe.
//!
//! Fields are joined by `/`, which no id may hold, so a payload has one reading. The
//! first links (`v1:…`, `rate1:…`) joined them by `:`, which ids may hold: those still
//! verify when no id in them holds a colon (one reading), and are refused otherwise
//! (tenant `a:b`'s user `c` must never be read as tenant `a`'s user `b:c`).

use crate::ids::{OrgId, RoomId, UserId};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

const VERSION: &str = "v2";
/// What joins a payload's fields: no id holds it (ids take letters, digits and
/// `- _ . @ : +`; a resolution is an RFC 3339 time).
const SEP: char = '/';
/// The first unsubscribe links' version, joined by `:`.
const LEGACY_VERSION: &str = "v1";

fn mac(secret: &str, payload: &str) -> Hmac<Sha256> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(payload.as_bytes());
    mac
}

/// `text` as a token: its base64url and its mac.
fn sign_text(secret: &str, text: &str) -> String {
    let payload = URL_SAFE_NO_PAD.encode(text);
    let tag = URL_SAFE_NO_PAD.encode(mac(secret, &payload).finalize().into_bytes());
    format!("{payload}.{tag}")
}

/// The text a token signs, when it was made with `secret`.
fn verify_text(secret: &str, token: &str) -> Option<String> {
    let (payload, tag) = token.split_once('.')?;
    // The decoder takes only the unpadded URL alphabet, so there is one spelling.
    let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
    mac(secret, payload).verify_slice(&tag).ok()?;
    String::from_utf8(URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
}

/// The token for `user` of `org`.
pub fn sign(secret: &str, org: &OrgId, user: &UserId) -> String {
    sign_text(secret, &format!("{VERSION}{SEP}{org}{SEP}{user}"))
}

/// `text`'s `n` fields after `version`, when it is a payload of that version: joined
/// by [`SEP`], or, for a `legacy` version joined by `:`, only when the text holds
/// exactly `legacy_colons` colons (no id held one: one reading).
fn fields<'a>(
    text: &'a str,
    (version, legacy): (&str, &str),
    n: usize,
    legacy_colons: usize,
) -> Option<Vec<&'a str>> {
    let fields: Vec<&str> = if let Some(rest) = text.strip_prefix(version) {
        rest.strip_prefix(SEP)?.split(SEP).collect()
    } else {
        let rest = text.strip_prefix(legacy)?.strip_prefix(':')?;
        if text.matches(':').count() != legacy_colons {
            return None;
        }
        rest.splitn(n, ':').collect()
    };
    (fields.len() == n && fields.iter().all(|f| !f.is_empty())).then_some(fields)
}

/// Whom a token names, when it was made with `secret`; `None` for anything else.
pub fn verify(secret: &str, token: &str) -> Option<(OrgId, UserId)> {
    let text = verify_text(secret, token)?;
    let [org, user] = fields(&text, (VERSION, LEGACY_VERSION), 2, 2)?[..] else {
        return None;
    };
    Some((OrgId::parse(org).ok()?, UserId::parse(user).ok()?))
}

/// The rating link's version: a different first word than an unsubscribe token's, so
/// neither is ever taken for the other.
const RATING_VERSION: &str = "rate2";
/// The first rating links' version, joined by `:` (a resolution holds two colons).
const LEGACY_RATING_VERSION: &str = "rate1";

/// What a rating link may do: rate `room`'s resolution of `resolution` (its
/// `closed_at`) as `user` of `org`. A later resolution of the same conversation is
/// not this link's: its own mail carries its own link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RatingLink {
    pub org: OrgId,
    pub user: UserId,
    pub room: RoomId,
    pub resolution: String,
}

impl RatingLink {
    /// Its token, under `secret`.
    pub fn sign(&self, secret: &str) -> String {
        let RatingLink {
            org,
            user,
            room,
            resolution,
        } = self;
        sign_text(
            secret,
            &format!("{RATING_VERSION}{SEP}{org}{SEP}{user}{SEP}{room}{SEP}{resolution}"),
        )
    }

    /// The link a token is, when it was made with `secret`; `None` for anything else.
    pub fn verify(secret: &str, token: &str) -> Option<RatingLink> {
        let text = verify_text(secret, token)?;
        let versions = (RATING_VERSION, LEGACY_RATING_VERSION);
        let [org, user, room, resolution] = fields(&text, versions, 4, 6)?[..] else {
            return None;
        };
        Some(RatingLink {
            org: OrgId::parse(org).ok()?,
            user: UserId::parse(user).ok()?,
            room: RoomId::parse(room).ok()?,
            resolution: resolution.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "a-test-key-of-thirty-two-bytes!!";

    fn ids() -> (OrgId, UserId) {
        (
            OrgId::parse("acme").unwrap(),
            UserId::parse("u-100").unwrap(),
        )
    }

    #[test]
    fn a_token_names_its_user_under_its_key_only() {
        let (org, user) = ids();
        let token = sign(KEY, &org, &user);
        assert_eq!(verify(KEY, &token), Some((org.clone(), user.clone())));
        assert_eq!(verify("another-key-of-thirty-two-bytes!", &token), None);
    }

    #[test]
    fn every_other_spelling_of_a_token_is_refused() {
        let (org, user) = ids();
        let token = sign(KEY, &org, &user);
        let (payload, tag) = token.split_once('.').unwrap();
        let other_user = URL_SAFE_NO_PAD.encode("v1:acme:u-200");
        let other_org = URL_SAFE_NO_PAD.encode("v1:globex:u-100");
        let standard = base64::engine::general_purpose::STANDARD;
        let tag_bytes = URL_SAFE_NO_PAD.decode(tag).unwrap();
        let mut flipped = tag_bytes.clone();
        flipped[0] ^= 1;
        let refused = [
            String::new(),
            payload.to_owned(),
            format!("{payload}."),
            format!(".{tag}"),
            format!("{other_user}.{tag}"),
            format!("{other_org}.{tag}"),
            format!("{payload}.{}", URL_SAFE_NO_PAD.encode(&flipped)),
            format!("{payload}.{}", standard.encode(&tag_bytes)),
            format!("{payload}={tag}"),
            format!("{payload}.{tag}="),
            format!("{payload}.{tag}.{tag}"),
            format!(" {token}"),
            token.to_uppercase(),
            // The payload's other versions, signed right, are still not tokens.
            {
                let v2 = URL_SAFE_NO_PAD.encode("v3/acme/u-100");
                let tag = URL_SAFE_NO_PAD.encode(mac(KEY, &v2).finalize().into_bytes());
                format!("{v2}.{tag}")
            },
        ];
        for token in refused {
            assert_eq!(verify(KEY, &token), None, "{token:?}");
        }
    }

    fn link() -> RatingLink {
        let (org, user) = ids();
        RatingLink {
            org,
            user,
            room: RoomId::generate(),
            resolution: "2026-12-05T10:00:00.123Z".into(),
        }
    }

    #[test]
    fn a_rating_link_names_one_resolution_under_its_key_only() {
        let link = link();
        let token = link.sign(KEY);
        assert_eq!(RatingLink::verify(KEY, &token), Some(link.clone()));
        assert_eq!(
            RatingLink::verify("another-key-of-thirty-two-bytes!", &token),
            None
        );
        // Neither kind of link is the other.
        assert_eq!(verify(KEY, &token), None);
        let unsubscribe = sign(KEY, &link.org, &link.user);
        assert_eq!(RatingLink::verify(KEY, &unsubscribe), None);
        // Another resolution, room or person, signed by someone without the key.
        let (payload, tag) = token.split_once('.').unwrap();
        let text = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        for altered in [
            text.replace("10:00:00", "11:00:00"),
            text.replace("u-100", "u-200"),
            text.replace(link.room.as_str(), RoomId::generate().as_str()),
            text.replace("rate2", "rate3"),
        ] {
            let forged = format!("{}.{tag}", URL_SAFE_NO_PAD.encode(&altered));
            assert_eq!(RatingLink::verify(KEY, &forged), None, "{altered}");
        }
        // Signed right but naming no resolution: not a link.
        let empty = format!("rate2/acme/u-100/{}/", link.room);
        assert_eq!(RatingLink::verify(KEY, &sign_text(KEY, &empty)), None);
    }

    #[test]
    fn ids_holding_colons_have_one_reading_and_first_links_still_work_when_unambiguous() {
        let org = OrgId::parse("a:b").unwrap();
        let user = UserId::parse("c").unwrap();
        let token = sign(KEY, &org, &user);
        assert_eq!(verify(KEY, &token), Some((org.clone(), user.clone())));
        let room = RoomId::generate();
        let link = RatingLink {
            org: org.clone(),
            user: UserId::parse("x:y").unwrap(),
            room: room.clone(),
            resolution: "2026-12-05T10:00:00.123Z".into(),
        };
        assert_eq!(RatingLink::verify(KEY, &link.sign(KEY)), Some(link));
        // A first (`:`-joined) link verifies as long as it has one reading…
        let first = sign_text(KEY, "v1:acme:u-100");
        assert_eq!(verify(KEY, &first), Some(ids()));
        let resolution = "2026-12-05T10:00:00.123Z";
        let first_rating = sign_text(KEY, &format!("rate1:acme:u-100:{room}:{resolution}"));
        let read = RatingLink::verify(KEY, &first_rating).unwrap();
        assert_eq!(
            (read.org, read.user, read.room),
            (ids().0, ids().1, room.clone())
        );
        assert_eq!(read.resolution, resolution);
        // …and not when an id in it held a colon: tenant `a:b`'s user `c` is not
        // tenant `a`'s user `b:c`.
        assert_eq!(verify(KEY, &sign_text(KEY, "v1:a:b:c")), None);
        let two_readings = format!("rate1:a:b:c:{room}:{resolution}");
        assert_eq!(
            RatingLink::verify(KEY, &sign_text(KEY, &two_readings)),
            None
        );
        // A field with a separator in it is not a field.
        assert_eq!(verify(KEY, &sign_text(KEY, "v2/acme/u-100/more")), None);
        assert_eq!(verify(KEY, &sign_text(KEY, "v2/acme//u-100")), None);
        assert_eq!(verify(KEY, &sign_text(KEY, "v2:acme:u-100")), None);
    }
}
