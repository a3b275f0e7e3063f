//! The virtio-gpu wire protocol (virtio 1.3, section "GPU Device"), mirrored by name:
//! `virtio_gpu_ctrl_hdr` is [`CtrlHeader`], `virtio_gpu_resource_create_2d` is
//! [`ResourceCreate2d`], and so on. Every struct is decoded from guest bytes with zerocopy
//! (`FromBytes`), never by pointer casts; every field is little-endian.

use zerocopy::byteorder::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

// Feature bits.
pub const VIRTIO_GPU_F_VIRGL: u32 = 0;
pub const VIRTIO_GPU_F_EDID: u32 = 1;
pub const VIRTIO_GPU_F_RESOURCE_UUID: u32 = 2;
pub const VIRTIO_GPU_F_RESOURCE_BLOB: u32 = 3;
pub const VIRTIO_GPU_F_CONTEXT_INIT: u32 = 4;

// Events (virtio_gpu_config.events_read).
pub const VIRTIO_GPU_EVENT_DISPLAY: u32 = 1 << 0;

// Shared memory region ids.
pub const VIRTIO_GPU_SHM_ID_UNDEFINED: u8 = 0;
pub const VIRTIO_GPU_SHM_ID_HOST_VISIBLE: u8 = 1;

// 2D commands.
pub const VIRTIO_GPU_CMD_GET_DISPLAY_INFO: u32 = 0x0100;
pub const VIRTIO_GPU_CMD_RESOURCE_CREATE_2D: u32 = 0x0101;
pub const VIRTIO_GPU_CMD_RESOURCE_UNREF: u32 = 0x0102;
pub const VIRTIO_GPU_CMD_SET_SCANOUT: u32 = 0x0103;
pub const VIRTIO_GPU_CMD_RESOURCE_FLUSH: u32 = 0x0104;
pub const VIRTIO_GPU_CMD_TRANSFER_TO_HOST_2D: u32 = 0x0105;
pub const VIRTIO_GPU_CMD_RESOURCE_ATTACH_BACKING: u32 = 0x0106;
pub const VIRTIO_GPU_CMD_RESOURCE_DETACH_BACKING: u32 = 0x0107;
pub const VIRTIO_GPU_CMD_GET_CAPSET_INFO: u32 = 0x0108;
pub const VIRTIO_GPU_CMD_GET_CAPSET: u32 = 0x0109;
pub const VIRTIO_GPU_CMD_GET_EDID: u32 = 0x010a;
pub const VIRTIO_GPU_CMD_RESOURCE_ASSIGN_UUID: u32 = 0x010b;
pub const VIRTIO_GPU_CMD_RESOURCE_CREATE_BLOB: u32 = 0x010c;
pub const VIRTIO_GPU_CMD_SET_SCANOUT_BLOB: u32 = 0x010d;

// 3D commands.
pub const VIRTIO_GPU_CMD_CTX_CREATE: u32 = 0x0200;
pub const VIRTIO_GPU_CMD_CTX_DESTROY: u32 = 0x0201;
pub const VIRTIO_GPU_CMD_CTX_ATTACH_RESOURCE: u32 = 0x0202;
pub const VIRTIO_GPU_CMD_CTX_DETACH_RESOURCE: u32 = 0x0203;
pub const VIRTIO_GPU_CMD_RESOURCE_CREATE_3D: u32 = 0x0204;
pub const VIRTIO_GPU_CMD_TRANSFER_TO_HOST_3D: u32 = 0x0205;
pub const VIRTIO_GPU_CMD_TRANSFER_FROM_HOST_3D: u32 = 0x0206;
pub const VIRTIO_GPU_CMD_SUBMIT_3D: u32 = 0x0207;
pub const VIRTIO_GPU_CMD_RESOURCE_MAP_BLOB: u32 = 0x0208;
pub const VIRTIO_GPU_CMD_RESOURCE_UNMAP_BLOB: u32 = 0x0209;

// Cursor commands.
pub const VIRTIO_GPU_CMD_UPDATE_CURSOR: u32 = 0x0300;
pub const VIRTIO_GPU_CMD_MOVE_CURSOR: u32 = 0x0301;

// Success responses.
pub const VIRTIO_GPU_RESP_OK_NODATA: u32 = 0x1100;
pub const VIRTIO_GPU_RESP_OK_DISPLAY_INFO: u32 = 0x1101;
pub const VIRTIO_GPU_RESP_OK_CAPSET_INFO: u32 = 0x1102;
pub const VIRTIO_GPU_RESP_OK_CAPSET: u32 = 0x1103;
pub const VIRTIO_GPU_RESP_OK_EDID: u32 = 0x1104;
pub const VIRTIO_GPU_RESP_OK_RESOURCE_UUID: u32 = 0x1105;
pub const VIRTIO_GPU_RESP_OK_MAP_INFO: u32 = 0x1106;

// Error responses.
pub const VIRTIO_GPU_RESP_ERR_UNSPEC: u32 = 0x1200;
pub const VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY: u32 = 0x1201;
pub const VIRTIO_GPU_RESP_ERR_INVALID_SCANOUT_ID: u32 = 0x1202;
pub const VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID: u32 = 0x1203;
pub const VIRTIO_GPU_RESP_ERR_INVALID_CONTEXT_ID: u32 = 0x1204;
pub const VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER: u32 = 0x1205;

// virtio_gpu_ctrl_hdr.flags.
pub const VIRTIO_GPU_FLAG_FENCE: u32 = 1 << 0;
pub const VIRTIO_GPU_FLAG_INFO_RING_IDX: u32 = 1 << 1;

/// The most scanouts a device may have.
pub const VIRTIO_GPU_MAX_SCANOUTS: usize = 16;

// Formats (virtio_gpu_formats).
pub const VIRTIO_GPU_FORMAT_B8G8R8A8_UNORM: u32 = 1;
pub const VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM: u32 = 2;
pub const VIRTIO_GPU_FORMAT_A8R8G8B8_UNORM: u32 = 3;
pub const VIRTIO_GPU_FORMAT_X8R8G8B8_UNORM: u32 = 4;
pub const VIRTIO_GPU_FORMAT_R8G8B8A8_UNORM: u32 = 67;
pub const VIRTIO_GPU_FORMAT_X8B8G8R8_UNORM: u32 = 68;
pub const VIRTIO_GPU_FORMAT_A8B8G8R8_UNORM: u32 = 121;
pub const VIRTIO_GPU_FORMAT_R8G8B8X8_UNORM: u32 = 134;

// Capset ids.
pub const VIRTIO_GPU_CAPSET_VIRGL: u32 = 1;
pub const VIRTIO_GPU_CAPSET_VIRGL2: u32 = 2;
pub const VIRTIO_GPU_CAPSET_GFXSTREAM_VULKAN: u32 = 3;
pub const VIRTIO_GPU_CAPSET_VENUS: u32 = 4;
pub const VIRTIO_GPU_CAPSET_CROSS_DOMAIN: u32 = 5;
pub const VIRTIO_GPU_CAPSET_DRM: u32 = 6;
/// Our private "VG" capset (the command stream of `backend::software::stream`). Linux rejects
/// capset ids above 63 ("invalid capset id"), builds its capset mask with `1 << id` on a 32-bit
/// int and hands it to userspace (VIRTGPU_PARAM_SUPPORTED_CAPSET_IDs) as an int: our guests saw
/// id 63 as "capset 31", so the id must be at most 30. The spec and rutabaga assign 1..=9.
pub const VIRTIO_GPU_CAPSET_VG: u32 = 30;

/// virtio_gpu_ctx_create.context_init: the capset id is in the low byte.
pub const VIRTIO_GPU_CONTEXT_INIT_CAPSET_ID_MASK: u32 = 0x0000_00ff;

// Blob memory types and flags.
pub const VIRTIO_GPU_BLOB_MEM_GUEST: u32 = 0x0001;
pub const VIRTIO_GPU_BLOB_MEM_HOST3D: u32 = 0x0002;
pub const VIRTIO_GPU_BLOB_MEM_HOST3D_GUEST: u32 = 0x0003;
pub const VIRTIO_GPU_BLOB_FLAG_USE_MAPPABLE: u32 = 0x0001;
pub const VIRTIO_GPU_BLOB_FLAG_USE_SHAREABLE: u32 = 0x0002;
pub const VIRTIO_GPU_BLOB_FLAG_USE_CROSS_DEVICE: u32 = 0x0004;

// virtio_gpu_resp_map_info.map_info.
pub const VIRTIO_GPU_MAP_CACHE_MASK: u32 = 0x0f;
pub const VIRTIO_GPU_MAP_CACHE_NONE: u32 = 0x00;
pub const VIRTIO_GPU_MAP_CACHE_CACHED: u32 = 0x01;
pub const VIRTIO_GPU_MAP_CACHE_UNCACHED: u32 = 0x02;
pub const VIRTIO_GPU_MAP_CACHE_WC: u32 = 0x03;

/// Size of the EDID blob in virtio_gpu_resp_edid.
pub const VIRTIO_GPU_EDID_SIZE: usize = 1024;

/// Derives the zerocopy traits every wire struct needs.
macro_rules! wire {
    ($(#[$m:meta])* pub struct $name:ident { $($(#[$fm:meta])* pub $f:ident: $t:ty,)* }) => {
        $(#[$m])*
        #[repr(C)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[derive(FromBytes, IntoBytes, Immutable, KnownLayout)]
        pub struct $name { $($(#[$fm])* pub $f: $t,)* }
    };
}

wire! {
    /// `virtio_gpu_config`.
    pub struct Config {
        pub events_read: U32,
        pub events_clear: U32,
        pub num_scanouts: U32,
        pub num_capsets: U32,
    }
}

wire! {
    /// `virtio_gpu_ctrl_hdr`: starts every request and response.
    pub struct CtrlHeader {
        pub type_: U32,
        pub flags: U32,
        pub fence_id: U64,
        pub ctx_id: U32,
        pub ring_idx: u8,
        pub padding: [u8; 3],
    }
}

wire! {
    /// `virtio_gpu_rect`.
    pub struct Rect {
        pub x: U32,
        pub y: U32,
        pub width: U32,
        pub height: U32,
    }
}

wire! {
    /// `virtio_gpu_display_one`.
    pub struct DisplayOne {
        pub r: Rect,
        pub enabled: U32,
        pub flags: U32,
    }
}

wire! {
    /// `virtio_gpu_resp_display_info`.
    pub struct RespDisplayInfo {
        pub hdr: CtrlHeader,
        pub pmodes: [DisplayOne; VIRTIO_GPU_MAX_SCANOUTS],
    }
}

wire! {
    /// `virtio_gpu_get_edid`.
    pub struct GetEdid {
        pub hdr: CtrlHeader,
        pub scanout: U32,
        pub padding: U32,
    }
}

wire! {
    /// `virtio_gpu_resp_edid`.
    pub struct RespEdid {
        pub hdr: CtrlHeader,
        pub size: U32,
        pub padding: U32,
        pub edid: [u8; VIRTIO_GPU_EDID_SIZE],
    }
}

wire! {
    /// `virtio_gpu_resource_create_2d`.
    pub struct ResourceCreate2d {
        pub hdr: CtrlHeader,
        pub resource_id: U32,
        pub format: U32,
        pub width: U32,
        pub height: U32,
    }
}

wire! {
    /// `virtio_gpu_resource_unref`.
    pub struct ResourceUnref {
        pub hdr: CtrlHeader,
        pub resource_id: U32,
        pub padding: U32,
    }
}

wire! {
    /// `virtio_gpu_set_scanout`.
    pub struct SetScanout {
        pub hdr: CtrlHeader,
        pub r: Rect,
        pub scanout_id: U32,
        pub resource_id: U32,
    }
}

wire! {
    /// `virtio_gpu_resource_flush`.
    pub struct ResourceFlush {
        pub hdr: CtrlHeader,
        pub r: Rect,
        pub resource_id: U32,
        pub padding: U32,
    }
}

wire! {
    /// `virtio_gpu_transfer_to_host_2d`.
    pub struct TransferToHost2d {
        pub hdr: CtrlHeader,
        pub r: Rect,
        pub offset: U64,
        pub resource_id: U32,
        pub padding: U32,
    }
}

wire! {
    /// `virtio_gpu_resource_attach_backing`, followed by `nr_entries` [`MemEntry`]s.
    pub struct ResourceAttachBacking {
        pub hdr: CtrlHeader,
        pub resource_id: U32,
        pub nr_entries: U32,
    }
}

wire! {
    /// `virtio_gpu_mem_entry`.
    pub struct MemEntry {
        pub addr: U64,
        pub length: U32,
        pub padding: U32,
    }
}

wire! {
    /// `virtio_gpu_resource_detach_backing`.
    pub struct ResourceDetachBacking {
        pub hdr: CtrlHeader,
        pub resource_id: U32,
        pub padding: U32,
    }
}

wire! {
    /// `virtio_gpu_get_capset_info`.
    pub struct GetCapsetInfo {
        pub hdr: CtrlHeader,
        pub capset_index: U32,
        pub padding: U32,
    }
}

wire! {
    /// `virtio_gpu_resp_capset_info`.
    pub struct RespCapsetInfo {
        pub hdr: CtrlHeader,
        pub capset_id: U32,
        pub capset_max_version: U32,
        pub capset_max_size: U32,
        pub padding: U32,
    }
}

wire! {
    /// `virtio_gpu_get_capset`.
    pub struct GetCapset {
        pub hdr: CtrlHeader,
        pub capset_id: U32,
        pub capset_version: U32,
    }
}

// `virtio_gpu_resp_capset` is a CtrlHeader followed by the capset bytes.

wire! {
    /// `virtio_gpu_resource_assign_uuid`.
    pub struct ResourceAssignUuid {
        pub hdr: CtrlHeader,
        pub resource_id: U32,
        pub padding: U32,
    }
}

wire! {
    /// `virtio_gpu_resp_resource_uuid`.
    pub struct RespResourceUuid {
        pub hdr: CtrlHeader,
        pub uuid: [u8; 16],
    }
}

wire! {
    /// `virtio_gpu_resource_create_blob`, followed by `nr_entries` [`MemEntry`]s.
    pub struct ResourceCreateBlob {
        pub hdr: CtrlHeader,
        pub resource_id: U32,
        pub blob_mem: U32,
        pub blob_flags: U32,
        pub nr_entries: U32,
        pub blob_id: U64,
        pub size: U64,
    }
}

wire! {
    /// `virtio_gpu_set_scanout_blob`.
    pub struct SetScanoutBlob {
        pub hdr: CtrlHeader,
        pub r: Rect,
        pub scanout_id: U32,
        pub resource_id: U32,
        pub width: U32,
        pub height: U32,
        pub format: U32,
        pub padding: U32,
        pub strides: [U32; 4],
        pub offsets: [U32; 4],
    }
}

wire! {
    /// `virtio_gpu_ctx_create`.
    pub struct CtxCreate {
        pub hdr: CtrlHeader,
        pub nlen: U32,
        pub context_init: U32,
        pub debug_name: [u8; 64],
    }
}

wire! {
    /// `virtio_gpu_ctx_destroy`.
    pub struct CtxDestroy {
        pub hdr: CtrlHeader,
    }
}

wire! {
    /// `virtio_gpu_ctx_resource` (CTX_ATTACH_RESOURCE and CTX_DETACH_RESOURCE).
    pub struct CtxResource {
        pub hdr: CtrlHeader,
        pub resource_id: U32,
        pub padding: U32,
    }
}

wire! {
    /// `virtio_gpu_resource_create_3d`.
    pub struct ResourceCreate3d {
        pub hdr: CtrlHeader,
        pub resource_id: U32,
        pub target: U32,
        pub format: U32,
        pub bind: U32,
        pub width: U32,
        pub height: U32,
        pub depth: U32,
        pub array_size: U32,
        pub last_level: U32,
        pub nr_samples: U32,
        pub flags: U32,
        pub padding: U32,
    }
}

wire! {
    /// `virtio_gpu_box`.
    pub struct Box3d {
        pub x: U32,
        pub y: U32,
        pub z: U32,
        pub w: U32,
        pub h: U32,
        pub d: U32,
    }
}

wire! {
    /// `virtio_gpu_transfer_host_3d` (TRANSFER_TO_HOST_3D and TRANSFER_FROM_HOST_3D).
    pub struct TransferHost3d {
        pub hdr: CtrlHeader,
        pub box_: Box3d,
        pub offset: U64,
        pub resource_id: U32,
        pub level: U32,
        pub stride: U32,
        pub layer_stride: U32,
    }
}

wire! {
    /// `virtio_gpu_cmd_submit`, followed by `size` bytes of command stream.
    pub struct CmdSubmit {
        pub hdr: CtrlHeader,
        pub size: U32,
        pub padding: U32,
    }
}

wire! {
    /// `virtio_gpu_resource_map_blob`.
    pub struct ResourceMapBlob {
        pub hdr: CtrlHeader,
        pub resource_id: U32,
        pub padding: U32,
        pub offset: U64,
    }
}

wire! {
    /// `virtio_gpu_resp_map_info`.
    pub struct RespMapInfo {
        pub hdr: CtrlHeader,
        pub map_info: U32,
        pub padding: U32,
    }
}

wire! {
    /// `virtio_gpu_resource_unmap_blob`.
    pub struct ResourceUnmapBlob {
        pub hdr: CtrlHeader,
        pub resource_id: U32,
        pub padding: U32,
    }
}

wire! {
    /// `virtio_gpu_cursor_pos`.
    pub struct CursorPos {
        pub scanout_id: U32,
        pub x: U32,
        pub y: U32,
        pub padding: U32,
    }
}

wire! {
    /// `virtio_gpu_update_cursor` (UPDATE_CURSOR and MOVE_CURSOR).
    pub struct UpdateCursor {
        pub hdr: CtrlHeader,
        pub pos: CursorPos,
        pub resource_id: U32,
        pub hot_x: U32,
        pub hot_y: U32,
        pub padding: U32,
    }
}

impl From<Rect> for gpu_interface::Rect {
    fn from(r: Rect) -> Self {
        gpu_interface::Rect::new(r.x.get(), r.y.get(), r.width.get(), r.height.get())
    }
}

impl From<gpu_interface::Rect> for Rect {
    fn from(r: gpu_interface::Rect) -> Self {
        Rect {
            x: r.x.into(),
            y: r.y.into(),
            width: r.width.into(),
            height: r.height.into(),
        }
    }
}

/// The pixel format of a virtio-gpu format code. virtio names components in memory order
/// (B8G8R8A8: bytes B, G, R, A), DRM from the most significant bit (ARGB8888 is the same bytes).
pub fn pixel_format(virtio_format: u32) -> Option<gpu_interface::PixelFormat> {
    use gpu_interface::PixelFormat as P;
    Some(match virtio_format {
        VIRTIO_GPU_FORMAT_B8G8R8A8_UNORM => P::ARGB8888,
        VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM => P::XRGB8888,
        VIRTIO_GPU_FORMAT_A8R8G8B8_UNORM => P::BGRA8888,
        VIRTIO_GPU_FORMAT_X8R8G8B8_UNORM => P::BGRX8888,
        VIRTIO_GPU_FORMAT_R8G8B8A8_UNORM => P::ABGR8888,
        VIRTIO_GPU_FORMAT_X8B8G8R8_UNORM => P::RGBX8888,
        VIRTIO_GPU_FORMAT_A8B8G8R8_UNORM => P::RGBA8888,
        VIRTIO_GPU_FORMAT_R8G8B8X8_UNORM => P::XBGR8888,
        _ => return None,
    })
}

/// A control header for a response of `type_`, echoing the request's fence and ring.
pub fn response_header(request: &CtrlHeader, type_: u32) -> CtrlHeader {
    let fenced = request.flags.get() & VIRTIO_GPU_FLAG_FENCE;
    let ring = request.flags.get() & VIRTIO_GPU_FLAG_INFO_RING_IDX;
    CtrlHeader {
        type_: type_.into(),
        flags: (fenced | if fenced != 0 { ring } else { 0 }).into(),
        fence_id: if fenced != 0 {
            request.fence_id
        } else {
            U64::ZERO
        },
        ctx_id: request.ctx_id,
        ring_idx: if fenced != 0 && ring != 0 {
            request.ring_idx
        } else {
            0
        },
        padding: [0; 3],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_match_the_spec() {
        use std::mem::size_of;
        assert_eq!(size_of::<CtrlHeader>(), 24);
        assert_eq!(size_of::<RespDisplayInfo>(), 24 + 16 * 24);
        assert_eq!(size_of::<RespEdid>(), 24 + 8 + 1024);
        assert_eq!(size_of::<TransferToHost2d>(), 24 + 16 + 8 + 8);
        assert_eq!(size_of::<ResourceCreateBlob>(), 24 + 16 + 16);
        assert_eq!(size_of::<SetScanoutBlob>(), 24 + 16 + 24 + 32);
        assert_eq!(size_of::<CtxCreate>(), 24 + 8 + 64);
        assert_eq!(size_of::<ResourceCreate3d>(), 24 + 48);
        assert_eq!(size_of::<TransferHost3d>(), 24 + 24 + 8 + 16);
        assert_eq!(size_of::<UpdateCursor>(), 24 + 16 + 16);
        assert_eq!(size_of::<Config>(), 16);
    }

    #[test]
    fn decodes_little_endian_bytes() {
        let mut bytes = [0u8; 40];
        bytes[0..4].copy_from_slice(&VIRTIO_GPU_CMD_RESOURCE_CREATE_2D.to_le_bytes());
        bytes[24..28].copy_from_slice(&7u32.to_le_bytes());
        bytes[28..32].copy_from_slice(&VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM.to_le_bytes());
        let (cmd, rest) = ResourceCreate2d::read_from_prefix(&bytes).unwrap();
        assert!(rest.is_empty());
        assert_eq!(cmd.hdr.type_.get(), VIRTIO_GPU_CMD_RESOURCE_CREATE_2D);
        assert_eq!(cmd.resource_id.get(), 7);
        assert_eq!(
            pixel_format(cmd.format.get()),
            Some(gpu_interface::PixelFormat::XRGB8888)
        );
        assert!(ResourceCreate2d::read_from_prefix(&bytes[..39]).is_err());
    }
}
