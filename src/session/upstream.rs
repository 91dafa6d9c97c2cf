//! The connection to PostgreSQL: TCP (with TCP_NODELAY, TLS per `upstream_sslmode`) or a
//! unix socket.

use tokio::net::{TcpStream, UnixStream};

use crate::config::UpstreamAddr;
use crate::tls::UpstreamTls;

/// A connected upstream socket.
pub enum UpstreamStream {
    /// TCP.
    Tcp(TcpStream),
    /// Unix-domain socket.
    Unix(UnixStream),
    /// TLS over TCP.
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// Connects a session's upstream: [`connect`], then TLS as `tls` says.
pub async fn connect_session(
    addr: &UpstreamAddr,
    tls: Option<&UpstreamTls>,
) -> std::io::Result<UpstreamStream> {
    let stream = connect(addr).await?;
    match (stream, tls) {
        (UpstreamStream::Tcp(tcp), Some(tls)) => Ok(match tls.negotiate(tcp).await? {
            Ok(encrypted) => UpstreamStream::Tls(Box::new(encrypted)),
            Err(plain) => UpstreamStream::Tcp(plain),
        }),
        (stream, _) => Ok(stream),
    }
}

/// Connects to the server, in plain text (also how a CancelRequest travels).
pub async fn connect(addr: &UpstreamAddr) -> std::io::Result<UpstreamStream> {
    match addr {
        UpstreamAddr::Tcp(hostport) => {
            let stream = TcpStream::connect(hostport.as_str()).await?;
            stream.set_nodelay(true)?;
            Ok(UpstreamStream::Tcp(stream))
        }
        UpstreamAddr::Unix { dir, port } => {
            let path = dir.join(format!(".s.PGSQL.{port}"));
            Ok(UpstreamStream::Unix(UnixStream::connect(path).await?))
        }
    }
}

crate::io_enum::delegate_async_io!(UpstreamStream { Tcp, Unix, Tls });
