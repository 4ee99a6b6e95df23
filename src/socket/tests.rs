//! The bridge over a real loopback socket: a server that writes its `101`
//! response and a burst of frames in one write, and a transport wrapper that
//! counts how often the WebSocket polls it.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{FutureExt, SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tungstenite::client::IntoClientRequest;
use tungstenite::handshake::derive_accept_key;
use tungstenite::http::HeaderValue;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Error as WsError, Message};

use super::{handshake, Bridge, Transport, WsStream};

const SOON: Duration = Duration::from_secs(10);
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// A TCP stream that counts the polls of its read side.
struct Counting {
    tcp: TcpStream,
    polls: Arc<AtomicUsize>,
}

impl AsyncRead for Counting {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.polls.fetch_add(1, Ordering::SeqCst);
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counting {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

/// An unmasked server frame (payload under 126 bytes).
fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0x80 | opcode, payload.len() as u8];
    bytes.extend_from_slice(payload);
    bytes
}

fn text(n: usize) -> String {
    format!("{{\"type\":\"ticker\",\"seq\":{n},\"price\":\"{n}.25\",\"pad\":\"................\"}}")
}

/// The `101` response to a request carrying [`KEY`], then `frames`.
fn response_and(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut bytes = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        derive_accept_key(KEY.as_bytes())
    )
    .into_bytes();
    for frame in frames {
        bytes.extend_from_slice(frame);
    }
    bytes
}

/// Connects to a server that has already sent `burst` (it needs no request:
/// the key is fixed), waits until all of it is in the client's receive
/// queue, then runs the handshake over a [`Counting`] transport.
async fn connect_after(burst: Vec<u8>) -> (WsStream, Arc<AtomicUsize>, TcpStream) {
    connect_after_with(burst, 16 << 10).await
}

/// A loopback pair whose server half has written `bytes`, returned once all
/// of them wait in the client's receive queue (one OS read can take them).
async fn queued(bytes: &[u8]) -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    // Room for a whole burst in the receive queue, whatever the defaults.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(1 << 20).unwrap();
    let client = socket
        .connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (mut server, _) = listener.accept().await.unwrap();
    server.write_all(bytes).await.unwrap();
    let mut peeked = vec![0; bytes.len()];
    tokio::time::timeout(SOON, async {
        while client.peek(&mut peeked).await.unwrap() < bytes.len() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap();
    (client, server)
}

/// [`connect_after`] with a bridge that grows its 16 KiB block up to `cap`.
async fn connect_after_with(burst: Vec<u8>, cap: usize) -> (WsStream, Arc<AtomicUsize>, TcpStream) {
    let (client, server) = queued(&burst).await;
    let port = client.peer_addr().unwrap().port();
    let polls = Arc::new(AtomicUsize::new(0));
    let counting = Counting {
        tcp: client,
        polls: Arc::clone(&polls),
    };
    let mut request = format!("ws://127.0.0.1:{port}/")
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Key", HeaderValue::from_static(KEY));
    let bridge = Bridge::new(Transport::plain(Box::new(counting)), 16 << 10, cap);
    let config = WebSocketConfig::default().read_buffer_size(4 << 10);
    let ws = tokio::time::timeout(SOON, handshake(request, bridge, config))
        .await
        .unwrap()
        .unwrap();
    (ws, polls, server)
}

#[tokio::test]
async fn frames_from_one_os_read_are_yielded_without_polling_the_transport_again() {
    // ~10 KiB: more than tungstenite's 4 KiB handshake read, less than the block.
    let frames: Vec<Vec<u8>> = (0..100).map(|n| frame(0x1, text(n).as_bytes())).collect();
    let (mut ws, polls, server) = connect_after(response_and(&frames)).await;
    assert_eq!(polls.load(Ordering::SeqCst), 1, "one read took the burst");
    assert_eq!(ws.reads(), 1);
    for n in 0..100 {
        let message = ws.next().now_or_never().expect("buffered, no wait");
        assert_eq!(message.unwrap().unwrap(), Message::text(text(n)));
    }
    assert_eq!(
        polls.load(Ordering::SeqCst),
        1,
        "frames in memory cost no transport poll"
    );
    // Nothing left: now, and only now, the transport is polled (and blocks).
    assert!(ws.next().now_or_never().is_none());
    assert_eq!(polls.load(Ordering::SeqCst), 2);
    // The peer drops TCP without a close frame: tungstenite's reset error,
    // then the end. A read that returned nothing is not counted.
    // (A FIN: dropping the server with our request unread would be a reset.)
    let mut server = server;
    server.shutdown().await.unwrap();
    let ended = tokio::time::timeout(SOON, ws.next()).await.unwrap();
    assert!(
        matches!(
            ended,
            Some(Err(WsError::Protocol(
                tungstenite::error::ProtocolError::ResetWithoutClosingHandshake
            )))
        ),
        "{ended:?}"
    );
    assert!(ws.next().await.is_none());
    assert_eq!(ws.reads(), 1);
}

#[test]
fn the_block_doubles_when_a_refill_fills_it_and_returns_to_its_start_size_when_traffic_calms() {
    use super::block::next_block;
    const K: usize = 1 << 10;
    // Filled: doubles, up to the cap.
    assert_eq!(next_block(16 * K, 16 * K, 16 * K, 128 * K), 32 * K);
    assert_eq!(next_block(64 * K, 64 * K, 16 * K, 128 * K), 128 * K);
    assert_eq!(next_block(128 * K, 128 * K, 16 * K, 128 * K), 128 * K);
    assert_eq!(next_block(96 * K, 96 * K, 16 * K, 128 * K), 128 * K);
    // Partly filled: kept while more than an eighth came.
    assert_eq!(next_block(128 * K, 16 * K + 1, 16 * K, 128 * K), 128 * K);
    // At most an eighth of a grown block: back to the start size.
    assert_eq!(next_block(128 * K, 16 * K, 16 * K, 128 * K), 16 * K);
    assert_eq!(next_block(32 * K, 100, 16 * K, 128 * K), 16 * K);
    // The start size never shrinks; a cap at the start size never grows.
    assert_eq!(next_block(16 * K, 1, 16 * K, 128 * K), 16 * K);
    assert_eq!(next_block(4 * K, 4 * K, 4 * K, 4 * K), 4 * K);
}

/// `count` text frames, about 80 bytes each on the wire.
fn burst_of(count: usize) -> Vec<Vec<u8>> {
    (0..count).map(|n| frame(0x1, text(n).as_bytes())).collect()
}

#[tokio::test]
async fn a_burst_is_read_in_growing_blocks_and_the_block_shrinks_when_traffic_calms() {
    // ~105 KiB queued at once: a fixed 16 KiB block needs 7 reads for it.
    let frames = burst_of(1_500);
    let bytes: usize = frames.iter().map(Vec::len).sum();
    assert!((100 << 10..110 << 10).contains(&bytes), "{bytes}");
    let (mut fixed, _, _server) = connect_after(response_and(&frames)).await;
    for n in 0..frames.len() {
        let message = tokio::time::timeout(SOON, fixed.next()).await.unwrap();
        assert_eq!(message.unwrap().unwrap(), Message::text(text(n)));
    }
    assert!(fixed.reads() >= 7, "fixed: {} reads", fixed.reads());
    assert_eq!(fixed.block_len(), 16 << 10);

    let (mut ws, _, mut server) = connect_after_with(response_and(&frames), 128 << 10).await;
    for n in 0..frames.len() {
        let message = tokio::time::timeout(SOON, ws.next()).await.unwrap();
        assert_eq!(message.unwrap().unwrap(), Message::text(text(n)));
    }
    // 16 KiB (full), 32 KiB (full), then the rest (~57 KiB) into 64 KiB.
    assert_eq!(ws.reads(), 3, "growing: {} reads", ws.reads());
    assert_eq!(
        ws.block_len(),
        64 << 10,
        "grown, and the last read was not small"
    );
    // One small frame: its read is an eighth of the block or less, so the
    // block is back to 16 KiB when the socket is read again.
    server.write_all(&frame(0x1, b"calm")).await.unwrap();
    let message = tokio::time::timeout(SOON, ws.next()).await.unwrap();
    assert_eq!(message.unwrap().unwrap(), Message::text("calm"));
    assert!(ws.next().now_or_never().is_none(), "nothing more");
    assert_eq!(ws.block_len(), 16 << 10);
}

#[tokio::test]
async fn under_tls_the_socket_is_read_in_growing_blocks_too() {
    // The reader below rustls, over a real socket holding ~105 KiB, read in
    // rustls's ~4 KiB pulls: 16 KiB, 32 KiB, then the rest into 64 KiB.
    let bytes: Vec<u8> = (0..105 << 10).map(|n| (n % 251) as u8).collect();
    let (client, server) = queued(&bytes).await;
    let mut under = super::transport::Counted::blocked(Box::new(client), 16 << 10, 128 << 10);
    let mut got = Vec::new();
    let mut pull = [0u8; 4096];
    while got.len() < bytes.len() {
        let n = tokio::time::timeout(SOON, under.read(&mut pull))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "no early end");
        got.extend_from_slice(&pull[..n]);
    }
    assert_eq!(got, bytes, "every byte, in order");
    assert_eq!(under.reads(), 3);
    // The end of the stream reads as the end.
    drop(server);
    let n = tokio::time::timeout(SOON, under.read(&mut pull))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 0);
}

#[tokio::test]
async fn a_frame_in_the_same_read_as_the_101_is_not_lost() {
    let frames = vec![frame(0x1, b"first")];
    let (mut ws, polls, _server) = connect_after(response_and(&frames)).await;
    let first = ws.next().now_or_never().expect("buffered, no wait");
    assert_eq!(first.unwrap().unwrap(), Message::text("first"));
    assert_eq!(polls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn pings_are_answered_and_a_close_ends_the_stream_after_the_reply() {
    let frames = vec![
        frame(0x9, b"p1"),
        frame(0x1, b"data"),
        frame(0x8, &[0x03, 0xE8]),
    ];
    let (mut ws, _polls, mut server) = connect_after(response_and(&frames)).await;
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::Ping("p1".into())
    );
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("data"));
    assert!(matches!(ws.next().await, Some(Ok(Message::Close(Some(_))))));
    // The close reply is queued; flushing writes it and is not an error.
    tokio::time::timeout(SOON, ws.flush())
        .await
        .unwrap()
        .unwrap();
    // The server saw the request, then a masked pong "p1" and a masked close
    // reply with the same code (8 bytes each).
    let after = bytes_after_request(&mut server, 16).await;
    assert_eq!(&after[..2], &[0x8A, 0x80 | 2], "the pong first");
    assert_eq!(&after[8..10], &[0x88, 0x80 | 2], "then the close reply");
    // The server ends TCP after the handshake: the stream ends, no error.
    server.shutdown().await.unwrap();
    assert!(tokio::time::timeout(SOON, ws.next())
        .await
        .unwrap()
        .is_none());
}

/// What the client wrote after its HTTP request: read from `server` until at
/// least `count` such bytes arrived.
async fn bytes_after_request(server: &mut TcpStream, count: usize) -> Vec<u8> {
    let mut seen = Vec::new();
    tokio::time::timeout(SOON, async {
        let mut chunk = [0u8; 1024];
        while seen.len() < request_end(&seen) + count {
            let n = server.read(&mut chunk).await.unwrap();
            assert!(n > 0, "connection closed early");
            seen.extend_from_slice(&chunk[..n]);
        }
    })
    .await
    .unwrap();
    seen.split_off(request_end(&seen))
}

/// Where the HTTP request ends in `bytes` (its length if not yet whole).
fn request_end(bytes: &[u8]) -> usize {
    bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(bytes.len(), |at| at + 4)
}

#[tokio::test]
async fn a_message_sent_reaches_the_peer() {
    let (mut ws, _polls, mut server) = connect_after(response_and(&[])).await;
    tokio::time::timeout(SOON, ws.send(Message::text("hello")))
        .await
        .unwrap()
        .unwrap();
    let after = bytes_after_request(&mut server, 6 + 5).await;
    assert_eq!(after[0], 0x81);
    let mask = &after[2..6];
    let payload: Vec<u8> = after[6..11]
        .iter()
        .enumerate()
        .map(|(i, b)| b ^ mask[i % 4])
        .collect();
    assert_eq!(payload, b"hello");
}

/// A CA made here and a server config for a leaf naming `127.0.0.1`.
fn test_tls() -> (rustls::RootCertStore, Arc<rustls::ServerConfig>) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    let server = rustls::ServerConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone(), ca.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        )
        .unwrap();
    (roots, Arc::new(server))
}

#[tokio::test]
async fn over_tls_to_an_ip_address_a_burst_and_a_frame_larger_than_a_record_arrive_whole() {
    let (roots, server_config) = test_tls();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // 300 small frames, one of 40,000 bytes (past a 16 KiB TLS record and
    // both blocks), then more small ones, all after the 101 in one write.
    let big = "z".repeat(40_000);
    let mut frames: Vec<Vec<u8>> = (0..150).map(|n| frame(0x1, text(n).as_bytes())).collect();
    let mut long = vec![0x81, 126];
    long.extend_from_slice(&40_000u16.to_be_bytes());
    long.extend_from_slice(big.as_bytes());
    frames.push(long);
    frames.extend((150..300).map(|n| frame(0x1, text(n).as_bytes())));
    let burst = response_and(&frames);
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut tls = tokio_rustls::TlsAcceptor::from(server_config)
            .accept(tcp)
            .await
            .unwrap();
        tls.write_all(&burst).await.unwrap();
        tls.flush().await.unwrap();
        // Hold the connection until the client has read everything.
        let mut rest = Vec::new();
        let _ = tls.read_to_end(&mut rest).await;
    });
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let client_config = crate::tls::client_config_with_roots(roots).unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1".to_owned()).unwrap();
    let transport = tokio::time::timeout(
        SOON,
        // Blocks below rustls that may grow (the burst arrives at once).
        Transport::tls(Box::new(tcp), 16 << 10, 128 << 10, name, client_config),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(transport.is_tls());
    let mut request = format!("wss://127.0.0.1:{port}/")
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Key", HeaderValue::from_static(KEY));
    let config = WebSocketConfig::default().read_buffer_size(4 << 10);
    let mut ws = tokio::time::timeout(
        SOON,
        handshake(request, Bridge::new(transport, 4 << 10, 4 << 10), config),
    )
    .await
    .unwrap()
    .unwrap();
    for n in 0..300 {
        let message = tokio::time::timeout(SOON, ws.next()).await.unwrap();
        assert_eq!(
            message.unwrap().unwrap(),
            Message::text(text(n)),
            "frame {n}"
        );
        if n == 149 {
            let message = tokio::time::timeout(SOON, ws.next()).await.unwrap();
            assert_eq!(message.unwrap().unwrap(), Message::text(big.clone()));
        }
    }
    assert!(ws.reads() >= 1);
    drop(ws);
    server.await.unwrap();
}
