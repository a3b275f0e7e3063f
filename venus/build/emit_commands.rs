//! One argument struct, decoder and reply encoder per served command, the `Handlers` trait the
//! renderer implements (one method per command) and the dispatcher.

use std::fmt::Write;

use crate::{
    emit_structs::objtype,
    registry::{Command, Member, Registry},
    types::{kind_of, rust_base, Kind, Scalar},
};

pub enum Param {
    Allocator,
    InHandle { objtype: i64, required: bool },
    InScalar(Scalar),
    InFixedArray(String, usize),
    InStruct(String, bool),
    InArray(String),
    InString,
    InBlob(String),
    OutHandles(Option<String>),
    OutScalar { with_value: bool },
    OutArray(Option<String>),
    OutStruct(String, Option<String>, bool),
    OutBlob(String),
}

pub fn classify(reg: &Registry, cmd: &Command, p: &Member) -> Param {
    if p.ty == "VkAllocationCallbacks" {
        return Param::Allocator;
    }
    let is_len_of_other = cmd.params.iter().any(|q| {
        q.len
            .as_deref()
            .is_some_and(|l| l.split(',').next() == Some(p.name.as_str()))
    });
    let len = p
        .len
        .clone()
        .map(|l| l.split(',').next().unwrap().to_string());
    let kind = kind_of(reg, &p.ty);
    if p.ptr_depth == 0 {
        return match (kind, p.fixed_len) {
            (Kind::Handle, None) => Param::InHandle {
                objtype: objtype(reg, &p.ty),
                required: !p.optional,
            },
            (Kind::Scalar(s), None) => Param::InScalar(s),
            (Kind::Scalar(s), Some(n)) => Param::InFixedArray(s.rust().to_string(), n),
            _ => panic!(
                "{}: parameter {} passed by value is not supported",
                cmd.name, p.name
            ),
        };
    }
    if p.is_const {
        return match kind {
            Kind::Char => Param::InString,
            Kind::Void => Param::InBlob(len.expect("void* with len")),
            Kind::Struct(s) if len.is_none() => Param::InStruct(s, !p.optional),
            // One optional scalar by pointer (vkCmdDrawMultiIndexedEXT's pVertexOffset): on the
            // wire, exactly an array of 0 or 1.
            Kind::Scalar(_) if len.is_none() && p.optional => Param::InArray("1".into()),
            _ if len.is_some() => Param::InArray(len.unwrap()),
            _ => panic!("{}: parameter {} not supported", cmd.name, p.name),
        };
    }
    match kind {
        Kind::Handle => Param::OutHandles(len),
        Kind::Scalar(_) if len.is_none() => Param::OutScalar {
            with_value: is_len_of_other,
        },
        Kind::Scalar(_) => Param::OutArray(len),
        Kind::Struct(s) => Param::OutStruct(s, len, p.optional),
        Kind::Void => Param::OutBlob(len.expect("void* out with len")),
        _ => panic!("{}: out parameter {} not supported", cmd.name, p.name),
    }
}

/// A command `len` in terms of decode-time locals.
fn len_local(len: &str, cmd: &Command) -> String {
    if len.parse::<usize>().is_ok() {
        return format!("{len}usize");
    }
    if let Some((ptr, field)) = len.split_once("->") {
        return format!("({ptr}_ref.map_or(0, |r| r.{field} as usize))");
    }
    // vkCmdSetSampleMaskEXT: one mask word per 32 samples.
    if let Some(inner) = len
        .strip_prefix('(')
        .and_then(|l| l.strip_suffix(" + 31) / 32"))
    {
        return format!("({}.div_ceil(32))", len_local(inner, cmd));
    }
    let p = cmd
        .params
        .iter()
        .find(|q| q.name == len)
        .unwrap_or_else(|| panic!("{}: len {len}", cmd.name));
    if p.ptr_depth == 0 {
        format!("({len} as usize)")
    } else {
        format!("{len}_value")
    }
}

pub fn ret_type(reg: &Registry, cmd: &Command) -> Option<String> {
    (cmd.ret != "void").then(|| rust_base(reg, &cmd.ret))
}

fn emit_args(reg: &Registry, cmd: &Command, params: &[Param], o: &mut String) {
    writeln!(
        o,
        "#[allow(non_camel_case_types)]\npub struct {}_args<'a> {{",
        cmd.name
    )
    .unwrap();
    writeln!(o, "    _arena: core::marker::PhantomData<&'a ()>,").unwrap();
    for (p, k) in cmd.params.iter().zip(params) {
        let elem = rust_base(reg, &p.ty);
        let ty = match k {
            Param::Allocator => continue,
            Param::InHandle { .. } => "Handle".to_string(),
            Param::InScalar(s) => s.rust().to_string(),
            Param::InFixedArray(t, n) => format!("[{t}; {n}]"),
            Param::InStruct(s, _) => format!("Option<&'a {s}>"),
            Param::InArray(_) if matches!(kind_of(reg, &p.ty), Kind::Handle) => {
                "&'a [u64]".to_string()
            }
            Param::InArray(_) => format!("&'a [{elem}]"),
            Param::InString => "*const c_char".to_string(),
            Param::InBlob(_) => "&'a [u8]".to_string(),
            Param::OutHandles(..) => "&'a mut [u64]".to_string(),
            Param::OutScalar { .. } | Param::OutArray(_) => format!("&'a mut [{elem}]"),
            Param::OutStruct(s, ..) => format!("&'a mut [{s}]"),
            Param::OutBlob(_) => "&'a mut [u8]".to_string(),
        };
        writeln!(o, "    pub {}: {ty},", p.name).unwrap();
    }
    if let Some(r) = ret_type(reg, cmd) {
        writeln!(o, "    pub ret: {r},").unwrap();
    }
    writeln!(o, "}}").unwrap();
}

fn emit_decode(reg: &Registry, cmd: &Command, params: &[Param], o: &mut String) {
    let name = &cmd.name;
    writeln!(o, "#[allow(non_snake_case, unused_variables, unused_mut)]").unwrap();
    writeln!(
        o,
        "pub fn dec_{name}<'a>(d: &mut Decoder<'a, '_>) -> Result<{name}_args<'a>, DecodeError> {{"
    )
    .unwrap();
    let mut fields = vec!["_arena: core::marker::PhantomData".to_string()];
    for (p, k) in cmd.params.iter().zip(params) {
        let n = &p.name;
        let elem = rust_base(reg, &p.ty);
        // A strided draw array is noautovalidity in the registry, but the host reads drawCount
        // elements of it: never absent when the count is not 0.
        let lenient = p.optional && p.stride.is_none();
        match k {
            Param::Allocator => {
                writeln!(o, "    if d.simple_pointer()? {{ return Err(d.fatal(\"pAllocator is not null\")); }}").unwrap();
                continue;
            }
            Param::InHandle { objtype, required } => {
                writeln!(o, "    let {n} = d.handle_arg({objtype}, {required})?;").unwrap()
            }
            Param::InScalar(s) => writeln!(o, "    let {n} = d.{}()?;", s.wire_fn()).unwrap(),
            Param::InFixedArray(t, len) => writeln!(
                o,
                "    let mut {n} = [0 as {t}; {len}];\n    d.fixed_array(&mut {n})?;"
            )
            .unwrap(),
            Param::InStruct(s, required) => {
                writeln!(
                    o,
                    "    let {n}: Option<&'a {s}> = if d.simple_pointer()? {{"
                )
                .unwrap();
                writeln!(
                    o,
                    "        let x = &mut d.alloc::<{s}>(1)?[0]; dec_{s}(d, x)?; Some(x)"
                )
                .unwrap();
                writeln!(o, "    }} else {{ None }};").unwrap();
                if *required {
                    writeln!(
                        o,
                        "    if {n}.is_none() {{ return Err(d.fatal(\"{name}: {n} is null\")); }}"
                    )
                    .unwrap();
                }
                writeln!(o, "    let {n}_ref = {n};").unwrap();
            }
            Param::InArray(len) => {
                let count = len_local(len, cmd);
                match kind_of(reg, &p.ty) {
                    Kind::Handle => writeln!(
                        o,
                        "    let {n} = d.handle_slice({count}, {}, {lenient})?;",
                        objtype(reg, &p.ty)
                    )
                    .unwrap(),
                    Kind::Struct(s) => {
                        writeln!(o, "    let {n}: &'a [{s}] = {{").unwrap();
                        writeln!(o, "        let c = d.array_len({count}, {lenient})?;").unwrap();
                        writeln!(o, "        let xs = d.alloc::<{s}>(c)?; for x in xs.iter_mut() {{ dec_{s}(d, x)?; }} xs").unwrap();
                        writeln!(o, "    }};").unwrap();
                    }
                    _ => writeln!(
                        o,
                        "    let {n}: &'a [{elem}] = d.scalar_slice({count}, {lenient})?;"
                    )
                    .unwrap(),
                }
            }
            Param::InString => writeln!(o, "    let {n} = d.string()?;").unwrap(),
            Param::InBlob(len) => writeln!(
                o,
                "    let {n} = d.blob_slice({}, {lenient})?;",
                len_local(len, cmd)
            )
            .unwrap(),
            Param::OutHandles(len) => {
                let c = match len {
                    None => "usize::from(d.simple_pointer()?)".to_string(),
                    Some(l) => format!("d.array_len({}, true)?", len_local(l, cmd)),
                };
                writeln!(
                    o,
                    "    let {n}_count = {c};\n    let {n} = d.u64_slice({n}_count)?;"
                )
                .unwrap();
            }
            Param::OutScalar { with_value } => {
                writeln!(o, "    let {n}_count = usize::from(d.simple_pointer()?);").unwrap();
                writeln!(o, "    let {n} = d.alloc::<{elem}>({n}_count)?;").unwrap();
                if *with_value {
                    let s = match kind_of(reg, &p.ty) {
                        Kind::Scalar(s) => s,
                        _ => unreachable!(),
                    };
                    writeln!(
                        o,
                        "    if let Some(x) = {n}.first_mut() {{ *x = d.{}()?; }}",
                        s.wire_fn()
                    )
                    .unwrap();
                    writeln!(
                        o,
                        "    let {n}_value = {n}.first().map_or(0, |&x| x as usize);"
                    )
                    .unwrap();
                }
            }
            Param::OutArray(Some(len)) | Param::OutBlob(len) => {
                let elem = if matches!(k, Param::OutBlob(_)) {
                    "u8".to_string()
                } else {
                    elem.clone()
                };
                writeln!(
                    o,
                    "    let {n}_count = d.array_len({}, true)?;",
                    len_local(len, cmd)
                )
                .unwrap();
                writeln!(o, "    let {n} = d.alloc::<{elem}>({n}_count)?;").unwrap();
            }
            Param::OutStruct(s, len, optional) => {
                match len {
                    None => {
                        writeln!(o, "    let {n}_count = usize::from(d.simple_pointer()?);")
                            .unwrap();
                        if !optional {
                            writeln!(o, "    if {n}_count == 0 {{ return Err(d.fatal(\"{name}: {n} is null\")); }}").unwrap();
                        }
                    }
                    Some(l) => writeln!(
                        o,
                        "    let {n}_count = d.array_len({}, true)?;",
                        len_local(l, cmd)
                    )
                    .unwrap(),
                }
                writeln!(o, "    let {n} = d.alloc::<{s}>({n}_count)?;").unwrap();
                writeln!(
                    o,
                    "    for x in {n}.iter_mut() {{ dec_{s}_partial(d, x)?; }}"
                )
                .unwrap();
            }
            Param::OutArray(None) => unreachable!("scalar outs without len are OutScalar"),
        }
        fields.push(n.clone());
    }
    if ret_type(reg, cmd).is_some() {
        fields.push("ret: Default::default()".into());
    }
    writeln!(o, "    Ok({name}_args {{ {} }})\n}}", fields.join(", ")).unwrap();
}

fn emit_reply(reg: &Registry, cmd: &Command, params: &[Param], o: &mut String) {
    let name = &cmd.name;
    writeln!(o, "#[allow(non_snake_case, unused_variables)]").unwrap();
    writeln!(
        o,
        "pub fn reply_{name}(e: &mut Encoder, a: &{name}_args<'_>) {{"
    )
    .unwrap();
    writeln!(
        o,
        "    e.u32(command_type::{});",
        name.trim_start_matches("vk")
    )
    .unwrap();
    if let Some(r) = ret_type(reg, cmd) {
        let f = match kind_of(reg, &cmd.ret) {
            Kind::Scalar(s) => s.wire_fn(),
            _ => panic!("{name}: return type {r}"),
        };
        writeln!(o, "    e.{f}(a.ret);").unwrap();
    }
    for (p, k) in cmd.params.iter().zip(params) {
        let n = &p.name;
        // How many elements of an output array go back: what the host wrote into the count
        // pointer (never more than the room the driver made), else the whole array.
        let count = |len: &Option<String>| -> String {
            match len {
                Some(l)
                    if !l.contains("->")
                        && cmd.params.iter().any(|q| q.name == *l && q.ptr_depth > 0) =>
                {
                    format!("a.{n}.len().min(a.{l}.first().map_or(0, |&c| c as usize))")
                }
                _ => format!("a.{n}.len()"),
            }
        };
        let simple = |len: &Option<String>| len.is_none();
        match k {
            Param::OutHandles(len) => {
                let c = count(len);
                writeln!(
                    o,
                    "    {{ let c = {c}; e.u64(c as u64); for &x in &a.{n}[..c] {{ e.u64(x); }} }}"
                )
                .unwrap();
                let _ = simple(len);
            }
            Param::OutScalar { .. } => {
                let f = match kind_of(reg, &p.ty) {
                    Kind::Scalar(s) => s.wire_fn(),
                    _ => unreachable!(),
                };
                writeln!(
                    o,
                    "    e.u64(a.{n}.len() as u64);\n    for &x in a.{n}.iter() {{ e.{f}(x); }}"
                )
                .unwrap();
            }
            Param::OutArray(len) => {
                writeln!(
                    o,
                    "    {{ let c = {}; e.u64(c as u64); e.scalars(&a.{n}[..c]); }}",
                    count(len)
                )
                .unwrap();
            }
            Param::OutBlob(len) => {
                writeln!(
                    o,
                    "    {{ let c = {}; e.u64(c as u64); e.bytes(&a.{n}[..c]); }}",
                    count(&Some(len.clone()))
                )
                .unwrap();
            }
            Param::OutStruct(s, len, _) => {
                writeln!(o, "    {{ let c = {}; e.u64(c as u64); for x in &a.{n}[..c] {{ enc_{s}(e, x); }} }}", count(len)).unwrap();
            }
            _ => {}
        }
    }
    writeln!(o, "}}").unwrap();
}

pub fn emit(reg: &Registry, sel: &crate::select::Selection) -> String {
    let mut o = String::new();
    let mut trait_body = String::new();
    let mut arms = String::new();
    let mut decode_arms = String::new();
    for (name, _) in &sel.commands {
        let cmd = &reg.commands[name];
        let params: Vec<Param> = cmd.params.iter().map(|p| classify(reg, cmd, p)).collect();
        emit_args(reg, cmd, &params, &mut o);
        emit_decode(reg, cmd, &params, &mut o);
        emit_reply(reg, cmd, &params, &mut o);
        writeln!(
            decode_arms,
            "        command_type::{} => {{ let a = dec_{name}(&mut Decoder::new(stream, arena, objects))?; reply_{name}(reply, &a); }}",
            name.trim_start_matches("vk")
        )
        .unwrap();
        if sel.passthrough.contains(name) {
            arms.push_str(&crate::emit_passthrough::arm(reg, name));
            arms.push('\n');
            continue;
        }
        writeln!(trait_body, "    fn {name}(&self, cx: &mut Self::Cx, a: &mut {name}_args<'_>) -> Result<(), Self::Error>;").unwrap();
        writeln!(
            arms,
            "        command_type::{} => {{\n            let mut a = dec_{name}(&mut Decoder::new(stream, arena, h.objects()))?;\n            h.{name}(cx, &mut a)?;\n            if wants_reply {{ let mut e = Encoder::default(); reply_{name}(&mut e, &a); h.reply(cx, e)?; }}\n        }}",
            name.trim_start_matches("vk")
        )
        .unwrap();
    }
    writeln!(
        o,
        "/// The renderer: one method per served command, called with decoded arguments."
    )
    .unwrap();
    writeln!(o, "#[allow(non_snake_case)]\npub trait Handlers {{").unwrap();
    writeln!(
        o,
        "    /// Per-stream state (the reply stream, which dispatcher it is).\n    type Cx;"
    )
    .unwrap();
    writeln!(o, "    type Error: From<DecodeError>;").unwrap();
    writeln!(
        o,
        "    /// The context's object table, for the decoder's id lookups."
    )
    .unwrap();
    writeln!(o, "    fn objects(&self) -> &dyn Lookup;").unwrap();
    writeln!(
        o,
        "    /// The passthrough functions of the device that owns object `raw` of type `objtype`."
    )
    .unwrap();
    writeln!(o, "    fn device_commands(&self, objtype: i32, raw: u64) -> Result<std::sync::Arc<DeviceCommands>, Self::Error>;").unwrap();
    writeln!(
        o,
        "    /// Held around every host call on a queue: Vulkan wants queues externally synchronized,\n    /// and the renderer submits on queues of its own accord too (timeline fences)."
    )
    .unwrap();
    writeln!(
        o,
        "    fn queue_lock(&self) -> std::sync::MutexGuard<'_, ()>;"
    )
    .unwrap();
    writeln!(
        o,
        "    /// Runs `submit` (a command giving `queue` work; it returns the command's VkResult)\n    /// under the queue lock, once the slice's submit gate, if any, lets it."
    )
    .unwrap();
    writeln!(
        o,
        "    fn submit_work(&self, queue: u64, submit: &mut dyn FnMut() -> Result<i32, DecodeError>) -> Result<(), Self::Error>;"
    )
    .unwrap();
    writeln!(o, "    /// Writes one command's reply to the reply stream.").unwrap();
    writeln!(
        o,
        "    fn reply(&self, cx: &mut Self::Cx, reply: Encoder) -> Result<(), Self::Error>;"
    )
    .unwrap();
    o.push_str(&trait_body);
    writeln!(o, "}}").unwrap();
    writeln!(o, "/// Decodes and runs one command from `d`.").unwrap();
    writeln!(o, "pub fn dispatch_one<H: Handlers>(h: &H, cx: &mut H::Cx, stream: &mut Cursor<'_>, arena: &mut Arena) -> Result<(), H::Error> {{").unwrap();
    writeln!(o, "    arena.reset();\n    let cmd = stream.u32()?;\n    let flags = stream.u32()?;\n    let wants_reply = flags & COMMAND_GENERATE_REPLY != 0;").unwrap();
    writeln!(o, "    match cmd {{\n{arms}        _ => return Err(DecodeError::UnknownCommand(cmd).into()),\n    }}\n    Ok(())\n}}").unwrap();
    writeln!(o, "/// Decodes one command and encodes a reply from the decoded arguments, running nothing: the").unwrap();
    writeln!(
        o,
        "/// decoder on its own, for benchmarks and fuzzing. Returns the command type."
    )
    .unwrap();
    writeln!(o, "pub fn decode_only(stream: &mut Cursor<'_>, arena: &mut Arena, objects: &dyn Lookup, reply: &mut Encoder) -> Result<u32, DecodeError> {{").unwrap();
    writeln!(
        o,
        "    arena.reset();\n    let cmd = stream.u32()?;\n    let _flags = stream.u32()?;"
    )
    .unwrap();
    writeln!(o, "    match cmd {{\n{decode_arms}        _ => return Err(DecodeError::UnknownCommand(cmd)),\n    }}\n    Ok(cmd)\n}}").unwrap();
    o
}
