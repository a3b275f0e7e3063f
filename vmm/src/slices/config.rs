//! The slices file `vgpu slices serve --config FILE` reads:
//!
//! ```toml
//! policy = "weighted"          # best-effort | equal-share | fixed-share | weighted | fair | deadline
//! slice_ms = 2                 # the scheduler's time slice
//! anticipation_us = 2000       # how long a tenant that just finished a job keeps its turn
//! control = "/tmp/vgpu-slices.sock"
//!
//! [[slice]]
//! name = "train"
//! memory = "2G"                # the quota: every allocation of the slice counts
//! weight = 3                   # weighted, fair and deadline policies
//! share = 60                   # fixed-share: percent of the device reserved
//! priority = "high"            # low | normal | high
//! class = "batch"              # batch | interactive
//! socket = "/tmp/train.sock"   # its vtest socket (default: <name>.sock beside the control socket)
//! vhost_user = "/tmp/train-gpu.sock"  # also a vhost-user GPU device (QEMU: vhost-user-gpu-pci)
//!
//! [[type]]                     # a profile slices are made of at run time (`vgpu mdev start`)
//! name = "1G"                  # the mdev type vgpu-slices-1G
//! memory = "1G"
//! instances = 4                # at most this many live at once
//! weight = 1                   # and priority, class, share as for a slice
//! ```

use std::path::{Path, PathBuf};

use scheduler::{Params, PolicyKind, Priority, TenantSpec, MS};
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("{0}: {1}")]
    Parse(PathBuf, String),
    #[error("slice {slice:?}: {why}")]
    Slice { slice: String, why: String },
    #[error("{0}")]
    Invalid(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default = "default_policy")]
    policy: String,
    slice_ms: Option<u64>,
    anticipation_us: Option<u64>,
    control: Option<PathBuf>,
    #[serde(rename = "slice", default)]
    slices: Vec<SliceEntry>,
    #[serde(rename = "type", default)]
    types: Vec<TypeEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TypeEntry {
    name: String,
    memory: String,
    instances: u32,
    weight: Option<u32>,
    share: Option<u32>,
    priority: Option<String>,
    class: Option<String>,
}

fn default_policy() -> String {
    PolicyKind::Fair.name().into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SliceEntry {
    name: String,
    memory: String,
    weight: Option<u32>,
    share: Option<u32>,
    priority: Option<String>,
    class: Option<String>,
    socket: Option<PathBuf>,
    vhost_user: Option<PathBuf>,
}

/// One slice as the server builds it.
#[derive(Debug, Clone)]
pub struct SliceConfig {
    pub spec: TenantSpec,
    pub memory: u64,
    pub socket: PathBuf,
    /// A vhost-user GPU socket serving the slice too.
    pub vhost_user: Option<PathBuf>,
}

/// A profile slices are created from while the server runs.
#[derive(Debug, Clone)]
pub struct TypeConfig {
    pub name: String,
    /// What each slice of it gets; its name is the slice's.
    pub spec: TenantSpec,
    pub memory: u64,
    pub instances: u32,
}

#[derive(Debug, Clone)]
pub struct SlicesConfig {
    pub policy: PolicyKind,
    pub params: Params,
    pub control: PathBuf,
    pub slices: Vec<SliceConfig>,
    pub types: Vec<TypeConfig>,
}

/// Letters, digits, '-' and '_': names that are file and type names as they are.
fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// A slice's or type's profile: its tenant spec from the scheduling settings, and its memory.
fn profile(
    name: &str,
    memory: &str,
    weight: Option<u32>,
    share: Option<u32>,
    priority: Option<&str>,
    class: Option<&str>,
) -> Result<(TenantSpec, u64), String> {
    let memory = crate::cli::parse_size(memory)?;
    let mut spec = TenantSpec::new(name).weight(weight.unwrap_or(1));
    spec.share_pct = share;
    if let Some(p) = priority {
        spec = spec.priority(parse_priority(p)?);
    }
    match class {
        None | Some("batch") => {}
        Some("interactive") => spec = spec.interactive(),
        Some(other) => return Err(format!("class {other:?} is not batch or interactive")),
    }
    Ok((spec, memory))
}

/// Where the control socket is when neither the file nor the command line says.
pub fn default_control() -> PathBuf {
    std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join("vgpu-slices.sock")
}

/// A tenant's anticipation default (at most the slice): room for a client to see its fence
/// and submit again through the vtest ring, on a loaded host too. Tenants that think longer
/// are not waited for (the scheduler keeps each one's mean think time).
const DEFAULT_ANTICIPATION_US: u64 = 2000;

impl SlicesConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read(path.into(), e))?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let file: File =
            toml::from_str(text).map_err(|e| ConfigError::Parse(path.into(), e.to_string()))?;
        let policy: PolicyKind = file
            .policy
            .parse()
            .map_err(|e| ConfigError::Invalid(format!("{e}")))?;
        let mut params = Params::default();
        if let Some(ms) = file.slice_ms {
            params = params.with_slice(ms * MS);
        }
        params.anticipation = match file.anticipation_us {
            Some(us) => us * 1000,
            None => (DEFAULT_ANTICIPATION_US * 1000).min(params.slice),
        };
        params
            .validate()
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        if file.slices.is_empty() && file.types.is_empty() {
            return Err(ConfigError::Invalid(format!(
                "{}: no [[slice]] or [[type]] entries",
                path.display()
            )));
        }
        let control = file.control.unwrap_or_else(default_control);
        let dir = control.parent().unwrap_or(Path::new(".")).to_path_buf();
        let mut slices: Vec<SliceConfig> = Vec::new();
        for e in file.slices {
            let bad = |why: String| ConfigError::Slice {
                slice: e.name.clone(),
                why,
            };
            if !plain_name(&e.name) {
                return Err(bad("a name is letters, digits, '-' and '_'".into()));
            }
            if slices.iter().any(|s| s.spec.name == e.name) {
                return Err(bad("named twice".into()));
            }
            let (spec, memory) = profile(
                &e.name,
                &e.memory,
                e.weight,
                e.share,
                e.priority.as_deref(),
                e.class.as_deref(),
            )
            .map_err(bad)?;
            let socket = e
                .socket
                .unwrap_or_else(|| dir.join(format!("{}.sock", e.name)));
            slices.push(SliceConfig {
                spec,
                memory,
                socket,
                vhost_user: e.vhost_user,
            });
        }
        let mut types: Vec<TypeConfig> = Vec::new();
        for t in file.types {
            let bad = |why: String| ConfigError::Slice {
                slice: format!("type {}", t.name),
                why,
            };
            if !plain_name(&t.name) || types.iter().any(|o| o.name == t.name) {
                return Err(bad("a type needs a plain name of its own".into()));
            }
            let (spec, memory) = profile(
                &t.name,
                &t.memory,
                t.weight,
                t.share,
                t.priority.as_deref(),
                t.class.as_deref(),
            )
            .map_err(bad)?;
            types.push(TypeConfig {
                name: t.name,
                spec,
                memory,
                instances: t.instances,
            });
        }
        let reserved: u32 = slices.iter().filter_map(|s| s.spec.share_pct).sum();
        if reserved > 100 {
            return Err(ConfigError::Invalid(format!(
                "fixed shares add up to {reserved}%, more than the device"
            )));
        }
        Ok(Self {
            policy,
            params,
            control,
            slices,
            types,
        })
    }
}

pub fn parse_priority(s: &str) -> Result<Priority, String> {
    match s {
        "low" => Ok(Priority::Low),
        "normal" => Ok(Priority::Normal),
        "high" => Ok(Priority::High),
        other => Err(format!("priority {other:?} is not low, normal or high")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
policy = "weighted"
slice_ms = 4
control = "/run/x/ctl.sock"

[[slice]]
name = "a"
memory = "256M"

[[slice]]
name = "b-2"
memory = "1G"
weight = 3
priority = "high"
class = "interactive"
socket = "/tmp/b.sock"
vhost_user = "/tmp/b-gpu.sock"

[[type]]
name = "small"
memory = "64M"
instances = 2
weight = 2
"#;

    #[test]
    fn a_file_becomes_tenants_quotas_and_sockets() {
        let c = SlicesConfig::parse(GOOD, Path::new("s.toml")).unwrap();
        assert_eq!(c.policy, PolicyKind::Weighted);
        assert_eq!(c.params.slice, 4 * MS);
        assert_eq!(c.params.anticipation, DEFAULT_ANTICIPATION_US * 1000);
        assert_eq!(c.slices[0].memory, 256 << 20);
        assert_eq!(c.slices[0].socket, Path::new("/run/x/a.sock"));
        assert_eq!(c.slices[1].spec.weight, 3);
        assert_eq!(c.slices[1].spec.priority, Priority::High);
        assert!(c.slices[1].spec.class == scheduler::TenantClass::Interactive);
        assert_eq!(c.slices[1].socket, Path::new("/tmp/b.sock"));
        assert_eq!(
            c.slices[1].vhost_user.as_deref(),
            Some(Path::new("/tmp/b-gpu.sock"))
        );
        assert!(c.slices[0].vhost_user.is_none());
        assert_eq!(c.types[0].name, "small");
        assert_eq!((c.types[0].memory, c.types[0].instances), (64 << 20, 2));
        assert_eq!(c.types[0].spec.weight, 2);
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        let cases = [
            ("policy = \"lottery\"\n[[slice]]\nname=\"a\"\nmemory=\"1M\"", "lottery"),
            ("[[slice]]\nname=\"a b\"\nmemory=\"1M\"", "a name is"),
            ("[[slice]]\nname=\"a\"\nmemory=\"lots\"", "lots"),
            ("[[slice]]\nname=\"a\"\nmemory=\"1M\"\n[[slice]]\nname=\"a\"\nmemory=\"1M\"", "twice"),
            ("[[slice]]\nname=\"a\"\nmemory=\"1M\"\nshare=70\n[[slice]]\nname=\"b\"\nmemory=\"1M\"\nshare=40", "110%"),
            ("[[slice]]\nname=\"a\"\nmemory=\"1M\"\nclass=\"urgent\"", "urgent"),
            ("[[slice]]\nname=\"a\"\nmemory=\"1M\"\ncolour=1", "colour"),
            ("slice_ms = 90\n[[slice]]\nname=\"a\"\nmemory=\"1M\"", "slice"),
            ("policy = \"fair\"", "no [[slice]] or [[type]]"),
            ("[[type]]\nname=\"1G\"\nmemory=\"1G\"", "instances"),
        ];
        for (text, want) in cases {
            let err = SlicesConfig::parse(text, Path::new("s.toml")).unwrap_err();
            assert!(err.to_string().contains(want), "{text:?}: {err}");
        }
    }
}
