//! The venus capset (virtio-gpu capset id 4) the renderer advertises.

use super::generated::{SERVED_EXTENSIONS, VK_XML_VERSION};

pub const CAPSET_ID_VENUS: u32 = 4;
/// The wire format this crate speaks.
pub const WIRE_FORMAT_VERSION: u32 = 1;
pub const EXT_COMMAND_SERIALIZATION_SPEC_VERSION: u32 = 1;
/// 3: ring priority, virtqueue and ring seqnos.
pub const MESA_VENUS_PROTOCOL_SPEC_VERSION: u32 = 3;

/// struct virgl_renderer_capset_venus: 5 words, a 32-word extension mask, 3 words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VenusCapset {
    pub wire_format_version: u32,
    pub vk_xml_version: u32,
    pub vk_ext_command_serialization_spec_version: u32,
    pub vk_mesa_venus_protocol_spec_version: u32,
    pub supports_blob_id_0: u32,
    /// Bit N set: extension number N is served. Bit 0 says the mask is valid.
    pub vk_extension_mask1: [u32; 32],
    pub allow_vk_wait_syncs: u32,
    pub supports_multiple_timelines: u32,
    pub use_guest_vram: u32,
}

impl VenusCapset {
    /// The capset for what this build serves.
    pub fn served() -> Self {
        let mut mask = [0u32; 32];
        mask[0] |= 1;
        for &(_, number) in SERVED_EXTENSIONS {
            let n = number as usize;
            if n / 32 < mask.len() {
                mask[n / 32] |= 1 << (n % 32);
            }
        }
        VenusCapset {
            wire_format_version: WIRE_FORMAT_VERSION,
            vk_xml_version: VK_XML_VERSION,
            vk_ext_command_serialization_spec_version: EXT_COMMAND_SERIALIZATION_SPEC_VERSION,
            vk_mesa_venus_protocol_spec_version: MESA_VENUS_PROTOCOL_SPEC_VERSION,
            supports_blob_id_0: 1,
            vk_extension_mask1: mask,
            allow_vk_wait_syncs: 1,
            supports_multiple_timelines: 1,
            use_guest_vram: 0,
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut words = vec![
            self.wire_format_version,
            self.vk_xml_version,
            self.vk_ext_command_serialization_spec_version,
            self.vk_mesa_venus_protocol_spec_version,
            self.supports_blob_id_0,
        ];
        words.extend_from_slice(&self.vk_extension_mask1);
        words.extend([
            self.allow_vk_wait_syncs,
            self.supports_multiple_timelines,
            self.use_guest_vram,
        ]);
        words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    pub fn serves_extension(&self, number: u32) -> bool {
        let n = number as usize;
        n / 32 < 32 && self.vk_extension_mask1[n / 32] & (1 << (n % 32)) != 0
    }
}
