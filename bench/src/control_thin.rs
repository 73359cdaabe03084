//! A reference beside the control benchmark's floor: the thinnest API over etcd, a process
//! of its own that serves the bench's ConfigMap creates and gets over HTTPS/1.1 (rustls,
//! hyper, client certificates checked against bosun's CA) and stores each as a
//! create-if-absent transaction, or reads it with one range, through `etcd-client` — with no
//! validation, defaulting, encoding, authorization, watch or metrics. It is what the second
//! process hop of any API over etcd costs on this machine: the part of bosun's ratio to raw
//! etcd that no API logic causes. The bench runs it as `bosun-bench __thin_api ENDPOINT DIR`
//! ([`child`]); [`start`] starts it and reads the address and certificate it writes.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use etcd_client::{Client, Compare, CompareOp, KvClient, Txn, TxnOp};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::control_procs::{Control, Guarded, Kubeconfig};

/// The first argument that makes `bosun-bench` this server.
pub const CHILD_ARG: &str = "__thin_api";
const COLLECTION: &str = "/api/v1/namespaces/default/configmaps";
/// Where the thin API keeps its objects: apart from raw etcd's own keys.
const PREFIX: &str = "/registry/configmaps/thin-api/";
const START_LIMIT: Duration = Duration::from_secs(20);
/// The files the child writes into its directory once it listens.
const ADDRESS_FILE: &str = "address";
const CERT_FILE: &str = "server.pem";
const CLIENT_CA_FILE: &str = "client-ca.pem";

/// Starts the thin API (this binary, `bench`) over etcd at `endpoint`, in `dir`, taking the
/// clients of `control` (its CA's client certificates): a [`Control`] the bench's API client
/// drives like bosun's.
pub fn start(bench: &Path, dir: &Path, endpoint: &str, control: &Control) -> Result<Control> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(CLIENT_CA_FILE), &control.kubeconfig.ca_pem)?;
    let args: Vec<OsString> = vec![CHILD_ARG.into(), endpoint.into(), dir.into()];
    let process = Guarded::spawn("thin-api", &dir.join("thin-api.log"), bench, &args)?;
    let deadline = Instant::now() + START_LIMIT;
    let (server, ca_pem) = loop {
        process.check()?;
        // The address file is renamed into place last: once it is there, so is the cert.
        if let Ok(address) = std::fs::read_to_string(dir.join(ADDRESS_FILE)) {
            let server: SocketAddr = address.trim().parse().context("the thin API's address")?;
            break (server, std::fs::read_to_string(dir.join(CERT_FILE))?);
        }
        if Instant::now() > deadline {
            bail!(
                "the thin API did not listen within {START_LIMIT:?}; log:\n{}",
                process.log_tail()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let kubeconfig = Kubeconfig {
        server,
        ca_pem,
        ..control.kubeconfig.clone()
    };
    Ok(Control {
        process,
        kubeconfig,
    })
}

/// The child's entry point: `args` are the etcd endpoint and the directory.
pub fn child(args: &[OsString]) -> ExitCode {
    let [endpoint, dir] = args else {
        eprintln!("{CHILD_ARG}: wanted ENDPOINT DIR");
        return ExitCode::FAILURE;
    };
    let endpoint = endpoint.to_string_lossy().into_owned();
    let dir = PathBuf::from(dir);
    let served = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")
        .and_then(|runtime| runtime.block_on(serve(&endpoint, &dir)));
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{CHILD_ARG}: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// A self-signed serving certificate for 127.0.0.1, and client certificates checked against
/// the CA in `dir` as bosun checks them.
fn tls(dir: &Path) -> Result<(TlsAcceptor, String)> {
    let key = rcgen::KeyPair::generate()?;
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])?;
    let cert = params.self_signed(&key)?;
    let cert_pem = cert.pem();
    let client_ca = std::fs::read_to_string(dir.join(CLIENT_CA_FILE))?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(client_ca.as_bytes()) {
        roots.add(ca?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build()?;
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![cert.der().clone()],
            PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes())?,
        )?;
    Ok((TlsAcceptor::from(Arc::new(config)), cert_pem))
}

async fn serve(endpoint: &str, dir: &Path) -> Result<()> {
    let (acceptor, cert_pem) = tls(dir)?;
    let client = Client::connect([endpoint], None)
        .await
        .with_context(|| format!("connecting to etcd at {endpoint}"))?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    std::fs::write(dir.join(CERT_FILE), cert_pem)?;
    let temporary = dir.join("address.new");
    std::fs::write(&temporary, listener.local_addr()?.to_string())?;
    std::fs::rename(&temporary, dir.join(ADDRESS_FILE))?;
    loop {
        let (tcp, _) = listener.accept().await?;
        tcp.set_nodelay(true)?;
        let (acceptor, kv) = (acceptor.clone(), client.kv_client());
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let service = hyper::service::service_fn(move |request| {
                let kv = kv.clone();
                async move { Ok::<_, std::convert::Infallible>(answer(kv, request).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .await;
        });
    }
}

fn respond(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// A create (POST of a ConfigMap), a get (of one by name), or the bench's warm-up list.
async fn answer(mut kv: KvClient, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let (method, path) = (request.method().clone(), request.uri().path().to_owned());
    let outcome = match (method, path.strip_prefix(COLLECTION)) {
        (Method::POST, Some("")) => match request.into_body().collect().await {
            Ok(body) => create(&mut kv, body.to_bytes()).await,
            Err(error) => Err(anyhow::anyhow!("reading the body: {error}")),
        },
        (Method::GET, Some("")) => Ok(respond(StatusCode::OK, Bytes::from_static(b"{}"))),
        (Method::GET, Some(name)) => get(&mut kv, name.trim_start_matches('/')).await,
        _ => Ok(respond(StatusCode::NOT_FOUND, Bytes::new())),
    };
    outcome.unwrap_or_else(|error| {
        respond(
            StatusCode::INTERNAL_SERVER_ERROR,
            Bytes::from(format!("{error:#}")),
        )
    })
}

async fn create(kv: &mut KvClient, body: Bytes) -> Result<Response<Full<Bytes>>> {
    #[derive(serde::Deserialize)]
    struct Object {
        metadata: Metadata,
    }
    #[derive(serde::Deserialize)]
    struct Metadata {
        name: String,
    }
    let object: Object = serde_json::from_slice(&body)?;
    let key = format!("{PREFIX}{}", object.metadata.name);
    let txn = Txn::new()
        .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
        .and_then([TxnOp::put(key, body.to_vec(), None)]);
    if !kv.txn(txn).await?.succeeded() {
        return Ok(respond(StatusCode::CONFLICT, Bytes::new()));
    }
    Ok(respond(StatusCode::CREATED, body))
}

async fn get(kv: &mut KvClient, name: &str) -> Result<Response<Full<Bytes>>> {
    let answer = kv.get(format!("{PREFIX}{name}"), None).await?;
    Ok(match answer.kvs().first() {
        Some(found) => respond(StatusCode::OK, Bytes::copy_from_slice(found.value())),
        None => respond(StatusCode::NOT_FOUND, Bytes::new()),
    })
}
