//! The signed link in every notification email that turns the recipient's email off
//! without signing in (RFC 8058 one-click unsubscribe).
//!
//! A token is `{payload}.{mac}`: the payload names the tenant and user
//! (`v1:{org}:{user}`, base64url without padding), the mac is HMAC-SHA256 of the
//! payload's text under the stack's `EMAIL_LINK_SECRET`, base64url without padding.
//! Only one spelling of a token verifies: other base64 alphabets, padding, a changed
//! payload or a mac made with another key are refused. A link does not expire: a mail
//! read a year later must still unsubscribe.

use crate::ids::{OrgId, UserId};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

const VERSION: &str = "v1";

fn mac(secret: &str, payload: &str) -> Hmac<Sha256> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(payload.as_bytes());
    mac
}

/// The token for `user` of `org`.
pub fn sign(secret: &str, org: &OrgId, user: &UserId) -> String {
    let payload = URL_SAFE_NO_PAD.encode(format!("{VERSION}:{org}:{user}"));
    let tag = URL_SAFE_NO_PAD.encode(mac(secret, &payload).finalize().into_bytes());
    format!("{payload}.{tag}")
}

/// Whom a token names, when it was made with `secret`; `None` for anything else.
pub fn verify(secret: &str, token: &str) -> Option<(OrgId, UserId)> {
    let (payload, tag) = token.split_once('.')?;
    // The decoder takes only the unpadded URL alphabet, so there is one spelling.
    let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
    mac(secret, payload).verify_slice(&tag).ok()?;
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    let mut parts = text.splitn(3, ':');
    if parts.next()? != VERSION {
        return None;
    }
    let org = OrgId::parse(parts.next()?).ok()?;
    let user = UserId::parse(parts.next()?).ok()?;
    Some((org, user))
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
                let v2 = URL_SAFE_NO_PAD.encode("v2:acme:u-100");
                let tag = URL_SAFE_NO_PAD.encode(mac(KEY, &v2).finalize().into_bytes());
                format!("{v2}.{tag}")
            },
        ];
        for token in refused {
            assert_eq!(verify(KEY, &token), None, "{token:?}");
        }
    }
}
