//! The guest target: each batch runs inside a VM of our VMM (`vgpu run`) whose image carries the
//! test program and Mesa's venus driver (`guests/nested/build.sh --venus` builds one). The
//! guest's init runs the command line's `vgpu_run=` command ('+' for spaces) and powers off;
//! results come back over the serial console, which `vgpu run` prints.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::ConformanceError;

#[derive(Clone, Debug)]
pub struct GuestVm {
    /// The `vgpu` that boots the VM.
    pub vgpu: PathBuf,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    /// Guest memory, as `vgpu run --mem` takes it.
    pub mem: String,
    /// The GPU, as `vgpu run --gpu` takes it.
    pub gpu: String,
}

/// Keeps the console quiet (each byte costs a VM exit) and lets the init's reset end the VM.
const CMDLINE: &str =
    "console=ttyS0 reboot=k panic=-1 loglevel=4 i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd";

impl GuestVm {
    /// `inner` (a test program and its arguments, the program found on the guest's PATH by its
    /// file name) run inside a VM.
    pub fn wrap(&self, inner: &Command) -> Result<Command, ConformanceError> {
        let program = Path::new(inner.get_program())
            .file_name()
            .ok_or_else(|| ConformanceError::Suite("test program without a name".into()))?;
        let mut words = vec![program.to_string_lossy().into_owned()];
        words.extend(inner.get_args().map(|a| a.to_string_lossy().into_owned()));
        if let Some(w) = words
            .iter()
            .find(|w| w.contains([' ', ',', '+']) || w.is_empty())
        {
            return Err(ConformanceError::Suite(format!(
                "{w:?} cannot be passed on a guest's kernel command line"
            )));
        }
        let mut c = Command::new(&self.vgpu);
        c.arg("run")
            .arg("--kernel")
            .arg(&self.kernel)
            .arg("--initrd")
            .arg(&self.initrd)
            .args(["--mem", &self.mem, "--cpus", "1", "--gpu", &self.gpu])
            .arg("--cmdline")
            .arg(format!("{CMDLINE} vgpu_run={}", words.join("+")));
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_becomes_the_guest_inits_command() {
        let vm = GuestVm {
            vgpu: "/bin/vgpu".into(),
            kernel: "/l2/vmlinuz".into(),
            initrd: "/l2/venus.cpio.gz".into(),
            mem: "1G".into(),
            gpu: "virtio,backend=vulkan".into(),
        };
        let mut inner = Command::new("/host/target/release/vk-conformance");
        inner.args(["--check", "compute_dispatch", "--check", "events"]);
        let c = vm.wrap(&inner).unwrap();
        let args: Vec<String> = c
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            &args[..5],
            [
                "run",
                "--kernel",
                "/l2/vmlinuz",
                "--initrd",
                "/l2/venus.cpio.gz"
            ]
        );
        assert!(args
            .last()
            .unwrap()
            .ends_with(" vgpu_run=vk-conformance+--check+compute_dispatch+--check+events"));
        assert!(args
            .windows(2)
            .any(|w| w == ["--gpu", "virtio,backend=vulkan"]));
        let mut bad = Command::new("vk-conformance");
        bad.arg("a b");
        assert!(vm.wrap(&bad).is_err());
    }
}
