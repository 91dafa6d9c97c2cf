//! CancelRequest routing: the client only ever sees the proxy's own BackendKeyData, so a
//! cancel (which arrives on a fresh connection) is looked up here and forwarded to exactly
//! the upstream backend that session is using.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rand::RngCore;
use tokio::io::AsyncWriteExt;

use crate::config::UpstreamAddr;
use crate::wire::startup::cancel_request;

/// The upstream backend's key, as the server sent it.
#[derive(Debug, Clone)]
pub struct UpstreamKey {
    /// Where the server is.
    pub addr: UpstreamAddr,
    /// Backend process id.
    pub pid: u32,
    /// Backend secret key.
    pub secret: Vec<u8>,
}

/// The key pgbelay hands the client instead of the server's.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientKey {
    /// Proxy-chosen process id.
    pub pid: u32,
    /// Proxy-chosen secret.
    pub secret: Vec<u8>,
}

/// Shared map from client keys to upstream keys.
#[derive(Debug, Default, Clone)]
pub struct CancelMap {
    inner: Arc<Mutex<HashMap<ClientKey, UpstreamKey>>>,
}

/// Removes its entry from the map when the session ends.
#[derive(Debug)]
pub struct Registration {
    map: CancelMap,
    key: ClientKey,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Ok(mut map) = self.map.inner.lock() {
            map.remove(&self.key);
        }
    }
}

impl CancelMap {
    /// Registers an upstream key under a fresh random client key.
    pub fn register(&self, upstream: UpstreamKey) -> Registration {
        let mut rng = rand::rng();
        loop {
            // A positive i32, as PostgreSQL pids are; 4-byte secret (protocol 3.0).
            let pid = rng.next_u32() >> 1;
            let mut secret = vec![0u8; 4];
            rng.fill_bytes(&mut secret);
            let key = ClientKey { pid, secret };
            if let Ok(mut map) = self.inner.lock()
                && !map.contains_key(&key)
            {
                map.insert(key.clone(), upstream.clone());
                return Registration {
                    map: self.clone(),
                    key,
                };
            }
        }
    }

    /// Looks a client key up.
    pub fn lookup(&self, pid: u32, secret: &[u8]) -> Option<UpstreamKey> {
        let key = ClientKey {
            pid,
            secret: secret.to_vec(),
        };
        self.inner.lock().ok()?.get(&key).cloned()
    }
}

impl Registration {
    /// The key to send to the client.
    pub fn client_key(&self) -> &ClientKey {
        &self.key
    }
}

/// Sends a CancelRequest for `key` to its server on a new connection.
pub async fn forward_cancel(key: &UpstreamKey, timers: &super::Timers) -> std::io::Result<()> {
    let mut stream = super::upstream::connect(&key.addr).await?;
    stream
        .write_all(&cancel_request(key.pid, &key.secret))
        .await?;
    stream.flush().await?;
    // The server closes the connection without replying; wait briefly for that so the
    // request is not cut off by our own close.
    let mut byte = [0u8; 1];
    let _ = timers
        .timeout(
            std::time::Duration::from_secs(2),
            tokio::io::AsyncReadExt::read(&mut stream, &mut byte),
        )
        .await;
    Ok(())
}
