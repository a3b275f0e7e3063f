//! The Intel MultiProcessor table (MP spec 1.4): how a kernel without ACPI finds its CPUs, the
//! IOAPIC and how ISA interrupts reach it. Linux scans the last KiB of base memory for it.

use vm_memory::{Bytes, GuestAddress};

use super::layout::{EBDA_START, IOAPIC_START, LAPIC_START};
use crate::memory::GuestRam;

const MPC_SPEC: u8 = 4;
const APIC_VERSION: u8 = 0x14;
const IOAPIC_VERSION: u8 = 0x11;
const CPU_ENABLED: u8 = 1;
const CPU_BOOTPROCESSOR: u8 = 2;
/// Family 6 stepping signature and FPU + APIC feature flags, as firmware reports them.
const CPU_SIGNATURE: u32 = 0x600;
const CPU_FEATURES: u32 = 0x201;
const BUS_ID_PCI: u8 = 0;
const BUS_ID_ISA: u8 = 1;
const IRQ_TYPE_INT: u8 = 0;
const IRQ_TYPE_NMI: u8 = 1;
const IRQ_TYPE_EXTINT: u8 = 3;
/// ISA IRQs routed one-to-one to IOAPIC pins.
const ISA_IRQS: u8 = 16;
/// The table has to fit in the 1 KiB of EBDA we reserve; 32 CPUs take 812 bytes.
pub const MAX_CPUS: u8 = 32;

/// Why the MP table could not be written.
#[derive(Debug, thiserror::Error)]
pub enum MpTableError {
    #[error("{0} CPUs do not fit in an MP table (1..={MAX_CPUS})")]
    TooManyCpus(u8),
    #[error("writing the MP table into guest memory failed")]
    Write(#[source] vm_memory::GuestMemoryError),
}

fn checksum(bytes: &[u8]) -> u8 {
    0u8.wrapping_sub(bytes.iter().fold(0u8, |a, b| a.wrapping_add(*b)))
}

/// The table's bytes as they sit at `base`: floating pointer, then the configuration table.
pub fn mptable_bytes(base: u64, cpus: u8) -> Result<Vec<u8>, MpTableError> {
    if cpus == 0 || cpus > MAX_CPUS {
        return Err(MpTableError::TooManyCpus(cpus));
    }
    let ioapic_id = cpus;
    let mut entries = Vec::new();
    let mut count: u16 = 0;
    for id in 0..cpus {
        let flags = CPU_ENABLED | if id == 0 { CPU_BOOTPROCESSOR } else { 0 };
        entries.extend_from_slice(&[0, id, APIC_VERSION, flags]);
        entries.extend_from_slice(&CPU_SIGNATURE.to_le_bytes());
        entries.extend_from_slice(&CPU_FEATURES.to_le_bytes());
        entries.extend_from_slice(&[0; 8]);
        count += 1;
    }
    for (id, name) in [(BUS_ID_PCI, b"PCI   "), (BUS_ID_ISA, b"ISA   ")] {
        entries.extend_from_slice(&[1, id]);
        entries.extend_from_slice(name);
        count += 1;
    }
    entries.extend_from_slice(&[2, ioapic_id, IOAPIC_VERSION, 1]);
    entries.extend_from_slice(&(IOAPIC_START as u32).to_le_bytes());
    count += 1;
    for irq in 0..ISA_IRQS {
        // Polarity and trigger "conform to the bus" (ISA: active high, edge).
        entries.extend_from_slice(&[3, IRQ_TYPE_INT, 0, 0, BUS_ID_ISA, irq, ioapic_id, irq]);
        count += 1;
    }
    // LINT0 of every local APIC is ExtINT (the PIC), LINT1 is NMI.
    entries.extend_from_slice(&[4, IRQ_TYPE_EXTINT, 0, 0, BUS_ID_ISA, 0, 0xff, 0]);
    entries.extend_from_slice(&[4, IRQ_TYPE_NMI, 0, 0, BUS_ID_ISA, 0, 0xff, 1]);
    count += 2;

    let table_addr = base + 16;
    let mut table = Vec::with_capacity(44 + entries.len());
    table.extend_from_slice(b"PCMP");
    table.extend_from_slice(&((44 + entries.len()) as u16).to_le_bytes());
    table.extend_from_slice(&[MPC_SPEC, 0]);
    table.extend_from_slice(b"VGPU    ");
    table.extend_from_slice(b"RUST-VMM    ");
    table.extend_from_slice(&0u32.to_le_bytes()); // OEM table pointer
    table.extend_from_slice(&0u16.to_le_bytes()); // OEM table size
    table.extend_from_slice(&count.to_le_bytes());
    table.extend_from_slice(&(LAPIC_START as u32).to_le_bytes());
    table.extend_from_slice(&[0; 4]); // extended table length, checksum, reserved
    table.extend_from_slice(&entries);
    table[7] = checksum(&table);

    let mut floating = Vec::with_capacity(16);
    floating.extend_from_slice(b"_MP_");
    floating.extend_from_slice(&(table_addr as u32).to_le_bytes());
    floating.extend_from_slice(&[1, MPC_SPEC, 0, 0, 0, 0, 0, 0]);
    floating[10] = checksum(&floating);

    floating.extend_from_slice(&table);
    Ok(floating)
}

/// Writes the MP table for `cpus` CPUs at the start of the EBDA; returns its size.
pub fn setup_mptable(mem: &GuestRam, cpus: u8) -> Result<usize, MpTableError> {
    let bytes = mptable_bytes(EBDA_START, cpus)?;
    mem.write_slice(&bytes, GuestAddress(EBDA_START))
        .map_err(MpTableError::Write)?;
    Ok(bytes.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(bytes: &[u8]) -> u8 {
        bytes.iter().fold(0u8, |a, b| a.wrapping_add(*b))
    }

    #[test]
    fn table_is_found_parsed_and_checksummed_as_linux_does() {
        let mem = GuestRam::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
        let len = setup_mptable(&mem, 4).unwrap();
        let mut bytes = vec![0u8; len];
        mem.read_slice(&mut bytes, GuestAddress(EBDA_START))
            .unwrap();

        // Floating pointer: signature, 16 bytes summing to zero, pointing right after itself.
        assert_eq!(&bytes[..4], b"_MP_");
        assert_eq!(sum(&bytes[..16]), 0);
        let table_addr = u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as u64;
        assert_eq!(table_addr, EBDA_START + 16);

        let table = &bytes[16..];
        assert_eq!(&table[..4], b"PCMP");
        let table_len = u16::from_le_bytes([table[4], table[5]]) as usize;
        assert_eq!(table_len, table.len());
        assert_eq!(sum(table), 0);
        assert!(
            EBDA_START as usize + len <= 0xa0000,
            "table spills out of the EBDA"
        );

        // Walk the entries as the kernel does and count CPUs, the BSP and the IOAPIC.
        let count = u16::from_le_bytes([table[34], table[35]]);
        let (mut off, mut cpus, mut bsps, mut ioapics, mut isa_irqs) = (44, 0, 0, 0, 0);
        for _ in 0..count {
            match table[off] {
                0 => {
                    cpus += 1;
                    bsps += usize::from(table[off + 3] & CPU_BOOTPROCESSOR != 0);
                    off += 20;
                }
                2 => {
                    ioapics += 1;
                    assert_eq!(table[off + 1], 4, "IOAPIC id follows the CPUs");
                    off += 8;
                }
                3 => {
                    isa_irqs += 1;
                    off += 8;
                }
                1 | 4 => off += 8,
                other => panic!("unknown entry type {other}"),
            }
        }
        assert_eq!(off, table_len);
        assert_eq!((cpus, bsps, ioapics, isa_irqs), (4, 1, 1, 16));
    }

    #[test]
    fn rejects_impossible_cpu_counts() {
        assert!(mptable_bytes(EBDA_START, 0).is_err());
        assert!(mptable_bytes(EBDA_START, MAX_CPUS + 1).is_err());
        // The largest table still fits in the reserved EBDA.
        let largest = mptable_bytes(EBDA_START, MAX_CPUS).unwrap().len() as u64;
        assert!(EBDA_START + largest <= 0xa0000);
    }
}
