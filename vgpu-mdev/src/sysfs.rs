//! Attribute files under a root that stands for `/` (the real one, or a test's fake tree).

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SysfsError {
    #[error("{}: {err}", path.display())]
    Io { path: PathBuf, err: std::io::Error },
    #[error("{}: {value:?} is not a number", path.display())]
    NotANumber { path: PathBuf, value: String },
}

/// The file system root sysfs (and /etc) are found under.
#[derive(Clone, Debug)]
pub struct Sysfs {
    root: PathBuf,
}

impl Default for Sysfs {
    fn default() -> Self {
        Sysfs { root: "/".into() }
    }
}

impl Sysfs {
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Sysfs { root: root.into() }
    }

    /// `path` (absolute, as on a real system) under this root.
    pub fn path(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }

    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SysfsError + '_ {
        move |err| SysfsError::Io {
            path: path.to_path_buf(),
            err,
        }
    }

    /// An attribute's text without its trailing newline.
    pub fn read(&self, path: &Path) -> Result<String, SysfsError> {
        let text = std::fs::read_to_string(path).map_err(Self::io(path))?;
        Ok(text.trim_end_matches('\n').to_string())
    }

    pub fn read_u64(&self, path: &Path) -> Result<u64, SysfsError> {
        let value = self.read(path)?;
        value.trim().parse().map_err(|_| SysfsError::NotANumber {
            path: path.to_path_buf(),
            value,
        })
    }

    /// Writes an attribute as `echo VALUE > PATH` does (the kernel acts on the write).
    pub fn write(&self, path: &Path, value: &str) -> Result<(), SysfsError> {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(Self::io(path))?;
        f.write_all(format!("{value}\n").as_bytes())
            .map_err(Self::io(path))
    }

    /// The names in a directory, sorted; a missing directory is empty.
    pub fn list(&self, dir: &Path) -> Result<Vec<String>, SysfsError> {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Self::io(dir)(e)),
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        Ok(names)
    }

    /// The last component of a symlink's target (a driver's name, an IOMMU group's number).
    pub fn link_name(&self, link: &Path) -> Option<String> {
        let target = std::fs::read_link(link).ok()?;
        Some(target.file_name()?.to_string_lossy().into_owned())
    }
}
