//! TLS to clients (SPEC §A2 `tls_cert` / `tls_key`): rustls with the ring provider.
//!
//! PostgreSQL negotiates TLS inside its own protocol: the client sends SSLRequest, the
//! server answers `S` and the handshake follows on the same socket, or `N` and the client
//! goes on in plain text (or gives up, with `sslmode=require`). pgbelay answers `S` only
//! when a certificate is configured.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

use crate::config::Settings;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Only one of `tls_cert` and `tls_key` is set.
    #[error("tls_cert and tls_key must be set together")]
    Incomplete,
    /// The certificate file could not be read or holds no certificate.
    #[error("cannot read certificates from tls_cert {0}: {1}")]
    Certificate(PathBuf, String),
    /// The key file could not be read or holds no private key.
    #[error("cannot read a private key from tls_key {0}: {1}")]
    Key(PathBuf, String),
    /// rustls refused the pair (e.g. the key does not match the certificate).
    #[error("invalid TLS certificate or key: {0}")]
    Config(#[from] rustls::Error),
}

/// The acceptor for `settings`, `None` when TLS is not configured.
pub fn acceptor(settings: &Settings) -> Result<Option<TlsAcceptor>, TlsError> {
    match (&settings.tls_cert, &settings.tls_key) {
        (None, None) => Ok(None),
        (Some(cert), Some(key)) => Ok(Some(TlsAcceptor::from(server_config(cert, key)?))),
        _ => Err(TlsError::Incomplete),
    }
}

fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Certificate(cert.to_path_buf(), e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::Certificate(
            cert.to_path_buf(),
            "no certificate in the file".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| TlsError::Key(key.to_path_buf(), e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(Arc::new(config))
}

/// A client connection, before or after the TLS handshake.
pub enum ClientStream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP.
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl AsyncRead for ClientStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
