//! An HTTPS webhook server for tests (admission and CRD conversion webhooks): its own CA and a serving certificate for the
//! names it is given, on an address the test chooses (loopback, or the host end of a test
//! link), one request per connection (HTTP/1.1, `Connection: close`). Each AdmissionReview
//! is kept for the test to read, and answered with the test's `decide(path, request)` as the
//! review's `response`. A path `/slow` answers after 3 s.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};

/// What the server answers: the `response` of the review (AdmissionReview or
/// ConversionReview) for `path`.
pub type Decide = fn(path: &str, request: &Value) -> Value;

/// The test's webhook server: HTTPS on a loopback port, one request per connection, the
/// AdmissionReviews it got kept for the test to read.
pub struct WebhookServer {
    pub port: u16,
    /// The address it listens on.
    pub host: String,
    ca_pem: String,
    reviews: Arc<Mutex<Vec<(String, Value)>>>,
}

impl WebhookServer {
    /// Serves on `host` (an IP address, also the certificate's name, with `names`).
    pub fn start(host: &str, names: &[&str], decide: Decide) -> WebhookServer {
        let ca_key = rcgen::KeyPair::generate().expect("CA key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
        let issuer = rcgen::Issuer::from_ca_cert_pem(&ca.pem(), &ca_key).expect("issuer");
        let key = rcgen::KeyPair::generate().expect("key");
        let mut subject_names = vec![host.to_owned()];
        subject_names.extend(names.iter().map(|n| (*n).to_owned()));
        let leaf = rcgen::CertificateParams::new(subject_names)
            .expect("params")
            .signed_by(&key, &issuer)
            .expect("serving certificate");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .expect("server config");
        let config = Arc::new(config);
        let listener = TcpListener::bind((host, 0)).expect("bind");
        let port = listener.local_addr().expect("address").port();
        let reviews = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&reviews);
        std::thread::spawn(move || {
            for tcp in listener.incoming().flatten() {
                let (config, seen) = (Arc::clone(&config), Arc::clone(&seen));
                std::thread::spawn(move || serve(tcp, config, &seen, decide));
            }
        });
        WebhookServer {
            port,
            host: host.to_owned(),
            ca_pem: ca.pem(),
            reviews,
        }
    }

    /// The CA as a webhook's `caBundle`.
    pub fn ca_bundle(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.ca_pem)
    }

    /// `https://<host>:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("https://{}:{}{path}", self.host, self.port)
    }

    /// The reviews the path got, oldest first.
    pub fn reviews(&self, path: &str) -> Vec<Value> {
        let reviews = self.reviews.lock().unwrap_or_else(|e| e.into_inner());
        reviews
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, r)| r.clone())
            .collect()
    }
}

fn serve(
    tcp: TcpStream,
    config: Arc<rustls::ServerConfig>,
    seen: &Mutex<Vec<(String, Value)>>,
    decide: Decide,
) {
    let Ok(connection) = rustls::ServerConnection::new(config) else {
        return;
    };
    let mut stream = rustls::StreamOwned::new(connection, tcp);
    let mut reader = BufReader::new(&mut stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let target = request_line.split(' ').nth(1).unwrap_or("").to_owned();
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let Ok(review) = serde_json::from_slice::<Value>(&body) else {
        return;
    };
    let path = target.split('?').next().unwrap_or("").to_owned();
    seen.lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((path.clone(), review.clone()));
    if path == "/slow" {
        std::thread::sleep(Duration::from_secs(3));
    }
    // The review's own apiVersion and kind: an AdmissionReview or a ConversionReview.
    let answer = json!({"apiVersion": review["apiVersion"], "kind": review["kind"],
        "response": decide(&path, &review["request"])});
    let text = answer.to_string();
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
    let _ = stream.write_all(response.as_bytes());
    stream.conn.send_close_notify();
    let _ = stream.flush();
}

/// A base64 JSON patch of `operations`, as a webhook's `patch`.
pub fn json_patch(operations: &Value) -> String {
    base64::engine::general_purpose::STANDARD.encode(operations.to_string())
}
