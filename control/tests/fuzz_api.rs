//! Mutation fuzzing of the request-body paths (JSON, YAML and protobuf decoding, validation,
//! strategic merge / merge / JSON patches) through the real resource handler on a real
//! embedded store. cargo-fuzz needs a nightly toolchain, which this project does not install,
//! so this is a stable, dependency-free fuzzer: it mutates the cases of the kept corpus
//! (`control/fuzz/corpus/*.case`: a `METHOD PATH CONTENT-TYPE` line, then the body — the
//! protobuf ones are bodies the real `kubectl create` sent) with byte flips, insertions,
//! deletions, splices and "interesting" values, and checks every answer: never a panic, never
//! a 5xx, always a `Status` or an object; afterwards the seeded objects still read back.
//!
//! A CI run does a fixed, seeded number of requests. `cargo xtask fuzz [--secs N]` runs it for
//! longer (BOSUN_FUZZ_SECS) and keeps in the corpus every input whose answer was new (status,
//! reason and first cause: a crude stand-in for coverage), so the corpus grows with use.

mod handler;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use handler::{api, Api};
use http::{Method, StatusCode};
use serde_json::{json, Value};

/// Requests in a CI run.
const CI_REQUESTS: usize = 20_000;

struct Case {
    method: Method,
    path: String,
    media: String,
    body: Vec<u8>,
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus")
}

fn load_corpus() -> Vec<(String, Case)> {
    let mut cases = Vec::new();
    let entries = std::fs::read_dir(corpus_dir()).expect("control/fuzz/corpus");
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        let bytes = std::fs::read(&path).expect("a corpus file");
        let split = bytes
            .iter()
            .position(|b| *b == b'\n')
            .expect("a header line");
        let header = String::from_utf8(bytes[..split].to_vec()).expect("a UTF-8 header");
        let mut words = header.split_whitespace();
        let (Some(method), Some(request_path), Some(media)) =
            (words.next(), words.next(), words.next())
        else {
            panic!("{}: header is `METHOD PATH CONTENT-TYPE`", path.display());
        };
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into();
        cases.push((
            name,
            Case {
                method: method.parse().expect("a method"),
                path: request_path.to_owned(),
                media: media.to_owned(),
                body: bytes[split + 1..].to_vec(),
            },
        ));
    }
    assert!(!cases.is_empty(), "the corpus is empty");
    cases
}

const INTERESTING: &[&str] = &[
    "null",
    "-1",
    "0",
    "1e309",
    "18446744073709551616",
    "\"\"",
    "[]",
    "{}",
    "true",
    "\"$patch\"",
    "{\"$patch\":\"delete\"}",
    "{\"$patch\":\"replace\"}",
    "\"$setElementOrder/containers\"",
    "\"$retainKeys\"",
    "\"$deleteFromPrimitiveList/finalizers\"",
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
    "\"\\u0000\"",
    "\"a/b~1c\"",
    "\"-\"",
    "\"/\"",
];

/// One to four random mutations of `body`, sometimes spliced with `other`.
fn mutate(rng: &mut fastrand::Rng, body: &[u8], other: &[u8]) -> Vec<u8> {
    let mut out = body.to_vec();
    for _ in 0..rng.usize(1..=4) {
        let len = out.len();
        match rng.u8(0..7) {
            0 if len > 0 => {
                let i = rng.usize(0..len);
                out[i] ^= 1 << rng.u8(0..8);
            }
            1 => {
                let i = rng.usize(0..=len);
                out.insert(i, rng.u8(..));
            }
            2 if len > 0 => {
                let start = rng.usize(0..len);
                let end = (start + rng.usize(1..=16)).min(len);
                out.drain(start..end);
            }
            3 if len > 0 => {
                let start = rng.usize(0..len);
                let end = (start + rng.usize(1..=32)).min(len);
                let copy = out[start..end].to_vec();
                let at = rng.usize(0..=out.len());
                out.splice(at..at, copy);
            }
            4 if !other.is_empty() => {
                let cut = rng.usize(0..=len);
                let from = rng.usize(0..other.len());
                out.truncate(cut);
                out.extend_from_slice(&other[from..]);
            }
            5 => {
                let value = INTERESTING[rng.usize(0..INTERESTING.len())].as_bytes();
                // Replace a JSON scalar or token-ish run, or insert when there is none.
                let at = rng.usize(0..=len);
                let end = out[at..]
                    .iter()
                    .position(|b| matches!(b, b',' | b'}' | b']' | b'\n'))
                    .map_or(len, |p| at + p);
                out.splice(at..end, value.iter().copied());
            }
            _ if len > 0 => {
                // Protobuf-minded: a varint byte at its most or a length at its largest.
                let i = rng.usize(0..len);
                out[i] = if rng.bool() { 0xff } else { 0x7f };
            }
            _ => {}
        }
    }
    out
}

/// What an answer says, for telling new behaviour from old.
fn signature(name: &str, code: StatusCode, answer: &Value) -> String {
    let cause = answer["details"]["causes"][0]["field"]
        .as_str()
        .unwrap_or("")
        .replace(|c: char| c.is_ascii_digit(), "");
    let prefix = name.split('.').next().unwrap_or(name);
    format!(
        "{prefix} {} {} {cause}",
        code.as_u16(),
        answer["reason"].as_str().unwrap_or("")
    )
}

async fn seed(api: &Api) {
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "target", "labels": {"app": "web"}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx",
                    "env": [{"name": "OLD", "value": "1"}]}]}}}});
    let service = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "target-svc"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}});
    for (path, object) in [
        ("/apis/apps/v1/namespaces/default/deployments", deployment),
        ("/api/v1/namespaces/default/services", service),
    ] {
        let (code, answer) = api.call(Method::POST, path, object).await;
        assert_eq!(code, StatusCode::CREATED, "{answer}");
    }
    api.create_cm("default", "x", json!({"k": "v"})).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutated_bodies_never_panic_or_fail_the_server() {
    let api = api().await;
    seed(&api).await;
    let corpus = load_corpus();
    let seed_value = std::env::var("BOSUN_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x05ee_db05_u64);
    let long_run = std::env::var("BOSUN_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs);
    let keep_new = long_run.is_some();
    println!(
        "fuzz: seed {seed_value}, {} corpus cases, {}",
        corpus.len(),
        long_run.map_or(format!("{CI_REQUESTS} requests"), |d| format!("{d:?}"))
    );
    let mut rng = fastrand::Rng::with_seed(seed_value);
    let mut seen: HashSet<String> = HashSet::new();
    let started = Instant::now();
    let (mut requests, mut kept) = (0usize, 0usize);
    // The seeds themselves first, so their signatures count as known.
    let mut queue: Vec<(usize, Option<Vec<u8>>)> =
        (0..corpus.len()).rev().map(|i| (i, None)).collect();
    loop {
        let (index, body) = match queue.pop() {
            Some(next) => next,
            None => {
                let done = match long_run {
                    Some(limit) => started.elapsed() >= limit,
                    None => requests >= CI_REQUESTS,
                };
                if done {
                    break;
                }
                let index = rng.usize(0..corpus.len());
                let other = &corpus[rng.usize(0..corpus.len())].1.body;
                (index, Some(mutate(&mut rng, &corpus[index].1.body, other)))
            }
        };
        let (name, case) = &corpus[index];
        let body = body.unwrap_or_else(|| case.body.clone());
        let (code, answer) = api
            .call_typed(case.method.clone(), &case.path, &case.media, body.clone())
            .await;
        requests += 1;
        if requests <= corpus.len() && !name.contains(".found-") {
            assert!(
                code.is_success(),
                "the hand-written corpus case {name} must succeed, so mutations start from a working \
                 request: {code} {answer}"
            );
        }
        assert!(
            !code.is_server_error(),
            "{name}: {code} {answer}\nbody: {}",
            String::from_utf8_lossy(&body)
        );
        assert!(
            answer.is_object() && answer["kind"].is_string(),
            "{name}: {code} answered {answer}"
        );
        let new = seen.insert(signature(name, code, &answer));
        if new && keep_new && requests > corpus.len() {
            let file = corpus_dir().join(format!(
                "{}.found-{seed_value:x}-{requests}.case",
                name.trim_end_matches(".case")
            ));
            let mut bytes = format!("{} {} {}\n", case.method, case.path, case.media).into_bytes();
            bytes.extend_from_slice(&body);
            std::fs::write(&file, bytes).expect("writing a corpus case");
            kept += 1;
        }
    }
    println!(
        "fuzz: {requests} requests in {:?}, {} distinct answers, {kept} kept",
        started.elapsed(),
        seen.len()
    );
    for path in [
        "/apis/apps/v1/namespaces/default/deployments/target",
        "/api/v1/namespaces/default/services/target-svc",
        "/api/v1/namespaces/default/configmaps/x",
    ] {
        let (code, answer) = api.call(Method::GET, path, Value::Null).await;
        assert_eq!(code, StatusCode::OK, "{path} after fuzzing: {answer}");
    }
    let (code, list) = api
        .call(
            Method::GET,
            "/apis/apps/v1/namespaces/default/deployments",
            Value::Null,
        )
        .await;
    assert_eq!(
        code,
        StatusCode::OK,
        "every stored Deployment decodes: {list}"
    );
}
