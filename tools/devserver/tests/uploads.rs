//! Uploads end to end against a real S3 server that verifies what AWS verifies
//! (s3s-fs: SigV4, expiry, POST policy conditions): a member's presigned POST takes
//! the file by a real multipart POST; a larger file, an altered or expired form are
//! refused by the storage itself; who may not post in the room gets 404 and no form.

use chat_testkit::{LOCAL_S3_ACCESS_KEY, LOCAL_S3_SECRET_KEY, local_s3, post_form, token};
use devserver::TestApp;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

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
        format!(
            "pending/acme/{id}/u-100/{}",
            form["upload_id"].as_str().unwrap()
        )
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
    let expired_key = format!("pending/acme/{id}/u-100/expired");
    let object = chat_core::uploads::PolicyObject {
        bucket: &app.table.name,
        key: &expired_key,
        content_type: "image/png",
        size: photo.len() as u64,
    };
    let expired = chat_core::uploads::signed_post_form(
        &object,
        url.to_owned(),
        &signer,
        SystemTime::now() - Duration::from_secs(400),
        Duration::from_secs(300),
    );
    let status = post_form(url, &expired.fields, &photo, "image/png").await;
    assert!((400..500).contains(&status), "expired: {status}");
    assert!(!stored(&app, &expired_key).exists());

    // A message cites the upload: type and size come from the storage, and the file
    // moves out of reach of the unattached-uploads rule.
    let upload_id = form["upload_id"].as_str().unwrap();
    let posted = app
        .expect(
            201,
            "POST /chat/conversations/{conversation_id}/messages",
            &[("conversation_id", &id)],
            &customer(),
            json!({"content": "see photo", "attachments": [{"name": "kettle.png", "upload_id": upload_id}]}),
        )
        .await;
    let attachment = &posted["attachments"][0];
    assert_eq!(
        (
            attachment["type"].as_str(),
            attachment["size"].as_u64(),
            attachment["upload_id"].as_str()
        ),
        (Some("image/png"), Some(photo.len() as u64), Some(upload_id))
    );
    let attached = format!("files/acme/{id}/{upload_id}");
    assert_eq!(std::fs::read(stored(&app, &attached)).unwrap(), photo);

    // Members fetch it with a short-lived presigned GET; the storage checks it.
    let link = app
        .expect_get(
            "GET /chat/conversations/{conversation_id}/attachments/{upload_id}",
            &[("conversation_id", &id), ("upload_id", upload_id)],
            &customer(),
        )
        .await;
    let got = get(link["url"].as_str().unwrap()).await;
    assert_eq!(got, (200, photo.clone()));
    let tampered = link["url"]
        .as_str()
        .unwrap()
        .replace("X-Amz-Signature=", "X-Amz-Signature=0");
    let refused = get(&tampered).await.0;
    assert!(
        (400..500).contains(&refused),
        "an altered link is refused: {refused}"
    );

    // Deleting the message deletes its file.
    let (status, _) = app
        .send(
            "DELETE /chat/conversations/{conversation_id}/messages/{message_id}",
            &[
                ("conversation_id", &id),
                ("message_id", posted["id"].as_str().unwrap()),
            ],
            &customer(),
            None,
            &[],
        )
        .await;
    assert_eq!(status, 200);
    assert!(
        !stored(&app, &attached).exists(),
        "the file went with the message"
    );
}

/// GETs `url`: status and body.
async fn get(url: &str) -> (u16, Vec<u8>) {
    chat_testkit::http_get_bytes(url).await
}

#[tokio::test]
async fn a_message_cites_only_finished_uploads_of_its_own_room() {
    let app = TestApp::new().await;
    let id = conversation(&app).await;
    let other = conversation(&app).await;
    let ask = json!({"name": "a.pdf", "content_type": "application/pdf", "size": 5});
    let form = app
        .expect(
            201,
            UPLOAD,
            &[("conversation_id", &other)],
            &customer(),
            ask.clone(),
        )
        .await;
    let status = post_form(
        form["url"].as_str().unwrap(),
        form["fields"].as_object().unwrap(),
        b"%PDF-",
        "application/pdf",
    )
    .await;
    assert!((200..300).contains(&status));
    let never_uploaded = app
        .expect(201, UPLOAD, &[("conversation_id", &id)], &customer(), ask)
        .await;
    let key = "POST /chat/conversations/{conversation_id}/messages";
    for (upload_id, what) in [
        (form["upload_id"].as_str().unwrap(), "another room's upload"),
        (
            never_uploaded["upload_id"].as_str().unwrap(),
            "a form never used",
        ),
        ("01J00000000000000000000000", "an unknown id"),
    ] {
        let body =
            json!({"content": "x", "attachments": [{"name": "a.pdf", "upload_id": upload_id}]});
        let (status, answer) = app
            .send(
                key,
                &[("conversation_id", &id)],
                &customer(),
                Some(body),
                &[],
            )
            .await;
        assert_eq!(
            (status, answer["error"]["details"]["field"].as_str()),
            (422, Some("attachments[0].upload_id")),
            "{what}: {answer}"
        );
    }
    // A stated type or size that differs from the stored file is refused too.
    let own = app
        .expect(
            201,
            UPLOAD,
            &[("conversation_id", &id)],
            &customer(),
            json!({"name": "b.pdf", "content_type": "application/pdf", "size": 5}),
        )
        .await;
    post_form(
        own["url"].as_str().unwrap(),
        own["fields"].as_object().unwrap(),
        b"%PDF-",
        "application/pdf",
    )
    .await;
    let body = json!({"content": "x", "attachments": [{"name": "b.pdf", "upload_id": own["upload_id"], "size": 6}]});
    let (status, answer) = app
        .send(
            key,
            &[("conversation_id", &id)],
            &customer(),
            Some(body),
            &[],
        )
        .await;
    assert_eq!(
        (status, answer["error"]["details"]["field"].as_str()),
        (422, Some("attachments[0].size"))
    );
    let messages = app
        .table
        .items()
        .await
        .iter()
        .filter(|i| {
            i.get("entity")
                .and_then(|v| v.as_s().ok())
                .map(String::as_str)
                == Some("message")
        })
        .count();
    assert_eq!(messages, 0, "nothing written");
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
    let member = token("u-200", "acme", "customer");
    let form = app
        .expect(201, key, &[("room_id", &room)], &member, ask.clone())
        .await;
    let fields = form["fields"].as_object().unwrap();
    post_form(
        form["url"].as_str().unwrap(),
        fields,
        b"0123456789",
        "application/pdf",
    )
    .await;
    let upload = form["upload_id"].as_str().unwrap();
    let body =
        json!({"content": "minutes", "attachments": [{"name": "a.pdf", "upload_id": upload}]});
    app.expect(
        201,
        "POST /rooms/{room_id}/messages",
        &[("room_id", &room)],
        &member,
        body,
    )
    .await;
    let download = "GET /rooms/{room_id}/attachments/{upload_id}";
    app.expect_get(
        download,
        &[("room_id", &room), ("upload_id", upload)],
        &member,
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
        let params = [("room_id", room.as_str()), ("upload_id", upload)];
        let (status, body) = app.send(download, &params, &who, None, &[]).await;
        assert_eq!(status, 404, "{what} gets no link: {body}");
        assert!(!body.to_string().contains("X-Amz-Signature"), "{what}");
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

/// An upload belongs to its uploader and to the first message that attaches it:
/// another member citing it (while pending, once attached, or as "a retry") is 422
/// and writes nothing, and deleting another message never takes the file.
#[tokio::test]
async fn another_members_upload_cannot_be_cited_nor_deleted_through_a_message() {
    let app = TestApp::new().await;
    let id = conversation(&app).await;
    let agent = token("a-1", "acme", "agent");
    let posting = "POST /chat/conversations/{conversation_id}/messages";
    let photo = vec![9u8; 64];
    let form = app
        .expect(
            201,
            UPLOAD,
            &[("conversation_id", &id)],
            &customer(),
            json!({"name": "p.png", "content_type": "image/png", "size": photo.len()}),
        )
        .await;
    let status = post_form(
        form["url"].as_str().unwrap(),
        form["fields"].as_object().unwrap(),
        &photo,
        "image/png",
    )
    .await;
    assert!((200..300).contains(&status));
    let upload_id = form["upload_id"].as_str().unwrap().to_owned();
    let cite = |content: &str| json!({"content": content, "attachments": [{"name": "p.png", "upload_id": upload_id}]});
    let messages = async |app: &TestApp| {
        app.table
            .items()
            .await
            .iter()
            .filter(|i| {
                i.get("entity")
                    .and_then(|v| v.as_s().ok())
                    .map(String::as_str)
                    == Some("message")
            })
            .count()
    };

    // While it is still pending: the agent (a member) cannot take it.
    let (status, answer) = app
        .send(
            posting,
            &[("conversation_id", &id)],
            &agent,
            Some(cite("mine now")),
            &[],
        )
        .await;
    assert_eq!(
        (status, answer["error"]["details"]["field"].as_str()),
        (422, Some("attachments[0].upload_id")),
        "{answer}"
    );
    assert_eq!(messages(&app).await, 0, "nothing written");

    // The uploader attaches it; a second message of the uploader's own cannot cite it
    // again, nor can the agent now that it is attached ("a retry").
    let first = app
        .expect(
            201,
            posting,
            &[("conversation_id", &id)],
            &customer(),
            cite("photo"),
        )
        .await;
    for (who, caller) in [
        ("the uploader again", customer()),
        ("another member", agent.clone()),
    ] {
        let before = app.table.items().await;
        let (status, answer) = app
            .send(
                posting,
                &[("conversation_id", &id)],
                &caller,
                Some(cite("again")),
                &[],
            )
            .await;
        assert_eq!(
            (status, answer["error"]["details"]["field"].as_str()),
            (422, Some("attachments[0].upload_id")),
            "{who}: {answer}"
        );
        assert_eq!(app.table.items().await, before, "{who}: nothing written");
    }
    let attached = format!("files/acme/{id}/{upload_id}");
    assert!(stored(&app, &attached).exists());

    // The agent's own message, deleted, leaves the customer's file alone; the
    // customer's message, deleted, takes it.
    let other = app
        .expect(
            201,
            posting,
            &[("conversation_id", &id)],
            &agent,
            json!({"content": "hi"}),
        )
        .await;
    for (message, caller) in [(&other, &agent), (&first, &customer())] {
        let (status, _) = app
            .send(
                "DELETE /chat/conversations/{conversation_id}/messages/{message_id}",
                &[
                    ("conversation_id", &id),
                    ("message_id", message["id"].as_str().unwrap()),
                ],
                caller,
                None,
                &[],
            )
            .await;
        assert_eq!(status, 200);
        let still = stored(&app, &attached).exists();
        assert_eq!(
            still,
            message["id"] == other["id"],
            "the file goes with its own message only"
        );
    }
}

/// Review #21.11: a download link pins how the file is served — its stored type and
/// `inline` only for the image types the widget shows, every other type a download
/// with its name — in signed query parameters, so a link changed to serve a file
/// inline (or as another type) is refused by the storage. Generated over every type
/// an upload may have.
#[tokio::test]
async fn a_download_link_pins_its_type_and_disposition() {
    use chat_core::uploads::{INLINE_TYPES, UPLOAD_TYPES};
    let app = TestApp::new().await;
    let id = conversation(&app).await;
    for (i, content_type) in UPLOAD_TYPES.iter().enumerate() {
        let bytes = vec![b'a' + i as u8; 64];
        let name = format!("fichier-{i} é.bin");
        let ask = json!({"name": name, "content_type": content_type, "size": bytes.len()});
        let form = app
            .expect(201, UPLOAD, &[("conversation_id", &id)], &customer(), ask)
            .await;
        let fields = form["fields"].as_object().unwrap();
        let status = post_form(form["url"].as_str().unwrap(), fields, &bytes, content_type).await;
        assert!(status < 300, "{content_type}: {status}");
        let upload_id = form["upload_id"].as_str().unwrap();
        app.expect(
            201,
            "POST /chat/conversations/{conversation_id}/messages",
            &[("conversation_id", &id)],
            &customer(),
            json!({"content": "file", "attachments": [{"name": name, "upload_id": upload_id}]}),
        )
        .await;
        let link = app
            .expect_get(
                "GET /chat/conversations/{conversation_id}/attachments/{upload_id}",
                &[("conversation_id", &id), ("upload_id", upload_id)],
                &customer(),
            )
            .await;
        let url = link["url"].as_str().unwrap();
        let params: Vec<(String, String)> = url::Url::parse(url)
            .unwrap()
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let param = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("{content_type}: no {name} in {url}"))
        };
        let inline = INLINE_TYPES.contains(content_type);
        let disposition = param("response-content-disposition");
        let expected = format!(
            "{}; filename=\"fichier-{i} _.bin\"; filename*=UTF-8''fichier-{i}%20%C3%A9.bin",
            if inline { "inline" } else { "attachment" }
        );
        assert_eq!(disposition, expected, "{content_type}");
        assert_eq!(param("response-content-type"), *content_type);
        // The storage takes the link as signed, and refuses it changed.
        assert_eq!(get(url).await, (200, bytes), "{content_type}");
        for (from, to) in [
            (
                "response-content-disposition=attachment",
                "response-content-disposition=inline",
            ),
            (
                "response-content-disposition=inline",
                "response-content-disposition=attachment",
            ),
            (
                "response-content-type=",
                "response-content-type=text%2Fhtml%3B",
            ),
        ] {
            if !url.contains(from) {
                continue;
            }
            let changed = url.replace(from, to);
            let refused = get(&changed).await.0;
            assert!(
                (400..500).contains(&refused),
                "{content_type}: {from} → {to} is refused: {refused}"
            );
        }
    }
}
