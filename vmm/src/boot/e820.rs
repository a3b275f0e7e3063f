//! The guest's physical memory map (e820), as the zero page hands it to Linux.

use linux_loader::loader::bootparam::boot_e820_entry;

use super::layout::{EBDA_START, HIGH_MEMORY_START};
use crate::memory::ram_ranges;

pub const E820_RAM: u32 = 1;
pub const E820_RESERVED: u32 = 2;

/// RAM below the EBDA, the EBDA (MP table) reserved, then RAM from 1 MiB around the MMIO hole.
pub fn e820_map(memory_size: u64) -> Vec<boot_e820_entry> {
    let entry = |addr, size, r#type| boot_e820_entry { addr, size, r#type };
    let mut map = vec![
        entry(0, EBDA_START, E820_RAM),
        entry(EBDA_START, 0xa0000 - EBDA_START, E820_RESERVED),
    ];
    for (start, len) in ram_ranges(memory_size) {
        let end = start + len;
        let start = start.max(HIGH_MEMORY_START);
        if end > start {
            map.push(entry(start, end - start, E820_RAM));
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{MMIO_HOLE_END, MMIO_HOLE_START};

    #[test]
    fn map_skips_legacy_area_and_mmio_hole() {
        let map = e820_map(4 << 30);
        let ram: Vec<(u64, u64)> = map
            .iter()
            .filter(|e| e.r#type == E820_RAM)
            .map(|e| (e.addr, e.addr + e.size))
            .collect();
        assert_eq!(
            ram,
            vec![
                (0, EBDA_START),
                (HIGH_MEMORY_START, MMIO_HOLE_START),
                (MMIO_HOLE_END, MMIO_HOLE_END + (4 << 30) - MMIO_HOLE_START)
            ]
        );
        let total: u64 = ram.iter().map(|(s, e)| e - s).sum();
        // Everything but the legacy hole (EBDA..1 MiB) is usable.
        assert_eq!(total, (4 << 30) - (HIGH_MEMORY_START - EBDA_START));
    }
}
