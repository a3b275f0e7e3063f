//! Time-sliced GPU context scheduler.
//!
//! Decides which tenant (a vGPU slice, a VM's GPU context) gets the device next and for how
//! long. Jobs are not preemptible once submitted, so a slice ends at a job boundary and
//! overrun is paid back in later slices. Policies (best-effort, equal-share, fixed-share,
//! weighted, fair, deadline) sit behind one narrow [`policy::Policy`] trait and can be switched
//! at run time. Time comes from an injected [`clock::Clock`], so every policy is tested
//! deterministically; the [`executor`]s run workloads in simulated time or on host Vulkan, and
//! [`bench`] turns runs into the fairness table.

pub mod bench;
pub mod clock;
pub mod executor;
mod font;
pub mod live;
pub mod metrics;
pub mod params;
pub mod plot;
pub mod policy;
pub mod scheduler;
pub mod tenant;
pub mod workload;

pub use clock::{Clock, MonotonicClock, Nanos, SimClock, MS};
pub use live::{LiveScheduler, TenantStats};
pub use params::Params;
pub use policy::{Policy, PolicyKind};
pub use scheduler::{Decision, Dispatch, SchedError, Scheduler, WatchdogEvent};
pub use tenant::{JobId, Priority, TenantClass, TenantId, TenantSpec};
