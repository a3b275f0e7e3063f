//! Commands forwarded as they are (`pass` in served.txt): their host function type, a table of
//! them per device, and the call with the decoded arguments (vkCmd* and the like, which carry
//! no renderer logic).

use std::fmt::Write;

use crate::{
    emit_commands::{classify, ret_type, Param},
    emit_structs::objtype,
    registry::Registry,
    select::Selection,
    types::rust_base,
};

pub fn emit(reg: &Registry, sel: &Selection) -> String {
    let mut o = String::new();
    let mut fields = String::new();
    let mut loads = String::new();
    for name in &sel.passthrough {
        let cmd = &reg.commands[name];
        let params: Vec<Param> = cmd.params.iter().map(|p| classify(reg, cmd, p)).collect();
        let mut c_types = Vec::new();
        let mut call_args = Vec::new();
        // A strided array (vkCmdDrawMulti*EXT) arrives packed, one element after another: the
        // host gets the element size as its stride, whatever the driver says (Mesa's sends the
        // element size; a hostile one's would have the host read past the decoded array).
        let packed_strides: Vec<(String, String)> = cmd
            .params
            .iter()
            .filter_map(|p| Some((p.stride.clone()?, rust_base(reg, &p.ty))))
            .collect();
        for (p, k) in cmd.params.iter().zip(&params) {
            let n = &p.name;
            if let Some((_, elem)) = packed_strides.iter().find(|(s, _)| s == n) {
                c_types.push("u32".into());
                call_args.push(format!("core::mem::size_of::<{elem}>() as u32"));
                continue;
            }
            let (ty, arg) = match k {
                Param::Allocator => ("*const c_void".to_string(), "core::ptr::null()".to_string()),
                Param::InHandle { .. } => ("u64".to_string(), format!("a.{n}.raw")),
                Param::InScalar(s) => (s.rust().to_string(), format!("a.{n}")),
                Param::InFixedArray(t, _) => (format!("*const {t}"), format!("a.{n}.as_ptr()")),
                Param::InStruct(..) => ("*const c_void".into(), format!("opt_ptr(a.{n})")),
                Param::InArray(_) | Param::InBlob(_) => {
                    ("*const c_void".into(), format!("ptr_or_null(a.{n}).cast()"))
                }
                Param::InString => ("*const c_void".into(), format!("a.{n}.cast()")),
                Param::OutScalar { .. }
                | Param::OutArray(_)
                | Param::OutStruct(..)
                | Param::OutBlob(_) => (
                    "*mut c_void".into(),
                    format!("mut_ptr_or_null(a.{n}).cast()"),
                ),
                Param::OutHandles(_) => {
                    panic!("{name} creates objects: it cannot be a passthrough")
                }
            };
            c_types.push(ty);
            call_args.push(arg);
        }
        let ret = ret_type(reg, cmd);
        let arrow = ret.as_ref().map(|r| format!(" -> {r}")).unwrap_or_default();
        writeln!(
            o,
            "pub type PFN_{name} = unsafe extern \"system\" fn({}){arrow};",
            c_types.join(", ")
        )
        .unwrap();
        writeln!(fields, "    pub {name}: Option<PFN_{name}>,").unwrap();
        // A device made for an older API version exports a promoted command only under its
        // extension's name (vkCmdBeginRenderingKHR on a 1.2 device): try the aliases too.
        let mut names = vec![name.clone()];
        let mut aliases: Vec<&String> = reg
            .aliases
            .iter()
            .filter(|(alias, target)| *target == name && alias.starts_with("vk"))
            .map(|(alias, _)| alias)
            .collect();
        aliases.sort();
        names.extend(aliases.into_iter().cloned());
        let lookup = names
            .iter()
            .map(|n| format!("get(c\"{n}\")"))
            .collect::<Vec<_>>()
            .join(".or_else(|| ")
            + &")".repeat(names.len() - 1);
        writeln!(
            loads,
            "            {name}: {lookup}.map(|f| {{\n                // SAFETY: the loader returns the function of this name, whose C signature is\n                // PFN_{name} (generated from the registry with C-layout argument types).\n                unsafe {{ core::mem::transmute::<unsafe extern \"system\" fn(), PFN_{name}>(f) }}\n            }}),"
        )
        .unwrap();
        writeln!(o, "#[allow(non_snake_case)]").unwrap();
        writeln!(o, "pub fn pass_{name}(t: &DeviceCommands, a: &mut {name}_args<'_>) -> Result<(), DecodeError> {{").unwrap();
        writeln!(o, "    let f = t.{name}.ok_or(DecodeError::Unsupported(\"{name} (not exported by the host)\"))?;").unwrap();
        writeln!(o, "    // SAFETY: every handle was looked up in the context's typed tables, every pointer is a decoded").unwrap();
        writeln!(o, "    // argument in this command's arena (counted as the registry says), and the argument types").unwrap();
        writeln!(o, "    // mirror the C ones.").unwrap();
        let call = format!("unsafe {{ f({}) }}", call_args.join(", "));
        if ret.is_some() {
            writeln!(o, "    a.ret = {call};").unwrap();
        } else {
            writeln!(o, "    {call};").unwrap();
        }
        writeln!(o, "    Ok(())\n}}").unwrap();
    }
    writeln!(
        o,
        "/// The passthrough commands' host functions for one device."
    )
    .unwrap();
    writeln!(
        o,
        "#[allow(non_snake_case)]\npub struct DeviceCommands {{\n{fields}}}"
    )
    .unwrap();
    writeln!(o, "impl DeviceCommands {{").unwrap();
    writeln!(
        o,
        "    /// Resolves every function with `get` (vkGetDeviceProcAddr for the device)."
    )
    .unwrap();
    writeln!(o, "    pub fn load(get: &dyn Fn(&core::ffi::CStr) -> Option<unsafe extern \"system\" fn()>) -> Self {{").unwrap();
    writeln!(
        o,
        "        DeviceCommands {{\n{loads}        }}\n    }}\n}}"
    )
    .unwrap();
    o
}

/// The commands that give a queue work to do: a slice's submit gate sees each of them.
const PUTS_WORK_ON_QUEUE: [&str; 4] = [
    "vkQueueSubmit",
    "vkQueueSubmit2",
    "vkQueueSubmit2KHR",
    "vkQueueBindSparse",
];

/// The dispatcher arm of a passthrough command: the device table comes from its first handle.
pub fn arm(reg: &Registry, name: &str) -> String {
    let cmd = &reg.commands[name];
    let first = &cmd.params[0];
    let objtype = objtype(reg, &first.ty);
    assert!(
        objtype != 0,
        "{name}: a passthrough needs a handle as its first parameter"
    );
    let on_queue = reg.resolve(&first.ty) == "VkQueue";
    let call = if on_queue && PUTS_WORK_ON_QUEUE.contains(&name) {
        format!(
            "h.submit_work(a.{}.raw, &mut || {{ pass_{name}(&t, &mut a)?; Ok(a.ret) }})?;",
            first.name
        )
    } else if on_queue {
        format!("{{ let _queue = h.queue_lock(); pass_{name}(&t, &mut a)?; }}")
    } else {
        format!("pass_{name}(&t, &mut a)?;")
    };
    format!(
        "        command_type::{} => {{\n            let mut a = dec_{name}(&mut Decoder::new(stream, arena, h.objects()))?;\n            let t = h.device_commands({objtype}, a.{}.raw)?;\n            {call}\n            if wants_reply {{ let mut e = Encoder::default(); reply_{name}(&mut e, &a); h.reply(cx, e)?; }}\n        }}",
        name.trim_start_matches("vk"),
        first.name
    )
}
