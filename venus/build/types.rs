//! How registry types map to Rust types and to the wire, and the generated header (versions,
//! command types, the served extension mask, sType values).

use std::fmt::Write;

use crate::{
    registry::{Member, Registry, TypeKind},
    select::Selection,
};

/// A value carried as one wire word (4 bytes) or two (8 bytes).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Scalar {
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    F32,
    U64,
    I64,
    Usize,
    F64,
}

impl Scalar {
    pub fn rust(self) -> &'static str {
        match self {
            Scalar::U8 => "u8",
            Scalar::I8 => "i8",
            Scalar::U16 => "u16",
            Scalar::I16 => "i16",
            Scalar::U32 => "u32",
            Scalar::I32 => "i32",
            Scalar::F32 => "f32",
            Scalar::U64 => "u64",
            Scalar::I64 => "i64",
            Scalar::Usize => "usize",
            Scalar::F64 => "f64",
        }
    }

    /// The Decoder/Encoder method for one value.
    pub fn wire_fn(self) -> &'static str {
        match self {
            Scalar::U8 => "u8",
            Scalar::I8 => "i8",
            Scalar::U16 => "u16",
            Scalar::I16 => "i16",
            Scalar::U32 => "u32",
            Scalar::I32 => "i32",
            Scalar::F32 => "f32",
            Scalar::U64 => "u64",
            Scalar::I64 => "i64",
            Scalar::Usize => "usize",
            Scalar::F64 => "f64",
        }
    }
}

pub enum Kind {
    Scalar(Scalar),
    Handle,
    Struct(String),
    Char,
    Void,
    /// Function pointers and platform types: never on the wire.
    Opaque,
}

pub fn kind_of(reg: &Registry, ty: &str) -> Kind {
    let scalar = |s| Kind::Scalar(s);
    match ty {
        "uint8_t" => return scalar(Scalar::U8),
        "int8_t" => return scalar(Scalar::I8),
        "uint16_t" => return scalar(Scalar::U16),
        "int16_t" => return scalar(Scalar::I16),
        "uint32_t" => return scalar(Scalar::U32),
        "int32_t" | "int" => return scalar(Scalar::I32),
        "float" => return scalar(Scalar::F32),
        "uint64_t" => return scalar(Scalar::U64),
        "int64_t" => return scalar(Scalar::I64),
        "size_t" => return scalar(Scalar::Usize),
        "double" => return scalar(Scalar::F64),
        "char" => return Kind::Char,
        "void" => return Kind::Void,
        "VkFlags" => return scalar(Scalar::U32),
        "VkFlags64" => return scalar(Scalar::U64),
        _ => {}
    }
    match reg.kind(ty) {
        Some(TypeKind::Struct(s)) => Kind::Struct(s.name.clone()),
        Some(TypeKind::Handle { .. }) => Kind::Handle,
        Some(TypeKind::Enum) => scalar(Scalar::I32),
        Some(TypeKind::Bitmask { bits64 }) => {
            scalar(if *bits64 { Scalar::U64 } else { Scalar::U32 })
        }
        Some(TypeKind::Base(under)) => kind_of(reg, under),
        // Enum types without values in this registry version are plain enums too.
        None if ty.ends_with("FlagBits") => scalar(Scalar::U32),
        None if ty.starts_with("Vk") && !ty.starts_with("PFN") => scalar(Scalar::I32),
        _ => Kind::Opaque,
    }
}

/// The Rust type of a value of registry type `ty` (not counting pointers).
pub fn rust_base(reg: &Registry, ty: &str) -> String {
    match kind_of(reg, ty) {
        Kind::Scalar(s) => s.rust().to_string(),
        Kind::Handle => "u64".into(),
        Kind::Struct(name) => name,
        Kind::Char => "c_char".into(),
        Kind::Void => "c_void".into(),
        Kind::Opaque => "usize".into(),
    }
}

/// The Rust type of a member or parameter, pointers and fixed arrays included.
pub fn rust_type(reg: &Registry, m: &Member) -> String {
    let base = rust_base(reg, &m.ty);
    if let Some(n) = m.fixed_len {
        return format!("[{base}; {n}]");
    }
    match m.ptr_depth {
        0 => base,
        1 => format!("{} {base}", if m.is_const { "*const" } else { "*mut" }),
        _ => format!(
            "{} *const {base}",
            if m.is_const { "*const" } else { "*mut" }
        ),
    }
}

pub fn stype_value(reg: &Registry, name: &str) -> i64 {
    let resolved = reg.resolve(name);
    *reg.enum_values
        .get(resolved)
        .unwrap_or_else(|| panic!("no value for {name}"))
}

pub fn emit_header(reg: &Registry, sel: &Selection) -> String {
    let mut o = String::new();
    let v = reg.header_version;
    writeln!(
        o,
        "/// VK_MAKE_API_VERSION(0, 1, 3, {v}): the registry the protocol was generated from."
    )
    .unwrap();
    writeln!(
        o,
        "pub const VK_XML_VERSION: u32 = (1 << 22) | (3 << 12) | {v};"
    )
    .unwrap();
    writeln!(
        o,
        "/// Extensions served besides core Vulkan 1.0-1.3: (name, registry number)."
    )
    .unwrap();
    writeln!(o, "pub const SERVED_EXTENSIONS: &[(&str, u32)] = &[").unwrap();
    for (name, n) in &sel.extensions {
        writeln!(o, "    ({name:?}, {n}),").unwrap();
    }
    writeln!(o, "];").unwrap();
    writeln!(o, "/// Served commands: (name, VkCommandTypeEXT).").unwrap();
    writeln!(o, "pub const SERVED_COMMANDS: &[(&str, u32)] = &[").unwrap();
    for (name, n) in &sel.commands {
        writeln!(o, "    ({name:?}, {n}),").unwrap();
    }
    writeln!(o, "];").unwrap();
    writeln!(o, "pub mod command_type {{").unwrap();
    for (name, n) in &sel.commands {
        writeln!(
            o,
            "    pub const {}: u32 = {n};",
            name.trim_start_matches("vk")
        )
        .unwrap();
    }
    writeln!(o, "}}").unwrap();
    writeln!(o, "pub mod stype {{").unwrap();
    for s in &sel.structs {
        let def = reg.struct_def(s).unwrap();
        if let Some(v) = def
            .members
            .iter()
            .find(|m| m.name == "sType")
            .and_then(|m| m.stype_value.clone())
        {
            writeln!(o, "    pub const {s}: i32 = {};", stype_value(reg, &v)).unwrap();
        }
    }
    writeln!(o, "}}").unwrap();
    o
}

/// `command_name(type)` for every VkCommandTypeEXT in the table, served or not (for logs).
pub fn emit_command_names(command_types: &str) -> String {
    let mut o = String::from("pub fn command_name(t: u32) -> &'static str {\n    match t {\n");
    let mut seen = std::collections::HashSet::new();
    for line in command_types.lines() {
        let mut it = line.split_whitespace();
        // The first name of a number is its canonical one; aliases (KHR, EXT) share it.
        if let (Some(n), Some(name)) = (it.next(), it.next()) {
            if seen.insert(n) {
                writeln!(o, "        {n} => {name:?},").unwrap();
            }
        }
    }
    o.push_str("        _ => \"unknown\",\n    }\n}\n");
    o
}
