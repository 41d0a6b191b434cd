//! Notification emails: who of a message's recipients is emailed (the rule is
//! [`reason`]), what the mail says (rendered as text and HTML, [`render`]) and its
//! sending through Amazon SES v2 `SendEmail`, with the RFC 8058 one-click unsubscribe
//! headers pointing at the signed link of `chat_core::unsubscribe`.

use chat_core::config::EmailSettings;
use chat_core::ids::{OrgId, UserId};
use chat_core::model::{Message, Room, RoomType};

/// The most messages a mail quotes (the newest, oldest first).
pub const QUOTED_MESSAGES: u32 = 5;
/// The longest a quoted message is in a mail.
const QUOTED_CHARS: usize = 1000;

/// Why someone is emailed about a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The customer of a support conversation: someone answered them.
    Reply,
    /// The conversation's agent (its assignee, or its agent when none): the customer
    /// wrote and nobody has answered the conversation yet.
    NewConversation,
}

/// Whether `user` is emailed about a message of `sender` in `room` (before their
/// settings and presence are looked at): only support conversations email, their
/// customers on answers and their agents while the conversation waits for its first.
/// `sender` none: the messages a digest window gathered, told at its end.
pub fn reason(room: &Room, sender: Option<&str>, note: bool, user: &str) -> Option<Reason> {
    if room.room_type != RoomType::Support || note || sender == Some(user) {
        return None;
    }
    let customer = room.owner_id.as_str();
    let agent = room.assignee_id.as_deref().or(room.agent_id.as_deref());
    if user == customer {
        return Some(Reason::Reply);
    }
    (Some(user) == agent
        && sender.is_none_or(|s| s == customer)
        && room.first_response_at.is_none())
    .then_some(Reason::NewConversation)
}

/// One mail, ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Mail {
    pub to: String,
    pub from: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// The signed one-click unsubscribe URL (RFC 8058).
    pub unsubscribe: String,
    /// The conversation's signed reply address (`Reply-To`), with inbound email on.
    pub reply_to: Option<String>,
    /// The id the conversation's mails all refer to (`References`, `In-Reply-To`).
    pub thread: Option<String>,
}

/// What a mail is made of.
pub struct Draft<'a> {
    pub tenant: &'a str,
    pub room: &'a Room,
    pub reason: Reason,
    /// The conversation's latest public messages, oldest first.
    pub messages: &'a [Message],
    /// Whom it goes to: their user id (their own messages say "You").
    pub recipient: &'a str,
    pub address: &'a str,
    /// The conversation's reply address, when replies by email land in it.
    pub reply_to: Option<String>,
}

/// The unsubscribe link for `user` of `org`.
pub fn unsubscribe_url(settings: &EmailSettings, org: &OrgId, user: &UserId) -> String {
    format!(
        "{}/email/unsubscribe?token={}",
        settings.link_base,
        chat_core::unsubscribe::sign(&settings.link_secret, org, user)
    )
}

/// The rating page of a rating link, with `score` chosen.
pub fn rating_url(settings: &EmailSettings, token: &str, score: u8) -> String {
    format!(
        "{}/email/rating?token={token}&rating={score}",
        settings.link_base
    )
}

/// The words of each score, 1 to 5, as the mail and the rating page say them.
pub const SCORE_WORDS: [&str; 5] = ["Very poor", "Poor", "Okay", "Good", "Great"];

/// A title made safe for a Subject header: it is the customer's text, so no line
/// breaks or other controls.
fn header_safe(title: &str) -> String {
    title
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The request to rate a resolved conversation (CSAT, docs/support.md): one link per
/// score to the rating page (`token`: the signed rating link), which asks for a
/// comment and rates on its button — a mail scanner fetching the links rates nothing.
pub fn render_rating(
    settings: &EmailSettings,
    tenant: &str,
    room: &Room,
    address: &str,
    token: &str,
    unsubscribe: String,
) -> Mail {
    let title = header_safe(&room.title);
    let lead = format!("{tenant} resolved your conversation “{title}”. How did we do?");
    let scores: Vec<(u8, &str, String)> = (1..=5u8)
        .map(|n| {
            let words = SCORE_WORDS[usize::from(n - 1)];
            (n, words, rating_url(settings, token, n))
        })
        .collect();
    let footer = "You get this mail because your conversation was resolved. Each rating is one click and a comment if you like.";
    let mut text = format!("{lead}\n\n");
    for (n, words, url) in &scores {
        text.push_str(&format!("{n} – {words}: {url}\n"));
    }
    text.push_str(&format!(
        "\n--\n{footer}\nStop these emails: {unsubscribe}\n"
    ));
    let mut html = format!(
        "<!doctype html><html><body style=\"font-family:sans-serif\"><p>{}</p><p>",
        escape(&lead)
    );
    for (n, words, url) in &scores {
        html.push_str(&format!(
            "<a href=\"{}\" style=\"display:inline-block;margin:0 .3em;padding:.4em .7em;border:1px solid #ccc;border-radius:4px;text-decoration:none\">{n} {}</a>",
            escape(url),
            escape(words)
        ));
    }
    html.push_str(&format!(
        "</p><hr><p style=\"color:#666;font-size:small\">{} <a href=\"{}\">Stop these emails</a>.</p></body></html>",
        escape(footer),
        escape(&unsubscribe)
    ));
    Mail {
        to: address.to_owned(),
        from: format!("\"{tenant}\" <{}>", settings.from),
        subject: format!("How did we do? {title}"),
        text,
        html,
        unsubscribe,
        reply_to: None,
        thread: None,
    }
}

/// The mail for `draft`, from the stack's sender under the tenant's name.
pub fn render(settings: &EmailSettings, draft: &Draft<'_>, unsubscribe: String) -> Mail {
    let title = header_safe(&draft.room.title);
    let title = title.as_str();
    let (subject, lead) = match draft.reason {
        Reason::Reply => (
            format!("New reply: {title}"),
            format!("{} answered in your conversation “{title}”.", draft.tenant),
        ),
        Reason::NewConversation => (
            format!("Waiting for you: {title}"),
            format!(
                "A customer wrote in “{title}”, assigned to you, and is waiting for an answer."
            ),
        ),
    };
    let who = |m: &Message| -> String {
        if m.sender_id == draft.recipient {
            "You".into()
        } else if m.sender_id == draft.room.owner_id {
            "Customer".into()
        } else {
            draft.tenant.to_owned()
        }
    };
    let quoted: Vec<(String, String)> = draft
        .messages
        .iter()
        .filter(|m| m.deleted_at.is_none())
        .map(|m| {
            let mut text: String = m.content.chars().take(QUOTED_CHARS).collect();
            if m.content.chars().count() > QUOTED_CHARS {
                text.push('…');
            }
            (who(m), text)
        })
        .collect();
    let footer = match draft.reply_to {
        Some(_) => {
            "You get this mail because you were away. Reply to this email, or in the chat, to answer."
        }
        None => "You get this mail because you were away. Reply in the chat to answer.",
    };
    let mut text = format!("{lead}\n\n");
    for (name, body) in &quoted {
        text.push_str(&format!("{name}:\n{body}\n\n"));
    }
    text.push_str(&format!("--\n{footer}\nStop these emails: {unsubscribe}\n"));
    let mut html = format!(
        "<!doctype html><html><body style=\"font-family:sans-serif\"><p>{}</p>",
        escape(&lead)
    );
    for (name, body) in &quoted {
        html.push_str(&format!(
            "<p><strong>{}</strong><br>{}</p>",
            escape(name),
            escape(body).replace('\n', "<br>")
        ));
    }
    html.push_str(&format!(
        "<hr><p style=\"color:#666;font-size:small\">{} <a href=\"{}\">Stop these emails</a>.</p></body></html>",
        escape(footer),
        escape(&unsubscribe)
    ));
    Mail {
        to: draft.address.to_owned(),
        from: format!("\"{}\" <{}>", draft.tenant, settings.from),
        subject,
        text,
        html,
        unsubscribe,
        thread: draft.reply_to.as_ref().and_then(|address| {
            let domain = address.rsplit_once('@')?.1;
            Some(chat_core::reply::thread_id(domain, &draft.room.id))
        }),
        reply_to: draft.reply_to.clone(),
    }
}

/// Text made safe inside HTML elements and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Sends mails through SES v2.
pub struct Mailer {
    client: aws_sdk_sesv2::Client,
    pub settings: EmailSettings,
}

impl Mailer {
    pub async fn new(aws: &chat_core::aws::AwsSettings, settings: EmailSettings) -> Mailer {
        let endpoint = match settings.ses_endpoint {
            Some(_) => chat_core::aws::Endpoint::Local,
            None => chat_core::aws::Endpoint::Aws,
        };
        let shared = chat_core::aws::sdk_config(aws, endpoint).await;
        let mut builder = aws_sdk_sesv2::config::Builder::from(&shared);
        if let Some(url) = &settings.ses_endpoint {
            builder = builder.endpoint_url(url);
        }
        Mailer {
            client: aws_sdk_sesv2::Client::from_conf(builder.build()),
            settings,
        }
    }

    /// Sends `mail`: its message id.
    pub async fn send(&self, mail: &Mail) -> Result<String, String> {
        use aws_sdk_sesv2::types::{
            Body, Content, Destination, EmailContent, Message as SesMessage, MessageHeader,
        };
        let content = |data: &str| {
            Content::builder()
                .data(data)
                .charset("UTF-8")
                .build()
                .expect("content has data")
        };
        let header = |name: &str, value: &str| {
            MessageHeader::builder()
                .name(name)
                .value(value)
                .build()
                .expect("header has name and value")
        };
        let mut headers = vec![
            header("List-Unsubscribe", &format!("<{}>", mail.unsubscribe)),
            header("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
            // RFC 3834: mail clients' and servers' auto-replies leave it unanswered.
            header("Auto-Submitted", "auto-generated"),
        ];
        if let Some(thread) = &mail.thread {
            // SES sets each mail's own Message-ID: the conversation's id in both keeps
            // its mails one thread in mail clients.
            headers.push(header("References", thread));
            headers.push(header("In-Reply-To", thread));
        }
        let message = SesMessage::builder()
            .subject(content(&mail.subject))
            .body(
                Body::builder()
                    .text(content(&mail.text))
                    .html(content(&mail.html))
                    .build(),
            )
            .set_headers(Some(headers))
            .build();
        let sent = self
            .client
            .send_email()
            .from_email_address(&mail.from)
            .destination(Destination::builder().to_addresses(&mail.to).build())
            .set_reply_to_addresses(mail.reply_to.clone().map(|a| vec![a]))
            .content(EmailContent::builder().simple(message).build())
            .send()
            .await
            .map_err(|e| format!("{}", aws_sdk_sesv2::error::DisplayErrorContext(e)))?;
        Ok(sent.message_id().unwrap_or_default().to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_core::ids::{MessageId, RoomId};

    fn room() -> Room {
        Room {
            agent_id: Some("a-1".into()),
            assignee_id: Some("a-2".into()),
            ..Room::open(
                RoomId::generate(),
                RoomType::Support,
                "Where is my <order>\r\nBcc: all@example.com".into(),
                "u-100".into(),
                vec!["u-100".into(), "a-1".into(), "a-2".into()],
                "2026-12-04T08:00:00Z".into(),
            )
        }
    }

    fn settings() -> EmailSettings {
        EmailSettings {
            from: "notify@example.com".into(),
            link_base: "https://api.example.com".into(),
            link_secret: "a-test-key-of-thirty-two-bytes!!".into(),
            ses_endpoint: None,
            inbound_domain: Some("reply.example.com".into()),
        }
    }

    #[test]
    fn customers_hear_of_answers_and_the_assignee_of_a_waiting_conversation() {
        let room = room();
        assert_eq!(
            reason(&room, Some("a-1"), false, "u-100"),
            Some(Reason::Reply)
        );
        assert_eq!(reason(&room, Some("a-1"), true, "u-100"), None, "a note");
        assert_eq!(
            reason(&room, Some("u-100"), false, "u-100"),
            None,
            "their own"
        );
        assert_eq!(
            reason(&room, Some("u-100"), false, "a-2"),
            Some(Reason::NewConversation)
        );
        assert_eq!(
            reason(&room, Some("u-100"), false, "a-1"),
            None,
            "the assignee, not the first agent"
        );
        let answered = Room {
            first_response_at: Some("2026-12-04T08:01:00Z".into()),
            ..room.clone()
        };
        assert_eq!(reason(&answered, Some("u-100"), false, "a-2"), None);
        // A digest's end: whoever wrote, the customer and a waiting agent.
        assert_eq!(reason(&room, None, false, "u-100"), Some(Reason::Reply));
        assert_eq!(
            reason(&room, None, false, "a-2"),
            Some(Reason::NewConversation)
        );
        assert_eq!(reason(&answered, None, false, "a-2"), None);
        let team = Room {
            room_type: RoomType::Group,
            ..room
        };
        assert_eq!(reason(&team, Some("a-1"), false, "u-100"), None);
    }

    #[test]
    fn a_mail_quotes_the_conversation_escaped_with_its_unsubscribe_link() {
        let room = room();
        let message = |sender: &str, content: &str| Message {
            id: MessageId::generate(),
            room_id: room.id.clone(),
            sender_id: sender.into(),
            sender: "user".into(),
            content: content.into(),
            content_type: "text".into(),
            message_type: "text".into(),
            attachments: Vec::new(),
            client_message_id: None,
            tokens_used: None,
            processing_time: None,
            cost: None,
            created_at: "2026-12-04T08:00:00Z".into(),
            edited_at: None,
            deleted_at: None,
            files_expired_at: None,
            previous_versions: Vec::new(),
            edit_count: 0,
            seq: None,
            last_event_seq: None,
            pos: None,
        };
        let messages = [
            message("u-100", "Where is it?"),
            message("a-1", "It ships <b>today</b> & tomorrow"),
        ];
        let org = OrgId::parse("acme").unwrap();
        let user = UserId::parse("u-100").unwrap();
        let link = unsubscribe_url(&settings(), &org, &user);
        let mail = render(
            &settings(),
            &Draft {
                tenant: "Acme Shop",
                room: &room,
                reason: Reason::Reply,
                messages: &messages,
                recipient: "u-100",
                address: "sam@example.com",
                reply_to: Some(chat_core::reply::address(
                    &settings().link_secret,
                    "reply.example.com",
                    &chat_core::ids::OrgId::parse("acme").unwrap(),
                    &room.id,
                )),
            },
            link.clone(),
        );
        assert_eq!(mail.from, "\"Acme Shop\" <notify@example.com>");
        assert_eq!(
            mail.subject, "New reply: Where is my <order>  Bcc: all@example.com",
            "no header breaks out of the subject"
        );
        assert!(mail.text.contains("You:\nWhere is it?"), "{}", mail.text);
        assert!(
            mail.text
                .contains("Acme Shop:\nIt ships <b>today</b> & tomorrow")
        );
        assert!(mail.text.contains(&link));
        assert!(
            mail.html
                .contains("It ships &lt;b&gt;today&lt;/b&gt; &amp; tomorrow"),
            "{}",
            mail.html
        );
        assert!(!mail.html.contains("<b>today"));
        assert!(mail.html.contains("Where is my &lt;order&gt;"));
        assert!(!mail.subject.contains('\n') && !mail.text.contains("\r\nBcc"));
        assert!(link.starts_with("https://api.example.com/email/unsubscribe?token="));
        let token = link.split_once("token=").unwrap().1;
        assert_eq!(
            chat_core::unsubscribe::verify(&settings().link_secret, token),
            Some((org, user))
        );
        let reply_to = mail.reply_to.as_deref().expect("a reply address");
        let token = chat_core::reply::Token::of(reply_to, "reply.example.com").unwrap();
        assert_eq!(token.room, room.id);
        assert!(token.verifies(&settings().link_secret, &OrgId::parse("acme").unwrap()));
        assert_eq!(
            mail.thread.as_deref(),
            Some(chat_core::reply::thread_id("reply.example.com", &room.id).as_str())
        );
        assert!(mail.text.contains("Reply to this email"));
    }

    #[test]
    fn a_rating_request_links_each_score_to_the_page_under_its_signed_link() {
        let room = room();
        let token = "payload.tag";
        let mail = render_rating(
            &settings(),
            "Acme <Shop>",
            &room,
            "sam@example.com",
            token,
            "https://api.example.com/email/unsubscribe?token=x".into(),
        );
        assert_eq!(
            mail.subject,
            "How did we do? Where is my <order>  Bcc: all@example.com"
        );
        for n in 1..=5 {
            let url = format!("https://api.example.com/email/rating?token=payload.tag&rating={n}");
            assert!(mail.text.contains(&url), "{}", mail.text);
            assert!(mail.html.contains(&escape(&url)), "{}", mail.html);
        }
        assert!(mail.text.contains("1 – Very poor") && mail.text.contains("5 – Great"));
        assert!(
            mail.html.contains("Acme &lt;Shop&gt; resolved"),
            "{}",
            mail.html
        );
        assert!(!mail.html.contains("<Shop>"));
        assert!(
            mail.text
                .contains("Stop these emails: https://api.example.com/email/unsubscribe")
        );
        assert_eq!(mail.reply_to, None);
    }
}
