//! Software slices of one host GPU: a memory quota and a share of the device each, every
//! allocation charged to the quota and every queue submission gated by the live scheduler.
//! `config` reads the slices file, `server` serves the slices and answers `control` requests.

pub mod config;
pub mod control;
pub mod server;

pub use config::{ConfigError, SlicesConfig};
pub use server::{ServeError, SliceServer};
