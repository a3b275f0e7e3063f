//! `vgpu install`: puts `vgpu` on the PATH and tells libvirt about our vhost-user GPU backend.
//!
//! libvirt picks a `<video><driver name='vhostuser'/></video>` backend from QEMU's interop
//! descriptors (docs/interop/vhost-user.json): JSON files of type "gpu" in
//! /usr/share/qemu/vhost-user, /etc/qemu/vhost-user and, for session libvirt,
//! $XDG_CONFIG_HOME/qemu/vhost-user, taken in file-name order, the first whose binary answers
//! `--print-capabilities` with what the domain needs. Ours is named to sort before QEMU's own
//! `50-qemu-gpu.json`. A descriptor names one executable and libvirt runs it with only `--fd=N`,
//! so the install adds `libexec/vgpu-vhost-user-gpu`, a link to `vgpu` that `main` runs as
//! `vgpu vhost-user-gpu`.
//!
//! ```sh
//! vgpu install                  # root: /usr/local/bin and /etc/qemu/vhost-user
//! vgpu install --uninstall      # removes the three files again
//! ```

use std::path::{Path, PathBuf};

use clap::Args;

/// The descriptor's file name: before QEMU's `50-qemu-gpu.json` in libvirt's order.
pub const DESCRIPTOR_NAME: &str = "10-vgpu-gpu.json";
/// The program name under which `vgpu` acts as `vgpu vhost-user-gpu`.
pub const VHOST_USER_GPU_ALIAS: &str = "vgpu-vhost-user-gpu";

#[derive(Debug, Args)]
pub struct InstallArgs {
    /// Installation prefix (bin/vgpu, libexec/vgpu-vhost-user-gpu).
    /// Default: /usr/local for root, ~/.local otherwise.
    #[arg(long)]
    pub prefix: Option<PathBuf>,
    /// Where the vhost-user descriptor goes. Default: /etc/qemu/vhost-user for root (system
    /// libvirt), $XDG_CONFIG_HOME/qemu/vhost-user otherwise (session libvirt).
    #[arg(long)]
    pub vhost_user_dir: Option<PathBuf>,
    /// Remove what an install with the same paths put there.
    #[arg(long)]
    pub uninstall: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("no HOME to install under (give --prefix and --vhost-user-dir)")]
    NoHome,
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} is not ours (its binary is not {1}); left in place")]
    NotOurs(PathBuf, PathBuf),
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> InstallError {
    let path = path.to_path_buf();
    move |source| InstallError::Io { what, path, source }
}

/// The three paths an install writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub binary: PathBuf,
    pub alias: PathBuf,
    pub descriptor: PathBuf,
}

impl Layout {
    pub fn new(prefix: &Path, vhost_user_dir: &Path) -> Self {
        Layout {
            binary: prefix.join("bin/vgpu"),
            alias: prefix.join("libexec").join(VHOST_USER_GPU_ALIAS),
            descriptor: vhost_user_dir.join(DESCRIPTOR_NAME),
        }
    }

    /// The descriptor's JSON (QEMU's interop vhost-user.json schema).
    pub fn descriptor_json(&self) -> String {
        let doc = serde_json::json!({
            "description": "vgpu virtio-gpu (Vulkan or software renderer)",
            "type": "gpu",
            "binary": self.alias,
        });
        format!("{doc:#}\n")
    }
}

/// The defaults of `--prefix` and `--vhost-user-dir` for this user.
fn default_layout(args: &InstallArgs) -> Result<Layout, InstallError> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let home = || {
        std::env::var_os("HOME")
            .map(PathBuf::from)
            .ok_or(InstallError::NoHome)
    };
    let prefix = match &args.prefix {
        Some(p) => p.clone(),
        None if root => PathBuf::from("/usr/local"),
        None => home()?.join(".local"),
    };
    let dir = match &args.vhost_user_dir {
        Some(d) => d.clone(),
        None if root => PathBuf::from("/etc/qemu/vhost-user"),
        None => match std::env::var_os("XDG_CONFIG_HOME") {
            Some(c) => PathBuf::from(c).join("qemu/vhost-user"),
            None => home()?.join(".config/qemu/vhost-user"),
        },
    };
    // The alias and the descriptor name the binary by an absolute path.
    let absolute = |p: PathBuf| std::path::absolute(&p).map_err(io("resolving", &p));
    Ok(Layout::new(&absolute(prefix)?, &absolute(dir)?))
}

/// Copies `exe` to the layout's binary (through a temporary name, so a running `vgpu` is not
/// overwritten in place), links the alias to it and writes the descriptor.
pub fn install(layout: &Layout, exe: &Path) -> Result<(), InstallError> {
    for path in [&layout.binary, &layout.alias, &layout.descriptor] {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
        }
    }
    let tmp = layout.binary.with_extension("new");
    std::fs::copy(exe, &tmp).map_err(io("copying vgpu to", &tmp))?;
    std::fs::rename(&tmp, &layout.binary).map_err(io("renaming", &tmp))?;
    let _ = std::fs::remove_file(&layout.alias);
    std::os::unix::fs::symlink(&layout.binary, &layout.alias)
        .map_err(io("linking", &layout.alias))?;
    std::fs::write(&layout.descriptor, layout.descriptor_json())
        .map_err(io("writing", &layout.descriptor))?;
    Ok(())
}

/// Removes what [`install`] wrote; a descriptor naming another binary is left alone.
pub fn uninstall(layout: &Layout) -> Result<(), InstallError> {
    if let Ok(text) = std::fs::read_to_string(&layout.descriptor) {
        let binary = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("binary").and_then(|b| b.as_str()).map(PathBuf::from));
        if binary.as_deref() != Some(layout.alias.as_path()) {
            return Err(InstallError::NotOurs(
                layout.descriptor.clone(),
                layout.alias.clone(),
            ));
        }
    }
    for path in [&layout.descriptor, &layout.alias, &layout.binary] {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io("removing", path)(e));
            }
            _ => {}
        }
    }
    Ok(())
}

pub fn run(args: InstallArgs) -> Result<(), InstallError> {
    let layout = default_layout(&args)?;
    if args.uninstall {
        uninstall(&layout)?;
        println!(
            "removed {}, {} and {}",
            layout.descriptor.display(),
            layout.alias.display(),
            layout.binary.display()
        );
        return Ok(());
    }
    let exe = std::env::current_exe().map_err(io("finding", Path::new("vgpu")))?;
    install(&layout, &exe)?;
    println!("installed {}", layout.binary.display());
    println!(
        "installed {} (runs as `vgpu vhost-user-gpu`)",
        layout.alias.display()
    );
    println!(
        "installed {}: libvirt's <video><driver name='vhostuser'/></video> now starts vgpu",
        layout.descriptor.display()
    );
    Ok(())
}

/// The arguments `main` should parse: `vgpu-vhost-user-gpu ARGS` reads as
/// `vgpu vhost-user-gpu ARGS`.
pub fn args_with_alias(mut args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let invoked_as = args
        .first()
        .and_then(|a| Path::new(a).file_name())
        .is_some_and(|n| n == VHOST_USER_GPU_ALIAS);
    if invoked_as {
        args.insert(1, "vhost-user-gpu".into());
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("vgpu-install-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn install_writes_binary_alias_and_descriptor_and_uninstall_removes_them() {
        let dir = temp("roundtrip");
        let layout = Layout::new(&dir.join("prefix"), &dir.join("vhost-user"));
        let exe = std::env::current_exe().unwrap();
        install(&layout, &exe).unwrap();
        assert_eq!(
            std::fs::metadata(&layout.binary).unwrap().len(),
            std::fs::metadata(&exe).unwrap().len()
        );
        assert_eq!(std::fs::read_link(&layout.alias).unwrap(), layout.binary);
        let doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&layout.descriptor).unwrap()).unwrap();
        assert_eq!(doc["type"], "gpu");
        assert_eq!(doc["binary"], layout.alias.to_str().unwrap());
        // Installing again over a previous install works (an upgrade).
        install(&layout, &exe).unwrap();
        uninstall(&layout).unwrap();
        for path in [&layout.binary, &layout.alias, &layout.descriptor] {
            assert!(!path.exists(), "{} left behind", path.display());
        }
        // Nothing left to remove is not an error.
        uninstall(&layout).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn uninstall_leaves_a_descriptor_that_names_another_binary() {
        let dir = temp("foreign");
        let layout = Layout::new(&dir.join("prefix"), &dir.join("vhost-user"));
        std::fs::create_dir_all(layout.descriptor.parent().unwrap()).unwrap();
        let foreign = r#"{"type": "gpu", "binary": "/usr/lib/qemu/vhost-user-gpu"}"#;
        std::fs::write(&layout.descriptor, foreign).unwrap();
        assert!(matches!(uninstall(&layout), Err(InstallError::NotOurs(..))));
        assert_eq!(
            std::fs::read_to_string(&layout.descriptor).unwrap(),
            foreign
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn alias_reads_as_the_vhost_user_gpu_subcommand() {
        let args = |v: &[&str]| v.iter().map(std::ffi::OsString::from).collect::<Vec<_>>();
        assert_eq!(
            args_with_alias(args(&["/usr/local/libexec/vgpu-vhost-user-gpu", "--fd=3"])),
            args(&[
                "/usr/local/libexec/vgpu-vhost-user-gpu",
                "vhost-user-gpu",
                "--fd=3"
            ])
        );
        assert_eq!(
            args_with_alias(args(&["/usr/local/bin/vgpu", "install"])),
            args(&["/usr/local/bin/vgpu", "install"])
        );
    }
}
