//! Vulkan instance and device: the loader is opened at run time, one physical device is picked
//! (a GPU before lavapipe, or the one an override names), and one compute queue is used for all
//! work.

use std::ffi::CStr;

use ash::vk;
use tracing::{debug, info};

use super::VulkanError;

/// Environment variable naming the physical device to use: its index in enumeration order, or a
/// case-insensitive substring of its name ("llvmpipe", "NVIDIA").
pub const DEVICE_ENV: &str = "VGPU_VULKAN_DEVICE";

/// The opened device and what the rest of the backend needs to know about it.
pub struct GpuDevice {
    /// The loader library; Drop destroys the device and instance, then this unloads with the
    /// fields.
    _entry: ash::Entry,
    instance: ash::Instance,
    pub physical: vk::PhysicalDevice,
    pub device: ash::Device,
    pub queue: vk::Queue,
    pub queue_family: u32,
    pub memory_props: vk::PhysicalDeviceMemoryProperties,
    pub limits: vk::PhysicalDeviceLimits,
    /// `VK_EXT_external_memory_host` and its pointer alignment, when the device has it: host
    /// blobs are memfds the device imports, so the guest and the GPU share them.
    pub external_host: Option<(ash::ext::external_memory_host::Device, u64)>,
    pub name: String,
}

/// What a physical device offers, for ranking and logging.
struct Candidate {
    physical: vk::PhysicalDevice,
    name: String,
    kind: vk::PhysicalDeviceType,
    queue_family: u32,
    /// `minImportedHostPointerAlignment` when VK_EXT_external_memory_host is there.
    host_import_alignment: Option<u64>,
}

/// Lower is better: real GPUs first, the CPU rasterizer last.
fn type_rank(kind: vk::PhysicalDeviceType) -> u32 {
    match kind {
        vk::PhysicalDeviceType::DISCRETE_GPU => 0,
        vk::PhysicalDeviceType::INTEGRATED_GPU => 1,
        vk::PhysicalDeviceType::VIRTUAL_GPU => 2,
        vk::PhysicalDeviceType::CPU => 3,
        _ => 4,
    }
}

impl GpuDevice {
    /// Opens the Vulkan loader and a device. `selector` (or, if `None`, the `VGPU_VULKAN_DEVICE`
    /// environment variable) picks a device by index or by name substring.
    pub fn open(selector: Option<&str>) -> Result<Self, VulkanError> {
        // SAFETY: loading the system Vulkan loader runs its initialisers; libvulkan is a
        // well-behaved shared library and we keep the Entry alive as long as anything from it.
        let entry = unsafe { ash::Entry::load() }.map_err(|e| VulkanError::Load(e.to_string()))?;
        let app_info = vk::ApplicationInfo::default()
            .application_name(c"vgpu virtio-gpu")
            .api_version(vk::API_VERSION_1_2);
        let create_info = vk::InstanceCreateInfo::default().application_info(&app_info);
        // SAFETY: create_info and what it points to outlive the call.
        let instance = unsafe { entry.create_instance(&create_info, None) }
            .map_err(VulkanError::vk("vkCreateInstance"))?;
        match Self::open_device(&instance, selector) {
            Ok((candidate, device)) => {
                let c = &candidate;
                // SAFETY: `c.physical` was enumerated from this instance.
                let memory_props =
                    unsafe { instance.get_physical_device_memory_properties(c.physical) };
                // SAFETY: as above.
                let props = unsafe { instance.get_physical_device_properties(c.physical) };
                // SAFETY: queue family `c.queue_family` index 0 was requested at device creation.
                let queue = unsafe { device.get_device_queue(c.queue_family, 0) };
                let external_host = c.host_import_alignment.map(|align| {
                    let ext = ash::ext::external_memory_host::Device::new(&instance, &device);
                    (ext, align)
                });
                info!(device = %c.name, kind = ?c.kind, "vulkan: using physical device");
                Ok(GpuDevice {
                    _entry: entry,
                    instance,
                    physical: c.physical,
                    device,
                    queue,
                    queue_family: c.queue_family,
                    memory_props,
                    limits: props.limits,
                    external_host,
                    name: candidate.name,
                })
            }
            Err(e) => {
                // SAFETY: nothing created from the instance survives (open_device cleans up).
                unsafe { instance.destroy_instance(None) };
                Err(e)
            }
        }
    }

    fn open_device(
        instance: &ash::Instance,
        selector: Option<&str>,
    ) -> Result<(Candidate, ash::Device), VulkanError> {
        // SAFETY: the instance is valid.
        let physicals = unsafe { instance.enumerate_physical_devices() }
            .map_err(VulkanError::vk("vkEnumeratePhysicalDevices"))?;
        let mut candidates = Vec::new();
        for (index, physical) in physicals.into_iter().enumerate() {
            match Self::inspect(instance, physical) {
                Ok(c) => {
                    debug!(index, device = %c.name, kind = ?c.kind, "vulkan: usable device");
                    candidates.push((index, c));
                }
                Err(why) => debug!(index, %why, "vulkan: skipping device"),
            }
        }
        let env = std::env::var(DEVICE_ENV).ok();
        let selector = selector.or(env.as_deref()).filter(|s| !s.is_empty());
        let chosen = match selector {
            Some(sel) => {
                let lower = sel.to_lowercase();
                let by_index = sel.parse::<usize>().ok();
                candidates
                    .into_iter()
                    .find(|(i, c)| Some(*i) == by_index || c.name.to_lowercase().contains(&lower))
                    .ok_or_else(|| {
                        VulkanError::NoDevice(format!("no usable device matches {sel:?}"))
                    })?
                    .1
            }
            None => {
                candidates
                    .into_iter()
                    .min_by_key(|(i, c)| (type_rank(c.kind), *i))
                    .ok_or_else(|| {
                        VulkanError::NoDevice(
                            "no device with Vulkan 1.2, compute and timeline semaphores".into(),
                        )
                    })?
                    .1
            }
        };
        let priorities = [1.0f32];
        let queue_info = [vk::DeviceQueueCreateInfo::default()
            .queue_family_index(chosen.queue_family)
            .queue_priorities(&priorities)];
        let mut extensions = Vec::new();
        if chosen.host_import_alignment.is_some() {
            extensions.push(ash::ext::external_memory_host::NAME.as_ptr());
        }
        let mut features12 = vk::PhysicalDeviceVulkan12Features::default().timeline_semaphore(true);
        let create_info = vk::DeviceCreateInfo::default()
            .queue_create_infos(&queue_info)
            .enabled_extension_names(&extensions)
            .push_next(&mut features12);
        // SAFETY: every pointer in create_info refers to locals that outlive the call; the
        // extension and feature were checked to be supported by `inspect`.
        let device = unsafe { instance.create_device(chosen.physical, &create_info, None) }
            .map_err(VulkanError::vk("vkCreateDevice"))?;
        Ok((chosen, device))
    }

    /// Checks that a physical device has what the backend needs.
    fn inspect(
        instance: &ash::Instance,
        physical: vk::PhysicalDevice,
    ) -> Result<Candidate, String> {
        // SAFETY: `physical` was enumerated from `instance`.
        let props = unsafe { instance.get_physical_device_properties(physical) };
        let name = props
            .device_name_as_c_str()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "unnamed device".into());
        if props.api_version < vk::API_VERSION_1_2 {
            return Err(format!("{name}: Vulkan 1.2 required"));
        }
        let mut features12 = vk::PhysicalDeviceVulkan12Features::default();
        let mut features = vk::PhysicalDeviceFeatures2::default().push_next(&mut features12);
        // SAFETY: as above; `features` chains only `features12`, which outlives the call.
        unsafe { instance.get_physical_device_features2(physical, &mut features) };
        if features12.timeline_semaphore == vk::FALSE {
            return Err(format!("{name}: no timeline semaphores"));
        }
        // SAFETY: as above.
        let families = unsafe { instance.get_physical_device_queue_family_properties(physical) };
        let queue_family = families
            .iter()
            .position(|f| f.queue_flags.contains(vk::QueueFlags::COMPUTE))
            .ok_or_else(|| format!("{name}: no compute queue"))? as u32;
        // SAFETY: as above.
        let extensions = unsafe { instance.enumerate_device_extension_properties(physical) }
            .map_err(|e| format!("{name}: vkEnumerateDeviceExtensionProperties: {e}"))?;
        let has = |wanted: &CStr| {
            extensions
                .iter()
                .any(|e| e.extension_name_as_c_str().is_ok_and(|n| n == wanted))
        };
        Ok(Candidate {
            physical,
            name,
            kind: props.device_type,
            queue_family,
            host_import_alignment: has(ash::ext::external_memory_host::NAME)
                .then(|| Self::host_import_alignment(instance, physical)),
        })
    }

    fn host_import_alignment(instance: &ash::Instance, physical: vk::PhysicalDevice) -> u64 {
        let mut host = vk::PhysicalDeviceExternalMemoryHostPropertiesEXT::default();
        let mut props = vk::PhysicalDeviceProperties2::default().push_next(&mut host);
        // SAFETY: `physical` belongs to `instance`; the chain holds only `host`, which outlives
        // the call, and the extension was found in the device's extension list.
        unsafe { instance.get_physical_device_properties2(physical, &mut props) };
        host.min_imported_host_pointer_alignment.max(4096)
    }

    /// A memory type allowed by `type_bits` with all of `required` flags, preferring one that
    /// also has `preferred`.
    pub fn memory_type(
        &self,
        type_bits: u32,
        required: vk::MemoryPropertyFlags,
        preferred: vk::MemoryPropertyFlags,
    ) -> Option<u32> {
        let count = self.memory_props.memory_type_count as usize;
        let types = &self.memory_props.memory_types[..count.min(vk::MAX_MEMORY_TYPES)];
        let allowed = |i: usize, flags: vk::MemoryPropertyFlags| {
            type_bits & (1 << i) != 0 && types[i].property_flags.contains(flags)
        };
        (0..types.len())
            .find(|&i| allowed(i, required | preferred))
            .or_else(|| (0..types.len()).find(|&i| allowed(i, required)))
            .map(|i| i as u32)
    }
}

impl Drop for GpuDevice {
    fn drop(&mut self) {
        // SAFETY: every object created from the device is owned by something holding an
        // `Arc<GpuDevice>`, so all of them are gone by now; waiting idle first makes sure no work
        // still runs when the device is destroyed.
        let _ = unsafe { self.device.device_wait_idle() };
        // SAFETY: as above; the device is idle and has no children left.
        unsafe { self.device.destroy_device(None) };
        // SAFETY: the device, the only child of the instance, was destroyed above.
        unsafe { self.instance.destroy_instance(None) };
    }
}
