//! Reads the parts of a Vulkan registry (vk.xml, or our venus_mesa.xml in the same schema) that
//! the generator needs: types, struct members, commands and which feature or extension
//! provides each name.

use std::collections::{BTreeMap, HashMap};

/// One struct member or command parameter, as the registry spells it.
#[derive(Clone, Debug)]
pub struct Member {
    pub name: String,
    pub ty: String,
    /// Number of `*` between the type and the name.
    pub ptr_depth: usize,
    /// `const` before the type (the pointee of the first pointer is read-only).
    pub is_const: bool,
    /// Fixed array size (`[4]` or `[VK_UUID_SIZE]`), resolved to a number.
    pub fixed_len: Option<usize>,
    /// `len` attribute (with `altlen` preferred where present).
    pub len: Option<String>,
    pub optional: bool,
    /// The sType value a struct's sType member must carry.
    pub stype_value: Option<String>,
    /// `stride` attribute: the parameter giving this array's element stride.
    pub stride: Option<String>,
}

#[derive(Clone, Debug)]
pub struct StructDef {
    pub name: String,
    pub members: Vec<Member>,
    pub is_union: bool,
    pub extends: Vec<String>,
}

#[derive(Clone, Debug)]
pub enum TypeKind {
    Struct(StructDef),
    Handle {
        objtype: String,
    },
    Enum,
    Bitmask {
        bits64: bool,
    },
    /// A basetype with its underlying C type (VkBool32 -> uint32_t).
    Base(String),
    Other,
}

#[derive(Clone, Debug)]
pub struct Command {
    pub name: String,
    pub ret: String,
    pub params: Vec<Member>,
}

#[derive(Default)]
pub struct Registry {
    pub types: HashMap<String, TypeKind>,
    pub aliases: HashMap<String, String>,
    pub commands: HashMap<String, Command>,
    pub constants: HashMap<String, String>,
    /// Enum value names (VK_STRUCTURE_TYPE_...) to their numeric value.
    pub enum_values: HashMap<String, i64>,
    /// Type or command name -> the feature (VK_VERSION_1_x) or extension that provides it.
    pub provider: HashMap<String, String>,
    /// Extension name -> (number, instance or device).
    pub extensions: BTreeMap<String, (u32, String)>,
    pub header_version: u32,
}

fn for_vulkan(node: &roxmltree::Node) -> bool {
    match node.attribute("api") {
        Some(apis) => apis.split(',').any(|a| a == "vulkan"),
        None => true,
    }
}

fn parse_member(node: roxmltree::Node, constants: &HashMap<String, String>) -> Member {
    let mut ty = String::new();
    let mut name = String::new();
    let mut before = String::new();
    let mut between = String::new();
    let mut after = String::new();
    for child in node.children() {
        match child.tag_name().name() {
            "type" => ty = child.text().unwrap_or_default().to_string(),
            "name" => name = child.text().unwrap_or_default().to_string(),
            "enum" => after.push_str(child.text().unwrap_or_default()),
            "comment" => {}
            _ if child.is_text() => {
                let t = child.text().unwrap_or_default();
                if ty.is_empty() {
                    before.push_str(t);
                } else if name.is_empty() {
                    between.push_str(t);
                } else {
                    after.push_str(t);
                }
            }
            _ => {}
        }
    }
    let fixed_len = after
        .trim()
        .strip_prefix('[')
        .and_then(|s| s.split(']').next())
        .map(|n| {
            let n = n.trim();
            n.parse::<usize>().unwrap_or_else(|_| {
                constants
                    .get(n)
                    .and_then(|v| v.trim_end_matches('U').parse().ok())
                    .unwrap_or_else(|| panic!("unknown array size {n}"))
            })
        });
    // Members named like Rust keywords become raw identifiers.
    if matches!(
        name.as_str(),
        "type" | "match" | "ref" | "move" | "in" | "fn"
    ) {
        name = format!("r#{name}");
    }
    let len = node
        .attribute("altlen")
        .or_else(|| node.attribute("len"))
        .map(str::to_string);
    Member {
        name,
        ty,
        ptr_depth: between.matches('*').count(),
        is_const: before.contains("const"),
        fixed_len,
        len,
        // Members the spec leaves unchecked (noautovalidity) may be null whatever their count
        // says, e.g. VkWriteDescriptorSet's arrays other than the one its type uses.
        optional: node
            .attribute("optional")
            .is_some_and(|o| o.starts_with("true"))
            || node.attribute("noautovalidity") == Some("true"),
        stype_value: node.attribute("values").map(str::to_string),
        stride: node.attribute("stride").map(str::to_string),
    }
}

impl Registry {
    pub fn load(&mut self, xml: &str) {
        let doc = roxmltree::Document::parse(xml).expect("registry XML parses");
        let root = doc.root_element();
        for enums in root.children().filter(|n| n.has_tag_name("enums")) {
            for e in enums.children().filter(|n| n.has_tag_name("enum")) {
                let Some(name) = e.attribute("name") else {
                    continue;
                };
                if let Some(v) = e.attribute("value") {
                    self.constants.insert(name.to_string(), v.to_string());
                    if let Ok(n) = v.parse::<i64>() {
                        self.enum_values.insert(name.to_string(), n);
                    } else if let Some(hex) = v.strip_prefix("0x") {
                        if let Ok(n) = i64::from_str_radix(hex, 16) {
                            self.enum_values.insert(name.to_string(), n);
                        }
                    }
                }
                if let Some(alias) = e.attribute("alias") {
                    self.aliases.insert(name.to_string(), alias.to_string());
                }
            }
        }
        for types in root.children().filter(|n| n.has_tag_name("types")) {
            for t in types
                .children()
                .filter(|n| n.has_tag_name("type") && for_vulkan(n))
            {
                self.load_type(t);
            }
        }
        for cmds in root.children().filter(|n| n.has_tag_name("commands")) {
            for c in cmds
                .children()
                .filter(|n| n.has_tag_name("command") && for_vulkan(n))
            {
                self.load_command(c);
            }
        }
        for f in root
            .children()
            .filter(|n| n.has_tag_name("feature") && for_vulkan(n))
        {
            let feature = f.attribute("name").unwrap_or_default().to_string();
            self.load_requires(f, &feature, None);
        }
        for exts in root.children().filter(|n| n.has_tag_name("extensions")) {
            for x in exts.children().filter(|n| n.has_tag_name("extension")) {
                let name = x.attribute("name").unwrap_or_default().to_string();
                let supported = x.attribute("supported").unwrap_or_default();
                if !supported.split(',').any(|s| s == "vulkan") {
                    continue;
                }
                let number = x
                    .attribute("number")
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                let kind = x.attribute("type").unwrap_or("device").to_string();
                self.extensions.insert(name.clone(), (number, kind));
                self.load_requires(x, &name, Some(number));
            }
        }
    }

    fn load_requires(&mut self, node: roxmltree::Node, provider: &str, ext_number: Option<u32>) {
        for req in node
            .children()
            .filter(|n| n.has_tag_name("require") && for_vulkan(n))
        {
            for item in req.children().filter(|n| n.is_element()) {
                let Some(name) = item.attribute("name") else {
                    continue;
                };
                match item.tag_name().name() {
                    "type" | "command" => {
                        self.provider
                            .entry(name.to_string())
                            .or_insert_with(|| provider.to_string());
                    }
                    "enum" => self.load_extension_enum(item, ext_number),
                    _ => {}
                }
            }
        }
    }

    /// Enum values that extensions and features add (sTypes among them): `offset` values
    /// follow the registry's rule 1000000000 + (extnumber - 1) * 1000 + offset.
    fn load_extension_enum(&mut self, item: roxmltree::Node, ext_number: Option<u32>) {
        let name = item.attribute("name").unwrap_or_default().to_string();
        if let Some(alias) = item.attribute("alias") {
            self.aliases.insert(name, alias.to_string());
            return;
        }
        let value = if let Some(offset) = item.attribute("offset") {
            let ext = item
                .attribute("extnumber")
                .and_then(|n| n.parse().ok())
                .or(ext_number);
            let (Some(ext), Ok(offset)) = (ext, offset.parse::<i64>()) else {
                return;
            };
            let v = 1_000_000_000 + (i64::from(ext) - 1) * 1000 + offset;
            if item.attribute("dir") == Some("-") {
                -v
            } else {
                v
            }
        } else if let Some(v) = item.attribute("value") {
            let Ok(v) = v.parse::<i64>() else { return };
            v
        } else if let Some(bit) = item.attribute("bitpos") {
            1i64 << bit.parse::<u32>().unwrap_or(0)
        } else {
            return;
        };
        self.enum_values.insert(name, value);
    }

    fn load_type(&mut self, t: roxmltree::Node) {
        let name = t.attribute("name").map(str::to_string).or_else(|| {
            t.children()
                .find(|c| c.has_tag_name("name"))
                .and_then(|c| c.text())
                .map(str::to_string)
        });
        let Some(name) = name else { return };
        if let Some(alias) = t.attribute("alias") {
            self.aliases.insert(name, alias.to_string());
            return;
        }
        let kind = match t.attribute("category") {
            Some("struct") | Some("union") => {
                let members = t
                    .children()
                    .filter(|n| n.has_tag_name("member") && for_vulkan(n))
                    .map(|m| parse_member(m, &self.constants))
                    .collect();
                TypeKind::Struct(StructDef {
                    name: name.clone(),
                    members,
                    is_union: t.attribute("category") == Some("union"),
                    extends: t
                        .attribute("structextends")
                        .map(|s| s.split(',').map(str::to_string).collect())
                        .unwrap_or_default(),
                })
            }
            Some("handle") => TypeKind::Handle {
                objtype: t.attribute("objtypeenum").unwrap_or_default().to_string(),
            },
            Some("enum") => TypeKind::Enum,
            Some("bitmask") => {
                let under = t
                    .children()
                    .find(|c| c.has_tag_name("type"))
                    .and_then(|c| c.text());
                TypeKind::Bitmask {
                    bits64: under == Some("VkFlags64"),
                }
            }
            Some("basetype") => match t
                .children()
                .find(|c| c.has_tag_name("type"))
                .and_then(|c| c.text())
            {
                Some(under) => TypeKind::Base(under.to_string()),
                None => TypeKind::Other,
            },
            _ => TypeKind::Other,
        };
        self.types.insert(name, kind);
    }

    fn load_command(&mut self, c: roxmltree::Node) {
        if let Some(alias) = c.attribute("alias") {
            let name = c.attribute("name").unwrap_or_default();
            self.aliases.insert(name.to_string(), alias.to_string());
            return;
        }
        let Some(proto) = c.children().find(|n| n.has_tag_name("proto")) else {
            return;
        };
        let proto = parse_member(proto, &self.constants);
        let params = c
            .children()
            .filter(|n| n.has_tag_name("param") && for_vulkan(n))
            .map(|p| parse_member(p, &self.constants))
            .collect();
        self.commands.insert(
            proto.name.clone(),
            Command {
                name: proto.name,
                ret: proto.ty,
                params,
            },
        );
    }

    pub fn resolve<'a>(&'a self, mut name: &'a str) -> &'a str {
        while let Some(target) = self.aliases.get(name) {
            name = target;
        }
        name
    }

    pub fn kind(&self, ty: &str) -> Option<&TypeKind> {
        self.types.get(self.resolve(ty))
    }

    pub fn struct_def(&self, ty: &str) -> Option<&StructDef> {
        match self.kind(ty) {
            Some(TypeKind::Struct(s)) => Some(s),
            _ => None,
        }
    }
}
