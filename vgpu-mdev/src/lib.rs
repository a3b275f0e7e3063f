//! vGPU slice management: SR-IOV VFs, mdev instances and software slices with memory quotas.
//!
//! Nothing is implemented yet; the crate holds the place in the workspace.
