//! Context bookkeeping shared by the backends: which contexts exist and which resources each
//! one has attached. The rules (ids, capset check, attach/detach errors) are the same whatever
//! runs the contexts' command streams, so they live here once.

use std::collections::{HashMap, HashSet};

use gpu_interface::{GpuError, GpuResult, ResourceId};

/// A context's view of its attached resources.
pub trait ContextResources {
    fn resources(&self) -> &HashSet<ResourceId>;
    fn resources_mut(&mut self) -> &mut HashSet<ResourceId>;
}

impl ContextResources for HashSet<ResourceId> {
    fn resources(&self) -> &HashSet<ResourceId> {
        self
    }

    fn resources_mut(&mut self) -> &mut HashSet<ResourceId> {
        self
    }
}

/// The contexts of a backend, keyed by context id.
pub trait ContextTable<C> {
    /// The context `ctx_id`, or `InvalidContextId`.
    fn context(&self, ctx_id: u32) -> GpuResult<&C>;

    /// Adds `ctx` as `ctx_id`. `capset_id` must be 0 (no capset) or one of `offered`; `ctx_id`
    /// must be non-zero and unused.
    fn create(&mut self, ctx_id: u32, capset_id: u32, offered: &[u32], ctx: C) -> GpuResult<()>;

    /// Removes context `ctx_id`.
    fn destroy(&mut self, ctx_id: u32) -> GpuResult<()>;

    /// Attaches resource `id` (which must `exist`) to `ctx_id`.
    fn attach(&mut self, ctx_id: u32, id: ResourceId, exists: bool) -> GpuResult<()>;

    /// Detaches resource `id` from `ctx_id`; it must have been attached.
    fn detach(&mut self, ctx_id: u32, id: ResourceId) -> GpuResult<()>;

    /// Checks that resource `id` `exists` and is attached to `ctx_id`.
    fn check_attached(&self, ctx_id: u32, id: ResourceId, exists: bool) -> GpuResult<()>;

    /// Attaches a just-created resource to `ctx_id` if that context exists (ctx 0: none).
    fn adopt(&mut self, ctx_id: u32, id: ResourceId);

    /// Detaches a destroyed resource `id` from every context.
    fn forget_resource(&mut self, id: ResourceId);
}

impl<C: ContextResources> ContextTable<C> for HashMap<u32, C> {
    fn context(&self, ctx_id: u32) -> GpuResult<&C> {
        self.get(&ctx_id).ok_or(GpuError::InvalidContextId(ctx_id))
    }

    fn create(&mut self, ctx_id: u32, capset_id: u32, offered: &[u32], ctx: C) -> GpuResult<()> {
        if capset_id != 0 && !offered.contains(&capset_id) {
            return Err(GpuError::InvalidParameter(
                "capset not offered by this backend",
            ));
        }
        if ctx_id == 0 || self.contains_key(&ctx_id) {
            return Err(GpuError::InvalidContextId(ctx_id));
        }
        self.insert(ctx_id, ctx);
        Ok(())
    }

    fn destroy(&mut self, ctx_id: u32) -> GpuResult<()> {
        self.remove(&ctx_id)
            .map(drop)
            .ok_or(GpuError::InvalidContextId(ctx_id))
    }

    fn attach(&mut self, ctx_id: u32, id: ResourceId, exists: bool) -> GpuResult<()> {
        if !exists {
            return Err(GpuError::InvalidResourceId(id));
        }
        let ctx = self
            .get_mut(&ctx_id)
            .ok_or(GpuError::InvalidContextId(ctx_id))?;
        ctx.resources_mut().insert(id);
        Ok(())
    }

    fn detach(&mut self, ctx_id: u32, id: ResourceId) -> GpuResult<()> {
        let ctx = self
            .get_mut(&ctx_id)
            .ok_or(GpuError::InvalidContextId(ctx_id))?;
        if ctx.resources_mut().remove(&id) {
            Ok(())
        } else {
            Err(GpuError::InvalidResourceId(id))
        }
    }

    fn check_attached(&self, ctx_id: u32, id: ResourceId, exists: bool) -> GpuResult<()> {
        let attached = self.context(ctx_id)?.resources().contains(&id);
        if !exists || !attached {
            return Err(GpuError::InvalidResourceId(id));
        }
        Ok(())
    }

    fn adopt(&mut self, ctx_id: u32, id: ResourceId) {
        if let Some(ctx) = self.get_mut(&ctx_id) {
            ctx.resources_mut().insert(id);
        }
    }

    fn forget_resource(&mut self, id: ResourceId) {
        for ctx in self.values_mut() {
            ctx.resources_mut().remove(&id);
        }
    }
}

/// A resource's UUID for RESOURCE_ASSIGN_UUID: an RFC 4122 version-4 layout around the id,
/// `tag` naming the backend, so it is unique per resource of a device.
pub fn resource_uuid(tag: [u8; 8], id: ResourceId) -> [u8; 16] {
    let mut uuid = [0u8; 16];
    uuid[..8].copy_from_slice(&tag);
    uuid[6] = 0x40 | (uuid[6] & 0x0f);
    uuid[8] = 0x80 | (uuid[8] & 0x3f);
    uuid[12..16].copy_from_slice(&id.to_be_bytes());
    uuid
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_attach_detach_destroy() {
        let mut t: HashMap<u32, HashSet<ResourceId>> = HashMap::new();
        assert_eq!(
            t.create(1, 7, &[63], HashSet::new()),
            Err(GpuError::InvalidParameter(
                "capset not offered by this backend"
            ))
        );
        assert_eq!(
            t.create(0, 0, &[], HashSet::new()),
            Err(GpuError::InvalidContextId(0))
        );
        t.create(1, 63, &[63], HashSet::new()).unwrap();
        assert_eq!(
            t.create(1, 0, &[], HashSet::new()),
            Err(GpuError::InvalidContextId(1))
        );
        assert_eq!(t.attach(1, 5, false), Err(GpuError::InvalidResourceId(5)));
        assert_eq!(t.attach(2, 5, true), Err(GpuError::InvalidContextId(2)));
        t.attach(1, 5, true).unwrap();
        t.check_attached(1, 5, true).unwrap();
        assert_eq!(
            t.check_attached(1, 5, false),
            Err(GpuError::InvalidResourceId(5))
        );
        assert_eq!(
            t.check_attached(1, 6, true),
            Err(GpuError::InvalidResourceId(6))
        );
        t.adopt(1, 6);
        t.adopt(9, 7);
        t.check_attached(1, 6, true).unwrap();
        t.create(2, 0, &[], HashSet::new()).unwrap();
        t.attach(2, 6, true).unwrap();
        t.forget_resource(6);
        for ctx_id in [1, 2] {
            assert_eq!(
                t.check_attached(ctx_id, 6, true),
                Err(GpuError::InvalidResourceId(6))
            );
        }
        t.check_attached(1, 5, true).unwrap();
        t.destroy(2).unwrap();
        t.detach(1, 5).unwrap();
        assert_eq!(t.detach(1, 5), Err(GpuError::InvalidResourceId(5)));
        t.destroy(1).unwrap();
        assert_eq!(t.destroy(1), Err(GpuError::InvalidContextId(1)));
        assert!(t.is_empty());
    }

    #[test]
    fn uuid_is_v4_and_carries_the_id() {
        let u = resource_uuid(*b"vgpu-sw-", 0x0102_0304);
        assert_eq!(&u[..6], b"vgpu-s");
        assert_eq!(u[6] >> 4, 4, "version 4");
        assert_eq!(u[8] >> 6, 0b10, "RFC 4122 variant");
        assert_eq!(&u[12..], &[1, 2, 3, 4]);
        assert_ne!(u, resource_uuid(*b"vgpu-sw-", 5));
    }
}
