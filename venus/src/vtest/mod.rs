//! The vtest door to the renderer: Mesa's venus driver on the host (`VN_DEBUG=vtest`) connects
//! to a UNIX socket instead of a virtio-gpu device. Each client is served by a worker process of
//! its own, so a host driver crash provoked by one client ends that client alone.

pub mod protocol;
pub mod server;
pub mod session;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum VtestError {
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Protocol(#[from] protocol::VtestProtocolError),
    #[error("no context: CONTEXT_INIT has not been sent")]
    NoContext,
    #[error("CONTEXT_INIT with capset {0}: only one venus (4) context per client")]
    BadContext(u32),
    #[error("unsupported blob: {0}")]
    BadBlob(String),
    #[error(transparent)]
    Render(#[from] crate::context::RenderError),
    #[error(transparent)]
    Resource(#[from] crate::resource::ResourceError),
}

pub use server::{serve, serve_slice, SliceClients};
