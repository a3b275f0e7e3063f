//! What every create and destroy command shares: the host call, then the driver's id in the
//! object table (or, on destroy, out of it).

use ash::vk;

use crate::{
    context::{Context, RenderError},
    protocol::generated::{BaseStructure, Handle},
};

/// Creates one host object and registers it under the id the driver chose; if the id is taken,
/// the host object is destroyed again and the context fails.
pub(crate) fn create<H: vk::Handle + Default>(
    ctx: &Context,
    device: Handle,
    ids: &[u64],
    objtype: vk::ObjectType,
    ret: &mut i32,
    create: impl FnOnce(&ash::Device, &mut H) -> vk::Result,
    destroy: impl FnOnce(&ash::Device, H),
) -> Result<(), RenderError> {
    let dev = ctx.host.device(device.raw)?;
    let id = ids
        .first()
        .copied()
        .ok_or_else(|| RenderError::Invalid("no object id".into()))?;
    let mut handle = H::default();
    let r = create(&dev, &mut handle);
    *ret = r.as_raw();
    if r != vk::Result::SUCCESS {
        return Ok(());
    }
    let raw = handle.as_raw();
    if let Err(e) = ctx
        .objects
        .insert_owned(id, objtype.as_raw(), raw, device.raw)
    {
        destroy(&dev, H::from_raw(raw));
        return Err(e.into());
    }
    Ok(())
}

/// Destroys one host object the driver names (a null handle is a no-op, as in Vulkan).
pub(crate) fn destroy<H: vk::Handle>(
    ctx: &Context,
    device: Handle,
    object: Handle,
    objtype: vk::ObjectType,
    destroy: impl FnOnce(&ash::Device, H),
) -> Result<(), RenderError> {
    if object.id == 0 {
        return Ok(());
    }
    let dev = ctx.host.device(device.raw)?;
    let raw = ctx.objects.remove(object.id, objtype.as_raw())?;
    destroy(&dev, H::from_raw(raw));
    Ok(())
}

/// Unlinks the nodes with these sTypes from a decoded pNext chain, returning the new head.
///
/// # Safety
/// `head` must be a chain the decoder built in the current command's arena (every node starts
/// with sType and pNext, and the arena is writable and live).
pub(crate) unsafe fn remove_from_chain(
    head: *const std::ffi::c_void,
    stypes: &[i32],
) -> *const std::ffi::c_void {
    let mut first = head;
    let mut prev: *mut BaseStructure = std::ptr::null_mut();
    let mut p = head as *mut BaseStructure;
    while !p.is_null() {
        // SAFETY: per the contract, `p` is a live arena node.
        let node = unsafe { &mut *p };
        let next = node.pNext as *mut BaseStructure;
        if stypes.contains(&node.sType) {
            if prev.is_null() {
                first = next as *const _;
            } else {
                // SAFETY: `prev` is an earlier live node of the same chain.
                unsafe { (*prev).pNext = next as *const _ };
            }
        } else {
            prev = p;
        }
        p = next;
    }
    first
}

/// Finds a node of one sType in a decoded chain.
///
/// # Safety
/// As for `remove_from_chain`; `T` must be the struct that `stype` names.
pub(crate) unsafe fn find_in_chain<'a, T>(
    head: *const std::ffi::c_void,
    stype: i32,
) -> Option<&'a T> {
    let mut p = head as *const BaseStructure;
    while !p.is_null() {
        // SAFETY: per the contract, `p` is a live arena node.
        let node = unsafe { &*p };
        if node.sType == stype {
            // SAFETY: per the contract, a node with this sType is a T.
            return Some(unsafe { &*(p as *const T) });
        }
        p = node.pNext as *const BaseStructure;
    }
    None
}

/// The create handler of a family whose objects come from one create info
/// (`vkCreateX(device, pCreateInfo, pAllocator, pX)`).
macro_rules! create_fn {
    ($name:ident, $args:ident, $info:ident, $out:ident, $fp:ident . $host:ident, $handle:ty, $objtype:ident, $host_destroy:ident) => {
        pub fn $name(ctx: &Context, _: &mut StreamCx, a: &mut $args) -> Result<(), RenderError> {
            let info = a.pCreateInfo.ok_or(RenderError::Fatal)?;
            super::object::create(
                ctx,
                a.device,
                a.$out,
                ash::vk::ObjectType::$objtype,
                &mut a.ret,
                |d, out: &mut $handle| {
                    // SAFETY: the create info is a decoded mirror of the ash struct (layout
                    // asserted at build time) whose pointers are into this command's arena.
                    unsafe {
                        (d.$fp().$host)(
                            d.handle(),
                            (info as *const $info).cast(),
                            std::ptr::null(),
                            out,
                        )
                    }
                },
                |d, h| {
                    // SAFETY: destroying the object just created, which no table names.
                    unsafe { d.$host_destroy(h, None) }
                },
            )
        }
    };
}

/// The destroy handler of such a family (`vkDestroyX(device, x, pAllocator)`).
macro_rules! destroy_fn {
    ($name:ident, $args:ident, $field:ident, $objtype:ident, $host_destroy:ident) => {
        pub fn $name(ctx: &Context, _: &mut StreamCx, a: &mut $args) -> Result<(), RenderError> {
            super::object::destroy(
                ctx,
                a.device,
                a.$field,
                ash::vk::ObjectType::$objtype,
                |d, h| {
                    // SAFETY: a live object of this device (the decoder looked it up), now out of
                    // the table; the driver no longer uses it.
                    unsafe { d.$host_destroy(h, None) }
                },
            )
        }
    };
}

pub(crate) use {create_fn, destroy_fn};
