//! The kubelet API's listening socket: made inside the node's netns (`--node-netns`) when the
//! node has one, so it is bound on the node's own address there, else in the agent's netns.
//! Bound before the API is served, so a taken address fails the agent's start.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

use socket2::{Domain, SockAddr, Socket, Type};
use tokio::net::TcpListener;

/// A listener on `addr`, in `netns` when given.
pub async fn bind(netns: Option<PathBuf>, addr: SocketAddr) -> io::Result<TcpListener> {
    let domain = Domain::for_address(addr);
    let socket = match netns {
        Some(netns) => crate::sys::netns_socket::tcp_socket_in(netns, domain).await?,
        None => {
            let s = Socket::new(domain, Type::STREAM.cloexec(), None)?;
            s.set_nonblocking(true)?;
            s
        }
    };
    socket.set_reuse_address(true)?;
    socket.bind(&SockAddr::from(addr))?;
    socket.listen(1024)?;
    TcpListener::from_std(std::net::TcpListener::from(socket))
}
