//! Where boot structures live in low guest memory (the Linux x86 boot protocol's conventions).

/// GDT and (empty) IDT for the 64-bit entry.
pub const GDT_START: u64 = 0x500;
pub const IDT_START: u64 = 0x520;
/// The zero page (struct boot_params).
pub const ZERO_PAGE_START: u64 = 0x7000;
/// Initial stack, below the zero page.
pub const BOOT_STACK_POINTER: u64 = 0x8ff0;
/// Identity-mapping page tables: PML4, one PDPT, four page directories of 2 MiB pages (4 GiB).
pub const PML4_START: u64 = 0x9000;
pub const PDPT_START: u64 = 0xa000;
pub const PD_START: u64 = 0xb000;
pub const IDENTITY_MAPPED_GIB: u64 = 4;
/// Kernel command line.
pub const CMDLINE_START: u64 = 0x20000;
pub const CMDLINE_MAX_SIZE: usize = 0x10000;
/// The extended BIOS data area, where the MP table goes; reserved up to 640 KiB.
pub const EBDA_START: u64 = 0x9fc00;
/// The kernel's protected-mode part loads here (the boot protocol's default code32_start).
pub const HIGH_MEMORY_START: u64 = 0x10_0000;
/// The IOAPIC and local APIC MMIO windows.
pub const IOAPIC_START: u64 = 0xfec0_0000;
pub const LAPIC_START: u64 = 0xfee0_0000;
