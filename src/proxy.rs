//! Reaching the venue through a proxy: HTTP `CONNECT` (RFC 9110 section 9.3.6)
//! and SOCKS5 (RFC 1928, username/password per RFC 1929).
//!
//! Rules, and why:
//! - A [`Proxy`] is a [`Connector`]: the tunnel is opened per attempt, then TLS
//!   and the WebSocket handshake run through it exactly as over plain TCP
//!   (TLS is end to end; the proxy sees only the host and port).
//! - The target host name goes to the proxy unresolved (SOCKS5 "domain"
//!   address, `CONNECT host:port`), so DNS works where only the proxy can resolve.
//! - Credentials are [`Secret`]s: `Debug`, errors and logs show the proxy's
//!   host and port only.
//! - The proxy's answer to `CONNECT` is read with `httparse`, at most
//!   [`MAX_CONNECT_RESPONSE`] bytes: a proxy must not grow our buffer.
//! - [`Proxy::from_env`] reads `HTTPS_PROXY`, then `ALL_PROXY` (upper or lower
//!   case), and skips hosts listed in `NO_PROXY` (`*`, exact names, or domain
//!   suffixes such as `.example.com` / `example.com`), the common curl convention.

use std::fmt;
use std::io;

use base64::Engine as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::connector::{target_of, ConnectFuture, Connector, Transport};
use crate::error::Error;
use crate::token::Secret;

/// The largest `CONNECT` response head accepted.
pub const MAX_CONNECT_RESPONSE: usize = 8 * 1024;

/// Which proxy protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxyKind {
    /// HTTP `CONNECT` (`http://` proxy URL).
    Http,
    /// SOCKS5 with remote name resolution (`socks5://` or `socks5h://`).
    Socks5,
}

/// A proxy to tunnel every connection attempt through. Use it as the
/// connector: [`ConfigBuilder::proxy`](crate::ConfigBuilder::proxy).
#[derive(Clone)]
pub struct Proxy {
    kind: ProxyKind,
    host: String,
    port: u16,
    auth: Option<(String, Secret)>,
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("kind", &self.kind)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("auth", &self.auth.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// A proxy failure; becomes [`ConnectionError::Proxy`](crate::ConnectionError::Proxy).
#[derive(Debug)]
pub(crate) struct ProxyError(pub(crate) String);

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ProxyError {}

fn proxy_error(message: impl Into<String>) -> io::Error {
    io::Error::other(ProxyError(message.into()))
}

impl Proxy {
    /// From a proxy URL: `http://[user:pass@]host:port` or
    /// `socks5://[user:pass@]host:port` (`socks5h://` too). Userinfo is
    /// percent-decoded.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for another scheme, a missing host or a bad port; the
    /// message never quotes the credentials.
    pub fn parse(url: &str) -> Result<Self, Error> {
        let bad = |what: &str| Error::Config(format!("proxy URL: {what}"));
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("no scheme"))?;
        let kind = match scheme.to_ascii_lowercase().as_str() {
            "http" => ProxyKind::Http,
            "socks5" | "socks5h" => ProxyKind::Socks5,
            _ => return Err(bad("scheme must be http, socks5 or socks5h")),
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
            None => (None, authority),
        };
        let default_port = if kind == ProxyKind::Http { 80 } else { 1080 };
        let (host, port_text) = match hostport.strip_prefix('[') {
            Some(v6) => {
                let (host, after) = v6.split_once(']').ok_or_else(|| bad("bad IPv6 host"))?;
                (host, after.strip_prefix(':'))
            }
            None => match hostport.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (hostport, None),
            },
        };
        let port = match port_text {
            Some(p) => p.parse::<u16>().map_err(|_| bad("bad port"))?,
            None => default_port,
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let auth = userinfo.map(|info| {
            let (user, pass) = info.split_once(':').unwrap_or((info, ""));
            (percent_decode(user), Secret::new(percent_decode(pass)))
        });
        Ok(Proxy {
            kind,
            host: host.to_owned(),
            port,
            auth,
        })
    }

    /// The proxy the environment names for `target_url`, if any:
    /// `HTTPS_PROXY`/`https_proxy`, else `ALL_PROXY`/`all_proxy`, unless
    /// `NO_PROXY`/`no_proxy` lists the target host.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the variable holds an unusable proxy URL.
    pub fn from_env(target_url: &str) -> Result<Option<Self>, Error> {
        Self::from_lookup(target_url, |name| std::env::var(name).ok())
    }

    /// [`from_env`](Self::from_env) over any variable lookup (for tests and
    /// for applications that keep settings elsewhere).
    ///
    /// # Errors
    ///
    /// As [`from_env`](Self::from_env).
    pub fn from_lookup(
        target_url: &str,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, Error> {
        let var = |upper: &str| {
            lookup(upper)
                .or_else(|| lookup(&upper.to_ascii_lowercase()))
                .filter(|v| !v.trim().is_empty())
        };
        let Some(proxy) = var("HTTPS_PROXY").or_else(|| var("ALL_PROXY")) else {
            return Ok(None);
        };
        let host = target_host(target_url);
        if let Some(no_proxy) = var("NO_PROXY") {
            if bypassed(&host, &no_proxy) {
                return Ok(None);
            }
        }
        Proxy::parse(proxy.trim()).map(Some)
    }

    /// The protocol.
    pub fn kind(&self) -> ProxyKind {
        self.kind
    }

    async fn tunnel(&self, host: &str, port: u16) -> io::Result<TcpStream> {
        match self.kind {
            ProxyKind::Http => {
                let mut stream = TcpStream::connect((self.host.as_str(), self.port)).await?;
                stream.set_nodelay(true)?;
                self.http_connect(&mut stream, host, port).await?;
                Ok(stream)
            }
            ProxyKind::Socks5 => {
                let proxy = (self.host.as_str(), self.port);
                let target = (host, port);
                let result = match &self.auth {
                    Some((user, pass)) => {
                        tokio_socks::tcp::Socks5Stream::connect_with_password(
                            proxy,
                            target,
                            user,
                            pass.expose(),
                        )
                        .await
                    }
                    None => tokio_socks::tcp::Socks5Stream::connect(proxy, target).await,
                };
                let stream = result
                    .map_err(|e| proxy_error(format!("SOCKS5 proxy refused the tunnel: {e}")))?
                    .into_inner();
                stream.set_nodelay(true)?;
                Ok(stream)
            }
        }
    }

    async fn http_connect(&self, stream: &mut TcpStream, host: &str, port: u16) -> io::Result<()> {
        let authority = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let mut head = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
        if let Some((user, pass)) = &self.auth {
            let token = base64::engine::general_purpose::STANDARD
                .encode(format!("{user}:{}", pass.expose()));
            head.push_str(&format!("Proxy-Authorization: Basic {token}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).await?;
        drop(head);

        let mut buf = Vec::with_capacity(512);
        let mut chunk = [0u8; 512];
        loop {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(proxy_error("proxy closed the connection during CONNECT"));
            }
            buf.extend_from_slice(&chunk[..n]);
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut response = httparse::Response::new(&mut headers);
            match response.parse(&buf) {
                Ok(httparse::Status::Complete(len)) => {
                    let status = response.code.unwrap_or(0);
                    if !(200..300).contains(&status) {
                        return Err(proxy_error(format!("proxy refused CONNECT: HTTP {status}")));
                    }
                    if len != buf.len() {
                        return Err(proxy_error("proxy sent data before the tunnel was used"));
                    }
                    return Ok(());
                }
                Ok(httparse::Status::Partial) if buf.len() < MAX_CONNECT_RESPONSE => {}
                Ok(httparse::Status::Partial) => {
                    return Err(proxy_error("proxy CONNECT response too large"))
                }
                Err(e) => return Err(proxy_error(format!("bad proxy CONNECT response: {e}"))),
            }
        }
    }
}

impl Connector for Proxy {
    fn connect<'a>(&'a self, url: &'a str) -> ConnectFuture<'a> {
        Box::pin(async move {
            let (request, host, port) = target_of(url)?;
            let stream = self.tunnel(&host, port).await?;
            tracing::debug!(proxy = %self.host, port = self.port, "proxy tunnel open");
            Ok(Transport {
                stream: Box::new(stream),
                request,
            })
        })
    }
}

fn target_host(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = hostport.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        hostport.split(':').next().unwrap_or("")
    };
    host.to_ascii_lowercase()
}

fn bypassed(host: &str, no_proxy: &str) -> bool {
    no_proxy.split(',').map(str::trim).any(|entry| {
        let entry = entry.to_ascii_lowercase();
        let entry = entry.split(':').next().unwrap_or("");
        let domain = entry.trim_start_matches('.');
        entry == "*"
            || (!domain.is_empty() && (host == domain || host.ends_with(&format!(".{domain}"))))
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes.get(i), bytes.get(i + 1), bytes.get(i + 2)) {
            (Some(b'%'), Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                let value = hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0);
                out.push(u8::try_from(value).unwrap_or(b'?'));
                i += 3;
            }
            (Some(&b), _, _) => {
                out.push(b);
                i += 1;
            }
            _ => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn proxy_urls_parse_and_credentials_stay_out_of_debug_and_errors() {
        let p = Proxy::parse("http://us%40er:p%3Ass@proxy.local:3128").unwrap();
        assert_eq!(
            (p.kind(), p.host.as_str(), p.port),
            (ProxyKind::Http, "proxy.local", 3128)
        );
        let (user, pass) = p.auth.clone().unwrap();
        assert_eq!((user.as_str(), pass.expose()), ("us@er", "p:ss"));
        assert!(!format!("{p:?}").contains("p:ss"));
        let s = Proxy::parse("socks5h://[::1]:1080").unwrap();
        assert_eq!(
            (s.kind(), s.host.as_str(), s.port),
            (ProxyKind::Socks5, "::1", 1080)
        );
        let err = Proxy::parse("ftp://u:topsecret@h:1").unwrap_err();
        assert!(!format!("{err} {err:?}").contains("topsecret"));
    }

    #[test]
    fn the_environment_chooses_the_proxy_and_no_proxy_bypasses_it() {
        let url = "wss://ws.kraken.com/v2";
        let vars = [
            ("HTTPS_PROXY", "http://p:8080"),
            ("ALL_PROXY", "socks5://s:1080"),
        ];
        let p = Proxy::from_lookup(url, env(&vars)).unwrap().unwrap();
        assert_eq!(p.kind(), ProxyKind::Http);
        let vars = [("all_proxy", "socks5://s:1080")];
        let p = Proxy::from_lookup(url, env(&vars)).unwrap().unwrap();
        assert_eq!(p.kind(), ProxyKind::Socks5);
        for no_proxy in ["*", "kraken.com", ".kraken.com", "other, ws.kraken.com:443"] {
            let vars = [("HTTPS_PROXY", "http://p:8080"), ("NO_PROXY", no_proxy)];
            assert!(
                Proxy::from_lookup(url, env(&vars)).unwrap().is_none(),
                "{no_proxy}"
            );
        }
        let vars = [
            ("HTTPS_PROXY", "http://p:8080"),
            ("NO_PROXY", "notkraken.com,raken.com"),
        ];
        assert!(Proxy::from_lookup(url, env(&vars)).unwrap().is_some());
        assert!(Proxy::from_lookup(url, env(&[])).unwrap().is_none());
    }
}
