//! Uploads end to end against a real S3 server that verifies what AWS verifies
//! (s3s-fs: SigV4, expiry, POST policy conditions): a member's presigned POST takes
//! the file by a real multipart POST; a larger file, an altered or expired form are
//! refused by the storage itself; who may not post in the room gets 404 and no form.

use chat_testkit::{LOCAL_S3_ACCESS_KEY, LOCAL_S3_SECRET_KEY, local_s3, token};
use devserver::TestApp;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const UPLOAD: &str = "POST /chat/conversations/{conversation_id}/uploads";

fn customer() -> String {
    token("u-100", "acme", "customer")
}

async fn conversation(app: &TestApp) -> String {
    let body = json!({"title": "Broken kettle", "agent_id": "a-1"});
    let created = app
        .expect(201, "POST /chat/conversations", &[], &customer(), body)
        .await;
    created["conversation_id"].as_str().unwrap().to_owned()
}

/// POSTs a multipart form (the fields in order, then the file) to `url`: the status.
async fn post_form(
    url: &str,
    fields: &serde_json::Map<String, Value>,
    file: &[u8],
    file_type: &str,
) -> u16 {
    let boundary = "----chat-upload-boundary-7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{}\r\n",
                value.as_str().unwrap()
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"photo\"\r\nContent-Type: {file_type}\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let head = format!(
        "POST /{path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    answer.split(' ').nth(1).unwrap().parse().unwrap()
}

/// Where the local S3 server keeps an object of the test's bucket.
fn stored(app: &TestApp, key: &str) -> PathBuf {
    local_s3().1.join(&app.table.name).join(key)
}

fn key_of(form: &Value) -> String {
    form["fields"]["key"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_member_uploads_straight_to_storage_within_the_policy_only() {
    let app = TestApp::new().await;
    let id = conversation(&app).await;
    let photo = vec![7u8; 2048];
    let ask = json!({"name": "kettle.png", "content_type": "image/png", "size": photo.len()});
    let form = app
        .expect(
            201,
            UPLOAD,
            &[("conversation_id", &id)],
            &customer(),
            ask.clone(),
        )
        .await;
    let key = key_of(&form);
    assert_eq!(
        key,
        format!("pending/acme/{id}/{}", form["upload_id"].as_str().unwrap())
    );
    let url = form["url"].as_str().unwrap();
    let fields = form["fields"].as_object().unwrap();

    // A file one byte over what was declared: the storage refuses it.
    let larger = vec![7u8; photo.len() + 1];
    let status = post_form(url, fields, &larger, "image/png").await;
    assert!((400..500).contains(&status), "over the size: {status}");
    assert!(!stored(&app, &key).exists(), "nothing stored");

    // Altered: another key, another type, a forged signature.
    for (field, value) in [
        ("key", format!("pending/globex/{id}/x")),
        ("Content-Type", "text/html".to_owned()),
        ("x-amz-signature", "0".repeat(64)),
    ] {
        let mut altered = fields.clone();
        altered.insert(field.into(), value.into());
        let status = post_form(url, &altered, &photo, "image/png").await;
        assert!((400..500).contains(&status), "{field} altered: {status}");
    }
    assert!(!stored(&app, &key).exists());

    // The real upload: a multipart POST of the form, straight to the bucket.
    let status = post_form(url, fields, &photo, "image/png").await;
    assert!((200..300).contains(&status), "upload: {status}");
    assert_eq!(std::fs::read(stored(&app, &key)).unwrap(), photo);

    // An expired form (signed by the same credentials, its policy's time past).
    let signer = chat_core::uploads::Signer {
        access_key: LOCAL_S3_ACCESS_KEY,
        secret_key: LOCAL_S3_SECRET_KEY,
        session_token: None,
        region: "us-east-1",
    };
    let expired_key = format!("pending/acme/{id}/expired");
    let expired = chat_core::uploads::post_form(
        &app.table.name,
        url.to_owned(),
        &expired_key,
        "image/png",
        photo.len() as u64,
        &signer,
        SystemTime::now() - Duration::from_secs(400),
        Duration::from_secs(300),
    );
    let status = post_form(url, &expired.fields, &photo, "image/png").await;
    assert!((400..500).contains(&status), "expired: {status}");
    assert!(!stored(&app, &expired_key).exists());
}

#[tokio::test]
async fn who_may_not_post_in_the_room_gets_404_and_no_form() {
    let app = TestApp::new().await;
    let owner = customer();
    let room = app
        .expect(
            201,
            "POST /rooms",
            &[],
            &owner,
            json!({"type": "group", "name": "Team", "participant_ids": ["u-200"]}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let ask = json!({"name": "a.pdf", "content_type": "application/pdf", "size": 10});
    let key = "POST /rooms/{room_id}/uploads";
    app.expect(
        201,
        key,
        &[("room_id", &room)],
        &token("u-200", "acme", "customer"),
        ask.clone(),
    )
    .await;
    let (status, _) = app
        .send(
            "DELETE /rooms/{room_id}/members/{user_id}",
            &[("room_id", &room), ("user_id", "u-200")],
            &owner,
            None,
            &[],
        )
        .await;
    assert_eq!(status, 200);
    for (who, what) in [
        (token("u-200", "acme", "customer"), "a removed member"),
        (token("u-300", "acme", "customer"), "a stranger"),
        (token("u-100", "globex", "admin"), "another tenant"),
    ] {
        let (status, body) = app
            .send(key, &[("room_id", &room)], &who, Some(ask.clone()), &[])
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (404, Some("not_found")),
            "{what}"
        );
        assert!(body["data"].get("fields").is_none(), "{what}");
    }
    // Bad input: refused by name, nothing signed.
    for (bad, field) in [
        (
            json!({"name": "a.exe", "content_type": "application/x-msdownload", "size": 10}),
            "content_type",
        ),
        (
            json!({"name": "a.pdf", "content_type": "application/pdf", "size": 26 * 1024 * 1024}),
            "size",
        ),
        (
            json!({"name": "../a.pdf", "content_type": "application/pdf", "size": 10}),
            "name",
        ),
    ] {
        let (status, body) = app
            .send(key, &[("room_id", &room)], &owner, Some(bad), &[])
            .await;
        assert_eq!(
            (status, body["error"]["details"]["field"].as_str()),
            (422, Some(field))
        );
    }
}
