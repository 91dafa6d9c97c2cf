//! TLS to clients (SPEC §A2 `tls_cert` / `tls_key`) and to the server
//! (`upstream_sslmode`): rustls with the ring provider.
//!
//! PostgreSQL negotiates TLS inside its own protocol: the client sends SSLRequest, the
//! server answers `S` and the handshake follows on the same socket, or `N` and the client
//! goes on in plain text (or gives up, with `sslmode=require`). pgbelay answers `S` only
//! when a certificate is configured.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

use crate::config::{Settings, SslMode, UpstreamAddr};

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
    /// `upstream_sslmode = verify-full` without `upstream_sslrootcert`.
    #[error(
        "upstream_sslmode verify-full needs upstream_sslrootcert (the CA that signs the server's certificate)"
    )]
    NoRootCert,
    /// The upstream host is not a valid TLS server name.
    #[error("upstream host {0:?} is not a valid TLS server name")]
    ServerName(String),
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

/// How sessions reach the server over TLS (SPEC issue 6: `upstream_sslmode`).
#[derive(Clone)]
pub struct UpstreamTls {
    /// The mode, as libpq's sslmode.
    pub mode: SslMode,
    connector: tokio_rustls::TlsConnector,
    server_name: ServerName<'static>,
}

impl UpstreamTls {
    /// For `settings`; `None` for `disable` and for a unix-socket upstream (never
    /// encrypted, as with libpq).
    pub fn new(settings: &Settings) -> Result<Option<Self>, TlsError> {
        let UpstreamAddr::Tcp(hostport) = &settings.upstream else {
            return Ok(None);
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?;
        let config = match settings.upstream_sslmode {
            SslMode::Disable => return Ok(None),
            SslMode::Prefer | SslMode::Require => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                .with_no_client_auth(),
            SslMode::VerifyFull => {
                let Some(path) = &settings.upstream_sslrootcert else {
                    return Err(TlsError::NoRootCert);
                };
                let mut roots = rustls::RootCertStore::empty();
                for cert in CertificateDer::pem_file_iter(path)
                    .map_err(|e| TlsError::Certificate(path.clone(), e.to_string()))?
                {
                    let cert =
                        cert.map_err(|e| TlsError::Certificate(path.clone(), e.to_string()))?;
                    roots
                        .add(cert)
                        .map_err(|e| TlsError::Certificate(path.clone(), e.to_string()))?;
                }
                builder.with_root_certificates(roots).with_no_client_auth()
            }
        };
        let host = hostport
            .rsplit_once(':')
            .map_or(hostport.as_str(), |(host, _)| host)
            .trim_start_matches('[')
            .trim_end_matches(']');
        let server_name = ServerName::try_from(host.to_string())
            .map_err(|_| TlsError::ServerName(host.to_string()))?;
        Ok(Some(Self {
            mode: settings.upstream_sslmode,
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
            server_name,
        }))
    }

    /// Asks the server for TLS on a fresh connection (SSLRequest) and runs the handshake
    /// when it agrees. `Ok(Err(tcp))` hands the plain connection back when the server
    /// said no and the mode allows going on without TLS.
    pub async fn negotiate(
        &self,
        mut tcp: TcpStream,
    ) -> std::io::Result<Result<tokio_rustls::client::TlsStream<TcpStream>, TcpStream>> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        tcp.write_all(&crate::wire::startup::SSL_REQUEST_PACKET)
            .await?;
        let mut answer = [0u8; 1];
        tcp.read_exact(&mut answer).await?;
        match answer[0] {
            b'S' => Ok(Ok(self
                .connector
                .connect(self.server_name.clone(), tcp)
                .await?)),
            b'N' if self.mode == SslMode::Prefer => Ok(Err(tcp)),
            b'N' => Err(std::io::Error::other(
                "the server does not support TLS (upstream_sslmode requires it)",
            )),
            other => Err(std::io::Error::other(format!(
                "unexpected answer {other:#04x} to SSLRequest"
            ))),
        }
    }
}

/// `prefer` / `require`: encryption without authentication of the server, as libpq.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A client connection, before or after the TLS handshake.
pub enum ClientStream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP.
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

crate::io_enum::delegate_async_io!(ClientStream { Plain, Tls });
