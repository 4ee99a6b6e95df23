//! A `wss://` server on 127.0.0.1 with a certificate from a CA made in the
//! test (rcgen), for the TLS tests. It records the SNI of every TLS handshake,
//! then speaks WebSocket: sends `hello` and reads until the client goes.

use std::sync::{Arc, Mutex};

use futures::{SinkExt, StreamExt};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tungstenite::Message;

/// A test CA and a leaf certificate for `localhost` signed by it.
pub struct TestCa {
    pub ca_der: CertificateDer<'static>,
    leaf_chain: Vec<CertificateDer<'static>>,
    leaf_key: PrivatePkcs8KeyDer<'static>,
}

impl TestCa {
    pub fn new() -> TestCa {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "resilient-ws test CA");
        let ca_key = KeyPair::generate().expect("ca key");
        let ca = CertifiedIssuer::self_signed(ca_params, ca_key).expect("ca cert");
        let leaf_key = KeyPair::generate().expect("leaf key");
        let leaf_params =
            CertificateParams::new(vec!["localhost".to_owned()]).expect("leaf params");
        let leaf = leaf_params.signed_by(&leaf_key, &ca).expect("leaf cert");
        TestCa {
            ca_der: ca.der().clone(),
            leaf_chain: vec![leaf.der().clone(), ca.der().clone()],
            leaf_key: PrivatePkcs8KeyDer::from(leaf_key.serialize_der()),
        }
    }

    /// A server config presenting the `localhost` leaf (ring provider, explicit).
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(
            self.leaf_chain.clone(),
            PrivateKeyDer::Pkcs8(self.leaf_key.clone_key()),
        )
        .expect("server cert");
        Arc::new(config)
    }

    /// A root store holding only this CA.
    pub fn roots(&self) -> rustls::RootCertStore {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_der.clone()).expect("add test CA");
        roots
    }
}

/// A running `wss://` test server.
pub struct TlsServer {
    pub port: u16,
    /// The SNI of every TLS handshake that completed (`None`: none sent).
    pub sni: Arc<Mutex<Vec<Option<String>>>>,
    /// WebSocket handshakes completed.
    pub upgrades: Arc<Mutex<u32>>,
}

impl TlsServer {
    pub async fn start(ca: &TestCa) -> TlsServer {
        let acceptor = TlsAcceptor::from(ca.server_config());
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let sni = Arc::new(Mutex::new(Vec::new()));
        let upgrades = Arc::new(Mutex::new(0));
        let (sni_log, upgrade_log) = (Arc::clone(&sni), Arc::clone(&upgrades));
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let (sni_log, upgrade_log) = (Arc::clone(&sni_log), Arc::clone(&upgrade_log));
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let name = tls.get_ref().1.server_name().map(str::to_owned);
                    sni_log.lock().expect("sni").push(name);
                    let Ok(mut ws) = tokio_tungstenite::accept_async(tls).await else {
                        return;
                    };
                    *upgrade_log.lock().expect("upgrades") += 1;
                    if ws.send(Message::text("hello")).await.is_err() {
                        return;
                    }
                    while let Some(Ok(_)) = ws.next().await {}
                });
            }
        });
        TlsServer {
            port,
            sni,
            upgrades,
        }
    }
}
