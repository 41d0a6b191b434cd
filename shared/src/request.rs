//! Request parsing shared by every route: JSON bodies with a size limit and strict
//! fields, and typed query parameters.

use crate::error::{ApiError, ApiResult};
use lambda_http::{Body, Request, RequestExt};
use serde::de::DeserializeOwned;

/// Largest accepted request body. API Gateway allows more; nothing here needs it.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

pub fn body_bytes(req: &Request) -> &[u8] {
    match req.body() {
        Body::Empty => &[],
        Body::Text(text) => text.as_bytes(),
        Body::Binary(bytes) => bytes,
        _ => &[],
    }
}

/// Parses a JSON body: 413 over the limit, 400 when it is not JSON, 422 for unknown
/// fields or invalid values (naming the field).
pub fn json_body<T: DeserializeOwned>(req: &Request) -> ApiResult<T> {
    parse_json(body_bytes(req))
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    if bytes.len() > MAX_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge {
            limit: MAX_BODY_BYTES,
        });
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::Malformed("a JSON body is required".into()));
    }
    // serde would also fill a struct from a JSON array (`["hi"]` as `{"content":
    // "hi"}`), around the field names; bodies are objects.
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'[') {
        return Err(ApiError::invalid("body", "must be a JSON object"));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        use serde_json::error::Category;
        match inner.classify() {
            Category::Syntax | Category::Eof | Category::Io => {
                ApiError::Malformed(format!("body is not valid JSON: {inner}"))
            }
            Category::Data => classify_data_error(&path, &inner.to_string()),
        }
    })?;
    deserializer
        .end()
        .map_err(|e| ApiError::Malformed(format!("body is not valid JSON: {e}")))?;
    Ok(value)
}

fn classify_data_error(path: &str, message: &str) -> ApiError {
    // serde reports unknown fields as "unknown field `name`, expected one of ...";
    // the path already ends with the unknown name.
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let name = rest.split('`').next().unwrap_or_default();
        let full = if path == "." || path.is_empty() {
            name.to_owned()
        } else {
            path.to_owned()
        };
        return ApiError::UnknownField(full);
    }
    if path == "." || path.is_empty() {
        if let Some(rest) = message.strip_prefix("missing field `") {
            let name = rest.split('`').next().unwrap_or_default();
            return ApiError::invalid(name, "is required");
        }
        return ApiError::invalid("body", strip_position(message));
    }
    ApiError::invalid(path, strip_position(message))
}

/// serde_json appends " at line 1 column 7"; the field name says more.
fn strip_position(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// Typed access to the query string.
pub struct Query<'a> {
    req: &'a Request,
}

impl<'a> Query<'a> {
    pub fn of(req: &'a Request) -> Self {
        Query { req }
    }

    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.req
            .query_string_parameters_ref()
            .and_then(|q| q.first(name))
            .filter(|v| !v.is_empty())
    }

    /// A page size: `default` when absent, 1..=max otherwise.
    pub fn limit(&self, default: u32, max: u32) -> ApiResult<u32> {
        self.bounded_u32("limit", default, 1, max)
    }

    /// Offset paging, for clients written against offset APIs; bounded because every
    /// skipped item is still read.
    pub fn offset(&self, max: u32) -> ApiResult<u32> {
        self.bounded_u32("offset", 0, 0, max)
    }

    pub fn bounded_u32(&self, name: &str, default: u32, min: u32, max: u32) -> ApiResult<u32> {
        match self.get(name) {
            None => Ok(default),
            Some(raw) => raw
                .parse::<u32>()
                .ok()
                .filter(|v| (min..=max).contains(v))
                .ok_or_else(|| {
                    ApiError::invalid(name, format!("must be an integer from {min} to {max}"))
                }),
        }
    }

    pub fn bool(&self, name: &str) -> ApiResult<Option<bool>> {
        match self.get(name) {
            None => Ok(None),
            Some("true") | Some("1") => Ok(Some(true)),
            Some("false") | Some("0") => Ok(Some(false)),
            Some(_) => Err(ApiError::invalid(name, "must be true or false")),
        }
    }
}

/// A name that is also an id (a label, a short code): 1 to `max` lowercase ASCII
/// letters, digits, `-` and `_`, one spelling only (no case, no spaces, no accents).
pub fn slug(field: &str, raw: &str, max: usize) -> ApiResult<String> {
    let ok = (1..=max).contains(&raw.len())
        && raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    match ok {
        true => Ok(raw.to_owned()),
        false => Err(ApiError::invalid(
            field,
            format!("1 to {max} lowercase letters, digits, - and _"),
        )),
    }
}

/// Trims a required text field and checks its length in characters.
pub fn required_text(field: &str, value: &str, max_chars: usize) -> ApiResult<String> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(ApiError::invalid(field, "must not be empty"));
    }
    if trimmed.chars().count() > max_chars {
        return Err(ApiError::invalid(
            field,
            format!("must be at most {max_chars} characters"),
        ));
    }
    Ok(trimmed.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        title: String,
        count: Option<u32>,
    }

    #[test]
    fn malformed_json_is_400() {
        assert!(matches!(
            parse_json::<Body>(b"{\"title\":"),
            Err(ApiError::Malformed(_))
        ));
        assert!(matches!(
            parse_json::<Body>(b""),
            Err(ApiError::Malformed(_))
        ));
        assert!(matches!(
            parse_json::<Body>(b"{\"title\":\"a\"} trailing"),
            Err(ApiError::Malformed(_))
        ));
    }

    #[test]
    fn unknown_field_is_named() {
        match parse_json::<Body>(br#"{"title":"a","owner":"x"}"#) {
            Err(ApiError::UnknownField(f)) => assert_eq!(f, "owner"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn invalid_values_name_the_field() {
        match parse_json::<Body>(br#"{"title":"a","count":"many"}"#) {
            Err(ApiError::InvalidField { field, .. }) => assert_eq!(field, "count"),
            other => panic!("{other:?}"),
        }
        match parse_json::<Body>(br#"{"count":1}"#) {
            Err(ApiError::InvalidField { field, reason }) => {
                assert_eq!(field, "title");
                assert_eq!(reason, "is required");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_array_never_fills_a_struct() {
        match parse_json::<Body>(br#" ["a", 1]"#) {
            Err(ApiError::InvalidField { field, .. }) => assert_eq!(field, "body"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn oversized_body_is_413() {
        let big = format!("{{\"title\":\"{}\"}}", "x".repeat(MAX_BODY_BYTES));
        assert!(matches!(
            parse_json::<Body>(big.as_bytes()),
            Err(ApiError::PayloadTooLarge { .. })
        ));
    }

    #[test]
    fn required_text_trims_and_bounds() {
        assert_eq!(required_text("t", "  hi ", 5).unwrap(), "hi");
        assert!(required_text("t", "   ", 5).is_err());
        assert!(required_text("t", "héllo!", 5).is_err());
    }
}
