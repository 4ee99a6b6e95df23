//! Small real proxies on 127.0.0.1 for the proxy tests: an HTTP `CONNECT`
//! proxy (RFC 9110 section 9.3.6, optional Basic auth) and a SOCKS5 proxy
//! (RFC 1928, optional username/password per RFC 1929). Each records the
//! targets it was asked for; a wrong credential gets 407 / SOCKS auth failure.

use std::sync::{Arc, Mutex};

use base64::Engine as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A running proxy.
pub struct TunnelProxy {
    pub port: u16,
    /// `host:port` of every tunnel asked for (also refused ones).
    pub targets: Arc<Mutex<Vec<String>>>,
}

impl TunnelProxy {
    pub fn url(&self, scheme: &str, userinfo: Option<&str>) -> String {
        match userinfo {
            Some(u) => format!("{scheme}://{u}@127.0.0.1:{}", self.port),
            None => format!("{scheme}://127.0.0.1:{}", self.port),
        }
    }

    /// An HTTP CONNECT proxy; `creds` = required (user, password).
    pub async fn http(creds: Option<(&str, &str)>) -> TunnelProxy {
        let expected = creds.map(|(u, p)| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        });
        Self::start(move |tcp, targets| {
            let expected = expected.clone();
            async move { http_tunnel(tcp, targets, expected).await }
        })
        .await
    }

    /// A SOCKS5 proxy; `creds` = required (user, password).
    pub async fn socks5(creds: Option<(&str, &str)>) -> TunnelProxy {
        let creds = creds.map(|(u, p)| (u.to_owned(), p.to_owned()));
        Self::start(move |tcp, targets| {
            let creds = creds.clone();
            async move { socks_tunnel(tcp, targets, creds).await }
        })
        .await
    }

    async fn start<F, Fut>(serve: F) -> TunnelProxy
    where
        F: Fn(TcpStream, Arc<Mutex<Vec<String>>>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = std::io::Result<()>> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let targets = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&targets);
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                tokio::spawn(serve(tcp, Arc::clone(&log)));
            }
        });
        TunnelProxy { port, targets }
    }
}

async fn http_tunnel(
    mut client: TcpStream,
    targets: Arc<Mutex<Vec<String>>>,
    expected: Option<String>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    let (target, auth) = loop {
        let n = client.read(&mut chunk).await?;
        if n == 0 || buf.len() > 16 * 1024 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut request = httparse::Request::new(&mut headers);
        if let Ok(httparse::Status::Complete(_)) = request.parse(&buf) {
            if request.method != Some("CONNECT") {
                client
                    .write_all(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
                    .await?;
                return Ok(());
            }
            let auth = request
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("Proxy-Authorization"))
                .map(|h| String::from_utf8_lossy(h.value).into_owned());
            break (request.path.unwrap_or("").to_owned(), auth);
        }
    };
    targets.lock().expect("targets").push(target.clone());
    if expected.is_some() && auth != expected {
        client
            .write_all(
                b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n\r\n",
            )
            .await?;
        return Ok(());
    }
    let mut upstream = TcpStream::connect(target.as_str()).await?;
    client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await?;
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}

async fn socks_tunnel(
    mut client: TcpStream,
    targets: Arc<Mutex<Vec<String>>>,
    creds: Option<(String, String)>,
) -> std::io::Result<()> {
    // Greeting: VER NMETHODS METHODS...
    let mut head = [0u8; 2];
    client.read_exact(&mut head).await?;
    let mut methods = vec![0u8; head[1] as usize];
    client.read_exact(&mut methods).await?;
    let wanted = if creds.is_some() { 2 } else { 0 };
    if head[0] != 5 || !methods.contains(&wanted) {
        client.write_all(&[5, 0xff]).await?;
        return Ok(());
    }
    client.write_all(&[5, wanted]).await?;
    if let Some((user, pass)) = &creds {
        // RFC 1929: VER ULEN UNAME PLEN PASSWD.
        let mut ver_len = [0u8; 2];
        client.read_exact(&mut ver_len).await?;
        let mut u = vec![0u8; ver_len[1] as usize];
        client.read_exact(&mut u).await?;
        let mut plen = [0u8; 1];
        client.read_exact(&mut plen).await?;
        let mut p = vec![0u8; plen[0] as usize];
        client.read_exact(&mut p).await?;
        let ok = u == user.as_bytes() && p == pass.as_bytes();
        client.write_all(&[1, if ok { 0 } else { 1 }]).await?;
        if !ok {
            return Ok(());
        }
    }
    // Request: VER CMD RSV ATYP DST.ADDR DST.PORT.
    let mut req = [0u8; 4];
    client.read_exact(&mut req).await?;
    let host = match req[3] {
        1 => {
            let mut a = [0u8; 4];
            client.read_exact(&mut a).await?;
            std::net::Ipv4Addr::from(a).to_string()
        }
        3 => {
            let mut len = [0u8; 1];
            client.read_exact(&mut len).await?;
            let mut name = vec![0u8; len[0] as usize];
            client.read_exact(&mut name).await?;
            String::from_utf8_lossy(&name).into_owned()
        }
        4 => {
            let mut a = [0u8; 16];
            client.read_exact(&mut a).await?;
            format!("[{}]", std::net::Ipv6Addr::from(a))
        }
        _ => return Ok(()),
    };
    let mut port = [0u8; 2];
    client.read_exact(&mut port).await?;
    let target = format!("{host}:{}", u16::from_be_bytes(port));
    targets.lock().expect("targets").push(target.clone());
    // Resolve names to IPv4 loopback only: the test servers bind 127.0.0.1.
    let connect_to = target.replace("localhost", "127.0.0.1");
    let Ok(mut upstream) = TcpStream::connect(connect_to.as_str()).await else {
        client.write_all(&[5, 5, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
        return Ok(());
    };
    client.write_all(&[5, 0, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}
