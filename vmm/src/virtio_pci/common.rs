//! The common configuration structure (virtio_pci_common_cfg): feature negotiation, status and
//! per-queue setup, decoded field by field from guest accesses.

use tracing::warn;
use virtio_queue::{Queue, QueueT};

use super::{status, NO_VECTOR};

/// Size of virtio_pci_common_cfg including queue_notify_data and queue_reset.
pub const COMMON_CFG_SIZE: u64 = 0x40;

/// The virtqueues and the MSI-X vector of each, as the transport keeps them.
pub struct Queues<'a> {
    pub queues: &'a mut [Queue],
    pub vectors: &'a mut [u16],
}

/// What a write to the common structure asks of the transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommonEvent {
    None,
    /// The driver wrote 0 to device_status: reset the device.
    Reset,
    /// device_status changed from `old` to the value now in [`CommonConfig::status`].
    Status {
        old: u8,
    },
}

/// The device-wide registers of the common structure.
#[derive(Debug, Clone)]
pub struct CommonConfig {
    pub device_feature_select: u32,
    pub driver_feature_select: u32,
    pub driver_features: u64,
    pub msix_config: u16,
    pub status: u8,
    pub config_generation: u8,
    pub queue_select: u16,
}

impl Default for CommonConfig {
    fn default() -> Self {
        CommonConfig {
            device_feature_select: 0,
            driver_feature_select: 0,
            driver_features: 0,
            msix_config: NO_VECTOR,
            status: 0,
            config_generation: 0,
            queue_select: 0,
        }
    }
}

impl CommonConfig {
    /// Back to reset state; config_generation keeps counting so drivers see the change.
    pub fn reset(&mut self) {
        let generation = self.config_generation;
        *self = CommonConfig::default();
        self.config_generation = generation;
    }

    /// Serves a guest read of `data.len()` bytes at `offset`.
    pub fn read(&self, offset: u64, data: &mut [u8], device_features: u64, queues: &Queues) {
        let mut image = [0u8; COMMON_CFG_SIZE as usize];
        let mut put = |at: usize, bytes: &[u8]| image[at..at + bytes.len()].copy_from_slice(bytes);
        put(0x00, &self.device_feature_select.to_le_bytes());
        let feature_word = match self.device_feature_select {
            0 => device_features as u32,
            1 => (device_features >> 32) as u32,
            _ => 0,
        };
        put(0x04, &feature_word.to_le_bytes());
        put(0x08, &self.driver_feature_select.to_le_bytes());
        let driver_word = match self.driver_feature_select {
            0 => self.driver_features as u32,
            1 => (self.driver_features >> 32) as u32,
            _ => 0,
        };
        put(0x0c, &driver_word.to_le_bytes());
        put(0x10, &self.msix_config.to_le_bytes());
        put(0x12, &(queues.queues.len() as u16).to_le_bytes());
        put(0x14, &[self.status, self.config_generation]);
        put(0x16, &self.queue_select.to_le_bytes());
        let selected = usize::from(self.queue_select);
        if let (Some(q), Some(vector)) = (queues.queues.get(selected), queues.vectors.get(selected))
        {
            put(0x18, &q.size().to_le_bytes());
            put(0x1a, &vector.to_le_bytes());
            put(0x1c, &u16::from(q.ready()).to_le_bytes());
            put(0x1e, &self.queue_select.to_le_bytes());
            put(0x20, &q.desc_table().to_le_bytes());
            put(0x28, &q.avail_ring().to_le_bytes());
            put(0x30, &q.used_ring().to_le_bytes());
            put(0x38, &self.queue_select.to_le_bytes());
        }
        let start = offset as usize;
        match image.get(start..start + data.len()) {
            Some(bytes) if field_access_ok(offset, data.len()) => data.copy_from_slice(bytes),
            _ => {
                warn!(
                    offset,
                    len = data.len(),
                    "virtio-pci: bad common config read"
                );
                data.fill(0);
            }
        }
    }

    /// Applies a guest write. `vectors` is the number of MSI-X vectors the function has.
    pub fn write(
        &mut self,
        offset: u64,
        data: &[u8],
        queues: &mut Queues,
        vectors: u16,
    ) -> CommonEvent {
        if !field_access_ok(offset, data.len()) {
            warn!(
                offset,
                len = data.len(),
                "virtio-pci: bad common config write"
            );
            return CommonEvent::None;
        }
        let mut raw = [0u8; 8];
        raw[..data.len()].copy_from_slice(data);
        let value = u64::from_le_bytes(raw);
        let features_locked = self.status & status::FEATURES_OK != 0;
        match offset {
            0x00 => self.device_feature_select = value as u32,
            0x08 => self.driver_feature_select = value as u32,
            0x0c if features_locked => {
                warn!("virtio-pci: driver_feature written after FEATURES_OK")
            }
            0x0c => match self.driver_feature_select {
                0 => self.driver_features = (self.driver_features & !0xffff_ffff) | value,
                1 => self.driver_features = (self.driver_features & 0xffff_ffff) | value << 32,
                _ => {}
            },
            0x10 => self.msix_config = vector_or_none(value as u16, vectors),
            0x14 => {
                let old = self.status;
                if value == 0 {
                    return CommonEvent::Reset;
                }
                self.status = value as u8;
                return CommonEvent::Status { old };
            }
            0x16 => self.queue_select = value as u16,
            _ => self.write_queue_field(offset, data.len(), value, queues, vectors),
        }
        CommonEvent::None
    }

    fn write_queue_field(
        &mut self,
        offset: u64,
        len: usize,
        value: u64,
        queues: &mut Queues,
        vectors: u16,
    ) {
        let selected = usize::from(self.queue_select);
        let (Some(q), Some(vector)) = (
            queues.queues.get_mut(selected),
            queues.vectors.get_mut(selected),
        ) else {
            warn!(
                queue = self.queue_select,
                "virtio-pci: write to a queue that does not exist"
            );
            return;
        };
        if q.ready() && offset != 0x1a {
            warn!(
                offset,
                "virtio-pci: queue field written while the queue is enabled"
            );
            return;
        }
        let (low, high) = (Some(value as u32), Some((value >> 32) as u32));
        let half = |is_high: bool| if is_high { (None, low) } else { (low, None) };
        let (lo, hi) = if len == 8 {
            (low, high)
        } else {
            half(offset % 8 == 4)
        };
        match offset & !7 {
            0x18 if offset == 0x18 => q.set_size(value as u16),
            0x18 if offset == 0x1a => *vector = vector_or_none(value as u16, vectors),
            0x18 if offset == 0x1c => {
                if value == 1 {
                    q.set_ready(true);
                } else {
                    warn!(value, "virtio-pci: queue_enable accepts only 1");
                }
            }
            0x20 => q.set_desc_table_address(lo, hi),
            0x28 => q.set_avail_ring_address(lo, hi),
            0x30 => q.set_used_ring_address(lo, hi),
            // queue_reset (VIRTIO_F_RING_RESET) is not offered; other fields are read-only.
            _ => warn!(
                offset,
                "virtio-pci: write to a read-only common config field"
            ),
        }
    }
}

fn vector_or_none(vector: u16, vectors: u16) -> u16 {
    if vector < vectors {
        vector
    } else {
        NO_VECTOR
    }
}

/// Accesses must hit one field with its natural width (64-bit fields also as two dwords).
fn field_access_ok(offset: u64, len: usize) -> bool {
    let width = match offset {
        0x00..=0x0f => 4,
        0x10..=0x13 | 0x16..=0x1f | 0x38..=0x3b => 2,
        0x14 | 0x15 => 1,
        0x20..=0x37 => {
            return (len == 4 && offset.is_multiple_of(4))
                || (len == 8 && offset.is_multiple_of(8));
        }
        _ => return false,
    };
    len == width && offset.is_multiple_of(width as u64)
}
