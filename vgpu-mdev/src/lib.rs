//! vGPU slice management, under `vgpu mdev` and `vgpu sriov`: the host's slicing as the kernel
//! shows it in sysfs (mediated-device parents, their types and instances; SR-IOV physical
//! functions and their virtual functions), and mdevctl's persistent definitions
//! (`/etc/mdevctl.d/<parent>/<uuid>`), so a slice defined by either tool is seen by the other.
//!
//! Every path is taken under an injectable root ([`sysfs::Sysfs`], [`mdevctl::ConfigStore`]):
//! unit tests run against fake trees, the nested tests against the real one.
//!
//! Layout: [`sysfs`] (reading and writing attributes), [`mdev`] (parents, types, instances),
//! [`mdevctl`] (definitions), [`report`] (mdevctl's listings, text and JSON), [`sriov`] (PFs
//! and VFs), [`vfio_host`] (IOMMU groups and vfio-pci binding) and [`software`] (the slice server's software slices as a parent of their own).

pub mod mdev;
pub mod mdevctl;
pub mod report;
pub mod software;
pub mod sriov;
pub mod sysfs;
pub mod vfio_host;

/// Fake sysfs trees, for the tests here and the end-to-end tests of `vgpu mdev`.
pub mod fake;
