//! The routing benchmark's HTTP/1.1 backends: per address 10.250.0.k:8080 (bound inside the
//! bench netns), a few accept threads that answer a `Connection: close` request inline and
//! hand a keep-alive connection to its own thread (bounded), always with a fixed
//! `200 ok`. They count requests per backend, so the driver can check the spread.

use std::{
    io::{ErrorKind, Read, Write},
    net::{Shutdown, SocketAddrV4, TcpListener, TcpStream},
    os::fd::AsRawFd,
    sync::{
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
        Arc,
    },
    thread::JoinHandle,
    time::Duration,
};

use anyhow::{Context, Result};

use super::routing_env::{backend_ip, Netns, BACKENDS, BACKEND_PORT};

const OK_CLOSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
const OK_KEEP: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
const ACCEPT_THREADS: usize = 3;
const MAX_KEEPALIVE: usize = 256;

/// The HTTP/1.1 backends: per address, accept threads that answer a `Connection: close`
/// request inline and hand a keep-alive connection to its own thread. Stopped on drop.
pub struct Backends {
    listeners: Vec<TcpListener>,
    threads: Vec<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    hits: Arc<Vec<AtomicU64>>,
}

impl Backends {
    pub fn start(ns: &Netns) -> Result<Backends> {
        let listeners = ns.on_thread(|| {
            (0..BACKENDS)
                .map(|k| {
                    let addr = SocketAddrV4::new(backend_ip(k), BACKEND_PORT);
                    TcpListener::bind(addr).with_context(|| format!("binding {addr}"))
                })
                .collect::<Result<Vec<_>>>()
        })?;
        let stop = Arc::new(AtomicBool::new(false));
        let hits = Arc::new((0..BACKENDS).map(|_| AtomicU64::new(0)).collect::<Vec<_>>());
        let live = Arc::new(AtomicUsize::new(0));
        let mut backends = Backends {
            listeners: Vec::new(),
            threads: Vec::new(),
            stop,
            hits,
        };
        for (k, listener) in listeners.into_iter().enumerate() {
            for _ in 0..ACCEPT_THREADS {
                let listener = listener.try_clone().context("cloning a listener")?;
                let shared = Shared {
                    stop: backends.stop.clone(),
                    hits: backends.hits.clone(),
                    live: live.clone(),
                    k,
                };
                backends
                    .threads
                    .push(std::thread::spawn(move || accept_loop(&listener, &shared)));
            }
            backends.listeners.push(listener);
        }
        Ok(backends)
    }

    /// Requests answered so far, per backend.
    pub fn hits(&self) -> Vec<u64> {
        self.hits
            .iter()
            .map(|h| h.load(Ordering::Relaxed))
            .collect()
    }
}

impl Drop for Backends {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for listener in &self.listeners {
            // shutdown(2) on a listening socket wakes the threads blocked in accept(2).
            let _ =
                nix::sys::socket::shutdown(listener.as_raw_fd(), nix::sys::socket::Shutdown::Both);
        }
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// Shared state of one backend's threads.
#[derive(Clone)]
struct Shared {
    stop: Arc<AtomicBool>,
    hits: Arc<Vec<AtomicU64>>,
    live: Arc<AtomicUsize>,
    k: usize,
}

fn accept_loop(listener: &TcpListener, shared: &Shared) {
    while !shared.stop.load(Ordering::Relaxed) {
        let Ok((mut stream, _)) = listener.accept() else {
            if shared.stop.load(Ordering::Relaxed) {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
        let mut buf = Vec::with_capacity(1024);
        if !matches!(serve(&mut stream, &mut buf, shared), Served::KeepAlive) {
            continue;
        }
        if shared.live.fetch_add(1, Ordering::Relaxed) >= MAX_KEEPALIVE {
            // Too many keep-alive connections: close this one.
            shared.live.fetch_sub(1, Ordering::Relaxed);
            continue;
        }
        let shared = shared.clone();
        std::thread::spawn(move || {
            while matches!(serve(&mut stream, &mut buf, &shared), Served::KeepAlive) {}
            shared.live.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

enum Served {
    Closed,
    KeepAlive,
}

/// Reads one request (headers only) from `stream` and answers it.
fn serve(stream: &mut TcpStream, buf: &mut Vec<u8>, shared: &Shared) -> Served {
    let mut chunk = [0u8; 2048];
    let end = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        match stream.read(&mut chunk) {
            Ok(0) => return Served::Closed,
            Ok(n) if buf.len() + n <= 16 * 1024 => buf.extend_from_slice(&chunk[..n]),
            Ok(_) => return Served::Closed,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if shared.stop.load(Ordering::Relaxed) {
                    return Served::Closed;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Served::Closed,
        }
    };
    let close = String::from_utf8_lossy(&buf[..end])
        .to_ascii_lowercase()
        .contains("connection: close");
    buf.drain(..end);
    shared.hits[shared.k].fetch_add(1, Ordering::Relaxed);
    let answer = if close { OK_CLOSE } else { OK_KEEP };
    if stream.write_all(answer).is_err() || close {
        let _ = stream.shutdown(Shutdown::Both);
        return Served::Closed;
    }
    Served::KeepAlive
}
