//! MSI-X: the capability, the vector table and the pending-bit array (PCI Local Bus 3.0, 6.8.2).
//!
//! The table lives in a BAR the device chooses. Delivery is abstracted by [`MsiSink`] so the
//! model is tested without KVM; the KVM path routes each vector to a GSI and fires an irqfd.

use tracing::warn;

use super::PciError;

pub const MSIX_CAP_ID: u8 = 0x11;
/// Most vectors one function may have (table size field is 11 bits).
pub const MAX_VECTORS: u16 = 2048;
pub const TABLE_ENTRY_SIZE: u64 = 16;
const CONTROL_ENABLE: u16 = 1 << 15;
const CONTROL_FUNCTION_MASK: u16 = 1 << 14;
const ENTRY_MASKED: u32 = 1;

/// An MSI message: where the device writes, and what.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MsiMessage {
    pub address: u64,
    pub data: u32,
}

/// Delivers MSI-X vectors. `route` is told every message change; `fire` raises a vector.
pub trait MsiSink: Send {
    fn route(&mut self, vector: u16, message: MsiMessage);
    fn fire(&mut self, vector: u16);
    /// A vector stopped (`true`) or resumed (`false`) being deliverable: its entry's mask bit,
    /// the function mask or the enable bit changed. Sinks whose vectors fire without the VMM (a
    /// passed-through device's eventfds) stop and resume delivery here; others need not care.
    fn masked(&mut self, _vector: u16, _masked: bool) {}
    /// The eventfd that raises `vector` in the hypervisor with no VMM thread involved, where
    /// there is one and the vector has a route.
    fn irqfd(&self, _vector: u16) -> Option<&vmm_sys_util::eventfd::EventFd> {
        None
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    address: u64,
    data: u32,
    control: u32,
}

impl Default for Entry {
    fn default() -> Self {
        // Vectors come out of reset masked.
        Entry {
            address: 0,
            data: 0,
            control: ENTRY_MASKED,
        }
    }
}

/// The state of an MSI-X function: its table, pending bits and capability control bits.
pub struct Msix {
    entries: Vec<Entry>,
    pending: Vec<u64>,
    enabled: bool,
    function_masked: bool,
    sink: Box<dyn MsiSink>,
}

impl Msix {
    pub fn new(vectors: u16, sink: Box<dyn MsiSink>) -> Result<Self, PciError> {
        if vectors == 0 || vectors > MAX_VECTORS {
            return Err(PciError::BadMsixVectors(vectors));
        }
        Ok(Msix {
            entries: vec![Entry::default(); usize::from(vectors)],
            pending: vec![0; usize::from(vectors).div_ceil(64)],
            enabled: false,
            function_masked: false,
            sink,
        })
    }

    pub fn vectors(&self) -> u16 {
        self.entries.len() as u16
    }

    /// Bytes the table takes in its BAR.
    pub fn table_size(&self) -> u64 {
        self.entries.len() as u64 * TABLE_ENTRY_SIZE
    }

    /// Bytes the pending-bit array takes in its BAR.
    pub fn pba_size(&self) -> u64 {
        self.pending.len() as u64 * 8
    }

    /// The capability body (12 bytes) and its write mask: only Enable and Function Mask are
    /// writable. `table`/`pba` are (BAR index, offset) with 8-byte aligned offsets.
    pub fn capability(&self, table: (u8, u32), pba: (u8, u32)) -> ([u8; 12], [u8; 12]) {
        let mut body = [0u8; 12];
        body[0] = MSIX_CAP_ID;
        body[2..4].copy_from_slice(&(self.vectors() - 1).to_le_bytes());
        body[4..8].copy_from_slice(&(table.1 | u32::from(table.0 & 7)).to_le_bytes());
        body[8..12].copy_from_slice(&(pba.1 | u32::from(pba.0 & 7)).to_le_bytes());
        let mut mask = [0u8; 12];
        mask[3] = ((CONTROL_ENABLE | CONTROL_FUNCTION_MASK) >> 8) as u8;
        (body, mask)
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The enable and function-mask bits as the message control word holds them.
    pub fn control(&self) -> u16 {
        (if self.enabled { CONTROL_ENABLE } else { 0 })
            | if self.function_masked {
                CONTROL_FUNCTION_MASK
            } else {
                0
            }
    }

    /// Applies the capability's Message Control word as the guest left it.
    pub fn set_control(&mut self, control: u16) {
        let was_blocked = self.blocked();
        self.enabled = control & CONTROL_ENABLE != 0;
        self.function_masked = control & CONTROL_FUNCTION_MASK != 0;
        if was_blocked != self.blocked() {
            for vector in 0..self.vectors() {
                if !self.entry_masked(usize::from(vector)) {
                    self.sink.masked(vector, self.blocked());
                }
            }
        }
        if was_blocked && !self.blocked() {
            for vector in 0..self.vectors() {
                self.deliver_if_pending(vector);
            }
        }
    }

    fn blocked(&self) -> bool {
        !self.enabled || self.function_masked
    }

    /// An eventfd another process may write to raise `vector` directly: only while the
    /// vector would be delivered now (enabled, not masked, routed), since a write to it
    /// bypasses the mask and pending bits kept here.
    pub fn direct_fd(&self, vector: u16) -> Option<&vmm_sys_util::eventfd::EventFd> {
        let index = usize::from(vector);
        if index >= self.entries.len() || self.blocked() || self.entry_masked(index) {
            return None;
        }
        self.sink.irqfd(vector)
    }

    /// Guest read of the table. Only aligned 4- and 8-byte accesses are defined; others read 0.
    pub fn read_table(&self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        let Some((entry, field)) = self.locate(offset, data.len()) else {
            warn!(offset, len = data.len(), "msix: bad table read");
            return;
        };
        let e = &self.entries[entry];
        let value: u64 = match (field, data.len()) {
            (0, 8) => e.address,
            (8, 8) => u64::from(e.data) | u64::from(e.control) << 32,
            (0, _) => e.address & 0xffff_ffff,
            (4, _) => e.address >> 32,
            (8, _) => u64::from(e.data),
            _ => u64::from(e.control),
        };
        data.copy_from_slice(&value.to_le_bytes()[..data.len()]);
    }

    /// Guest write of the table; re-routes the vector and delivers a pending one on unmask.
    pub fn write_table(&mut self, offset: u64, data: &[u8]) {
        let Some((entry, field)) = self.locate(offset, data.len()) else {
            warn!(offset, len = data.len(), "msix: bad table write");
            return;
        };
        let mut raw = [0u8; 8];
        raw[..data.len()].copy_from_slice(data);
        let value = u64::from_le_bytes(raw);
        let was_masked = self.entry_masked(entry);
        let old = self.entries[entry];
        let e = &mut self.entries[entry];
        match (field, data.len()) {
            (0, 8) => e.address = value,
            (8, 8) => {
                e.data = value as u32;
                e.control = (value >> 32) as u32;
            }
            (0, _) => e.address = (e.address & !0xffff_ffff) | value,
            (4, _) => e.address = (e.address & 0xffff_ffff) | value << 32,
            (8, _) => e.data = value as u32,
            _ => e.control = value as u32,
        }
        let new = *e;
        if (old.address, old.data) != (new.address, new.data) {
            self.sink.route(
                entry as u16,
                MsiMessage {
                    address: new.address,
                    data: new.data,
                },
            );
        }
        let now_masked = self.entry_masked(entry);
        if was_masked != now_masked && !self.blocked() {
            self.sink.masked(entry as u16, now_masked);
        }
        if was_masked && !now_masked {
            self.deliver_if_pending(entry as u16);
        }
    }

    /// Guest read of the pending-bit array (read-only to the guest).
    pub fn read_pba(&self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        if !matches!(data.len(), 4 | 8) || !offset.is_multiple_of(data.len() as u64) {
            warn!(offset, len = data.len(), "msix: bad PBA read");
            return;
        }
        let Some(qword) = self.pending.get((offset / 8) as usize) else {
            return;
        };
        let bytes = qword.to_le_bytes();
        let start = (offset % 8) as usize;
        data.copy_from_slice(&bytes[start..start + data.len()]);
    }

    /// Raises `vector`: delivered now, or left pending while masked. Returns true if delivered.
    pub fn trigger(&mut self, vector: u16) -> bool {
        let index = usize::from(vector);
        if index >= self.entries.len() {
            warn!(
                vector,
                "msix: trigger of a vector the function does not have"
            );
            return false;
        }
        if self.blocked() || self.entry_masked(index) {
            self.pending[index / 64] |= 1 << (index % 64);
            return false;
        }
        self.sink.fire(vector);
        true
    }

    /// Whether `vector` is waiting for an unmask.
    pub fn is_pending(&self, vector: u16) -> bool {
        let index = usize::from(vector);
        index < self.entries.len() && self.pending[index / 64] & (1 << (index % 64)) != 0
    }

    /// Back to reset state (device reset): everything masked, nothing pending.
    pub fn reset(&mut self) {
        self.entries.fill(Entry::default());
        self.pending.fill(0);
        self.enabled = false;
        self.function_masked = false;
    }

    fn entry_masked(&self, index: usize) -> bool {
        self.entries[index].control & ENTRY_MASKED != 0
    }

    fn deliver_if_pending(&mut self, vector: u16) {
        let index = usize::from(vector);
        if self.is_pending(vector) && !self.blocked() && !self.entry_masked(index) {
            self.pending[index / 64] &= !(1 << (index % 64));
            self.sink.fire(vector);
        }
    }

    /// (entry index, field offset) of an aligned 4- or 8-byte access inside the table.
    fn locate(&self, offset: u64, len: usize) -> Option<(usize, u64)> {
        if !matches!(len, 4 | 8)
            || !offset.is_multiple_of(len as u64)
            || offset >= self.table_size()
        {
            return None;
        }
        Some((
            (offset / TABLE_ENTRY_SIZE) as usize,
            offset % TABLE_ENTRY_SIZE,
        ))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Records what a device asked of its interrupt controller.
    #[derive(Clone, Default)]
    pub(crate) struct RecordingSink {
        pub routes: Arc<Mutex<Vec<(u16, MsiMessage)>>>,
        pub fired: Arc<Mutex<Vec<u16>>>,
        /// Irqfds to offer per vector (none by default), as a hypervisor's sink would.
        pub irqfds: Arc<Vec<vmm_sys_util::eventfd::EventFd>>,
    }

    impl MsiSink for RecordingSink {
        fn route(&mut self, vector: u16, message: MsiMessage) {
            self.routes.lock().unwrap().push((vector, message));
        }
        fn fire(&mut self, vector: u16) {
            self.fired.lock().unwrap().push(vector);
        }
        fn irqfd(&self, vector: u16) -> Option<&vmm_sys_util::eventfd::EventFd> {
            let routes = self.routes.lock().unwrap();
            let routed = routes
                .iter()
                .rev()
                .find(|(v, _)| *v == vector)
                .is_some_and(|(_, m)| m.address != 0);
            self.irqfds.get(usize::from(vector)).filter(|_| routed)
        }
    }

    fn program(msix: &mut Msix, vector: u64, address: u64, data: u32) {
        let base = vector * TABLE_ENTRY_SIZE;
        msix.write_table(base, &(address as u32).to_le_bytes());
        msix.write_table(base + 4, &((address >> 32) as u32).to_le_bytes());
        msix.write_table(base + 8, &data.to_le_bytes());
        msix.write_table(base + 12, &0u32.to_le_bytes());
    }

    #[test]
    fn vectors_start_masked_and_deliver_pending_on_unmask() {
        let sink = RecordingSink::default();
        let mut msix = Msix::new(3, Box::new(sink.clone())).unwrap();
        msix.set_control(CONTROL_ENABLE);
        assert!(!msix.trigger(1), "masked at reset");
        assert!(msix.is_pending(1));
        let mut pba = [0u8; 8];
        msix.read_pba(0, &mut pba);
        assert_eq!(u64::from_le_bytes(pba), 0b10);
        program(&mut msix, 1, 0xfee0_0000, 0x41);
        assert_eq!(
            *sink.fired.lock().unwrap(),
            vec![1],
            "unmask delivers the pending vector"
        );
        assert!(!msix.is_pending(1));
        assert_eq!(
            sink.routes.lock().unwrap().last(),
            Some(&(
                1,
                MsiMessage {
                    address: 0xfee0_0000,
                    data: 0x41
                }
            ))
        );
        assert!(msix.trigger(1));
        assert_eq!(sink.fired.lock().unwrap().len(), 2);
    }

    #[test]
    fn function_mask_and_disable_hold_vectors_back() {
        let sink = RecordingSink::default();
        let mut msix = Msix::new(2, Box::new(sink.clone())).unwrap();
        program(&mut msix, 0, 0xfee0_0000, 0x30);
        assert!(!msix.trigger(0), "MSI-X not enabled yet");
        msix.set_control(CONTROL_ENABLE | CONTROL_FUNCTION_MASK);
        assert!(sink.fired.lock().unwrap().is_empty());
        msix.set_control(CONTROL_ENABLE);
        assert_eq!(*sink.fired.lock().unwrap(), vec![0]);
    }

    #[test]
    fn table_reads_back_and_rejects_bad_accesses() {
        let sink = RecordingSink::default();
        let mut msix = Msix::new(2, Box::new(sink)).unwrap();
        program(&mut msix, 1, 0x1_fee0_1000, 0x55);
        let mut qword = [0u8; 8];
        msix.read_table(16, &mut qword);
        assert_eq!(u64::from_le_bytes(qword), 0x1_fee0_1000);
        let mut dword = [0u8; 4];
        msix.read_table(28, &mut dword);
        assert_eq!(u32::from_le_bytes(dword), 0, "unmasked");
        msix.read_table(2, &mut dword);
        assert_eq!(dword, [0; 4], "misaligned reads as zero");
        msix.write_table(32, &[1, 2, 3, 4]);
        msix.write_table(3, &[0xff; 4]);
        msix.read_table(0, &mut dword);
        assert_eq!(
            u32::from_le_bytes(dword),
            0,
            "out-of-range and misaligned writes ignored"
        );
        assert!(!msix.trigger(7), "vector beyond the table");
    }

    #[test]
    fn capability_encodes_table_size_and_locations() {
        let msix = Msix::new(3, Box::new(RecordingSink::default())).unwrap();
        let (body, mask) = msix.capability((0, 0x4000), (0, 0x5000));
        assert_eq!(body[0], MSIX_CAP_ID);
        assert_eq!(u16::from_le_bytes([body[2], body[3]]), 2);
        assert_eq!(u32::from_le_bytes(body[4..8].try_into().unwrap()), 0x4000);
        assert_eq!(u32::from_le_bytes(body[8..12].try_into().unwrap()), 0x5000);
        assert_eq!(mask[3], 0xc0);
        assert!(Msix::new(0, Box::new(RecordingSink::default())).is_err());
    }
}
