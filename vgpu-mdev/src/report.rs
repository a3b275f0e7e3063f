//! What `vgpu mdev types` and `vgpu mdev list` print, in mdevctl 1.2's text and `--dumpjson`
//! forms byte for byte, so scripts written against mdevctl read ours unchanged.
//!
//! mdevctl's JSON: one array holding one object whose keys are parents (sorted), each a list of
//! one-key objects (type or UUID to its fields); a type's `name` and `description` are left out
//! where the kernel has none. An empty listing is `[]`.

use serde::ser::{Serialize, SerializeMap, Serializer};

use crate::mdev::{Instance, Mdev, MdevError, MdevType};
use crate::mdevctl::{Config, ConfigStore, MdevctlError, Start};

/// A map serialized in the order of its entries (serde_json's own map sorts its keys).
struct Ordered<V>(Vec<(String, V)>);

impl<V: Serialize> Serialize for Ordered<V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// `[{parent: [{key: value}, ...], ...}]`, parents in the order given (already sorted).
fn grouped_json<V: Serialize>(rows: Vec<(String, String, V)>) -> String {
    if rows.is_empty() {
        return "[]".into();
    }
    let mut parents: Vec<(String, Vec<Ordered<V>>)> = Vec::new();
    for (parent, key, value) in rows {
        let one = Ordered(vec![(key, value)]);
        match parents.last_mut() {
            Some((p, list)) if *p == parent => list.push(one),
            _ => parents.push((parent, vec![one])),
        }
    }
    let doc = [Ordered(parents)];
    serde_json::to_string_pretty(&doc).expect("strings and numbers serialize")
}

#[derive(serde::Serialize)]
struct TypeFields<'a> {
    available_instances: u64,
    device_api: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
}

/// `mdevctl types --dumpjson`.
pub fn types_json(types: &[MdevType]) -> String {
    let rows = types
        .iter()
        .map(|t| {
            let fields = TypeFields {
                available_instances: t.available_instances,
                device_api: &t.device_api,
                name: t.name.as_deref(),
                description: t.description.as_deref(),
            };
            (t.parent.clone(), t.id.clone(), fields)
        })
        .collect();
    grouped_json(rows)
}

/// `mdevctl types`.
pub fn types_text(types: &[MdevType]) -> String {
    let mut out = String::new();
    let mut parent = None;
    for t in types {
        if parent != Some(&t.parent) {
            out.push_str(&format!("{}\n", t.parent));
            parent = Some(&t.parent);
        }
        out.push_str(&format!("  {}\n", t.id));
        out.push_str(&format!(
            "    Available instances: {}\n",
            t.available_instances
        ));
        out.push_str(&format!("    Device API: {}\n", t.device_api));
        if let Some(name) = &t.name {
            out.push_str(&format!("    Name: {name}\n"));
        }
        if let Some(description) = &t.description {
            out.push_str(&format!("    Description: {description}\n"));
        }
    }
    out
}

/// One row of a listing: a live device (with its definition's start and attributes where it
/// has one) or a definition (marked when it is also live).
#[derive(Clone, Debug, PartialEq)]
pub struct Listed {
    pub uuid: String,
    pub parent: String,
    pub config: Config,
    /// Live when listing definitions; defined when listing live devices.
    pub also: bool,
}

/// What to list.
#[derive(Clone, Debug, Default)]
pub struct ListQuery {
    /// Definitions (`--defined`) rather than live devices.
    pub defined: bool,
    pub uuid: Option<String>,
    pub parent: Option<String>,
}

/// The rows of `mdevctl list`, by parent then UUID.
pub fn list(
    live: &[Instance],
    store: &ConfigStore,
    query: &ListQuery,
) -> Result<Vec<Listed>, MdevctlError> {
    let definitions = store.list()?;
    let mut rows: Vec<Listed> = if query.defined {
        definitions
            .iter()
            .map(|d| Listed {
                uuid: d.uuid.clone(),
                parent: d.parent.clone(),
                config: d.config.clone(),
                also: live
                    .iter()
                    .any(|i| i.uuid == d.uuid && i.parent == d.parent),
            })
            .collect()
    } else {
        live.iter()
            .map(|i| {
                let defined = definitions
                    .iter()
                    .find(|d| d.uuid == i.uuid && d.parent == i.parent);
                let config = match defined {
                    Some(d) => Config {
                        mdev_type: i.mdev_type.clone(),
                        ..d.config.clone()
                    },
                    None => Config {
                        mdev_type: i.mdev_type.clone(),
                        start: Start::Manual,
                        attrs: Vec::new(),
                    },
                };
                Listed {
                    uuid: i.uuid.clone(),
                    parent: i.parent.clone(),
                    config,
                    also: defined.is_some(),
                }
            })
            .collect()
    };
    let uuid = query
        .uuid
        .as_deref()
        .map(crate::mdev::parse_uuid)
        .transpose()?;
    rows.retain(|r| {
        uuid.as_ref().is_none_or(|u| *u == r.uuid)
            && query.parent.as_ref().is_none_or(|p| *p == r.parent)
    });
    rows.sort_by(|a, b| (&a.parent, &a.uuid).cmp(&(&b.parent, &b.uuid)));
    Ok(rows)
}

/// `mdevctl list [--defined]`.
pub fn list_text(rows: &[Listed], defined: bool) -> String {
    let mark = if defined { " (active)" } else { " (defined)" };
    rows.iter()
        .map(|r| {
            let start = match r.config.start {
                Start::Auto => "auto",
                Start::Manual => "manual",
            };
            let also = if r.also { mark } else { "" };
            format!(
                "{} {} {} {start}{also}\n",
                r.uuid, r.parent, r.config.mdev_type
            )
        })
        .collect()
}

/// `mdevctl list [--defined] --dumpjson`.
pub fn list_json(rows: &[Listed]) -> String {
    let rows = rows
        .iter()
        .map(|r| (r.parent.clone(), r.uuid.clone(), &r.config))
        .collect();
    grouped_json(rows)
}

/// Every type of every parent (or of `parent`), as `types` prints them.
pub fn types(mdev: &Mdev, parent: Option<&str>) -> Result<Vec<MdevType>, MdevError> {
    match parent {
        Some(p) => mdev.types(p),
        None => mdev.all_types(),
    }
}
