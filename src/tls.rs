//! TLS for `wss://`: which crypto provider and which root certificates.
//!
//! Rules, and why:
//! - A provider is always passed explicitly
//!   (`ClientConfig::builder_with_provider`); the crate never installs a
//!   process-wide default, because a library must not touch global state that
//!   the application (or another library) owns.
//! - The provider is chosen by cargo feature: `aws-lc-rs` when enabled, else
//!   `ring` (the default). The roots: the OS store with `native-roots`, plus
//!   the Mozilla roots with `webpki-roots` (the default). With neither roots
//!   feature, pass your own config with
//!   [`ConfigBuilder::tls_config`](crate::ConfigBuilder::tls_config).
//! - Certificate verification is always on in what this module builds. A
//!   custom CA goes into [`root_store`] and a config built from it.

use std::sync::Arc;

#[cfg(not(any(feature = "ring", feature = "aws-lc-rs")))]
compile_error!(
    "resilient-ws needs a TLS provider: enable the `ring` (default) or `aws-lc-rs` feature"
);

use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, RootCertStore};

/// The crypto provider the cargo features select (`aws-lc-rs`, else `ring`).
pub fn provider() -> Arc<CryptoProvider> {
    #[cfg(feature = "aws-lc-rs")]
    {
        Arc::new(rustls::crypto::aws_lc_rs::default_provider())
    }
    #[cfg(not(feature = "aws-lc-rs"))]
    {
        Arc::new(rustls::crypto::ring::default_provider())
    }
}

/// The root certificates the cargo features select: the OS store
/// (`native-roots`) and the Mozilla roots (`webpki-roots`, default).
///
/// OS certificates that fail to load or parse are skipped with a warning: one
/// broken system certificate must not stop every connection.
pub fn root_store() -> RootCertStore {
    #[allow(unused_mut)]
    let mut roots = RootCertStore::empty();
    #[cfg(feature = "webpki-roots")]
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    #[cfg(feature = "native-roots")]
    {
        let loaded = rustls_native_certs::load_native_certs();
        if !loaded.errors.is_empty() {
            tracing::warn!(
                errors = loaded.errors.len(),
                "some OS root certificates could not be loaded"
            );
        }
        let (added, ignored) = roots.add_parsable_certificates(loaded.certs);
        tracing::debug!(added, ignored, "OS root certificates");
    }
    roots
}

/// A client config from [`provider`] and [`root_store`], certificate
/// verification on, no client certificate.
///
/// # Errors
///
/// When the provider supports no safe protocol version (not with the bundled ones).
pub fn client_config() -> Result<Arc<ClientConfig>, rustls::Error> {
    client_config_with_roots(root_store())
}

/// Like [`client_config`] with your own roots (e.g. a private CA).
///
/// # Errors
///
/// As [`client_config`].
pub fn client_config_with_roots(roots: RootCertStore) -> Result<Arc<ClientConfig>, rustls::Error> {
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tls_config_builds_without_a_process_default_provider() {
        assert!(CryptoProvider::get_default().is_none());
        assert!(client_config().is_ok());
        assert!(CryptoProvider::get_default().is_none());
    }
}
