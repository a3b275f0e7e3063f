//! A Venus renderer: Mesa's venus Vulkan driver (in a guest, or on the host over vtest) sends
//! Vulkan commands serialized by the Venus protocol; this crate decodes them (decoders generated
//! from vk.xml at build time), runs them on host Vulkan through ash, and encodes the replies.

pub mod context;
pub mod driver_stream;
pub mod objects;
pub mod protocol;
pub mod resource;
pub mod ring;
pub mod timeline;
pub mod transport;
pub mod vk;

pub use context::{Context, DeviceSelector, RenderError, StreamCx};
pub mod vtest;
