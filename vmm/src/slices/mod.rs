//! Software slices of one host GPU: a memory quota and a share of the device each, every
//! allocation charged to the quota and every queue submission gated by the live scheduler.
//! `config` reads the slices file, `server` serves the slices and answers `control` requests;
//! `mdev_parent` shows the server to `vgpu mdev` as a parent of its own.

pub mod config;
pub mod control;
pub mod mdev_parent;
pub mod server;

pub use config::{ConfigError, SlicesConfig};
pub use server::{ServeError, SliceServer};
