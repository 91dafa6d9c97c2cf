//! The connection to PostgreSQL: TCP (with TCP_NODELAY, TLS per `upstream_sslmode`) or a
//! unix socket.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
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

impl AsyncRead for UpstreamStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Self::Unix(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for UpstreamStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Self::Unix(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_flush(cx),
            Self::Unix(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Self::Unix(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
