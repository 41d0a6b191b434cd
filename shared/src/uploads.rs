//! Attachments uploaded straight to S3 from the client, never through a Lambda: a
//! member asks for an upload and gets a presigned POST (a policy that allows exactly
//! one object: this key, this content type, this size, for a few minutes), signed
//! with the function's own credentials by the AWS SDK's SigV4 signer.
//!
//! Keys: `pending/{org}/{room}/{uploader}/{upload_id}` until a message attaches the upload (the
//! bucket's lifecycle rule expires what is never attached).

use crate::ApiError;
use crate::aws::{AwsSettings, Endpoint};
use crate::ids::{OrgId, RoomId, UserId};
use aws_sdk_dynamodb::config::{ProvideCredentials, SharedCredentialsProvider};
use base64::Engine;
use http_body_util::Full;
use hyper::body::Bytes;
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime};

/// What may be uploaded: images, PDFs, plain text and CSV, short video and audio.
pub const UPLOAD_TYPES: &[&str] = &[
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "application/pdf",
    "text/plain",
    "text/csv",
    "video/mp4",
    "audio/mpeg",
];
/// Types the widget shows in the page (served `inline`); every other file is served
/// as a download (`attachment`), so a browser never renders it as a page of ours.
pub const INLINE_TYPES: &[&str] = &["image/png", "image/jpeg", "image/gif", "image/webp"];
/// The largest upload.
pub const MAX_UPLOAD_BYTES: u64 = 25 * 1024 * 1024;
/// A file name's length in characters.
pub const MAX_UPLOAD_NAME_CHARS: usize = 255;
/// How long a presigned POST may be used.
pub const UPLOAD_TTL_SECS: u64 = 300;
/// How long a download link works.
pub const DOWNLOAD_TTL_SECS: u64 = 300;

/// SigV4's URI encoding: every byte but the unreserved ones percent-encoded.
fn uri_encode(raw: &str) -> String {
    raw.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The headers a download is served with, pinned by the signed link (S3's
/// `response-content-type` / `response-content-disposition`): the stored type when it
/// is one we take (else bytes), `inline` only for the image types the widget shows,
/// and the file's name when known (RFC 6266: an ASCII fallback and the UTF-8 name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    pub content_type: String,
    pub content_disposition: String,
}

impl Served {
    pub fn of(content_type: &str, name: Option<&str>) -> Served {
        let content_type = if UPLOAD_TYPES.contains(&content_type) {
            content_type
        } else {
            "application/octet-stream"
        };
        let mut disposition = if INLINE_TYPES.contains(&content_type) {
            "inline".to_owned()
        } else {
            "attachment".to_owned()
        };
        if let Some(name) = name.filter(|n| !n.is_empty()) {
            let fallback: String = name
                .chars()
                .map(|c| match c {
                    ' '..='~' if c != '"' && c != '\\' => c,
                    _ => '_',
                })
                .collect();
            disposition.push_str(&format!(
                "; filename=\"{fallback}\"; filename*=UTF-8''{}",
                uri_encode(name)
            ));
        }
        Served {
            content_type: content_type.to_owned(),
            content_disposition: disposition,
        }
    }
}

/// Where uploads go (`UPLOADS_BUCKET`, and `S3_ENDPOINT` for a local S3 server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadsConfig {
    pub bucket: String,
    pub endpoint: Option<String>,
    pub region: String,
}

/// POST …/uploads as clients send it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadBody {
    pub name: String,
    pub content_type: String,
    pub size: u64,
}

/// An upload request that passed its checks.
#[derive(Debug, Clone, PartialEq)]
pub struct NewUpload {
    pub name: String,
    pub content_type: String,
    pub size: u64,
}

impl TryFrom<UploadBody> for NewUpload {
    type Error = ApiError;

    fn try_from(body: UploadBody) -> Result<Self, ApiError> {
        let name = body.name.trim();
        if name.is_empty() || name.chars().count() > MAX_UPLOAD_NAME_CHARS {
            return Err(ApiError::invalid(
                "name",
                format!("1 to {MAX_UPLOAD_NAME_CHARS} characters"),
            ));
        }
        if name
            .chars()
            .any(|c| c.is_control() || c == '/' || c == '\\')
        {
            return Err(ApiError::invalid(
                "name",
                "a file name: no path separators or control characters",
            ));
        }
        if !UPLOAD_TYPES.contains(&body.content_type.as_str()) {
            return Err(ApiError::invalid(
                "content_type",
                format!("one of {}", UPLOAD_TYPES.join(", ")),
            ));
        }
        if body.size == 0 || body.size > MAX_UPLOAD_BYTES {
            return Err(ApiError::invalid(
                "size",
                format!("1 to {MAX_UPLOAD_BYTES} bytes"),
            ));
        }
        Ok(NewUpload {
            name: name.to_owned(),
            content_type: body.content_type,
            size: body.size,
        })
    }
}

/// The key an upload is posted to, under its tenant's and room's prefix and its
/// uploader's: only the uploader's own message can attach it.
pub fn pending_key(org: &OrgId, room: &RoomId, uploader: &UserId, upload: &str) -> String {
    format!("pending/{org}/{room}/{uploader}/{upload}")
}

/// The texts of the `tag` elements of an S3 XML answer (keys and tokens: no nesting,
/// entities decoded).
fn xml_values(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    xml.split(&open)
        .skip(1)
        .filter_map(|rest| rest.split(&close).next())
        .map(|v| {
            v.replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&apos;", "'")
                .replace("&amp;", "&")
        })
        .collect()
}

/// Where an upload lives once a message holds it (no lifecycle rule here).
pub fn attached_key(org: &OrgId, room: &RoomId, upload: &str) -> String {
    format!("files/{org}/{room}/{upload}")
}

/// What S3 says of a stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub size: u64,
    pub content_type: String,
}

/// A presigned POST: the form the client sends (its fields, then the file) to `url`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PresignedPost {
    pub url: String,
    pub fields: serde_json::Map<String, serde_json::Value>,
    pub expires_at: String,
}

/// Signing identity of a POST policy.
pub struct Signer<'a> {
    pub access_key: &'a str,
    pub secret_key: &'a str,
    pub session_token: Option<&'a str>,
    pub region: &'a str,
}

/// The POST form for exactly one object: its key, of its content type, of exactly its
/// size, in its bucket, before `now + ttl`. The policy is signed with SigV4 (the AWS
/// SDK's signer: signing key of the date, region and `s3`, HMAC of the base64 policy).
/// The one object a POST policy allows.
pub struct PolicyObject<'a> {
    pub bucket: &'a str,
    pub key: &'a str,
    pub content_type: &'a str,
    pub size: u64,
}

pub fn signed_post_form(
    object: &PolicyObject<'_>,
    url: String,
    signer: &Signer<'_>,
    now: SystemTime,
    ttl: Duration,
) -> PresignedPost {
    let PolicyObject {
        bucket,
        key,
        content_type,
        size,
    } = *object;
    let at = time::OffsetDateTime::from(now);
    let date = format!("{:04}{:02}{:02}", at.year(), at.month() as u8, at.day());
    let amz_date = format!(
        "{date}T{:02}{:02}{:02}Z",
        at.hour(),
        at.minute(),
        at.second()
    );
    let credential = format!(
        "{}/{date}/{}/s3/aws4_request",
        signer.access_key, signer.region
    );
    let expires = crate::time::format(at + ttl);
    let mut fields = serde_json::Map::new();
    let mut conditions = vec![serde_json::json!({ "bucket": bucket })];
    let mut field = |name: &str, value: &str| {
        fields.insert(name.to_owned(), value.into());
        conditions.push(serde_json::json!(["eq", format!("${name}"), value]));
    };
    field("key", key);
    field("Content-Type", content_type);
    field("x-amz-algorithm", "AWS4-HMAC-SHA256");
    field("x-amz-credential", &credential);
    field("x-amz-date", &amz_date);
    if let Some(token) = signer.session_token {
        field("x-amz-security-token", token);
    }
    conditions.push(serde_json::json!(["content-length-range", size, size]));
    let policy = serde_json::json!({ "expiration": expires, "conditions": conditions });
    let policy = base64::engine::general_purpose::STANDARD.encode(policy.to_string());
    let signing_key =
        aws_sigv4::sign::v4::generate_signing_key(signer.secret_key, now, signer.region, "s3");
    let signature = aws_sigv4::sign::v4::calculate_signature(signing_key, policy.as_bytes());
    fields.insert("policy".into(), policy.into());
    fields.insert("x-amz-signature".into(), signature.into());
    PresignedPost {
        url,
        fields,
        expires_at: expires,
    }
}

/// The bucket, with the credentials that sign its POST policies (resolved on first
/// use, so a cold start that serves no upload pays nothing for them).
pub struct Uploads {
    config: UploadsConfig,
    aws: AwsSettings,
    credentials: tokio::sync::OnceCell<Option<SharedCredentialsProvider>>,
    http: std::sync::OnceLock<Result<crate::jwks::Https<Full<Bytes>>, String>>,
}

/// One S3 request, all of it.
const S3_TIMEOUT: Duration = Duration::from_secs(5);
/// One S3 request that carries a file (up to an inbound mail's 40 MB).
const S3_BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// S3 unreachable or failing: the store's own 503 (Retry-After), the cause logged.
fn storage_error(cause: &str) -> ApiError {
    tracing::warn!(cause, "S3 unavailable");
    crate::store::storage_unavailable()
}

impl std::fmt::Debug for Uploads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Uploads")
            .field("config", &self.config)
            .finish()
    }
}

impl Uploads {
    pub fn new(config: UploadsConfig, aws: AwsSettings) -> Uploads {
        Uploads {
            config,
            aws,
            credentials: tokio::sync::OnceCell::new(),
            http: std::sync::OnceLock::new(),
        }
    }

    pub fn config(&self) -> &UploadsConfig {
        &self.config
    }

    /// An object's URL: virtual-hosted on AWS, path-style on a local server.
    fn object_url(&self, key: &str) -> String {
        let key: String = key.split('/').map(uri_encode).collect::<Vec<_>>().join("/");
        match &self.config.endpoint {
            Some(endpoint) => format!(
                "{}/{}/{key}",
                endpoint.trim_end_matches('/'),
                self.config.bucket
            ),
            None => format!(
                "https://{}.s3.{}.amazonaws.com/{key}",
                self.config.bucket, self.config.region
            ),
        }
    }

    async fn credentials(&self) -> Result<aws_sdk_dynamodb::config::Credentials, ApiError> {
        let endpoint = match self.config.endpoint {
            Some(_) => Endpoint::Local,
            None => Endpoint::Aws,
        };
        let provider = self
            .credentials
            .get_or_init(|| async {
                crate::aws::sdk_config(&self.aws, endpoint)
                    .await
                    .credentials_provider()
            })
            .await
            .as_ref()
            .ok_or_else(|| ApiError::internal("uploads", "no credentials provider"))?;
        provider
            .provide_credentials()
            .await
            .map_err(|e| ApiError::internal("uploads", e))
    }

    /// A request to the bucket signed by the AWS SDK's SigV4 signer: in its headers,
    /// or in its query string when `presign` (valid that long).
    async fn signed(
        &self,
        method: &str,
        key: &str,
        headers: &[(&str, &str)],
        presign: Option<Duration>,
        query: &[(&str, &str)],
    ) -> Result<lambda_http::http::Request<()>, ApiError> {
        use aws_sigv4::http_request::{
            PayloadChecksumKind, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
            sign,
        };
        let credentials = self.credentials().await?;
        let identity: aws_smithy_runtime_api::client::identity::Identity = credentials.into();
        let mut settings = SigningSettings::default();
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        if let Some(ttl) = presign {
            settings.signature_location = SignatureLocation::QueryParams;
            settings.expires_in = Some(ttl);
        }
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.config.region)
            .name("s3")
            .time(SystemTime::from(crate::time::now()))
            .settings(settings)
            .build()
            .map_err(|e| ApiError::internal("sign S3 request", e))?
            .into();
        let mut url = self.object_url(key);
        for (i, (name, value)) in query.iter().enumerate() {
            let separator = if i == 0 { '?' } else { '&' };
            url.push_str(&format!("{separator}{name}={}", uri_encode(value)));
        }
        let signable = SignableRequest::new(
            method,
            url.as_str(),
            headers.iter().copied(),
            SignableBody::UnsignedPayload,
        )
        .map_err(|e| ApiError::internal("sign S3 request", e))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| ApiError::internal("sign S3 request", e))?
            .into_parts();
        let mut request = lambda_http::http::Request::builder()
            .method(method)
            .uri(&url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let mut request = request
            .body(())
            .map_err(|e| ApiError::internal("S3 request", e))?;
        instructions.apply_to_request_http1x(&mut request);
        Ok(request)
    }

    /// Sends a signed request: its status and headers.
    async fn send(
        &self,
        request: lambda_http::http::Request<()>,
    ) -> Result<(u16, lambda_http::http::HeaderMap), ApiError> {
        let (status, headers, _) = self.exchange(request, Bytes::new(), 0, S3_TIMEOUT).await?;
        Ok((status, headers))
    }

    /// Sends a signed request with `body`: its status, headers and up to `read`
    /// bytes of its body (more is an error), all within `timeout`.
    async fn exchange(
        &self,
        request: lambda_http::http::Request<()>,
        body: Bytes,
        read: usize,
        timeout: Duration,
    ) -> Result<(u16, lambda_http::http::HeaderMap, Bytes), ApiError> {
        use http_body_util::BodyExt;
        let (parts, ()) = request.into_parts();
        let mut builder = hyper::Request::builder()
            .method(parts.method)
            .uri(parts.uri);
        for (name, value) in &parts.headers {
            builder = builder.header(name, value);
        }
        let request = builder
            .body(Full::new(body))
            .map_err(|e| ApiError::internal("S3 request", e))?;
        let client = self.http.get_or_init(crate::jwks::https_client);
        let client = client
            .as_ref()
            .map_err(|e| ApiError::internal("S3 client", e))?;
        tokio::time::timeout(timeout, async {
            let response = client
                .request(request)
                .await
                .map_err(|e| storage_error(&e.to_string()))?;
            let (status, headers) = (response.status().as_u16(), response.headers().clone());
            let body = match read {
                0 => Bytes::new(),
                limit => http_body_util::Limited::new(response.into_body(), limit)
                    .collect()
                    .await
                    .map_err(|e| storage_error(&format!("S3 body: {e}")))?
                    .to_bytes(),
            };
            Ok((status, headers, body))
        })
        .await
        .map_err(|_| storage_error("S3 timed out"))?
    }

    /// An object's bytes, up to `max` of them (one GetObject); `None` when it is not
    /// there.
    pub async fn get(&self, key: &str, max: usize) -> Result<Option<Bytes>, ApiError> {
        let request = self.signed("GET", key, &[], None, &[]).await?;
        let (status, _, body) = self
            .exchange(request, Bytes::new(), max.max(1), S3_BODY_TIMEOUT)
            .await?;
        match status {
            200 => Ok(Some(body)),
            404 | 403 => Ok(None),
            other => Err(storage_error(&format!("GetObject answered {other}"))),
        }
    }

    /// Stores `body` at `key` as `content_type` (one PutObject).
    pub async fn put(&self, key: &str, body: Bytes, content_type: &str) -> Result<(), ApiError> {
        let length = body.len().to_string();
        let request = self
            .signed(
                "PUT",
                key,
                &[
                    ("content-type", content_type),
                    ("content-length", length.as_str()),
                ],
                None,
                &[],
            )
            .await?;
        match self.exchange(request, body, 0, S3_BODY_TIMEOUT).await?.0 {
            200 => Ok(()),
            other => Err(storage_error(&format!("PutObject answered {other}"))),
        }
    }

    /// The object's size and type, if it exists (one HeadObject).
    pub async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, ApiError> {
        let (status, headers) = self
            .send(self.signed("HEAD", key, &[], None, &[]).await?)
            .await?;
        match status {
            200 => {
                let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
                Ok(Some(ObjectInfo {
                    size: header("content-length")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0),
                    content_type: header("content-type").unwrap_or_default().to_owned(),
                }))
            }
            404 | 403 => Ok(None),
            other => Err(storage_error(&format!("HeadObject answered {other}"))),
        }
    }

    /// Copies an object within the bucket (server-side: no bytes through here).
    pub async fn copy(&self, from: &str, to: &str) -> Result<(), ApiError> {
        let source = format!("{}/{from}", self.config.bucket);
        let request = self
            .signed(
                "PUT",
                to,
                &[("x-amz-copy-source", source.as_str())],
                None,
                &[],
            )
            .await?;
        match self.send(request).await?.0 {
            200 => Ok(()),
            other => Err(storage_error(&format!("CopyObject answered {other}"))),
        }
    }

    /// The keys under `prefix` (ListObjectsV2, following its pages; at most
    /// `max_keys`).
    pub async fn list(&self, prefix: &str, max_keys: usize) -> Result<Vec<String>, ApiError> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut query = vec![("list-type", "2"), ("prefix", prefix)];
            if let Some(token) = &token {
                query.push(("continuation-token", token.as_str()));
            }
            let request = self.signed("GET", "", &[], None, &query).await?;
            let (status, _, body) = self
                .exchange(request, Bytes::new(), 4 * 1024 * 1024, S3_BODY_TIMEOUT)
                .await?;
            if status != 200 {
                return Err(storage_error(&format!("ListObjectsV2 answered {status}")));
            }
            let xml = String::from_utf8_lossy(&body);
            keys.extend(xml_values(&xml, "Key"));
            token = xml_values(&xml, "NextContinuationToken").into_iter().next();
            if token.is_none() || keys.len() >= max_keys {
                keys.truncate(max_keys);
                return Ok(keys);
            }
        }
    }

    /// Deletes an object (gone already is fine).
    pub async fn delete(&self, key: &str) -> Result<(), ApiError> {
        let request = self.signed("DELETE", key, &[], None, &[]).await?;
        match self.send(request).await?.0 {
            200 | 204 | 404 => Ok(()),
            other => Err(storage_error(&format!("DeleteObject answered {other}"))),
        }
    }

    /// A presigned GET of the object, valid for `ttl`, that serves it as `served` says
    /// (the overrides are signed: a changed one is refused by the storage).
    pub async fn presign_get(
        &self,
        key: &str,
        ttl: Duration,
        served: &Served,
    ) -> Result<String, ApiError> {
        let query = [
            (
                "response-content-disposition",
                served.content_disposition.as_str(),
            ),
            ("response-content-type", served.content_type.as_str()),
        ];
        Ok(self
            .signed("GET", key, &[], Some(ttl), &query)
            .await?
            .uri()
            .to_string())
    }

    /// Where the form is posted: the bucket's virtual-hosted URL on AWS, path-style on
    /// a local server.
    fn post_url(&self) -> String {
        match &self.config.endpoint {
            Some(endpoint) => format!("{}/{}", endpoint.trim_end_matches('/'), self.config.bucket),
            None => format!(
                "https://{}.s3.{}.amazonaws.com/",
                self.config.bucket, self.config.region
            ),
        }
    }

    /// A presigned POST for `upload` at `key`.
    pub async fn presign_post(
        &self,
        key: &str,
        upload: &NewUpload,
    ) -> Result<PresignedPost, ApiError> {
        let credentials = self.credentials().await?;
        let signer = Signer {
            access_key: credentials.access_key_id(),
            secret_key: credentials.secret_access_key(),
            session_token: credentials.session_token(),
            region: &self.config.region,
        };
        let object = PolicyObject {
            bucket: &self.config.bucket,
            key,
            content_type: &upload.content_type,
            size: upload.size,
        };
        Ok(signed_post_form(
            &object,
            self.post_url(),
            &signer,
            SystemTime::from(crate::time::now()),
            Duration::from_secs(UPLOAD_TTL_SECS),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_widgets_image_types_are_served_inline_and_others_download() {
        for content_type in UPLOAD_TYPES {
            let served = Served::of(content_type, None);
            assert_eq!(served.content_type, *content_type);
            let inline = INLINE_TYPES.contains(content_type);
            assert_eq!(
                served.content_disposition,
                if inline { "inline" } else { "attachment" },
                "{content_type}"
            );
        }
        for stored in [
            "text/html",
            "image/svg+xml",
            "application/xhtml+xml",
            "",
            "IMAGE/PNG",
        ] {
            let served = Served::of(stored, None);
            assert_eq!(
                (
                    served.content_type.as_str(),
                    served.content_disposition.as_str()
                ),
                ("application/octet-stream", "attachment"),
                "{stored}"
            );
        }
    }

    #[test]
    fn a_served_name_cannot_break_out_of_its_header() {
        let served = Served::of(
            "application/pdf",
            Some("Rechnung \"März\".pdf\r\nX-Evil: 1"),
        );
        assert_eq!(
            served.content_disposition,
            "attachment; filename=\"Rechnung _M_rz_.pdf__X-Evil: 1\"; filename*=UTF-8''Rechnung%20%22M%C3%A4rz%22.pdf%0D%0AX-Evil%3A%201"
        );
        assert!(served.content_disposition.is_ascii());
    }

    fn body(name: &str, content_type: &str, size: u64) -> UploadBody {
        UploadBody {
            name: name.into(),
            content_type: content_type.into(),
            size,
        }
    }

    #[test]
    fn an_upload_names_a_file_of_an_allowed_type_and_size() {
        assert!(NewUpload::try_from(body("kettle.jpg", "image/jpeg", 1)).is_ok());
        assert!(NewUpload::try_from(body("k.pdf", "application/pdf", MAX_UPLOAD_BYTES)).is_ok());
        for (bad, field) in [
            (body("", "image/jpeg", 1), "name"),
            (body("../etc/passwd", "image/jpeg", 1), "name"),
            (body("a\u{0}b", "image/jpeg", 1), "name"),
            (body(&"x".repeat(256), "image/jpeg", 1), "name"),
            (body("a.exe", "application/x-msdownload", 1), "content_type"),
            (body("a.svg", "image/svg+xml", 1), "content_type"),
            (body("a.jpg", "image/jpeg", 0), "size"),
            (body("a.jpg", "image/jpeg", MAX_UPLOAD_BYTES + 1), "size"),
        ] {
            let err = NewUpload::try_from(bad).unwrap_err();
            assert!(
                matches!(&err, ApiError::InvalidField { field: f, .. } if f == field),
                "{err:?}"
            );
        }
    }

    #[test]
    fn a_post_policy_allows_exactly_one_object_and_is_signed() {
        let signer = Signer {
            access_key: "AKIAIOSFODNN7EXAMPLE",
            secret_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            session_token: Some("token"),
            region: "us-east-1",
        };
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_451_347_200); // 2015-12-29
        let object = PolicyObject {
            bucket: "sigv4examplebucket",
            key: "pending/acme/r/u",
            content_type: "image/png",
            size: 42,
        };
        let form = signed_post_form(
            &object,
            "https://sigv4examplebucket.s3.us-east-1.amazonaws.com/".into(),
            &signer,
            now,
            Duration::from_secs(300),
        );
        assert_eq!(form.fields["x-amz-date"], "20151229T000000Z");
        assert_eq!(
            form.fields["x-amz-credential"],
            "AKIAIOSFODNN7EXAMPLE/20151229/us-east-1/s3/aws4_request"
        );
        let policy: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::STANDARD
                .decode(form.fields["policy"].as_str().unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(policy["expiration"], "2015-12-29T00:05:00.000Z");
        let conditions = policy["conditions"].as_array().unwrap();
        for wanted in [
            serde_json::json!({"bucket": "sigv4examplebucket"}),
            serde_json::json!(["eq", "$key", "pending/acme/r/u"]),
            serde_json::json!(["eq", "$Content-Type", "image/png"]),
            serde_json::json!(["eq", "$x-amz-security-token", "token"]),
            serde_json::json!(["content-length-range", 42, 42]),
        ] {
            assert!(conditions.contains(&wanted), "{wanted} in {conditions:?}");
        }
        // The signature is the SDK signer's HMAC of the policy with the day's key.
        let key =
            aws_sigv4::sign::v4::generate_signing_key(signer.secret_key, now, "us-east-1", "s3");
        let expected = aws_sigv4::sign::v4::calculate_signature(
            key,
            form.fields["policy"].as_str().unwrap().as_bytes(),
        );
        assert_eq!(form.fields["x-amz-signature"], expected.as_str());
        assert_eq!(expected.len(), 64);
    }
}
