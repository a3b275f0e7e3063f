//! Host Vulkan through ash, one file per object family, as virglrenderer and Mesa's venus driver
//! organise theirs.

pub mod buffer;
pub mod command_buffer;
pub mod descriptor;
pub mod device;
pub mod image;
pub mod instance;
pub mod memory;
pub mod object;
pub mod physical_device;
pub mod pipeline;
pub mod query;
pub mod queue;
pub mod queue_timer;
pub mod render_pass;
pub mod sync;

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use ash::vk::{self, Handle as _};

use crate::{
    context::{DeviceSelector, RenderError},
    protocol::generated::{DeviceCommands, SERVED_EXTENSIONS, VK_XML_VERSION},
};

pub const OBJECT_TYPE_INSTANCE: i32 = vk::ObjectType::INSTANCE.as_raw();
pub const OBJECT_TYPE_PHYSICAL_DEVICE: i32 = vk::ObjectType::PHYSICAL_DEVICE.as_raw();
pub const OBJECT_TYPE_DEVICE: i32 = vk::ObjectType::DEVICE.as_raw();
pub const OBJECT_TYPE_QUEUE: i32 = vk::ObjectType::QUEUE.as_raw();

/// A host queue, its device and the ring index (timeline) the driver bound it to.
#[derive(Clone, Copy, Debug)]
pub struct QueueInfo {
    pub device: u64,
    pub ring_idx: Option<u32>,
    pub family: u32,
}

/// The host side of one context: the loader, the instances it created and which instance each
/// physical device belongs to.
pub struct Host {
    entry: ash::Entry,
    selector: DeviceSelector,
    instances: RwLock<HashMap<u64, ash::Instance>>,
    device_owner: RwLock<HashMap<u64, u64>>,
    /// Shared, not cloned per command: an ash::Device carries every core function table.
    devices: RwLock<HashMap<u64, Arc<ash::Device>>>,
    queues: RwLock<HashMap<u64, QueueInfo>>,
    /// Command buffer -> (device, pool).
    command_buffers: RwLock<HashMap<u64, (u64, u64)>>,
    /// Device -> what the renderer knows of it.
    device_info: RwLock<HashMap<u64, DeviceInfo>>,
    /// Device -> the host functions of the commands forwarded as they are.
    device_commands: RwLock<HashMap<u64, Arc<DeviceCommands>>>,
    /// Descriptor set -> its pool.
    descriptor_sets: RwLock<HashMap<u64, u64>>,
}

/// The renderer's own facts about a host device.
#[derive(Clone, Copy, Debug, Default)]
pub struct DeviceInfo {
    pub physical_device: u64,
    /// The API version of the host device's functions.
    pub api_version: u32,
    /// VK_EXT_external_memory_host is enabled: host-visible memory is our memfd, imported.
    pub host_pointer_import: bool,
    pub host_pointer_alignment: u64,
}

impl Host {
    pub fn load(selector: DeviceSelector) -> Result<Self, RenderError> {
        // SAFETY: loads the system Vulkan loader; it is only called through the function pointers
        // ash resolves from it, and `entry` outlives every object made with it.
        let entry = unsafe { ash::Entry::load() }.map_err(|e| RenderError::Load(e.to_string()))?;
        Ok(Host {
            entry,
            selector,
            instances: RwLock::default(),
            device_owner: RwLock::default(),
            devices: RwLock::default(),
            queues: RwLock::default(),
            command_buffers: RwLock::default(),
            device_info: RwLock::default(),
            device_commands: RwLock::default(),
            descriptor_sets: RwLock::default(),
        })
    }

    /// The highest instance version both the host and our protocol (vk.xml) know.
    pub fn instance_version(&self) -> u32 {
        // SAFETY: a global query with no pointers kept.
        let host = unsafe { self.entry.try_enumerate_instance_version() }
            .ok()
            .flatten()
            .unwrap_or(vk::API_VERSION_1_0);
        host.min(VK_XML_VERSION)
    }

    pub fn instance(&self, raw: u64) -> Result<ash::Instance, RenderError> {
        let i = self.instances.read().unwrap().get(&raw).cloned();
        i.ok_or_else(|| RenderError::Invalid(format!("no host instance {raw:#x}")))
    }

    /// The instance functions that serve physical device `raw`.
    pub fn instance_of(&self, physical_device: u64) -> Result<ash::Instance, RenderError> {
        let owner = self
            .device_owner
            .read()
            .unwrap()
            .get(&physical_device)
            .copied();
        self.instance(owner.ok_or_else(|| {
            RenderError::Invalid(format!("unknown physical device {physical_device:#x}"))
        })?)
    }

    /// The physical devices this context exposes, in host order.
    pub fn selected_devices(&self, instance: &ash::Instance) -> Vec<vk::PhysicalDevice> {
        // SAFETY: `instance` is live (it is in our table).
        let all = unsafe { instance.enumerate_physical_devices() }.unwrap_or_default();
        let named = |pd: &vk::PhysicalDevice, needle: &str| {
            // SAFETY: `pd` was just enumerated from this instance.
            let props = unsafe { instance.get_physical_device_properties(*pd) };
            props
                .device_name_as_c_str()
                .is_ok_and(|n| n.to_string_lossy().contains(needle))
        };
        let chosen: Vec<_> = match &self.selector {
            DeviceSelector::All => all,
            DeviceSelector::Index(i) => all.get(*i).copied().into_iter().collect(),
            DeviceSelector::Name(n) => all
                .iter()
                .copied()
                .filter(|pd| named(pd, n))
                .take(1)
                .collect(),
        };
        let inst = instance.handle().as_raw();
        let mut owner = self.device_owner.write().unwrap();
        for pd in &chosen {
            owner.insert(pd.as_raw(), inst);
        }
        chosen
    }

    pub fn entry(&self) -> &ash::Entry {
        &self.entry
    }

    pub(crate) fn add_instance(&self, instance: ash::Instance) {
        self.instances
            .write()
            .unwrap()
            .insert(instance.handle().as_raw(), instance);
    }

    pub(crate) fn remove_instance(&self, raw: u64) -> Option<ash::Instance> {
        self.device_owner
            .write()
            .unwrap()
            .retain(|_, owner| *owner != raw);
        self.instances.write().unwrap().remove(&raw)
    }

    pub fn device(&self, raw: u64) -> Result<Arc<ash::Device>, RenderError> {
        let d = self.devices.read().unwrap().get(&raw).cloned();
        d.ok_or_else(|| RenderError::Invalid(format!("no host device {raw:#x}")))
    }

    pub(crate) fn add_device(
        &self,
        instance: &ash::Instance,
        device: ash::Device,
        info: DeviceInfo,
    ) {
        let raw = device.handle();
        let get_proc = instance.fp_v1_0().get_device_proc_addr;
        // SAFETY: vkGetDeviceProcAddr on a live device with NUL-terminated names.
        let commands = DeviceCommands::load(&|name| unsafe { get_proc(raw, name.as_ptr()) });
        self.device_commands
            .write()
            .unwrap()
            .insert(raw.as_raw(), Arc::new(commands));
        self.device_info
            .write()
            .unwrap()
            .insert(device.handle().as_raw(), info);
        self.devices
            .write()
            .unwrap()
            .insert(device.handle().as_raw(), Arc::new(device));
    }

    pub(crate) fn remove_device(&self, raw: u64) -> Option<Arc<ash::Device>> {
        self.device_commands.write().unwrap().remove(&raw);
        self.device_info.write().unwrap().remove(&raw);
        self.command_buffers
            .write()
            .unwrap()
            .retain(|_, (d, _)| *d != raw);
        self.devices.write().unwrap().remove(&raw)
    }

    /// The host device, if its functions include those of Vulkan `version` (ash would make a
    /// missing one a function that panics; a hostile driver may name a command the host lacks).
    pub fn device_of_version(
        &self,
        raw: u64,
        version: u32,
    ) -> Result<Arc<ash::Device>, RenderError> {
        let have = self.device_info(raw)?.api_version;
        if have < version {
            return Err(RenderError::Invalid(format!(
                "a Vulkan {}.{} command on a host device of {}.{}",
                vk::api_version_major(version),
                vk::api_version_minor(version),
                vk::api_version_major(have),
                vk::api_version_minor(have)
            )));
        }
        self.device(raw)
    }

    pub fn device_info(&self, raw: u64) -> Result<DeviceInfo, RenderError> {
        let i = self.device_info.read().unwrap().get(&raw).copied();
        i.ok_or_else(|| RenderError::Invalid(format!("no host device {raw:#x}")))
    }

    /// The passthrough functions of the device owning object `raw` (a device, queue or command
    /// buffer).
    pub fn device_commands(
        &self,
        objtype: i32,
        raw: u64,
    ) -> Result<Arc<DeviceCommands>, RenderError> {
        let device = match vk::ObjectType::from_raw(objtype) {
            vk::ObjectType::DEVICE => Some(raw),
            vk::ObjectType::QUEUE => self.queue(raw).map(|q| q.device),
            vk::ObjectType::COMMAND_BUFFER => self
                .command_buffers
                .read()
                .unwrap()
                .get(&raw)
                .map(|&(d, _)| d),
            _ => None,
        };
        let t = device.and_then(|d| self.device_commands.read().unwrap().get(&d).cloned());
        t.ok_or_else(|| {
            RenderError::Invalid(format!("no device for object {raw:#x} of type {objtype}"))
        })
    }

    pub(crate) fn add_descriptor_set(&self, set: u64, pool: u64) {
        self.descriptor_sets.write().unwrap().insert(set, pool);
    }

    pub(crate) fn forget_descriptor_set(&self, set: u64) {
        self.descriptor_sets.write().unwrap().remove(&set);
    }

    /// Forgets the sets of `pool`, returning them.
    pub(crate) fn take_descriptor_sets(&self, pool: u64) -> Vec<u64> {
        take_where(&self.descriptor_sets, |&p| p == pool)
    }

    pub(crate) fn add_command_buffer(&self, cb: u64, device: u64, pool: u64) {
        self.command_buffers
            .write()
            .unwrap()
            .insert(cb, (device, pool));
    }

    pub(crate) fn forget_command_buffer(&self, cb: u64) {
        self.command_buffers.write().unwrap().remove(&cb);
    }

    /// Forgets the command buffers of `pool`, returning them.
    pub(crate) fn take_command_buffers(&self, pool: u64) -> Vec<u64> {
        take_where(&self.command_buffers, |&(_, p)| p == pool)
    }

    pub fn device_of_command_buffer(&self, cb: u64) -> Result<Arc<ash::Device>, RenderError> {
        let d = self
            .command_buffers
            .read()
            .unwrap()
            .get(&cb)
            .map(|&(d, _)| d);
        self.device(
            d.ok_or_else(|| RenderError::Invalid(format!("unknown command buffer {cb:#x}")))?,
        )
    }

    /// Memory type flags of a device's memory type.
    pub fn memory_type_flags(
        &self,
        device: u64,
        index: u32,
    ) -> Result<vk::MemoryPropertyFlags, RenderError> {
        let pd = self.device_info(device)?.physical_device;
        let instance = self.instance_of(pd)?;
        // SAFETY: `pd` is a live physical device of `instance`.
        let props = unsafe {
            instance.get_physical_device_memory_properties(vk::PhysicalDevice::from_raw(pd))
        };
        props
            .memory_types_as_slice()
            .get(index as usize)
            .map(|t| t.property_flags)
            .ok_or_else(|| RenderError::Invalid(format!("memory type {index} does not exist")))
    }

    pub(crate) fn add_queue(&self, queue: u64, info: QueueInfo) {
        self.queues.write().unwrap().insert(queue, info);
    }

    pub fn queue(&self, raw: u64) -> Option<QueueInfo> {
        self.queues.read().unwrap().get(&raw).copied()
    }

    /// The queue the driver bound to ring index `ring_idx`, if any.
    pub fn queue_for_ring(&self, ring_idx: u32) -> Option<(u64, QueueInfo)> {
        self.queues
            .read()
            .unwrap()
            .iter()
            .find(|(_, q)| q.ring_idx == Some(ring_idx))
            .map(|(&raw, &q)| (raw, q))
    }

    /// Forgets the queues of `device`, returning them.
    pub(crate) fn take_queues(&self, device: u64) -> Vec<u64> {
        take_where(&self.queues, |q| q.device == device)
    }

    /// The host devices alive.
    pub(crate) fn device_handles(&self) -> Vec<u64> {
        self.devices.read().unwrap().keys().copied().collect()
    }

    /// Destroys every host device and instance the context still holds (a client that went
    /// away); their children first go through `device::destroy_device_and_children`.
    pub fn destroy_all(&self) {
        let devices: Vec<Arc<ash::Device>> = self
            .devices
            .write()
            .unwrap()
            .drain()
            .map(|(_, d)| d)
            .collect();
        self.queues.write().unwrap().clear();
        for d in devices {
            // SAFETY: the device is ours; wait for its work before destroying it.
            let _ = unsafe { d.device_wait_idle() };
            // SAFETY: idle, and no table refers to it any more.
            unsafe { d.destroy_device(None) };
        }
        let instances: Vec<ash::Instance> = self
            .instances
            .write()
            .unwrap()
            .drain()
            .map(|(_, i)| i)
            .collect();
        self.device_owner.write().unwrap().clear();
        for i in instances {
            // SAFETY: the instance is ours and no longer reachable from any table.
            unsafe { i.destroy_instance(None) };
        }
    }
}

/// The count of a two-call query (`pXCount`, `pX`), held to the room the driver made for `pX`
/// (the decoder already makes the two agree; the host is only ever handed a count it may fill).
/// `None` when the driver sent no count.
pub(crate) fn query_count<'a, T>(count: &'a mut [u32], out: &[T]) -> Option<&'a mut u32> {
    let c = count.first_mut()?;
    if !out.is_empty() {
        *c = (*c).min(out.len() as u32);
    }
    Some(c)
}

/// Removes the entries whose value matches `owned`, returning their keys (the children of a
/// pool or device that goes away).
fn take_where<V>(map: &RwLock<HashMap<u64, V>>, owned: impl Fn(&V) -> bool) -> Vec<u64> {
    let mut m = map.write().unwrap();
    let gone: Vec<u64> = m
        .iter()
        .filter(|(_, v)| owned(v))
        .map(|(&k, _)| k)
        .collect();
    for k in &gone {
        m.remove(k);
    }
    gone
}

/// Whether the protocol serves extension `name` (so the driver may see it).
pub fn served_extension(name: &[i8]) -> bool {
    let bytes: Vec<u8> = name
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    SERVED_EXTENSIONS
        .iter()
        .any(|(n, _)| n.as_bytes() == bytes.as_slice())
}
