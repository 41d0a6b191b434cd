//! What someone wrote in a reply by email, without what their mail client added: the
//! quoted conversation (`>` lines and their "On … wrote:" line, Outlook's header block
//! under a rule, HTML quote containers), signatures (`-- `) and "Sent from my iPhone".
//! The plain-text part is read when there is one; an HTML-only mail is cut at its
//! quote container and turned into text.

use mail_parser::{Message, MimeHeaders, PartType};

/// Lines that end a reply: everything from them on is not what the person wrote.
const MOBILE_SIGNATURES: &[&str] = &[
    "sent from my iphone",
    "sent from my ipad",
    "sent from my android",
    "sent from my mobile",
    "sent from mail for windows",
    "get outlook for ios",
    "get outlook for android",
    "sent from outlook",
    "sent from yahoo mail",
];

/// Where an HTML reply's own text ends (lower case).
const HTML_CUTS: &[&str] = &[
    "<div class=\"gmail_quote",
    "<div class=\"gmail_signature",
    "<blockquote",
    "<div id=\"appendonsend\"",
    "<div id=\"divrplyfwdmsg\"",
    "<div id=\"signature\"",
    "<div class=\"moz-cite-prefix\"",
    "<div class=\"moz-signature\"",
    "<br id=\"linebreakatbeginningofsignature\"",
    "<hr",
];

/// How an attribution line ends ("On … wrote:"), in the languages mail clients
/// most often write it.
const ATTRIBUTION_ENDS: &[&str] = &["wrote:", "schrieb:", "a écrit :", "a écrit:", "escribió:"];

/// The most of a body read (a reply is short; a 40 MB body is not read whole).
const MAX_BODY_BYTES: usize = 256 * 1024;

/// `text` cut to [`MAX_BODY_BYTES`] at a character boundary.
fn capped(text: &str) -> &str {
    let mut end = text.len().min(MAX_BODY_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The text a person wrote in `message`.
pub fn reply_text(message: &Message<'_>) -> String {
    let plain = message
        .text_part(0)
        .filter(|part| matches!(part.body, PartType::Text(_)));
    if let Some(part) = plain {
        let text = message.body_text(0).unwrap_or_default();
        let flowed = part
            .content_type()
            .and_then(|ct| ct.attribute("format"))
            .is_some_and(|f| f.eq_ignore_ascii_case("flowed"));
        let text = capped(&text);
        let text = if flowed {
            unflow(text)
        } else {
            text.to_owned()
        };
        return strip_plain(&text);
    }
    match message.body_html(0) {
        Some(html) => strip_plain(&mail_parser::decoders::html::html_to_text(&cut_html(
            capped(&html),
        ))),
        None => String::new(),
    }
}

/// An HTML body up to its first quote or signature container.
pub fn cut_html(html: &str) -> String {
    let lower = html.to_ascii_lowercase();
    let cut = HTML_CUTS
        .iter()
        .filter_map(|marker| lower.find(marker))
        .min()
        .unwrap_or(html.len());
    html[..cut].to_owned()
}

/// RFC 3676: a line ending in a space continues on the next (the signature
/// separator `-- ` excepted).
fn unflow(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        out.push_str(line);
        // A quote joins only its own depth: never text to a quote or back.
        let next_quoted = lines.peek().is_some_and(|n| n.starts_with('>'));
        let joins = line.ends_with(' ') && line != "-- " && line.starts_with('>') == next_quoted;
        if !joins {
            out.push('\n');
        }
    }
    out
}

fn is_quoted(line: &str) -> bool {
    line.trim_start().starts_with('>')
}

/// Whether `line` (or it joined with `next`, as clients wrap it) says who wrote the
/// quote below it.
fn attribution_lines(line: &str, next: Option<&str>) -> Option<usize> {
    let starts = ["On ", "Am ", "Le ", "El "];
    if !starts.iter().any(|s| line.trim_start().starts_with(s)) {
        return None;
    }
    let ends = |text: &str| {
        let text = text.trim_end();
        ATTRIBUTION_ENDS.iter().any(|end| text.ends_with(end))
    };
    if ends(line) {
        return Some(1);
    }
    next.filter(|n| ends(n)).map(|_| 2)
}

/// Whether a reply's own text ends at `lines[i]`: a signature, Outlook's history or a
/// mobile client's line.
fn ends_reply(lines: &[&str], i: usize) -> bool {
    let line = lines[i].trim_end();
    let lower = line.trim().to_ascii_lowercase();
    if line == "--" || lines[i] == "-- " {
        return true;
    }
    if line.len() >= 10 && line.chars().all(|c| c == '_') {
        return true;
    }
    if lower.contains("original message") && lower.starts_with("---") {
        return true;
    }
    if MOBILE_SIGNATURES.iter().any(|s| lower.starts_with(s)) {
        return true;
    }
    // Outlook's header block without a rule above it.
    line.starts_with("From: ")
        && lines[i + 1..]
            .iter()
            .take(4)
            .any(|l| l.starts_with("Sent: ") || l.starts_with("Date: "))
}

/// Plain text without quotes, attribution lines, signatures and history.
pub fn strip_plain(text: &str) -> String {
    // No-break spaces (HTML's &nbsp;) read as the spaces they stand for.
    let text = text.replace("\r\n", "\n").replace('\u{a0}', " ");
    let lines: Vec<&str> = text.lines().collect();
    let mut kept: Vec<&str> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if ends_reply(&lines, i) {
            break;
        }
        if is_quoted(lines[i]) {
            i += 1;
            continue;
        }
        if let Some(n) = attribution_lines(lines[i], lines.get(i + 1).copied()) {
            // Only when a quote follows it (after blank lines): otherwise it is text.
            let quote_follows = lines[i + n..]
                .iter()
                .find(|l| !l.trim().is_empty())
                .is_some_and(|l| is_quoted(l));
            if quote_follows {
                i += n;
                continue;
            }
        }
        kept.push(lines[i].trim_end());
        i += 1;
    }
    // Blank lines at either end go, and runs of them become one.
    let mut out = String::new();
    let mut blank = false;
    for line in kept {
        if line.trim().is_empty() {
            blank = !out.is_empty();
            continue;
        }
        if blank {
            out.push('\n');
            blank = false;
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(raw: &[u8]) -> String {
        let message = mail_parser::MessageParser::default()
            .parse(raw)
            .expect("a fixture parses");
        reply_text(&message)
    }

    #[test]
    fn each_mail_clients_reply_is_its_text_alone() {
        let cases: [(&str, &[u8], &str); 6] = [
            (
                "Gmail",
                include_bytes!("../fixtures/mail/gmail.eml"),
                "Thanks, it arrived this morning — all good!",
            ),
            (
                "Outlook",
                include_bytes!("../fixtures/mail/outlook.eml"),
                "Hello,\n\nCould you send it to my office instead? The address is 12 Rue de la Paix, Paris.\n\nKind regards,\nSam",
            ),
            (
                "Outlook, HTML only",
                include_bytes!("../fixtures/mail/outlook-html.eml"),
                "Never mind, it just arrived. Thank you & have a nice day!",
            ),
            (
                "Apple Mail",
                include_bytes!("../fixtures/mail/apple-mail.eml"),
                "Perfect, thank you. Can I change the delivery day to Monday?",
            ),
            (
                "Thunderbird (quote above, signature, format=flowed)",
                include_bytes!("../fixtures/mail/thunderbird.eml"),
                "Great, thanks. One more question: does it need a signature on delivery? I will be out until 5 pm.",
            ),
            (
                "Gmail with attachments",
                include_bytes!("../fixtures/mail/attachment.eml"),
                "Here is a photo of the damaged box.",
            ),
        ];
        for (client, raw, expected) in cases {
            assert_eq!(parsed(raw), expected, "{client}");
        }
    }

    #[test]
    fn html_replies_are_cut_at_their_quote() {
        let cases = [
            (
                "<div dir=\"ltr\">Yes please</div><div class=\"gmail_quote\">On … wrote:<blockquote>old</blockquote></div>",
                "Yes please",
            ),
            (
                "<p>Fine</p><blockquote type=\"cite\">old</blockquote>",
                "Fine",
            ),
            (
                "<p>Ok</p><div class=\"moz-cite-prefix\">On 04/12 Acme wrote:</div><blockquote>x</blockquote>",
                "Ok",
            ),
            ("<p>Just text</p>", "Just text"),
        ];
        for (html, expected) in cases {
            let text = strip_plain(&mail_parser::decoders::html::html_to_text(&cut_html(html)));
            assert_eq!(text, expected, "{html}");
        }
    }

    #[test]
    fn text_that_only_looks_like_a_quote_header_stays() {
        // No quote below it: the person wrote it.
        let text = "On Monday I wrote:\nthe parcel is late\n\nplease check";
        assert_eq!(strip_plain(text), text);
        // Interleaved answers keep the person's lines.
        let interleaved = "> Where is it?\nIn Paris.\n> When?\nMonday.";
        assert_eq!(strip_plain(interleaved), "In Paris.\nMonday.");
        // A flowed line never takes the quote below it in.
        assert_eq!(strip_plain(&unflow("Thanks \n> old text\n")), "Thanks");
    }
}
