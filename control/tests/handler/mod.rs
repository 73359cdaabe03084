//! The resource handler driven in-process (no TLS, no kubectl): an `Api` on a fresh embedded
//! store with the built-in namespaces, requests as plain `http::Request`s, watch streams read
//! event by event.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use bosun_control::api::{self, ApiState};
use bosun_control::router::ServerInfo;
use bosun_control::store::{SqliteConfig, SqliteStore};
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};

pub struct Api {
    _dir: tempfile::TempDir,
    pub state: Arc<ApiState>,
}

pub async fn api() -> Api {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(SqliteConfig::new(dir.path())).expect("store");
    let mut state = ApiState::new(
        Arc::new(store),
        ServerInfo {
            address: "127.0.0.1:1".into(),
        },
    );
    state.bookmark_interval = Duration::from_millis(200);
    let state = Arc::new(state);
    api::bootstrap(&state).await.expect("bootstrap");
    Api { _dir: dir, state }
}

impl Api {
    pub async fn send(
        &self,
        method: Method,
        uri: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> http::Response<bosun_control::http_util::ResponseBody> {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", content_type)
            .body(Full::new(Bytes::from(body)))
            .expect("request");
        api::handle(&self.state, &admin(), request)
            .await
            .expect("a resource path")
    }

    pub async fn call(&self, method: Method, uri: &str, body: Value) -> (StatusCode, Value) {
        let bytes = if body.is_null() {
            Vec::new()
        } else {
            body.to_string().into_bytes()
        };
        self.call_typed(method, uri, "application/json", bytes)
            .await
    }

    pub async fn call_typed(
        &self,
        method: Method,
        uri: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> (StatusCode, Value) {
        let response = self.send(method, uri, content_type, body).await;
        let code = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    pub async fn create_cm(&self, ns: &str, name: &str, labels: Value) -> Value {
        let (code, body) = self
            .call(
                Method::POST,
                &format!("/api/v1/namespaces/{ns}/configmaps"),
                json!({"metadata": {"name": name, "labels": labels}, "data": {"k": "v"}}),
            )
            .await;
        assert_eq!(code, StatusCode::CREATED, "{body}");
        body
    }
}

/// Reads watch events from a streaming body until `count` arrived or `within` passed.
pub async fn events(
    response: http::Response<bosun_control::http_util::ResponseBody>,
    count: usize,
    within: Duration,
) -> Vec<Value> {
    let mut body = response.into_body();
    let mut buffer = Vec::new();
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    while out.len() < count {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(Some(Ok(frame))) => frame,
            _ => break,
        };
        if let Ok(data) = frame.into_data() {
            buffer.extend_from_slice(&data);
        }
        while let Some(at) = buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=at).collect();
            out.push(serde_json::from_slice(&line).expect("a JSON watch event"));
        }
    }
    out
}

pub async fn wait_for_code(api: &Api, uri: &str, want: StatusCode) {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (code, body) = api.call(Method::GET, uri, Value::Null).await;
        if code == want {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{uri}: still {code}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The administrator every in-process request is made as.
pub fn admin() -> bosun_control::authn::Identity {
    bosun_control::authn::Identity {
        user: "bosun-admin".into(),
        groups: vec!["system:masters".into()],
        ..Default::default()
    }
}
