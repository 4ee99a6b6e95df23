//! `ws_bridge`: the crate's WebSocket stream against tungstenite alone.
//!
//! The library reads the socket through its own bridge (`src/socket/`): a
//! block it refills only when empty, `WouldBlock` to tungstenite in between,
//! the handshake's leftover bytes handed on. The straightforward reading is
//! tungstenite's `WebSocket` over a blocking reader of the same bytes. This
//! harness runs both on one server output and requires the same messages,
//! the same end (the same error, or a clean end) and the same frames written
//! back (pongs, the close reply).

use std::future::Future;
use std::io::{self, Cursor, Read, Write};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures::task::noop_waker_ref;
use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tungstenite::client::IntoClientRequest;
use tungstenite::handshake::derive_accept_key;
use tungstenite::http::HeaderValue;
use tungstenite::protocol::{Role, WebSocketConfig};
use tungstenite::{Error as WsError, Message, WebSocket};

use resilient_ws::fuzzing::bridged_ws;

/// The client's fixed handshake key, so the server's answer is known.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// The bridge's block sizes (at least 3: a 129-byte response read in
/// smaller pieces trips tungstenite's handshake flood check, whatever the
/// reader).
const BLOCKS: [usize; 8] = [3, 4, 7, 64, 125, 1000, 4096, 16 << 10];
/// tungstenite's own read size.
const READ_SIZES: [usize; 4] = [3, 64, 512, 4096];
/// What one read of the transport returns at most (at least 3, as above).
const CHUNKS: [usize; 8] = [3, 4, 5, 17, 200, 1000, 4096, usize::MAX];

/// Byte 0: bits 0-2 the block size, bits 3-4 tungstenite's read size, bit 5
/// small frame and message limits (200 / 600 bytes) instead of 64 KiB, bit 6
/// writes that block once before each write. Byte 1 seeds the transport's
/// script: the size of each read and whether it blocks first. The rest is
/// what the server sends after its `101` (which the transport sends first).
///
/// # Panics
///
/// When the two readings differ: that is the point.
pub fn ws_bridge(data: &[u8]) {
    let [setup, seed, wire @ ..] = data else {
        return;
    };
    let block = BLOCKS[usize::from(setup & 7)];
    let limit = if setup & 0x20 != 0 { 200 } else { 64 << 10 };
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_SIZES[usize::from((setup >> 3) & 3)])
        .max_frame_size(Some(limit))
        .max_message_size(Some(limit * 3));
    let writes_block = setup & 0x40 != 0;

    let (expected, expected_end, expected_written) = reference(wire, config);

    let mut bytes = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        derive_accept_key(KEY.as_bytes())
    )
    .into_bytes();
    bytes.extend_from_slice(wire);
    let written = Arc::new(Mutex::new(Vec::new()));
    let script = Script {
        bytes,
        at: 0,
        state: u32::from(*seed) | 0x100,
        block_next_read: false,
        writes_block,
        block_next_write: writes_block,
        written: Arc::clone(&written),
    };
    let mut request = "ws://fuzz.invalid/"
        .into_client_request()
        .expect("a valid URL");
    request
        .headers_mut()
        .insert("Sec-WebSocket-Key", HeaderValue::from_static(KEY));
    // Every `Pending` of the script is followed by a poll; nothing else waits.
    let bound = 4 * (wire.len() + 200) + 100;
    let mut ws = drive(bridged_ws(Box::new(script), request, block, config), bound)
        .expect("the handshake completes");
    let mut got = Vec::new();
    let mut end = None;
    loop {
        match drive(ws.next(), bound) {
            Some(Ok(message)) => got.push(message),
            Some(Err(error)) => {
                end = Some(error.to_string());
                assert!(
                    drive(ws.next(), bound).is_none(),
                    "the stream ends after an error"
                );
                break;
            }
            None => break,
        }
        assert!(got.len() <= wire.len(), "more messages than bytes");
    }
    assert_eq!(got, expected, "the messages");
    assert_eq!(end, expected_end, "the end");
    let written = written.lock().map(|w| w.clone()).unwrap_or_default();
    let after_request = written
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(written.len(), |at| at + 4);
    let frames = client_frames(&written[after_request..]);
    let expected_frames = client_frames(&expected_written);
    if writes_block {
        // A reply still blocked when the stream ended is not written.
        assert!(
            expected_frames.starts_with(&frames),
            "the frames written back"
        );
    } else {
        assert_eq!(frames, expected_frames, "the frames written back");
    }
}

/// tungstenite alone over a blocking reader: the messages, the end (`None`
/// for a clean one) and what it wrote.
fn reference(wire: &[u8], config: WebSocketConfig) -> (Vec<Message>, Option<String>, Vec<u8>) {
    let stream = Blocking {
        read: Cursor::new(wire.to_vec()),
        written: Vec::new(),
    };
    let mut ws = WebSocket::from_partially_read(stream, Vec::new(), Role::Client, Some(config));
    let mut messages = Vec::new();
    let end = loop {
        match ws.read() {
            Ok(message) => messages.push(message),
            Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => break None,
            Err(error) => break Some(error.to_string()),
        }
        assert!(messages.len() <= wire.len(), "more messages than bytes");
    };
    (messages, end, ws.get_ref().written.clone())
}

/// Polls `future` until it is ready; panics after `bound` polls (a hang).
fn drive<F: Future>(future: F, bound: usize) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(noop_waker_ref());
    for _ in 0..bound {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
    }
    panic!("no progress after {bound} polls");
}

/// The (opcode byte, unmasked payload) of each masked client frame in
/// `bytes`; a cut-off frame at the end is left out.
fn client_frames(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut frames = Vec::new();
    while let [first, second, rest @ ..] = bytes {
        assert!(second & 0x80 != 0, "a client frame is masked");
        let (len, rest) = match second & 0x7F {
            126 if rest.len() >= 2 => (
                usize::from(u16::from_be_bytes([rest[0], rest[1]])),
                &rest[2..],
            ),
            127 if rest.len() >= 8 => {
                let mut len = [0u8; 8];
                len.copy_from_slice(&rest[..8]);
                (
                    usize::try_from(u64::from_be_bytes(len)).unwrap_or(usize::MAX),
                    &rest[8..],
                )
            }
            126 | 127 => break,
            short => (usize::from(short), rest),
        };
        if rest.len() < 4 || rest.len() - 4 < len {
            break;
        }
        let (mask, rest) = rest.split_at(4);
        let (payload, rest) = rest.split_at(len);
        let unmasked = payload
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ mask[i % 4])
            .collect();
        frames.push((*first, unmasked));
        bytes = rest;
    }
    frames
}

/// The reference's socket: reads from memory, never blocks.
struct Blocking {
    read: Cursor<Vec<u8>>,
    written: Vec<u8>,
}

impl Read for Blocking {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read.read(buf)
    }
}

impl Write for Blocking {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.written.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The bridge's transport: the server's bytes in reads of scripted sizes,
/// some after a `Pending`; end of stream after the last byte.
struct Script {
    bytes: Vec<u8>,
    at: usize,
    /// A small LCG: the read sizes and where reads block.
    state: u32,
    block_next_read: bool,
    writes_block: bool,
    block_next_write: bool,
    written: Arc<Mutex<Vec<u8>>>,
}

impl Script {
    fn next(&mut self) -> u32 {
        self.state = self.state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        self.state >> 16
    }
}

impl AsyncRead for Script {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.block_next_read {
            self.block_next_read = false;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let roll = self.next();
        let chunk = CHUNKS[(roll & 7) as usize];
        self.block_next_read = roll & 8 != 0;
        let left = &self.bytes[self.at..];
        let count = left.len().min(chunk).min(buf.remaining());
        buf.put_slice(&left[..count]);
        self.at += count;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Script {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.block_next_write {
            self.block_next_write = false;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.block_next_write = self.writes_block;
        if let Ok(mut written) = self.written.lock() {
            written.extend_from_slice(buf);
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
