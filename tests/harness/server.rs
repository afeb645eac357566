//! A fake model API on 127.0.0.1: the far end the real harness CLIs talk to. Each test gives
//! a handler that answers one request; every request is recorded for assertions.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// One request as the CLI sent it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// Path with the query string.
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// A header's value (name compared without case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// How to answer one request.
#[derive(Debug, Clone)]
pub enum Reply {
    Json {
        status: u16,
        body: serde_json::Value,
    },
    /// A `text/event-stream` body of `(event name, data)` pairs.
    Sse {
        status: u16,
        events: Vec<(Option<String>, String)>,
    },
    Raw {
        status: u16,
        content_type: String,
        body: String,
    },
    /// Read the request and never answer (until the server is dropped).
    Stall,
}

type Handler = dyn Fn(&Request) -> Reply + Send + Sync + 'static;

/// A running fake API; stops when dropped.
pub struct FakeApi {
    /// `http://127.0.0.1:<port>`, no trailing slash.
    pub base_url: String,
    server: Arc<tiny_http::Server>,
    log: Arc<Mutex<Vec<Request>>>,
    stalled: Arc<Mutex<Vec<tiny_http::Request>>>,
    thread: Option<JoinHandle<()>>,
}

impl FakeApi {
    /// Listen on an ephemeral loopback port and answer every request with `handler`.
    pub fn start(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> FakeApi {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind 127.0.0.1"));
        let port = server.server_addr().to_ip().expect("an IP listener").port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stalled = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let thread = {
            let (server, log, stalled) = (server.clone(), log.clone(), stalled.clone());
            std::thread::spawn(move || {
                for mut incoming in server.incoming_requests() {
                    let mut body = Vec::new();
                    let _ = incoming.as_reader().read_to_end(&mut body);
                    let request = Request {
                        method: incoming.method().as_str().to_string(),
                        path: incoming.url().to_string(),
                        headers: incoming
                            .headers()
                            .iter()
                            .map(|h| (h.field.to_string(), h.value.to_string()))
                            .collect(),
                        body,
                    };
                    let reply = handler(&request);
                    log.lock().unwrap().push(request);
                    respond(incoming, reply, &stalled);
                }
            })
        };
        FakeApi {
            base_url: format!("http://127.0.0.1:{port}"),
            server,
            log,
            stalled,
            thread: Some(thread),
        }
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.log.lock().unwrap().clone()
    }
}

fn respond(incoming: tiny_http::Request, reply: Reply, stalled: &Mutex<Vec<tiny_http::Request>>) {
    let (status, content_type, body) = match reply {
        Reply::Json { status, body } => (status, "application/json".to_string(), body.to_string()),
        Reply::Sse { status, events } => {
            let mut text = String::new();
            for (name, data) in events {
                if let Some(name) = name {
                    text.push_str(&format!("event: {name}\n"));
                }
                for line in data.lines() {
                    text.push_str(&format!("data: {line}\n"));
                }
                text.push('\n');
            }
            (status, "text/event-stream".to_string(), text)
        }
        Reply::Raw {
            status,
            content_type,
            body,
        } => (status, content_type, body),
        Reply::Stall => {
            stalled.lock().unwrap().push(incoming);
            return;
        }
    };
    let header = tiny_http::Header::from_bytes("Content-Type", content_type).expect("header");
    let response = tiny_http::Response::from_string(body)
        .with_status_code(status)
        .with_header(header);
    let _ = incoming.respond(response);
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.server.unblock();
        self.stalled.lock().unwrap().clear();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
