//! The gRPC probe against real servers in this process: tonic-health's Health service
//! (SERVING, NOT_SERVING, an unknown service answered NOT_FOUND trailers-only), a gRPC server
//! without the Health service (UNIMPLEMENTED, trailers-only), and a broken server whose reply
//! carries no grpc-status.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use bytes::Bytes;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use tonic_health::ServingStatus;

use super::super::net::NetTarget;
use super::grpc_probe;

const SECOND: std::time::Duration = std::time::Duration::from_secs(1);

fn loopback() -> NetTarget {
    NetTarget {
        pod_ip: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        netns: PathBuf::new(),
        node_netns: None,
    }
}

/// Serves `service` over h2c on a loopback port (hyper's HTTP/2 server, as tonic's own
/// transport uses); returns the port.
async fn serve<S>(service: S) -> u16
where
    S: hyper::service::Service<
            http::Request<hyper::body::Incoming>,
            Response = http::Response<tonic::body::Body>,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let service = service.clone();
            tokio::spawn(async move {
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(sock), service)
                    .await;
            });
        }
    });
    port
}

#[tokio::test(flavor = "current_thread")]
async fn tonic_health_serving_not_serving_and_unknown_service() {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("db", ServingStatus::NotServing)
        .await;
    reporter
        .set_service_status("web", ServingStatus::Serving)
        .await;
    let port = serve(TowerToHyperService::new(health)).await;

    assert_eq!(grpc_probe(&loopback(), port, "", SECOND).await, Ok(()));
    assert_eq!(grpc_probe(&loopback(), port, "web", SECOND).await, Ok(()));
    assert_eq!(
        grpc_probe(&loopback(), port, "db", SECOND).await,
        Err("service unhealthy (responded with \"NOT_SERVING\")".into())
    );
    // NOT_FOUND comes back trailers-only: grpc-status in the response headers.
    assert_eq!(
        grpc_probe(&loopback(), port, "nope", SECOND).await,
        Err(
            "error: health rpc probe failed: rpc error: code = NotFound desc = service not registered"
                .into()
        )
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_server_without_the_health_service_fails_as_unimplemented() {
    // What tonic's router answers for a service it does not serve: trailers-only UNIMPLEMENTED.
    let port = serve(service_fn(|_req| async {
        Ok::<_, Infallible>(
            tonic::Status::unimplemented("no grpc.health.v1.Health here")
                .into_http::<tonic::body::Body>(),
        )
    }))
    .await;
    assert_eq!(
        grpc_probe(&loopback(), port, "", SECOND).await,
        Err("this server does not implement the grpc health protocol (grpc.health.v1.Health): no grpc.health.v1.Health here".into())
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_reply_without_grpc_status_fails() {
    // A SERVING message but no status anywhere: not a finished call.
    let port = serve(service_fn(|_req| async {
        let body = http_body_util::Full::new(Bytes::from_static(&[0, 0, 0, 0, 2, 0x08, 1]));
        let mut resp = http::Response::new(tonic::body::Body::new(body));
        resp.headers_mut().insert(
            "content-type",
            http::HeaderValue::from_static("application/grpc"),
        );
        Ok::<_, Infallible>(resp)
    }))
    .await;
    assert_eq!(
        grpc_probe(&loopback(), port, "", SECOND).await,
        Err("gRPC response carries no grpc-status".into())
    );
}

#[tokio::test(flavor = "current_thread")]
async fn nothing_listening_fails_at_dial() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let err = grpc_probe(&loopback(), port, "", SECOND)
        .await
        .expect_err("refused");
    assert_eq!(
        err,
        format!("timeout: failed to connect service \"127.0.0.1:{port}\" within 1s")
    );
}
