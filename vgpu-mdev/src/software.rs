//! Software slices of one host GPU (`vgpu slices serve`) as a mediated-device parent of their
//! own, so `vgpu mdev types|list|start|stop` manage them with the hardware kinds. The slice
//! server is reached through this trait (the VMM implements it over the server's control
//! socket); where no server runs, the parent is simply absent, as an unloaded driver's is.

use crate::mdev::{Instance, MdevError, MdevType};

/// The parent name software slices appear under.
pub const PARENT: &str = "vgpu-slices";

/// What `device_api` software slices report: they are served over vtest, not vfio-pci.
pub const DEVICE_API: &str = "vtest";

pub trait SoftwareSlices {
    fn types(&self) -> Result<Vec<MdevType>, MdevError>;
    fn instances(&self) -> Result<Vec<Instance>, MdevError>;
    /// A new slice of `mdev_type` named `uuid`.
    fn create(&self, mdev_type: &str, uuid: &str) -> Result<(), MdevError>;
    /// Removes a slice no tenant is connected to.
    fn remove(&self, uuid: &str) -> Result<(), MdevError>;
}

/// A slice's UUID from its name, stable across restarts of the server: the slices a config
/// file names get one each (FNV-1a, 128 bits, with the RFC 4122 variant and version 8 bits).
pub fn uuid_for(name: &str) -> String {
    const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
    const PRIME: u128 = 0x0000000001000000000000000000013b;
    let mut h = OFFSET;
    for b in format!("{PARENT}/{name}").bytes() {
        h ^= u128::from(b);
        h = h.wrapping_mul(PRIME);
    }
    h = (h & !(0xf << 76)) | (0x8 << 76);
    h = (h & !(0x3 << 62)) | (0x2 << 62);
    let x = format!("{h:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &x[..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_get_stable_distinct_valid_uuids() {
        let a = uuid_for("train");
        assert_eq!(a, uuid_for("train"));
        assert_ne!(a, uuid_for("infer"));
        assert_eq!(crate::mdev::parse_uuid(&a).unwrap(), a);
        assert_eq!(&a[14..15], "8", "version nibble");
    }
}
