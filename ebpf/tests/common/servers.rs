//! Backends: TCP and UDP listeners bound inside the test's netns. Each answers with its own
//! address ("10.250.0.1:8080\n"), so the client can tell which backend it reached.

use std::{
    io::Write,
    net::{Ipv4Addr, SocketAddrV4, TcpListener, UdpSocket},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread::JoinHandle,
    time::Duration,
};

use super::{add_backend_ip, Netns};

/// A listener thread; stops on drop.
pub struct Server {
    pub addr: SocketAddrV4,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Server {
    pub fn tcp(ns: &Netns, ip: Ipv4Addr, port: u16) -> Server {
        let addr = SocketAddrV4::new(ip, port);
        let listener = ns.run_in(move || TcpListener::bind(addr).expect("bind tcp backend"));
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let reply = format!("{addr}\n");
            while !flag.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((mut conn, _)) => {
                        let _ = conn.set_nonblocking(false);
                        let _ = conn.write_all(reply.as_bytes());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Server {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    pub fn udp(ns: &Netns, ip: Ipv4Addr, port: u16) -> Server {
        let addr = SocketAddrV4::new(ip, port);
        let socket = ns.run_in(move || UdpSocket::bind(addr).expect("bind udp backend"));
        socket
            .set_read_timeout(Some(Duration::from_millis(20)))
            .expect("timeout");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let reply = format!("{addr}\n");
            let mut buf = [0u8; 512];
            while !flag.load(Ordering::SeqCst) {
                if let Ok((_, peer)) = socket.recv_from(&mut buf) {
                    let _ = socket.send_to(reply.as_bytes(), peer);
                }
            }
        });
        Server {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

/// `n` backends 10.250.<sub>.1..=n on `port`, TCP or UDP.
pub fn backends(ns: &Netns, sub: u8, n: u8, port: u16, udp: bool) -> Vec<Server> {
    (1..=n)
        .map(|h| {
            let ip = add_backend_ip(ns, sub, h);
            if udp {
                Server::udp(ns, ip, port)
            } else {
                Server::tcp(ns, ip, port)
            }
        })
        .collect()
}
