//! The Venus protocol: wire rules (hand-written), the generated types, decoders and reply
//! encoders, and the capset.

pub mod capset;
pub mod wire;

/// Generated from vk.xml and protocol/venus_mesa.xml by build/ (see protocol/served.txt).
#[allow(
    non_snake_case,
    non_camel_case_types,
    non_upper_case_globals,
    dead_code,
    unused_parens,
    clippy::all
)]
pub mod generated {
    use std::ffi::{c_char, c_void};

    pub use super::wire::{
        mut_ptr_or_null, opt_ptr, ptr_or_null, zeroed, Arena, BaseStructure, Cursor, DecodeError,
        Decoder, Encoder, Handle, Lookup, Zeroed, COMMAND_GENERATE_REPLY,
    };

    include!(concat!(env!("OUT_DIR"), "/venus_generated.rs"));
}
