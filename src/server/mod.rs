//! The accept loop and process lifecycle: bind, accept, spawn one session task per client,
//! drain on shutdown. Nothing here inspects protocol messages.

mod listener;
pub mod signals;

pub use listener::{BindError, Proxy, RunningProxy};
