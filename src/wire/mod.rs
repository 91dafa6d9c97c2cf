//! Wire framing: bytes in, frames out. Pure: no sockets, no `async`.
//!
//! A [`Frame`] keeps the exact bytes it was read from, so a relayed frame is forwarded
//! unchanged; typed views ([`decode`]) are built only for the frames the proxy inspects,
//! and [`encode`] builds only the frames the proxy creates. pgwire does the decoding and
//! encoding of message bodies; the framing, length limits and tag dispatch are ours.

pub mod decode;
pub mod encode;
pub mod frame;
pub mod sqlstate;
pub mod startup;

pub use frame::{BackendTag, Frame, FrameError, FrontendTag, MAX_FRAME_LEN};

/// Transaction status reported by ReadyForQuery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TxStatus {
    /// Not in a transaction block (`I`).
    #[default]
    Idle,
    /// In a transaction block (`T`).
    InTransaction,
    /// In a failed transaction block (`E`).
    Failed,
}

impl TxStatus {
    /// The status byte of ReadyForQuery.
    pub fn byte(self) -> u8 {
        match self {
            Self::Idle => b'I',
            Self::InTransaction => b'T',
            Self::Failed => b'E',
        }
    }

    /// Reads a ReadyForQuery status byte.
    pub fn from_byte(b: u8) -> Option<Self> {
        match b {
            b'I' => Some(Self::Idle),
            b'T' => Some(Self::InTransaction),
            b'E' => Some(Self::Failed),
            _ => None,
        }
    }
}
