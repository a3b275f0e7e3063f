//! What gets generated: the served commands, every struct they reach, and for each struct with
//! a pNext chain the structs that may extend it (from core Vulkan 1.0-1.3 and the served
//! extensions only).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::registry::{Registry, TypeKind};

pub struct Selection {
    /// (command name, VkCommandTypeEXT value), in command-type order.
    pub commands: Vec<(String, u32)>,
    /// Structs and unions in an order where each is emitted once.
    pub structs: BTreeSet<String>,
    /// Struct -> the structs that may appear in its pNext chain.
    pub extenders: BTreeMap<String, Vec<String>>,
    /// Extensions served beyond core: (name, number).
    pub extensions: Vec<(String, u32)>,
    /// Commands forwarded to the host as they are (`pass` in served.txt): the generated code
    /// calls the host function itself, through the device's function table.
    pub passthrough: BTreeSet<String>,
}

const CORE: &[&str] = &[
    "VK_VERSION_1_0",
    "VK_VERSION_1_1",
    "VK_VERSION_1_2",
    "VK_VERSION_1_3",
];

impl Selection {
    pub fn new(reg: &Registry, served: &str, command_types: &str) -> Self {
        let numbers: HashMap<&str, u32> = command_types
            .lines()
            .filter_map(|l| {
                let mut it = l.split_whitespace();
                let n = it.next()?.parse().ok()?;
                Some((it.next()?, n))
            })
            .collect();
        let mut commands = Vec::new();
        let mut extensions = Vec::new();
        let mut passthrough = BTreeSet::new();
        for line in served
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            if let Some(ext) = line.strip_prefix("extension ") {
                let ext = ext.trim();
                let (number, _) = reg
                    .extensions
                    .get(ext)
                    .unwrap_or_else(|| panic!("unknown extension {ext}"));
                extensions.push((ext.to_string(), *number));
                continue;
            }
            let line = match line.strip_prefix("pass ") {
                Some(cmd) => {
                    passthrough.insert(cmd.trim().to_string());
                    cmd.trim()
                }
                None => line,
            };
            assert!(
                reg.commands.contains_key(line),
                "served command {line} is not in the registry"
            );
            let n = numbers
                .get(line)
                .unwrap_or_else(|| panic!("no VkCommandTypeEXT for {line}"));
            commands.push((line.to_string(), *n));
        }
        commands.sort_by_key(|(_, n)| *n);

        let allowed: BTreeSet<String> = CORE
            .iter()
            .map(|s| s.to_string())
            .chain(extensions.iter().map(|(e, _)| e.clone()))
            .collect();
        let provided = |name: &str| {
            reg.provider
                .get(name)
                .is_some_and(|p| allowed.contains(p.as_str()))
        };

        let mut sel = Selection {
            commands,
            structs: BTreeSet::new(),
            extenders: BTreeMap::new(),
            extensions,
            passthrough,
        };
        let mut todo: Vec<String> = Vec::new();
        for (name, _) in &sel.commands {
            for p in &reg.commands[name].params {
                todo.push(p.ty.clone());
            }
        }
        while let Some(ty) = todo.pop() {
            let ty = reg.resolve(&ty).to_string();
            let Some(TypeKind::Struct(def)) = reg.types.get(&ty) else {
                continue;
            };
            if !sel.structs.insert(ty.clone()) {
                continue;
            }
            for m in &def.members {
                todo.push(m.ty.clone());
            }
            if def.members.iter().any(|m| m.name == "pNext") {
                let mut ext: Vec<String> = reg
                    .types
                    .values()
                    .filter_map(|k| match k {
                        TypeKind::Struct(s)
                            if s.extends.iter().any(|e| reg.resolve(e) == ty)
                                && provided(&s.name) =>
                        {
                            Some(s.name.clone())
                        }
                        _ => None,
                    })
                    .collect();
                ext.sort();
                todo.extend(ext.iter().cloned());
                sel.extenders.insert(ty, ext);
            }
        }
        sel
    }
}
