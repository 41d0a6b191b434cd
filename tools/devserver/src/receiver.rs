//! A webhook receiver for the tests: an HTTP server on 127.0.0.1 that answers each
//! path as scripted (statuses, `Retry-After`, redirects, hanging past the sender's
//! timeout) and records every request with its Standard Webhooks headers.

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the receiver answers one request.
#[derive(Debug, Clone)]
pub enum Answer {
    Status(u16),
    /// A status with `Retry-After: secs`.
    Throttle(u16, u64),
    /// No answer for this long (longer than the attempt timeout).
    Hang(Duration),
    Redirect(&'static str),
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub id: String,
    pub timestamp: i64,
    pub signature: String,
    pub body: Vec<u8>,
    pub at: Instant,
    pub answered: u16,
}

#[derive(Default)]
struct Script {
    /// Per path: answers to give in turn, then the path's default.
    queued: HashMap<String, VecDeque<Answer>>,
    default: HashMap<String, Answer>,
    received: Vec<Received>,
}

#[derive(Clone, Default)]
pub struct Receiver {
    script: Arc<Mutex<Script>>,
    pub port: u16,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .unwrap();
        let receiver = Receiver {
            port: listener.local_addr().unwrap().port(),
            ..Receiver::default()
        };
        let serving = receiver.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let receiver = serving.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let receiver = receiver.clone();
                        async move { Ok::<_, Infallible>(receiver.answer(req).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        receiver
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn queue(&self, path: &str, answers: &[Answer]) {
        let mut script = self.script.lock().unwrap();
        script
            .queued
            .entry(path.into())
            .or_default()
            .extend(answers.iter().cloned());
    }

    pub fn set_default(&self, path: &str, answer: Answer) {
        self.script
            .lock()
            .unwrap()
            .default
            .insert(path.into(), answer);
    }

    pub fn received(&self, path: &str) -> Vec<Received> {
        let script = self.script.lock().unwrap();
        script
            .received
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    async fn answer(&self, req: hyper::Request<Incoming>) -> hyper::Response<Full<Bytes>> {
        let path = req.uri().path().to_owned();
        let header = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let (id, timestamp, signature) = (
            header("webhook-id"),
            header("webhook-timestamp").parse().unwrap_or_default(),
            header("webhook-signature"),
        );
        let at = Instant::now();
        let body = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes().to_vec())
            .unwrap_or_default();
        let answer = {
            let mut script = self.script.lock().unwrap();
            let queued = script.queued.get_mut(&path).and_then(VecDeque::pop_front);
            queued.unwrap_or_else(|| {
                script
                    .default
                    .get(&path)
                    .cloned()
                    .unwrap_or(Answer::Status(204))
            })
        };
        let mut response = hyper::Response::new(Full::new(Bytes::new()));
        let status = match &answer {
            Answer::Status(status) => *status,
            Answer::Throttle(status, secs) => {
                response
                    .headers_mut()
                    .insert("retry-after", secs.to_string().parse().unwrap());
                *status
            }
            // The sender gives up first (and drops this answer with the connection).
            Answer::Hang(_) => 0,
            Answer::Redirect(to) => {
                response
                    .headers_mut()
                    .insert("location", to.parse().unwrap());
                302
            }
        };
        // Recorded on arrival: a hung request's answer is never sent.
        self.script.lock().unwrap().received.push(Received {
            path,
            id,
            timestamp,
            signature,
            body,
            at,
            answered: status,
        });
        if let Answer::Hang(how_long) = answer {
            tokio::time::sleep(how_long).await;
        }
        *response.status_mut() = hyper::StatusCode::from_u16(status.max(200)).unwrap();
        response
    }
}
