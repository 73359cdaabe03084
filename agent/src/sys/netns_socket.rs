//! Sockets created inside another network namespace: a socket belongs to the netns it was
//! created in, whichever thread uses it later. One long-lived thread switches into the target
//! netns, creates the socket and switches back, so the agent's other threads never change
//! namespace. Used by probes when a pod has no IP routable from the node.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};

use nix::sched::{setns, CloneFlags};
use socket2::{Domain, Protocol, Socket, Type};

type Reply = tokio::sync::oneshot::Sender<io::Result<Socket>>;

struct Request {
    netns: PathBuf,
    domain: Domain,
    reply: Reply,
}

fn dialer() -> &'static Mutex<mpsc::Sender<Request>> {
    static DIALER: OnceLock<Mutex<mpsc::Sender<Request>>> = OnceLock::new();
    DIALER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Request>();
        let spawned = std::thread::Builder::new()
            .name("netns-sockets".into())
            .spawn(move || serve(rx));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the netns socket thread");
        }
        Mutex::new(tx)
    })
}

fn serve(rx: mpsc::Receiver<Request>) {
    let home = match File::open("/proc/thread-self/ns/net") {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(error = %e, "netns socket thread cannot open its own netns");
            return;
        }
    };
    for req in rx {
        let result = make_socket(&req.netns, req.domain);
        if let Err(e) = setns(home.as_fd(), CloneFlags::CLONE_NEWNET) {
            // Cannot get home again: fail this and every later request rather than create
            // sockets in the wrong namespace.
            let _ = req.reply.send(Err(io::Error::from(e)));
            return;
        }
        let _ = req.reply.send(result);
    }
}

fn make_socket(netns: &std::path::Path, domain: Domain) -> io::Result<Socket> {
    let target = File::open(netns)?;
    setns(target.as_fd(), CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
    let sock = Socket::new(domain, Type::STREAM.cloexec(), Some(Protocol::TCP))?;
    sock.set_nonblocking(true)?;
    Ok(sock)
}

/// A non-blocking TCP socket created in the network namespace at `netns`.
pub async fn tcp_socket_in(netns: PathBuf, domain: Domain) -> io::Result<Socket> {
    let (reply, rx) = tokio::sync::oneshot::channel();
    {
        let tx = dialer().lock().unwrap_or_else(|p| p.into_inner());
        tx.send(Request {
            netns,
            domain,
            reply,
        })
        .map_err(|_| io::Error::other("netns socket thread is gone"))?;
    }
    rx.await
        .map_err(|_| io::Error::other("netns socket thread dropped the request"))?
}
