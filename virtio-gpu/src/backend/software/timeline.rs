//! Fence timelines of the software backend.
//!
//! Commands run at submit time, but a ring stays "busy" for the DELAY_US its commands asked for;
//! a fence waits only for that deadline (see [`crate::backend::fence_timeline`]).

/// Software fences wait for nothing but their deadline.
pub type Timelines = crate::backend::fence_timeline::Timelines<()>;
