//! Rust mirrors of the selected structs and unions, their decoders (whole, and partial for
//! output structs: sType, pNext and embedded structs only) and their encoders.

use std::fmt::Write;

use crate::{
    registry::{Member, Registry, StructDef, TypeKind},
    select::Selection,
    types::{kind_of, rust_type, Kind},
};

pub fn objtype(reg: &Registry, ty: &str) -> i64 {
    match reg.kind(ty) {
        Some(TypeKind::Handle { objtype, .. }) => {
            *reg.enum_values.get(objtype.as_str()).unwrap_or(&0)
        }
        _ => 0,
    }
}

/// A `len` expression in terms of `prefix` fields (`v.` in structs, locals in commands).
pub fn len_expr(len: &str, fields: &[Member], prefix: &str) -> String {
    let first = len.split(',').next().unwrap().trim();
    let mut out = String::new();
    let mut ident = String::new();
    let flush = |ident: &mut String, out: &mut String| {
        if ident.is_empty() {
            return;
        }
        if fields.iter().any(|f| f.name == *ident) {
            write!(out, "({prefix}{ident} as usize)").unwrap();
        } else {
            out.push_str(ident);
        }
        ident.clear();
    };
    for c in first.chars() {
        if c.is_alphanumeric() || c == '_' {
            ident.push(c);
        } else {
            flush(&mut ident, &mut out);
            out.push(c);
        }
    }
    flush(&mut ident, &mut out);
    out
}

fn has_chain(def: &StructDef) -> bool {
    def.members.iter().any(|m| m.name == "pNext")
}

fn body_members(def: &StructDef) -> impl Iterator<Item = &Member> {
    def.members
        .iter()
        .filter(|m| m.name != "sType" && m.name != "pNext")
}

fn emit_type(reg: &Registry, def: &StructDef, o: &mut String) {
    let kw = if def.is_union { "union" } else { "struct" };
    writeln!(
        o,
        "#[repr(C)]\n#[derive(Clone, Copy)]\npub {kw} {} {{",
        def.name
    )
    .unwrap();
    for m in &def.members {
        writeln!(o, "    pub {}: {},", m.name, rust_type(reg, m)).unwrap();
    }
    writeln!(o, "}}").unwrap();
    writeln!(o, "// SAFETY: a generated mirror of a C struct: integers, floats and raw pointers, all valid as zero.").unwrap();
    writeln!(o, "unsafe impl Zeroed for {} {{}}", def.name).unwrap();
    if reg
        .provider
        .get(&def.name)
        .is_some_and(|p| !p.contains("MESA") && !p.contains("command_serialization"))
    {
        let ash = def.name.trim_start_matches("Vk");
        writeln!(
            o,
            "const _: () = assert!(size_of::<{0}>() == size_of::<ash::vk::{ash}>() && align_of::<{0}>() == align_of::<ash::vk::{ash}>());",
            def.name
        )
        .unwrap();
    }
}

/// Decodes one member of a struct into `v.NAME`.
fn decode_member(reg: &Registry, def: &StructDef, m: &Member, o: &mut String) {
    decode_member_into(reg, def, m, &format!("v.{}", m.name), o)
}

/// Decodes one member into the place `f` (a field, or a local for union members).
fn decode_member_into(reg: &Registry, def: &StructDef, m: &Member, f: &str, o: &mut String) {
    let count = m.len.as_deref().map(|l| len_expr(l, &def.members, "v."));
    let lenient = m.optional
        || m.len
            .as_deref()
            .is_some_and(|l| l.contains("null-terminated") && m.ptr_depth == 1);
    if m.ptr_depth > 0 && !m.is_const {
        // Outputs inside an input struct (creation feedback and the like) are not served.
        writeln!(o, "    {f} = d.unsupported(\"{}.{}\")?;", def.name, m.name).unwrap();
        return;
    }
    match (m.ptr_depth, m.fixed_len, kind_of(reg, &m.ty)) {
        (0, None, Kind::Scalar(s)) => writeln!(o, "    {f} = d.{}()?;", s.wire_fn()).unwrap(),
        (0, None, Kind::Handle) => writeln!(
            o,
            "    {f} = d.handle({}, {})?;",
            objtype(reg, &m.ty),
            !m.optional
        )
        .unwrap(),
        (0, None, Kind::Struct(s)) => writeln!(o, "    dec_{s}(d, &mut {f})?;").unwrap(),
        (0, Some(n), Kind::Char) => writeln!(o, "    d.char_array(&mut {f}, {n})?;").unwrap(),
        (0, Some(_), Kind::Scalar(_)) => writeln!(o, "    d.fixed_array(&mut {f})?;").unwrap(),
        (0, Some(n), Kind::Struct(s)) => writeln!(
            o,
            "    d.array_size_eq({n})?;\n    for x in {f}.iter_mut() {{ dec_{s}(d, x)?; }}"
        )
        .unwrap(),
        (1, None, Kind::Char) if m.len.as_deref() == Some("null-terminated") => {
            writeln!(o, "    {f} = d.string()?;").unwrap()
        }
        (1, _, Kind::Void) if count.is_some() => {
            writeln!(o, "    {f} = d.blob({}, {lenient})?;", count.unwrap()).unwrap()
        }
        (1, None, Kind::Void | Kind::Char | Kind::Opaque) | (_, _, Kind::Opaque) => {
            writeln!(o, "    {f} = d.unsupported(\"{}.{}\")?;", def.name, m.name).unwrap()
        }
        (1, _, Kind::Scalar(_)) if count.is_some() => writeln!(
            o,
            "    {f} = d.scalar_array({}, {lenient})?;",
            count.unwrap()
        )
        .unwrap(),
        (1, _, Kind::Handle) if count.is_some() => writeln!(
            o,
            "    {f} = d.handle_array({}, {}, {lenient})?;",
            count.unwrap(),
            objtype(reg, &m.ty)
        )
        .unwrap(),
        (1, _, Kind::Struct(s)) if count.is_some() => {
            writeln!(
                o,
                "    {f} = match d.array_len({}, {lenient})? {{",
                count.unwrap()
            )
            .unwrap();
            writeln!(o, "        0 => core::ptr::null(),").unwrap();
            writeln!(o, "        n => {{ let xs = d.alloc::<{s}>(n)?; for x in xs.iter_mut() {{ dec_{s}(d, x)?; }} xs.as_ptr() }}").unwrap();
            writeln!(o, "    }};").unwrap();
        }
        (1, None, Kind::Struct(s)) => {
            writeln!(o, "    {f} = if d.simple_pointer()? {{").unwrap();
            writeln!(
                o,
                "        let x = d.alloc::<{s}>(1)?; dec_{s}(d, &mut x[0])?; x.as_ptr()"
            )
            .unwrap();
            writeln!(o, "    }} else {{ core::ptr::null() }};").unwrap();
        }
        (1, None, Kind::Scalar(_)) => writeln!(o, "    {f} = d.scalar_array(1, true)?;").unwrap(),
        (2, None, Kind::Char) if count.is_some() => writeln!(
            o,
            "    {f} = d.string_array({}, {})?;",
            count.unwrap(),
            m.optional
        )
        .unwrap(),
        _ => writeln!(o, "    {f} = d.unsupported(\"{}.{}\")?;", def.name, m.name).unwrap(),
    }
}

fn encode_member(reg: &Registry, def: &StructDef, m: &Member, o: &mut String) {
    let f = format!("v.{}", m.name);
    match (m.ptr_depth, m.fixed_len, kind_of(reg, &m.ty)) {
        (0, None, Kind::Scalar(s)) => writeln!(o, "    e.{}({f});", s.wire_fn()).unwrap(),
        (0, None, Kind::Handle) => writeln!(o, "    e.u64({f});").unwrap(),
        (0, None, Kind::Struct(s)) if !reg.struct_def(&s).unwrap().is_union => {
            writeln!(o, "    enc_{s}(e, &{f});").unwrap()
        }
        (0, Some(n), Kind::Char) => {
            writeln!(o, "    e.array_size({n});\n    e.char_array(&{f});").unwrap()
        }
        (0, Some(n), Kind::Scalar(_)) => {
            writeln!(o, "    e.array_size({n});\n    e.fixed_array(&{f});").unwrap()
        }
        (0, Some(n), Kind::Handle) => {
            writeln!(o, "    e.array_size({n});\n    e.fixed_array(&{f});").unwrap()
        }
        (0, Some(n), Kind::Struct(s)) => writeln!(
            o,
            "    e.array_size({n});\n    for x in {f}.iter() {{ enc_{s}(e, x); }}"
        )
        .unwrap(),
        _ => writeln!(o, "    e.unsupported(\"{}.{}\");", def.name, m.name).unwrap(),
    }
}

fn emit_codec(reg: &Registry, sel: &Selection, def: &StructDef, o: &mut String) {
    let name = &def.name;
    let chain = has_chain(def);
    if def.is_union {
        // Unions travel as a u32 tag (the member's index) and that member.
        writeln!(o, "pub fn dec_{name}(d: &mut Decoder<'_, '_>, v: &mut {name}) -> Result<(), DecodeError> {{").unwrap();
        writeln!(o, "    match d.u32()? {{").unwrap();
        for (i, m) in def.members.iter().enumerate() {
            let mut body = String::new();
            decode_member_into(reg, def, m, "x", &mut body);
            writeln!(
                o,
                "        {i} => {{ let mut x: {} = zeroed(); {} *v = {name} {{ {}: x }}; }}",
                rust_type(reg, m),
                body.trim(),
                m.name
            )
            .unwrap();
        }
        writeln!(
            o,
            "        _ => return Err(d.fatal(\"bad {name} tag\")),\n    }}\n    Ok(())\n}}"
        )
        .unwrap();
        writeln!(o, "pub fn dec_{name}_partial(_d: &mut Decoder<'_, '_>, _v: &mut {name}) -> Result<(), DecodeError> {{ Ok(()) }}").unwrap();
        return;
    }
    // Whole decode.
    writeln!(o, "pub fn dec_{name}_self(d: &mut Decoder<'_, '_>, v: &mut {name}) -> Result<(), DecodeError> {{").unwrap();
    writeln!(o, "    let _ = (&d, &v);").unwrap();
    for m in body_members(def) {
        decode_member(reg, def, m, o);
    }
    writeln!(o, "    Ok(())\n}}").unwrap();
    writeln!(
        o,
        "pub fn dec_{name}(d: &mut Decoder<'_, '_>, v: &mut {name}) -> Result<(), DecodeError> {{"
    )
    .unwrap();
    if chain {
        writeln!(o, "    v.sType = d.stype(stype::{name})?;").unwrap();
        writeln!(o, "    v.pNext = dec_chain_{name}(d)? as _;").unwrap();
    }
    writeln!(o, "    dec_{name}_self(d, v)\n}}").unwrap();
    // Partial decode: what the driver sends of an output struct.
    let pointer_members = body_members(def).any(|m| m.ptr_depth > 0);
    writeln!(o, "pub fn dec_{name}_self_partial(d: &mut Decoder<'_, '_>, v: &mut {name}) -> Result<(), DecodeError> {{").unwrap();
    writeln!(o, "    let _ = (&d, &v);").unwrap();
    if pointer_members {
        writeln!(o, "    d.unsupported::<()>(\"output {name}\")?;").unwrap();
    }
    for m in body_members(def) {
        // Handles an output struct returns travel as the ids the driver chose for them.
        if let (0, Kind::Handle) = (m.ptr_depth, kind_of(reg, &m.ty)) {
            match m.fixed_len {
                None => writeln!(o, "    v.{} = d.u64()?;", m.name).unwrap(),
                Some(n) => writeln!(
                    o,
                    "    d.array_size_eq({n})?;\n    for x in v.{}.iter_mut() {{ *x = d.u64()?; }}",
                    m.name
                )
                .unwrap(),
            }
        }
        if let (0, Kind::Struct(s)) = (m.ptr_depth, kind_of(reg, &m.ty)) {
            match m.fixed_len {
                None => writeln!(o, "    dec_{s}_partial(d, &mut v.{})?;", m.name).unwrap(),
                Some(n) => writeln!(
                    o,
                    "    d.array_size_eq({n})?;\n    for x in v.{}.iter_mut() {{ dec_{s}_partial(d, x)?; }}",
                    m.name
                )
                .unwrap(),
            }
        }
    }
    writeln!(o, "    Ok(())\n}}").unwrap();
    writeln!(o, "pub fn dec_{name}_partial(d: &mut Decoder<'_, '_>, v: &mut {name}) -> Result<(), DecodeError> {{").unwrap();
    if chain {
        writeln!(o, "    v.sType = d.stype(stype::{name})?;").unwrap();
        writeln!(o, "    v.pNext = dec_chain_{name}_partial(d)? as _;").unwrap();
    }
    writeln!(o, "    dec_{name}_self_partial(d, v)\n}}").unwrap();
    // Encode.
    writeln!(o, "pub fn enc_{name}_self(e: &mut Encoder, v: &{name}) {{").unwrap();
    writeln!(o, "    let _ = (&e, &v);").unwrap();
    for m in body_members(def) {
        encode_member(reg, def, m, o);
    }
    writeln!(o, "}}").unwrap();
    writeln!(o, "pub fn enc_{name}(e: &mut Encoder, v: &{name}) {{").unwrap();
    if chain {
        writeln!(
            o,
            "    e.i32(v.sType);\n    enc_chain_{name}(e, v.pNext as *const c_void);"
        )
        .unwrap();
    }
    writeln!(o, "    enc_{name}_self(e, v);\n}}").unwrap();
    if chain {
        emit_chain(sel, def, o);
    }
}

/// Chain decoders and encoder for the structs that may extend `def`.
fn emit_chain(sel: &Selection, def: &StructDef, o: &mut String) {
    let name = &def.name;
    let ext = &sel.extenders[name];
    for partial in ["", "_partial"] {
        writeln!(o, "fn dec_chain_{name}{partial}(d: &mut Decoder<'_, '_>) -> Result<*mut c_void, DecodeError> {{").unwrap();
        if ext.is_empty() {
            writeln!(
                o,
                "    if !d.simple_pointer()? {{ return Ok(core::ptr::null_mut()); }}"
            )
            .unwrap();
            writeln!(
                o,
                "    let stype = d.i32()?;\n    Err(d.unexpected_stype(stype, \"{name}\"))\n}}"
            )
            .unwrap();
            continue;
        }
        writeln!(
            o,
            "    if !d.simple_pointer()? {{ return Ok(core::ptr::null_mut()); }}"
        )
        .unwrap();
        writeln!(o, "    let stype = d.i32()?;\n    d.enter_chain()?;\n    let node: *mut c_void = match stype {{").unwrap();
        for x in ext {
            writeln!(o, "        stype::{x} => {{").unwrap();
            writeln!(o, "            let n = &mut d.alloc::<{x}>(1)?[0];").unwrap();
            writeln!(o, "            n.sType = stype;\n            n.pNext = dec_chain_{name}{partial}(d)? as _;").unwrap();
            writeln!(o, "            dec_{x}_self{partial}(d, n)?;\n            n as *mut {x} as *mut c_void\n        }}").unwrap();
        }
        writeln!(
            o,
            "        _ => return Err(d.unexpected_stype(stype, \"{name}\")),\n    }};"
        )
        .unwrap();
        writeln!(o, "    d.leave_chain();\n    Ok(node)\n}}").unwrap();
    }
    writeln!(
        o,
        "fn enc_chain_{name}(e: &mut Encoder, p: *const c_void) {{"
    )
    .unwrap();
    writeln!(o, "    let mut p = p;\n    loop {{").unwrap();
    writeln!(o, "        if p.is_null() {{ e.u64(0); return; }}").unwrap();
    writeln!(o, "        // SAFETY: chains handed to the encoder are the decoder's own, in this command's arena: every").unwrap();
    writeln!(o, "        // node starts with sType and pNext and was allocated as the type its sType names.").unwrap();
    writeln!(
        o,
        "        let base = unsafe {{ &*(p as *const BaseStructure) }};"
    )
    .unwrap();
    writeln!(o, "        match base.sType {{").unwrap();
    for x in ext {
        writeln!(o, "            stype::{x} => {{").unwrap();
        writeln!(
            o,
            "                // SAFETY: as above; the sType says this node is a {x}."
        )
        .unwrap();
        writeln!(
            o,
            "                let n = unsafe {{ &*(p as *const {x}) }};"
        )
        .unwrap();
        writeln!(o, "                e.u64(1);\n                e.i32(n.sType);\n                enc_chain_{name}(e, n.pNext as *const c_void);").unwrap();
        writeln!(
            o,
            "                enc_{x}_self(e, n);\n                return;\n            }}"
        )
        .unwrap();
    }
    writeln!(
        o,
        "            _ => p = base.pNext,\n        }}\n    }}\n}}"
    )
    .unwrap();
}

pub fn emit(reg: &Registry, sel: &Selection) -> String {
    let mut o = String::new();
    for s in &sel.structs {
        let def = reg.struct_def(s).unwrap();
        emit_type(reg, def, &mut o);
        emit_codec(reg, sel, def, &mut o);
    }
    o
}
