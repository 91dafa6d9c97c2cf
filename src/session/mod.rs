//! One task per client session; the only place that owns both sockets.

mod hooks;

pub use hooks::{Decision, Hooks, PassThrough, Plan, Position, SessionHooks, SessionInfo};
