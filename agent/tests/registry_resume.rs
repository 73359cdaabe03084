//! A blob transfer cut half-way resumes with a Range request: the pull goes through a small
//! loopback TCP proxy in front of a real registry that, once, closes a connection after it has
//! relayed half of the image's largest layer. The pull still succeeds, the proxy saw a Range
//! request, and the resumed layer unpacks whole.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use common::images_dir;
use common::registry::{layout_digests, Registry};

/// A loopback proxy to `upstream` that cuts the first connection whose responses pass
/// `cut_after` bytes. Keeps every byte the clients sent (their requests).
struct CuttingProxy {
    host: String,
    requests: Arc<Mutex<Vec<u8>>>,
    cut: Arc<AtomicBool>,
}

impl CuttingProxy {
    fn start(upstream: &str, cut_after: usize) -> CuttingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let host = listener.local_addr().expect("proxy addr").to_string();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let cut = Arc::new(AtomicBool::new(false));
        let (upstream, reqs, cut2) = (upstream.to_owned(), requests.clone(), cut.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(&upstream) else {
                    return;
                };
                relay(client, server, reqs.clone(), cut2.clone(), cut_after);
            }
        });
        CuttingProxy {
            host,
            requests,
            cut,
        }
    }

    fn requests(&self) -> String {
        let bytes = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&bytes).to_lowercase()
    }
}

fn relay(
    client: TcpStream,
    server: TcpStream,
    requests: Arc<Mutex<Vec<u8>>>,
    cut: Arc<AtomicBool>,
    cut_after: usize,
) {
    let (mut from_client, mut to_server) = (
        client.try_clone().expect("clone"),
        server.try_clone().expect("clone"),
    );
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        while let Ok(n @ 1..) = from_client.read(&mut buf) {
            requests
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend_from_slice(&buf[..n]);
            if to_server.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to_server.shutdown(Shutdown::Write);
    });
    let (mut from_server, mut to_client) = (server, client);
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        let mut relayed = 0usize;
        while let Ok(n @ 1..) = from_server.read(&mut buf) {
            if relayed + n > cut_after && !cut.swap(true, Ordering::SeqCst) {
                let _ = to_client.write_all(&buf[..cut_after.saturating_sub(relayed)]);
                let _ = to_client.shutdown(Shutdown::Both);
                let _ = from_server.shutdown(Shutdown::Both);
                return;
            }
            relayed += n;
            if to_client.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to_client.shutdown(Shutdown::Write);
    });
}

#[test]
fn a_blob_transfer_cut_half_way_resumes_with_range() {
    common::require_root();
    let reg = Registry::start();
    reg.push("busybox", "bosun/busybox:1");
    let (manifest, layers) = layout_digests("busybox");
    let largest = layers
        .iter()
        .map(|l| {
            let path = images_dir()
                .join("busybox/blobs/sha256")
                .join(l.trim_start_matches("sha256:"));
            std::fs::metadata(path).expect("layer blob").len() as usize
        })
        .max()
        .expect("a layer");
    let proxy = CuttingProxy::start(&reg.host, largest / 2);

    let dir = std::env::temp_dir().join(format!("bosun-test-pull-resume-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = bosun_agent::image::ImageStore::open(&dir).expect("open store");
    let puller =
        bosun_agent::image::Puller::new(std::slice::from_ref(&proxy.host)).expect("puller");
    let image = format!("{}/bosun/busybox:1", proxy.host);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let pulled = rt.block_on(puller.pull(&store, &image)).expect("pull");
    assert_eq!(pulled.digest, manifest);
    assert!(proxy.cut.load(Ordering::SeqCst), "the proxy never cut");
    let requests = proxy.requests();
    assert!(requests.contains("range: bytes="), "{requests}");
    let resolved = store.resolve(&image).expect("resolve");
    assert!(resolved
        .layers
        .iter()
        .any(|l| l.join("bin/busybox").exists()));
    let _ = std::fs::remove_dir_all(&dir);
}
