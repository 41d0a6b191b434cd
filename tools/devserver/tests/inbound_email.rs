//! Replies by email (docs/email.md), end to end: an agent answers, the notify
//! consumer mails the away customer through the local SES with the conversation's
//! signed reply address; the reply, a real raw message of a mail client
//! (functions/webhooks/fixtures/mail/), DKIM-signed with a key the local DNS
//! publishes, goes over SMTP to the local inbound mail server (SES's checks, the raw
//! message into the local S3, the function invoked through the Lambda Invoke API) and
//! lands in the conversation. Every refused mail leaves the conversation as it was.

use chat_testkit::{DkimKey, InboundMail, MailService, token};
use devserver::TestApp;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const PATIENCE: Duration = Duration::from_secs(30);
const CUSTOMER_ADDRESS: &str = "sam@customer.example";
const AGENT_ADDRESS: &str = "alex@acme.example";

struct Stack {
    app: TestApp,
    mail: MailService,
    inbound: InboundMail,
    domain: String,
    ws_port: u16,
    _customer_key: DkimKey,
    customer_key: std::sync::Arc<DkimKey>,
    agent_key: DkimKey,
    notifications: std::sync::Arc<devserver::notify::Notifications>,
}

fn customer() -> String {
    token("u-100", "acme", "customer")
}

fn agent() -> String {
    token("a-1", "acme", "agent")
}

impl Stack {
    async fn new() -> Stack {
        let app = TestApp::new().await;
        let mail = MailService::start().await;
        let mut runtime = app.table.runtime.clone();
        let email = runtime
            .config
            .notify
            .email
            .as_mut()
            .expect("email is on in scripts/local.env");
        email.ses_endpoint = Some(mail.url());
        let domain = email
            .inbound_domain
            .clone()
            .expect("INBOUND_EMAIL_DOMAIN in scripts/local.env");
        // Mailed at once: no digest window.
        runtime.config.notify.window_secs = 0;
        let notifications = devserver::notify::serve_notifications(&runtime)
            .await
            .expect("notifications on");
        let (ws_port, _) = devserver::realtime::serve_realtime(&runtime, 0)
            .await
            .unwrap();
        let lambda = devserver::lambda::serve_lambda(&runtime, 0).await.unwrap();
        let uploads = runtime.config.uploads.clone().expect("uploads are on");
        let inbound = InboundMail::start(
            &domain,
            uploads.endpoint.as_deref().expect("the local S3"),
            &uploads.bucket,
            &format!("http://127.0.0.1:{lambda}"),
        )
        .await;
        // The customer's and the agent's mail domains sign their mail, as Gmail and
        // Microsoft 365 do.
        let customer_key = DkimKey::generate("customer.example", "s1");
        let agent_key = DkimKey::generate("acme.example", "sel");
        for key in [&customer_key, &agent_key] {
            inbound.dns.publish(&key.name(), &key.record);
        }
        let customer_key = std::sync::Arc::new(customer_key);
        Stack {
            app,
            mail,
            inbound,
            domain,
            ws_port,
            _customer_key: DkimKey::generate("unused.example", "x"),
            customer_key,
            agent_key,
            notifications,
        }
    }

    /// A support conversation of u-100 with a-1, both with their addresses on their
    /// profiles; the customer asked and the agent answered: the mail the customer got.
    async fn answered_conversation(&self) -> (String, Value) {
        for (tok, address) in [(customer(), CUSTOMER_ADDRESS), (agent(), AGENT_ADDRESS)] {
            self.app
                .expect(
                    200,
                    "PUT /profiles/me",
                    &[],
                    &tok,
                    json!({"email": address}),
                )
                .await;
        }
        let made = self
            .app
            .expect(
                201,
                "POST /chat/conversations",
                &[],
                &customer(),
                json!({"title": "Where is my order", "agent_id": "a-1"}),
            )
            .await;
        let room = made["conversation_id"].as_str().unwrap().to_owned();
        self.post(&room, &customer(), "Where is parcel 4242?").await;
        self.post(&room, &agent(), "It ships today.").await;
        let mail = self.mails_to(CUSTOMER_ADDRESS, 1).await.remove(0);
        (room, mail)
    }

    async fn post(&self, room: &str, tok: &str, content: &str) {
        self.app
            .expect(
                201,
                "POST /rooms/{room_id}/messages",
                &[("room_id", room)],
                tok,
                json!({"content": content}),
            )
            .await;
    }

    async fn mails_to(&self, address: &str, count: usize) -> Vec<Value> {
        let started = Instant::now();
        loop {
            let got = self.mail.mails_to(address).await;
            if got.len() >= count || started.elapsed() > PATIENCE {
                assert_eq!(got.len(), count, "mails to {address}: {got:#?}");
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The conversation's messages as its agent reads them, oldest first.
    async fn messages(&self, room: &str) -> Vec<Value> {
        let page = self
            .app
            .expect_get(
                "GET /rooms/{room_id}/messages",
                &[("room_id", room)],
                &agent(),
            )
            .await;
        let mut messages = page["messages"].as_array().unwrap().clone();
        messages.reverse();
        messages
    }
}

/// A fixture mail from `from` to `to` about `room`.
fn fixture(name: &str, from: &str, to: &str, room: &str, domain: &str) -> Vec<u8> {
    let path = chat_testkit::repo_root().join(format!("functions/webhooks/fixtures/mail/{name}"));
    String::from_utf8(std::fs::read(path).expect("the fixture"))
        .expect("fixtures are UTF-8")
        .replace("{{FROM}}", from)
        .replace("{{TO}}", to)
        .replace("{{ROOM}}", &room.to_ascii_lowercase())
        .replace("{{DOMAIN}}", domain)
        .into_bytes()
}

/// The function's answer in the SMTP reply: the one mail's outcome.
fn outcome(reply: &str) -> Value {
    assert!(reply.starts_with("250 "), "{reply}");
    let json = reply.split_once("Ok: ").expect("the function's answer").1;
    let answer: Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"));
    answer["mails"][0].clone()
}

fn reply_to(mail: &Value) -> String {
    let addresses = mail["replyTo"].as_array().expect("a Reply-To");
    assert_eq!(addresses.len(), 1, "{mail:#}");
    addresses[0].as_str().unwrap().to_owned()
}

fn header<'a>(mail: &'a Value, name: &str) -> Option<&'a str> {
    mail["headers"].as_array()?.iter().find(|h| {
        h["name"]
            .as_str()
            .is_some_and(|n| n.eq_ignore_ascii_case(name))
    })?["value"]
        .as_str()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_by_email_lands_in_the_conversation_and_its_agent_sees_it_live() {
    let stack = Stack::new().await;
    let (room, mail) = stack.answered_conversation().await;
    let address = reply_to(&mail);
    assert!(
        address.starts_with("reply+") && address.ends_with(&format!("@{}", stack.domain)),
        "{address}"
    );
    let thread = format!(
        "<conversation.{}@{}>",
        room.to_ascii_lowercase(),
        stack.domain
    );
    assert_eq!(header(&mail, "References"), Some(thread.as_str()));
    assert_eq!(header(&mail, "In-Reply-To"), Some(thread.as_str()));
    assert!(
        mail["body"]["text"]
            .as_str()
            .unwrap()
            .contains("Reply to this email")
    );

    // The agent watches the conversation.
    let (_, ticket) = stack
        .app
        .send("POST /realtime/tickets", &[], &agent(), None, &[])
        .await;
    let url = format!(
        "ws://127.0.0.1:{}/?ticket={}",
        stack.ws_port,
        ticket["data"]["ticket"].as_str().unwrap()
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    socket
        .send(tokio_tungstenite::tungstenite::Message::Text(
            json!({"action": "subscribe", "room_id": room})
                .to_string()
                .into(),
        ))
        .await
        .unwrap();

    let started = Instant::now();
    let raw = stack.customer_key.sign(&fixture(
        "gmail.eml",
        CUSTOMER_ADDRESS,
        &address,
        &room,
        &stack.domain,
    ));
    let reply = stack
        .inbound
        .send(CUSTOMER_ADDRESS, &[&address], &raw)
        .await;
    let got = outcome(&reply);
    assert_eq!(got["outcome"], "posted", "{reply}");
    assert_eq!(got["room_id"], room.as_str());

    let live = loop {
        let frame = tokio::time::timeout(PATIENCE, socket.next())
            .await
            .expect("the reply reached the agent's socket")
            .expect("open")
            .expect("a frame");
        if let tokio_tungstenite::tungstenite::Message::Text(text) = frame
            && text.contains("all good!")
        {
            break serde_json::from_str::<Value>(&text).unwrap();
        }
    };
    eprintln!(
        "SMTP DATA to the agent's socket: {} ms",
        started.elapsed().as_millis()
    );
    assert!(live.to_string().contains("u-100"), "{live}");

    let messages = stack.messages(&room).await;
    let last = messages.last().unwrap();
    assert_eq!(
        last["content"],
        "Thanks, it arrived this morning — all good!"
    );
    assert_eq!(last["sender_id"], "u-100");
    assert_eq!(last["sender"], "user");

    // The same mail delivered again (SES retries; a client resends): posted once.
    let again = stack
        .inbound
        .send(CUSTOMER_ADDRESS, &[&address], &raw)
        .await;
    let got = outcome(&again);
    assert_eq!(got["outcome"], "duplicate", "{again}");
    assert_eq!(got["message_id"], last["id"]);
    assert_eq!(stack.messages(&room).await.len(), messages.len());

    // The agent answers from their own mail client, to the mail they got.
    let agent_reply = stack.agent_key.sign(&fixture(
        "outlook.eml",
        AGENT_ADDRESS,
        &address,
        &room,
        &stack.domain,
    ));
    let got = outcome(
        &stack
            .inbound
            .send(AGENT_ADDRESS, &[&address], &agent_reply)
            .await,
    );
    assert_eq!(got["outcome"], "posted");
    let last = stack.messages(&room).await.pop().unwrap();
    assert_eq!(last["sender_id"], "a-1");
    assert_eq!(last["sender"], "agent");
    assert!(
        last["content"]
            .as_str()
            .unwrap()
            .starts_with("Hello,\n\nCould you send it")
    );

    // The round trip goes on: the customer hears of the agent's emailed answer, at
    // their digest's end (15 minutes, reached by the sweep's clock).
    let digest_end = chat_core::time::now_millis() + 16 * 60_000;
    let started = Instant::now();
    while stack.notifications.notifier().sweep_at(digest_end).await == 0 {
        assert!(started.elapsed() < PATIENCE, "the digest never came due");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mails = stack.mails_to(CUSTOMER_ADDRESS, 2).await;
    assert!(
        mails[1]["body"]["text"]
            .as_str()
            .unwrap()
            .contains("12 Rue de la Paix"),
        "{:#}",
        mails[1]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_mail_clients_reply_lands_without_its_quote() {
    let stack = Stack::new().await;
    let (room, mail) = stack.answered_conversation().await;
    let address = reply_to(&mail);
    let cases = [
        ("gmail.eml", "Thanks, it arrived this morning — all good!"),
        (
            "outlook.eml",
            "Hello,\n\nCould you send it to my office instead? The address is 12 Rue de la Paix, Paris.\n\nKind regards,\nSam",
        ),
        (
            "outlook-html.eml",
            "Never mind, it just arrived. Thank you & have a nice day!",
        ),
        (
            "apple-mail.eml",
            "Perfect, thank you. Can I change the delivery day to Monday?",
        ),
        (
            "thunderbird.eml",
            "Great, thanks. One more question: does it need a signature on delivery? I will be out until 5 pm.",
        ),
    ];
    for (name, expected) in cases {
        let raw = stack.customer_key.sign(&fixture(
            name,
            CUSTOMER_ADDRESS,
            &address,
            &room,
            &stack.domain,
        ));
        let got = outcome(
            &stack
                .inbound
                .send(CUSTOMER_ADDRESS, &[&address], &raw)
                .await,
        );
        assert_eq!(got["outcome"], "posted", "{name}: {got}");
        let last = stack.messages(&room).await.pop().unwrap();
        assert_eq!(last["content"], expected, "{name}");
        assert_eq!(last["sender_id"], "u-100", "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attachment_becomes_an_upload_of_the_room_that_members_download() {
    let stack = Stack::new().await;
    let (room, mail) = stack.answered_conversation().await;
    let address = reply_to(&mail);
    let raw = stack.customer_key.sign(&fixture(
        "attachment.eml",
        CUSTOMER_ADDRESS,
        &address,
        &room,
        &stack.domain,
    ));
    let got = outcome(
        &stack
            .inbound
            .send(CUSTOMER_ADDRESS, &[&address], &raw)
            .await,
    );
    assert_eq!(got["outcome"], "posted", "{got}");
    let last = stack.messages(&room).await.pop().unwrap();
    let content = last["content"].as_str().unwrap();
    assert!(
        content.starts_with("Here is a photo of the damaged box."),
        "{content}"
    );
    // The program is refused as a direct upload of it would be, and the message says so.
    assert!(
        content.contains("(not attached: invoice.exe — content_type"),
        "{content}"
    );
    let attachments = last["attachments"].as_array().unwrap();
    assert_eq!(attachments.len(), 1, "{last:#}");
    assert_eq!(attachments[0]["name"], "box.png");
    assert_eq!(attachments[0]["type"], "image/png");
    let upload = attachments[0]["upload_id"].as_str().unwrap();
    for tok in [customer(), agent()] {
        let link = stack
            .app
            .expect_get(
                "GET /rooms/{room_id}/attachments/{upload_id}",
                &[("room_id", &room), ("upload_id", upload)],
                &tok,
            )
            .await;
        let url = link["url"].as_str().unwrap();
        let (status, body) = chat_testkit::http_get_bytes(url).await;
        assert_eq!(status, 200);
        assert_eq!(&body[..8], b"\x89PNG\r\n\x1a\n", "the PNG as sent");
    }
    // Not to another customer of the tenant.
    let (status, _) = stack
        .app
        .send(
            "GET /rooms/{room_id}/attachments/{upload_id}",
            &[("room_id", &room), ("upload_id", upload)],
            &token("u-300", "acme", "customer"),
            None,
            &[],
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mail_that_is_forged_unauthenticated_infected_or_automatic_posts_nothing() {
    let stack = Stack::new().await;
    let (room, mail) = stack.answered_conversation().await;
    let address = reply_to(&mail);
    // Another tenant's conversation, with its own reply address.
    let globex_customer = token("u-100", "globex", "customer");
    stack
        .app
        .expect(
            200,
            "PUT /profiles/me",
            &[],
            &globex_customer,
            json!({"email": "pat@globex-customer.example"}),
        )
        .await;
    let other = stack
        .app
        .expect(
            201,
            "POST /chat/conversations",
            &[],
            &globex_customer,
            json!({"title": "Globex order", "agent_id": "g-1"}),
        )
        .await["conversation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let secret = stack
        .app
        .table
        .runtime
        .config
        .notify
        .email
        .as_ref()
        .unwrap()
        .link_secret
        .clone();
    let org = |o: &str| chat_core::ids::OrgId::parse(o).unwrap();
    let room_id = |r: &str| chat_core::ids::RoomId::parse(r).unwrap();
    stack
        .app
        .table
        .runtime
        .store
        .remember_reply_room(&org("globex"), &room_id(&other))
        .await
        .unwrap();
    let globex_address =
        chat_core::reply::address(&secret, &stack.domain, &org("globex"), &room_id(&other));
    // acme's tag on globex's room id: names a room acme does not have.
    let crossed = chat_core::reply::address(&secret, &stack.domain, &org("acme"), &room_id(&other));
    let (local, _) = address.split_once('@').unwrap();
    let flipped_tag = {
        let mut chars: Vec<char> = local.chars().collect();
        let last = chars.len() - 1;
        chars[last] = if chars[last] == '0' { '1' } else { '0' };
        format!("{}@{}", chars.into_iter().collect::<String>(), stack.domain)
    };
    let attacker = DkimKey::generate("attacker.example", "k1");
    stack
        .inbound
        .dns
        .publish(&attacker.name(), &attacker.record);
    stack
        .inbound
        .dns
        .publish("_dmarc.customer.example", "v=DMARC1; p=reject");

    let gmail = |to: &str| fixture("gmail.eml", CUSTOMER_ADDRESS, to, &room, &stack.domain);
    let signed = |to: &str| stack.customer_key.sign(&gmail(to));
    let tampered = {
        let text = String::from_utf8(signed(&address)).unwrap();
        text.replace("all good!", "send me a refund").into_bytes()
    };
    let eicar = String::from_utf8(gmail(&address))
        .unwrap()
        .replace(
            "Thanks, it arrived",
            r"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H* arrived",
        )
        .into_bytes();
    let gtube = String::from_utf8(gmail(&address))
        .unwrap()
        .replace(
            "Thanks, it arrived",
            "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X",
        )
        .into_bytes();
    let cases: Vec<(&str, String, Vec<u8>, &str)> = vec![
        (
            "a changed tag",
            flipped_tag.clone(),
            signed(&flipped_tag),
            "forged_reply_address",
        ),
        (
            "the address in upper case",
            address.to_ascii_uppercase(),
            signed(&address.to_ascii_uppercase()),
            "no_reply_address",
        ),
        (
            "acme's tag on globex's room",
            crossed.clone(),
            signed(&crossed),
            "forged_reply_address",
        ),
        (
            "another tenant's conversation",
            globex_address.clone(),
            signed(&globex_address),
            "unknown_sender",
        ),
        (
            "someone who is not the customer",
            address.clone(),
            attacker.sign(&fixture(
                "gmail.eml",
                "eve@attacker.example",
                &address,
                &room,
                &stack.domain,
            )),
            "unknown_sender",
        ),
        (
            "the customer's address signed by another domain",
            address.clone(),
            attacker.sign(&gmail(&address)),
            "authentication_failed",
        ),
        (
            "a body changed after signing (DKIM fails)",
            address.clone(),
            tampered,
            "authentication_failed",
        ),
        (
            "no signature and no SPF record",
            address.clone(),
            gmail(&address),
            "authentication_failed",
        ),
        (
            "a virus",
            address.clone(),
            stack.customer_key.sign(&eicar),
            "virus",
        ),
        (
            "spam",
            address.clone(),
            stack.customer_key.sign(&gtube),
            "spam",
        ),
        (
            "an out-of-office reply",
            address.clone(),
            stack.customer_key.sign(&fixture(
                "out-of-office.eml",
                CUSTOMER_ADDRESS,
                &address,
                &room,
                &stack.domain,
            )),
            "automatic_reply",
        ),
    ];
    let before = stack.messages(&room).await;
    let before_other = stack.app.table.items().await.len();
    for (case, to, raw, reason) in cases {
        let reply = stack.inbound.send(CUSTOMER_ADDRESS, &[&to], &raw).await;
        let got = outcome(&reply);
        assert_eq!(got["outcome"], "dropped", "{case}: {reply}");
        assert_eq!(got["reason"], reason, "{case}: {reply}");
    }
    assert_eq!(stack.messages(&room).await, before, "nothing posted");
    assert_eq!(
        stack.app.table.items().await.len(),
        before_other,
        "nothing written"
    );

    // Mail for another domain is refused at RCPT, as SES refuses it.
    let refused = stack
        .inbound
        .send(
            CUSTOMER_ADDRESS,
            &["support@elsewhere.example"],
            &signed(&address),
        )
        .await;
    assert!(refused.starts_with("550"), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_to_the_tenants_inbox_starts_a_conversation_that_continues_by_email() {
    let stack = Stack::new().await;
    let admin = token("u-900", "acme", "admin");
    let settings = |inbox: Value| json!({"name": "Acme Shop", "email_inbox": inbox});
    // Who may set it, and what it may be: refused before anything is written.
    for tok in [customer(), agent()] {
        let (status, _) = stack
            .app
            .send(
                "PUT /org/settings",
                &[],
                &tok,
                Some(settings(
                    json!({"local_part": "acme-support", "agent_id": "a-1"}),
                )),
                &[],
            )
            .await;
        assert_eq!(status, 403);
    }
    let items = stack.app.table.items().await.len();
    for local_part in [
        "Acme-Support",
        "ac",
        "-acme",
        "acme-",
        "acme support",
        "acme+support",
        "replyhere",
        "postmaster",
        "acme\u{200b}support",
        "ácme",
    ] {
        let (status, body) = stack
            .app
            .send(
                "PUT /org/settings",
                &[],
                &admin,
                Some(settings(
                    json!({"local_part": local_part, "agent_id": "a-1"}),
                )),
                &[],
            )
            .await;
        assert_eq!(status, 422, "{local_part:?}: {body}");
    }
    assert_eq!(
        stack.app.table.items().await.len(),
        items,
        "nothing written"
    );
    let saved = stack
        .app
        .expect(
            200,
            "PUT /org/settings",
            &[],
            &admin,
            settings(json!({"local_part": "acme-support", "agent_id": "a-1"})),
        )
        .await;
    let inbox = format!("acme-support@{}", stack.domain);
    assert_eq!(saved["email_inbox_address"], inbox.as_str());
    // Customers see the address (it is for the website), not whom it assigns.
    let seen = stack
        .app
        .expect_get("GET /org/settings", &[], &customer())
        .await;
    assert_eq!(seen["email_inbox_address"], inbox.as_str());
    assert!(seen.get("email_inbox").is_none(), "{seen}");
    // Another tenant cannot take it.
    let (status, body) = stack
        .app
        .send(
            "PUT /org/settings",
            &[],
            &token("g-9", "globex", "admin"),
            Some(json!({"name": "Globex", "email_inbox": {"local_part": "acme-support", "agent_id": "g-1"}})),
            &[],
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "email_inbox_taken", "{body}");

    // A new customer writes to it: a conversation assigned to a-1, its first message.
    let pat = "pat@customer.example";
    let mail = String::from_utf8(fixture("thunderbird.eml", pat, &inbox, "x", &stack.domain))
        .unwrap()
        .replace(
            "Subject: Re: New reply: Where is my order",
            "Subject: Broken zipper on order 77",
        )
        .replace("From: Sam Jones", "From: Pat Lee")
        .into_bytes();
    let signed = stack.customer_key.sign(&mail);
    // Any case reaches an inbox (it is a public address, not a token).
    let loud = inbox.to_ascii_uppercase();
    let got = outcome(&stack.inbound.send(pat, &[&loud], &signed).await);
    assert_eq!(got["outcome"], "started", "{got}");
    let room = got["room_id"].as_str().unwrap().to_owned();
    let again = outcome(&stack.inbound.send(pat, &[&inbox], &signed).await);
    assert_eq!(again["outcome"], "duplicate", "{again}");
    assert_eq!(again["room_id"], room.as_str(), "one conversation per mail");
    let listed = stack
        .app
        .expect_get("GET /chat/conversations", &[], &agent())
        .await;
    let row = listed["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == room.as_str() || c["conversation_id"] == room.as_str())
        .unwrap_or_else(|| panic!("the agent's inbox has it: {listed:#}"))
        .clone();
    assert_eq!(row["title"], "Broken zipper on order 77", "{row:#}");
    let messages = stack.messages(&room).await;
    assert_eq!(messages.len(), 1);
    let customer_id = messages[0]["sender_id"].as_str().unwrap().to_owned();
    assert!(customer_id.starts_with("mail-"), "{customer_id}");
    assert!(!customer_id.contains("pat"), "no address in the id");
    assert!(
        messages[0]["content"]
            .as_str()
            .unwrap()
            .starts_with("Great, thanks.")
    );

    // The agent answers in the console; the customer is mailed with the reply
    // address, and their reply lands in the same conversation.
    stack
        .post(&room, &agent(), "We will send a new one today.")
        .await;
    let answer = stack.mails_to(pat, 1).await.remove(0);
    let reply_address = reply_to(&answer);
    let reply = stack.customer_key.sign(&fixture(
        "gmail.eml",
        pat,
        &reply_address,
        &room,
        &stack.domain,
    ));
    let got = outcome(&stack.inbound.send(pat, &[&reply_address], &reply).await);
    assert_eq!(got["outcome"], "posted", "{got}");
    assert_eq!(got["room_id"], room.as_str());
    let last = stack.messages(&room).await.pop().unwrap();
    assert_eq!(last["sender_id"], customer_id.as_str());

    // Unauthenticated mail starts nothing; a local part no tenant has reaches nobody.
    let before = stack.app.table.items().await.len();
    let forged = fixture("thunderbird.eml", pat, &inbox, "x", &stack.domain);
    let got = outcome(&stack.inbound.send(pat, &[&inbox], &forged).await);
    assert_eq!(got["outcome"], "dropped");
    let nobody = format!("sales@{}", stack.domain);
    let got = outcome(&stack.inbound.send(pat, &[&nobody], &signed).await);
    assert_eq!(got["reason"], "no_reply_address");
    assert_eq!(
        stack.app.table.items().await.len(),
        before,
        "nothing written"
    );

    // Turning the inbox off (a PUT without it) releases it: the next mail reaches
    // nobody, and another tenant may take the address.
    stack
        .app
        .expect(
            200,
            "PUT /org/settings",
            &[],
            &admin,
            json!({"name": "Acme Shop"}),
        )
        .await;
    let later = stack.customer_key.sign(
        &String::from_utf8(mail.clone())
            .unwrap()
            .replace("Message-ID: <5f3c2b1a", "Message-ID: <6f3c2b1a")
            .into_bytes(),
    );
    let got = outcome(&stack.inbound.send(pat, &[&inbox], &later).await);
    assert_eq!(got["reason"], "no_reply_address", "{got}");
    stack
        .app
        .expect(
            200,
            "PUT /org/settings",
            &[],
            &token("g-9", "globex", "admin"),
            json!({"name": "Globex", "email_inbox": {"local_part": "acme-support", "agent_id": "g-1"}}),
        )
        .await;
}
