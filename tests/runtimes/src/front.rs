//! A loopback HTTP front that stands where the platform stands in front of a wasm
//! runtime (in the tests and in `h200 dev --edge worker|spin`) and does what that platform does with the client's address, so the runtime tests
//! measure the gateway's own code. Spin's HTTP trigger keeps the client's headers and appends
//! `spin-client-addr: ADDRESS:PORT` after them; Cloudflare drops any `CF-Connecting-IP` the
//! client sent and sets its own. `wasmtime serve` sets no address and Miniflare fills
//! `CF-Connecting-IP` only when the client sent none, so without this front a client would
//! choose its own address.
//!
//! The address the front stamps is its view of the client: the connecting peer, or, so a test
//! can play many clients from one machine, the value of the test-only [`PEER_HEADER`] when the
//! front was started with [`Peer::TestHeader`]. The front always strips that header; its value
//! `none` stamps no address at all. `h200 dev` starts its front with [`Peer::Socket`]. Each forwarded request is
//! sent with `connection: close` (and so is its answer), so every request's head passes through
//! the front.

use std::net::{IpAddr, SocketAddr};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The test-only header that tells the front which client address to stamp (`none`: none).
pub const PEER_HEADER: &str = "x-h200-test-peer";

/// The largest request or response head the front reads.
const MAX_HEAD: usize = 64 * 1024;

/// Where the front takes the client's address from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// The connecting socket's address, as the platform does.
    Socket,
    /// The test-only [`PEER_HEADER`] when the request carries it, else the socket.
    TestHeader,
}

/// What the platform in front of the runtime does with the client's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    /// Spin: the client's headers stay, `spin-client-addr: ADDRESS:PORT` is appended.
    Spin,
    /// Cloudflare: every `CF-Connecting-IP` the client sent is dropped and one is set.
    Cloudflare,
}

/// A front serving on 127.0.0.1; dropping it stops it.
pub struct Front {
    pub url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Front {
    /// Starts a front on an ephemeral port that forwards to `upstream` (`http://HOST:PORT`) and
    /// takes the client's address from [`PEER_HEADER`] when a request carries it.
    pub fn start(upstream: &str, platform: Platform) -> Front {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port for the front");
        Front::serve(listener, upstream, platform, Peer::TestHeader)
    }

    /// Serves the front on `listener`, forwarding to `upstream` (`http://HOST:PORT`).
    pub fn serve(
        listener: std::net::TcpListener,
        upstream: &str,
        platform: Platform,
        peer_from: Peer,
    ) -> Front {
        let upstream = upstream
            .strip_prefix("http://")
            .unwrap_or(upstream)
            .trim_end_matches('/')
            .to_owned();
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let url = format!(
            "http://{}",
            listener.local_addr().expect("the front's address")
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("the front's runtime");
            runtime.block_on(async move {
                let listener = TcpListener::from_std(listener).expect("tokio listener");
                let accept = async {
                    loop {
                        let Ok((client, peer)) = listener.accept().await else {
                            continue;
                        };
                        let upstream = upstream.clone();
                        tokio::spawn(async move {
                            if let Err(error) =
                                relay(client, peer, &upstream, platform, peer_from).await
                            {
                                eprintln!("h200 front: {error}");
                            }
                        });
                    }
                };
                tokio::select! {
                    () = accept => {}
                    _ = stopped => {}
                }
            });
        });
        Front {
            url,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads up to the end of an HTTP head; returns the head (without its blank line) and the bytes
/// that followed it. `None`: the peer closed before sending anything.
async fn read_head(
    stream: &mut (impl AsyncRead + Unpin),
) -> std::io::Result<Option<(String, Vec<u8>)>> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buffer.split_off(end + 4);
            buffer.truncate(end);
            let head = String::from_utf8(buffer)
                .map_err(|_| std::io::Error::other("an HTTP head that is not UTF-8"))?;
            return Ok(Some((head, rest)));
        }
        if buffer.len() > MAX_HEAD {
            return Err(std::io::Error::other("an HTTP head over 64 KiB"));
        }
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return if buffer.is_empty() {
                Ok(None)
            } else {
                Err(std::io::Error::other("the connection closed inside a head"))
            };
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
}

/// The head's first line and its header fields in order.
fn split_head(head: &str) -> (&str, Vec<(&str, &str)>) {
    let mut lines = head.split("\r\n");
    let start = lines.next().unwrap_or_default();
    let fields = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim(), value.trim()))
        .collect();
    (start, fields)
}

/// The request head as the platform would pass it on, for a client at `peer`.
fn platform_request_head(
    head: &str,
    peer: SocketAddr,
    platform: Platform,
    peer_from: Peer,
) -> String {
    let (start, fields) = split_head(head);
    let mut address = Some(peer.ip());
    let mut out = format!("{start}\r\n");
    for (name, value) in fields {
        if name.eq_ignore_ascii_case(PEER_HEADER) {
            if peer_from == Peer::Socket {
                continue;
            }
            address = if value.eq_ignore_ascii_case("none") {
                None
            } else {
                value.parse::<IpAddr>().ok().or(address)
            };
            continue;
        }
        let dropped = name.eq_ignore_ascii_case("connection")
            || name.eq_ignore_ascii_case("keep-alive")
            || (platform == Platform::Cloudflare && name.eq_ignore_ascii_case("cf-connecting-ip"));
        if !dropped {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    out.push_str("connection: close\r\n");
    if let Some(ip) = address {
        match platform {
            Platform::Spin => {
                let stamped = SocketAddr::new(ip, peer.port());
                out.push_str(&format!("spin-client-addr: {stamped}\r\n"));
            }
            Platform::Cloudflare => out.push_str(&format!("cf-connecting-ip: {ip}\r\n")),
        }
    }
    out.push_str("\r\n");
    out
}

/// The response head with `connection: close`, so the client opens a new connection (and the
/// front sees a new head) for its next request.
fn closing_response_head(head: &str) -> String {
    let (start, fields) = split_head(head);
    let mut out = format!("{start}\r\n");
    for (name, value) in fields {
        if !name.eq_ignore_ascii_case("connection") && !name.eq_ignore_ascii_case("keep-alive") {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    out.push_str("connection: close\r\n\r\n");
    out
}

/// Forwards one request of `client` to `upstream` with the platform's address header, and the
/// answer back.
async fn relay(
    mut client: TcpStream,
    peer: SocketAddr,
    upstream: &str,
    platform: Platform,
    peer_from: Peer,
) -> std::io::Result<()> {
    let Some((head, body_start)) = read_head(&mut client).await? else {
        return Ok(());
    };
    // A runtime that is not up yet refuses; the client sees the connection close and retries.
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return Ok(());
    };
    server
        .write_all(platform_request_head(&head, peer, platform, peer_from).as_bytes())
        .await?;
    server.write_all(&body_start).await?;
    let (mut client_in, mut client_out) = client.into_split();
    let (mut server_in, mut server_out) = server.into_split();
    let upload = async {
        let _ = tokio::io::copy(&mut client_in, &mut server_out).await;
    };
    let download = async {
        let Some((head, rest)) = read_head(&mut server_in).await? else {
            return Ok(());
        };
        client_out
            .write_all(closing_response_head(&head).as_bytes())
            .await?;
        client_out.write_all(&rest).await?;
        tokio::io::copy(&mut server_in, &mut client_out).await?;
        client_out.shutdown().await
    };
    // The answer is complete when the runtime closes (it was asked to), or when the client
    // closes after reading it (it was told to).
    tokio::select! {
        done = download => done,
        () = upload => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> SocketAddr {
        "127.0.0.1:40000".parse().expect("address")
    }

    #[test]
    fn spin_appends_its_address_after_the_clients_own() {
        let head = "POST /auth/login HTTP/1.1\r\nspin-client-addr: 203.0.113.9:1\r\nx-h200-test-peer: 198.51.100.7\r\nconnection: keep-alive";
        let out = platform_request_head(head, peer(), Platform::Spin, Peer::TestHeader);
        assert_eq!(
            out,
            "POST /auth/login HTTP/1.1\r\nspin-client-addr: 203.0.113.9:1\r\nconnection: close\r\nspin-client-addr: 198.51.100.7:40000\r\n\r\n"
        );
    }

    #[test]
    fn cloudflare_overwrites_the_clients_address() {
        let head = "GET /health HTTP/1.1\r\nCF-Connecting-IP: 203.0.113.9";
        let out = platform_request_head(head, peer(), Platform::Cloudflare, Peer::TestHeader);
        assert_eq!(
            out,
            "GET /health HTTP/1.1\r\nconnection: close\r\ncf-connecting-ip: 127.0.0.1\r\n\r\n"
        );
    }

    #[test]
    fn none_stamps_no_address() {
        let head = "GET /health HTTP/1.1\r\nx-h200-test-peer: none";
        let out = platform_request_head(head, peer(), Platform::Spin, Peer::TestHeader);
        assert!(!out.contains("spin-client-addr"), "{out}");
    }

    #[test]
    fn a_socket_front_ignores_the_test_header() {
        let head = "GET /health HTTP/1.1\r\nx-h200-test-peer: none";
        let out = platform_request_head(head, peer(), Platform::Spin, Peer::Socket);
        assert_eq!(
            out,
            "GET /health HTTP/1.1\r\nconnection: close\r\nspin-client-addr: 127.0.0.1:40000\r\n\r\n"
        );
    }
}
