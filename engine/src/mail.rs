//! Email out: one [`Mailer`] per process, SMTP with pooled connections when
//! `PARLEY_SMTP_URL` is set, otherwise `.eml` files in the data dir's outbox
//! (a laptop sends nothing by accident and every message can be read).
//!
//! Every email Parley builds ([`Outgoing::build`]) has a text part and an HTML
//! part made from the same text, escaped, so a person's name or a snippet can
//! never inject markup, and an unsubscribe link in both parts and in the
//! `List-Unsubscribe` headers (one click, RFC 8058). Unsubscribe links are
//! signed per person ([`unsubscribe_token`]): a link is only good for the
//! person it was made for.

use std::path::PathBuf;

use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::AsyncSmtpTransport;
use lettre::{AsyncFileTransport, AsyncTransport, Message, Tokio1Executor};

use crate::auth::{user_hash, verify_user_hash};
use crate::{Error, Result};

/// Where mail goes.
pub enum Mailer {
    Smtp { transport: AsyncSmtpTransport<Tokio1Executor>, from: Mailbox },
    Outbox { transport: AsyncFileTransport<Tokio1Executor>, dir: PathBuf, from: Mailbox },
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The SMTP URL may carry a password: say only which kind.
        match self {
            Mailer::Smtp { from, .. } => write!(f, "Mailer::Smtp(from {from})"),
            Mailer::Outbox { dir, from, .. } => write!(f, "Mailer::Outbox({}, from {from})", dir.display()),
        }
    }
}

/// SMTP connections kept open (and used at once) at most. lettre's
/// connections keep Nagle's algorithm on, so each message's final `.` waits
/// for the server's delayed ACK (about 40 ms): one connection carries some 25
/// messages a second however fast both ends are, and a mass send's rate is
/// this number of connections times that.
pub const SMTP_CONNECTIONS: u32 = 32;

/// The default sender when none is configured.
pub const DEFAULT_FROM: &str = "Parley <parley@localhost>";

impl Mailer {
    /// Which way mail goes, as the delivery log names it.
    pub fn kind(&self) -> &'static str {
        match self {
            Mailer::Smtp { .. } => "smtp",
            Mailer::Outbox { .. } => "outbox",
        }
    }

    /// SMTP at `smtp_url` (`smtp://user:pass@host:587?tls=required`,
    /// `smtps://…`), or the `outbox` folder when there is none. `from` is the
    /// envelope and header sender; each email shows its own display name.
    pub fn new(smtp_url: Option<&str>, outbox: PathBuf, from: &str) -> anyhow::Result<Mailer> {
        let from: Mailbox = from.parse().map_err(|e| anyhow::anyhow!("the sender address {from:?}: {e}"))?;
        match smtp_url.map(str::trim).filter(|u| !u.is_empty()) {
            Some(url) => {
                // `tls=starttls` (the name most mail setups use) is lettre's `required`.
                let url = url.replace("tls=starttls", "tls=required");
                let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&url)
                    .map_err(|e| anyhow::anyhow!("PARLEY_SMTP_URL is not an SMTP URL: {e}"))?
                    // As many connections as a mass send uses at once.
                    .pool_config(lettre::transport::smtp::PoolConfig::new().max_size(SMTP_CONNECTIONS))
                    .build();
                Ok(Mailer::Smtp { transport, from })
            }
            None => {
                std::fs::create_dir_all(&outbox).map_err(|e| anyhow::anyhow!("creating the outbox {}: {e}", outbox.display()))?;
                Ok(Mailer::Outbox { transport: AsyncFileTransport::new(&outbox), dir: outbox, from })
            }
        }
    }

    fn from(&self) -> &Mailbox {
        match self {
            Mailer::Smtp { from, .. } | Mailer::Outbox { from, .. } => from,
        }
    }

    /// The reply-to address that carries `token`: the sender's address with
    /// `+TOKEN` (`parley+TOKEN@example.com`); mail to it is meant to reach
    /// `POST /api/v1/inbound/email`.
    pub fn reply_address(&self, token: &str) -> String {
        let from = &self.from().email;
        format!("{}+{token}@{}", from.user(), from.domain())
    }

    /// Sends `email`; the error says why the server or the folder refused it.
    #[tracing::instrument(skip_all, fields(to = %email.to))]
    pub async fn send(&self, email: &Outgoing) -> Result<()> {
        let message = email.build(self.from())?;
        let sent = match self {
            Mailer::Smtp { transport, .. } => transport.send(message).await.map(|_| ()).map_err(|e| e.to_string()),
            Mailer::Outbox { transport, .. } => transport.send(message).await.map(|_| ()).map_err(|e| e.to_string()),
        };
        sent.map_err(|e| Error::Internal(anyhow::anyhow!("sending email to {}: {e}", email.to)))
    }
}

/// One email to one person.
#[derive(Clone, Debug)]
pub struct Outgoing {
    pub to: String,
    pub to_name: Option<String>,
    /// The display name it comes from (the workspace, or a teammate).
    pub from_name: String,
    pub subject: String,
    /// Plain text; the HTML part is made from it.
    pub text: String,
    pub reply_to: Option<String>,
    pub unsubscribe_url: Option<String>,
    /// Files the email links to (attachments of the messages it carries),
    /// listed after the text: each one's name and absolute URL.
    pub links: Vec<Link>,
}

/// A named link an email lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub name: String,
    pub url: String,
}

/// The links of attached files, absolute (an email is read far from the
/// server), as check-in links are made.
pub fn links(public_url: &str, attachments: &[crate::uploads::Attachment]) -> Vec<Link> {
    attachments.iter().map(|a| Link { name: a.name.clone(), url: format!("{public_url}{}", a.url) }).collect()
}

impl Outgoing {
    /// The MIME message: multipart/alternative with the text and its HTML.
    pub fn build(&self, from: &Mailbox) -> Result<Message> {
        let bad = |field: &str, e: String| Error::invalid(field, e);
        let to = Mailbox::new(
            self.to_name.clone(),
            self.to.parse().map_err(|e| bad("email", format!("{:?} is not an email address: {e}", self.to)))?,
        );
        let from = Mailbox::new(Some(self.from_name.clone()), from.email.clone());
        let mut text = self.text.clone();
        if !self.links.is_empty() {
            text.push_str("\n\nAttachments:");
            for l in &self.links {
                text.push_str(&format!("\n- {}: {}", l.name, l.url));
            }
        }
        if let Some(u) = &self.unsubscribe_url {
            text.push_str(&format!("\n\n--\nUnsubscribe: {u}\n"));
        }
        let mut builder = Message::builder().from(from).to(to).subject(self.subject.replace(['\r', '\n'], " "));
        if let Some(r) = &self.reply_to {
            builder = builder.reply_to(r.parse().map_err(|e| bad("reply_to", format!("{r:?}: {e}")))?);
        }
        if let Some(u) = &self.unsubscribe_url {
            builder = builder
                .raw_header(HeaderValue::new(HeaderName::new_from_ascii_str("List-Unsubscribe"), format!("<{u}>")))
                .raw_header(HeaderValue::new(HeaderName::new_from_ascii_str("List-Unsubscribe-Post"), "List-Unsubscribe=One-Click".into()));
        }
        let body = MultiPart::alternative().singlepart(SinglePart::builder().header(ContentType::TEXT_PLAIN).body(text)).singlepart(
            SinglePart::builder().header(ContentType::TEXT_HTML).body(html(&self.text, &self.links, self.unsubscribe_url.as_deref())),
        );
        builder.multipart(body).map_err(|e| Error::Internal(anyhow::anyhow!("building an email: {e}")))
    }
}

/// The HTML part: the text escaped, paragraphs on blank lines, line breaks
/// kept, the links by name, and the unsubscribe link at the foot.
pub fn html(text: &str, links: &[Link], unsubscribe_url: Option<&str>) -> String {
    let mut out = String::from("<!doctype html><html><body style=\"font-family:sans-serif;line-height:1.5\">");
    for para in text.split("\n\n").filter(|p| !p.trim().is_empty()) {
        out.push_str("<p>");
        out.push_str(&escape(para.trim_matches('\n')).replace('\n', "<br>"));
        out.push_str("</p>");
    }
    if !links.is_empty() {
        out.push_str("<p>Attachments:</p><ul>");
        for l in links {
            out.push_str(&format!("<li><a href=\"{}\">{}</a></li>", escape(&l.url), escape(&l.name)));
        }
        out.push_str("</ul>");
    }
    if let Some(u) = unsubscribe_url {
        out.push_str(&format!("<p style=\"color:#777;font-size:12px\"><a href=\"{}\">Unsubscribe</a></p>", escape(u)));
    }
    out.push_str("</body></html>");
    out
}

/// HTML-escapes text for element content and quoted attributes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
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

/// What an unsubscribe link signs, so a token made for another purpose (or
/// the user hash the site computes) is never taken for one.
fn unsubscribe_claim(person_id: &str) -> String {
    format!("unsubscribe:{person_id}")
}

/// The token in a person's unsubscribe link: `WORKSPACE.PERSON.SIGNATURE`,
/// signed with the workspace's identity secret.
pub fn unsubscribe_token(workspace_id: &str, identity_secret: &str, person_id: &str) -> String {
    format!("{workspace_id}.{person_id}.{}", user_hash(identity_secret, &unsubscribe_claim(person_id)))
}

/// A person's unsubscribe link (`/u/{token}`, served by the widget crate).
pub fn unsubscribe_url(public_url: &str, workspace: &crate::workspace::Workspace, person_id: &str) -> String {
    format!("{public_url}/u/{}", unsubscribe_token(&workspace.id, &workspace.identity_secret, person_id))
}

/// The workspace and person a token names, before its signature is checked.
pub fn unsubscribe_parts(token: &str) -> Option<(&str, &str, &str)> {
    let mut parts = token.splitn(3, '.');
    let (w, p, s) = (parts.next()?, parts.next()?, parts.next()?);
    let id = |s: &str| !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric());
    (id(w) && id(p)).then_some((w, p, s))
}

/// Whether `signature` is the workspace's for that person.
pub fn unsubscribe_valid(identity_secret: &str, person_id: &str, signature: &str) -> bool {
    verify_user_hash(identity_secret, &unsubscribe_claim(person_id), signature)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email() -> Outgoing {
        Outgoing {
            to: "ann@customer.test".into(),
            to_name: Some("Ann <Lee>".into()),
            from_name: "Acme support".into(),
            subject: "Your trial\r\nBcc: evil@x.test".into(),
            text: "Hi <b>Ann</b> & co,\n\nline one\nline two".into(),
            reply_to: None,
            unsubscribe_url: Some("https://parley.test/u/w.p.sig".into()),
            links: Vec::new(),
        }
    }

    #[test]
    fn the_html_part_escapes_the_text_and_keeps_its_shape() {
        let h = html("Hi <b>Ann</b> & co,\n\nline one\nline two", &[], Some("https://x.test/u/a\"b"));
        assert!(h.contains("<p>Hi &lt;b&gt;Ann&lt;/b&gt; &amp; co,</p><p>line one<br>line two</p>"), "{h}");
        assert!(h.contains("href=\"https://x.test/u/a&quot;b\""), "{h}");
    }

    #[test]
    fn linked_files_are_listed_by_name_in_both_parts() {
        let link = Link { name: "<plan>.pdf".into(), url: "https://x.test/files/ab/%3Cplan%3E.pdf".into() };
        let h = html("Here it is", std::slice::from_ref(&link), None);
        assert!(h.contains("<li><a href=\"https://x.test/files/ab/%3Cplan%3E.pdf\">&lt;plan&gt;.pdf</a></li>"), "{h}");
        let from: Mailbox = DEFAULT_FROM.parse().unwrap();
        let mail = Outgoing { links: vec![link], ..email() }.build(&from).unwrap();
        let raw = String::from_utf8(mail.formatted()).unwrap();
        assert!(raw.contains("- <plan>.pdf: https://x.test/files/ab/%3Cplan%3E.pdf"), "{raw}");
    }

    #[test]
    fn an_email_has_text_html_and_unsubscribe_headers_and_no_injected_headers() {
        let from: Mailbox = DEFAULT_FROM.parse().unwrap();
        let raw = String::from_utf8(email().build(&from).unwrap().formatted()).unwrap();
        assert!(raw.contains("List-Unsubscribe: <https://parley.test/u/w.p.sig>"), "{raw}");
        assert!(raw.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"), "{raw}");
        assert!(raw.contains("multipart/alternative"), "{raw}");
        assert!(raw.contains("text/plain") && raw.contains("text/html"), "{raw}");
        // A line break in the subject does not start a header of its own.
        assert!(!raw.lines().any(|l| l.starts_with("Bcc:")), "{raw}");
        assert!(
            raw.contains("From: \"Acme support\" <parley@localhost>") || raw.contains("From: Acme support <parley@localhost>"),
            "{raw}"
        );
        let bad = Outgoing { to: "not an address".into(), ..email() };
        assert_eq!(bad.build(&from).unwrap_err().field(), Some("email"));
    }

    #[tokio::test]
    async fn without_smtp_emails_land_in_the_outbox_as_eml_files() {
        let dir = std::env::temp_dir().join(format!("parley-outbox-{}", crate::util::new_id()));
        let mailer = Mailer::new(None, dir.clone(), DEFAULT_FROM).unwrap();
        mailer.send(&email()).await.unwrap();
        let files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].extension().and_then(|e| e.to_str()), Some("eml"));
        let raw = std::fs::read_to_string(&files[0]).unwrap();
        // A display name with brackets is encoded, never taken for an address.
        assert!(raw.contains("<ann@customer.test>") && !raw.contains("<Lee>"), "{raw}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn an_unsubscribe_token_is_good_only_for_its_person() {
        let t = unsubscribe_token("w1", "secret", "p1");
        let (w, p, sig) = unsubscribe_parts(&t).unwrap();
        assert_eq!((w, p), ("w1", "p1"));
        assert!(unsubscribe_valid("secret", p, sig));
        assert!(!unsubscribe_valid("secret", "p2", sig));
        assert!(!unsubscribe_valid("other", p, sig));
        // The site's user hash for the same id is not an unsubscribe signature.
        assert!(!unsubscribe_valid("secret", "p1", &user_hash("secret", "p1")));
        assert!(unsubscribe_parts("w1.p/1.x").is_none());
        assert!(unsubscribe_parts("nodots").is_none());
    }
}
