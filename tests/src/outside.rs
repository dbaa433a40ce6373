//! The world outside Parley, on loopback: a real SMTP server that keeps what
//! it receives, and an HTTP receiver (for webhooks and SMS providers) that
//! records each request and fails on command.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use mailin_embedded::{Handler, Response, Server, SslConfig, response};

/// One email as the SMTP server received it.
#[derive(Clone, Debug)]
pub struct Mail {
    pub to: Vec<String>,
    pub raw: Vec<u8>,
}

impl Mail {
    pub fn parsed(&self) -> mail_parser::Message<'_> {
        mail_parser::MessageParser::default().parse(&self.raw).expect("the email parses as MIME")
    }
    pub fn subject(&self) -> String {
        self.parsed().subject().unwrap_or_default().to_owned()
    }
    pub fn text(&self) -> String {
        self.parsed().body_text(0).map(|t| t.replace("\r\n", "\n")).unwrap_or_default()
    }
    pub fn html(&self) -> String {
        self.parsed().body_html(0).map(|t| t.replace("\r\n", "\n")).unwrap_or_default()
    }
    /// A header's raw value, unfolded and trimmed.
    pub fn header(&self, name: &str) -> Option<String> {
        self.parsed().header_raw(name).map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
    }
}

#[derive(Clone, Default)]
struct Collect {
    to: Vec<String>,
    data: Vec<u8>,
    inbox: Arc<Mutex<Vec<Mail>>>,
}

impl Handler for Collect {
    fn data_start(&mut self, _domain: &str, _from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.to = to.to_vec();
        self.data.clear();
        response::OK
    }
    fn data(&mut self, buf: &[u8]) -> io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }
    fn data_end(&mut self) -> Response {
        let mail = Mail { to: std::mem::take(&mut self.to), raw: std::mem::take(&mut self.data) };
        self.inbox.lock().unwrap_or_else(|p| p.into_inner()).push(mail);
        response::OK
    }
}

/// The test process's SMTP server: one for every test server, with mail told
/// apart by recipient (each test uses addresses of its own).
pub struct Smtp {
    pub addr: SocketAddr,
    inbox: Arc<Mutex<Vec<Mail>>>,
}

impl Smtp {
    pub fn shared() -> &'static Smtp {
        static SMTP: OnceLock<Smtp> = OnceLock::new();
        // Every test server's pool keeps its connections open between
        // sends, each holding one of this server's threads: room for several
        // servers' pools at once, or one test's email waits behind another's
        // idle connections.
        SMTP.get_or_init(|| Smtp::start(4 * parley_engine::mail::SMTP_CONNECTIONS))
    }

    /// A server of its own that serves `threads` connections at once (one
    /// thread each: a client's pooled connections beyond that wait).
    pub fn start(threads: u32) -> Smtp {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding the SMTP server");
        let addr = listener.local_addr().expect("the SMTP server's address");
        let collect = Collect::default();
        let inbox = collect.inbox.clone();
        let mut server = Server::new(collect);
        server.with_name("smtp.parley.test").with_num_threads(threads).with_tcp_listener(listener);
        server.with_ssl(SslConfig::None).expect("plain SMTP");
        std::thread::spawn(move || {
            if let Err(e) = server.serve() {
                eprintln!("the test SMTP server stopped: {e}");
            }
        });
        Smtp { addr, inbox }
    }

    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    /// How many emails it has received in all.
    pub fn count(&self) -> usize {
        self.inbox.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Every email received so far for `to`.
    pub fn mail_for(&self, to: &str) -> Vec<Mail> {
        let inbox = self.inbox.lock().unwrap_or_else(|p| p.into_inner());
        inbox.iter().filter(|m| m.to.iter().any(|t| t.eq_ignore_ascii_case(to))).cloned().collect()
    }

    /// Waits up to `wait` for the `n`th email to `to`.
    pub async fn wait_for(&self, to: &str, n: usize, wait: Duration) -> Vec<Mail> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let got = self.mail_for(to);
            if got.len() >= n {
                return got;
            }
            assert!(tokio::time::Instant::now() < deadline, "{n} emails to {to} did not arrive within {wait:?}; got {}", got.len());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A request the receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// The status it was answered with.
    pub status: u16,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct ReceiverState {
    got: Vec<Received>,
    /// Requests still to answer with 500.
    fail_next: usize,
}

/// An HTTP server on loopback standing in for a site's backend or an SMS
/// provider: answers 200, or 500 for as many requests as it was told to fail.
#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    state: Arc<Mutex<ReceiverState>>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binding the receiver");
        let addr = listener.local_addr().expect("the receiver's address");
        let state: Arc<Mutex<ReceiverState>> = Arc::default();
        let shared = state.clone();
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
            let state = shared.clone();
            async move {
                let path = req.uri().path_and_query().map(|p| p.to_string()).unwrap_or_default();
                let headers = req.headers().iter().map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned())).collect();
                let body = axum::body::to_bytes(req.into_body(), 1 << 20).await.unwrap_or_default();
                let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
                let status = if s.fail_next > 0 {
                    s.fail_next -= 1;
                    500
                } else {
                    200
                };
                s.got.push(Received { path, headers, body: String::from_utf8_lossy(&body).into_owned(), status });
                axum::http::StatusCode::from_u16(status).unwrap_or(axum::http::StatusCode::OK)
            }
        });
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { addr, state }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Answers the next `n` requests with 500.
    pub fn fail_next(&self, n: usize) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).fail_next = n;
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).got.clone()
    }

    /// Waits up to `wait` until `n` requests have come.
    pub async fn wait_for(&self, n: usize, wait: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(tokio::time::Instant::now() < deadline, "{n} requests did not come within {wait:?}; got {}", got.len());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
