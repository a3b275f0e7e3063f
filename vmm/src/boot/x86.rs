//! CPU state for the Linux 64-bit boot protocol: a flat GDT, identity-mapped page tables, long
//! mode on, RIP at the kernel's 64-bit entry and RSI at the zero page.

use vm_memory::{Bytes, GuestAddress};

use super::layout::{
    BOOT_STACK_POINTER, GDT_START, IDENTITY_MAPPED_GIB, IDT_START, PDPT_START, PD_START, PML4_START,
};
use crate::hypervisor::{Fpu, HypervisorError, Segment, Vcpu};
use crate::memory::GuestRam;

const X86_CR0_PE: u64 = 1;
const X86_CR0_PG: u64 = 1 << 31;
const X86_CR4_PAE: u64 = 1 << 5;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;
const PAGE_PRESENT_RW: u64 = 0x3;
const PAGE_HUGE: u64 = 0x80;

const MSR_IA32_MISC_ENABLE: u32 = 0x1a0;
const MISC_ENABLE_FAST_STRING: u64 = 1;
const MSR_MTRR_DEF_TYPE: u32 = 0x2ff;
const MTRR_ENABLE_WRITEBACK: u64 = (1 << 11) | 6;

/// GDT: null, 64-bit code (selector 0x08), data (0x10), TSS (0x18).
const GDT: [u64; 4] = [
    0,
    gdt_entry(0xa09b, 0, 0xfffff),
    gdt_entry(0xc093, 0, 0xfffff),
    gdt_entry(0x808b, 0, 0xfffff),
];

/// Why the boot CPU state could not be set.
#[derive(Debug, thiserror::Error)]
pub enum CpuSetupError {
    #[error("writing boot page tables or GDT failed")]
    Write(#[source] vm_memory::GuestMemoryError),
    #[error(transparent)]
    Hypervisor(#[from] HypervisorError),
}

/// A GDT descriptor from access/flags bits (`flags` holds them as in the descriptor's byte 5
/// and the high nibble of byte 6), base and limit.
const fn gdt_entry(flags: u16, base: u32, limit: u32) -> u64 {
    ((base as u64 & 0xff00_0000) << (56 - 24))
        | ((flags as u64 & 0x0000_f0ff) << 40)
        | ((limit as u64 & 0x000f_0000) << (48 - 16))
        | ((base as u64 & 0x00ff_ffff) << 16)
        | (limit as u64 & 0x0000_ffff)
}

/// The hypervisor's view of GDT entry `index`.
fn segment(index: u16) -> Segment {
    let entry = GDT[index as usize];
    let limit = ((entry >> 32) & 0x000f_0000) | (entry & 0xffff);
    let granular = (entry >> 55) & 1;
    Segment {
        base: ((entry >> 16) & 0x00ff_ffff) | ((entry >> 32) & 0xff00_0000),
        limit: if granular == 1 {
            (limit << 12) | 0xfff
        } else {
            limit
        } as u32,
        selector: index * 8,
        type_: ((entry >> 40) & 0xf) as u8,
        present: ((entry >> 47) & 1) as u8,
        dpl: ((entry >> 45) & 3) as u8,
        db: ((entry >> 54) & 1) as u8,
        s: ((entry >> 44) & 1) as u8,
        l: ((entry >> 53) & 1) as u8,
        g: granular as u8,
        avl: ((entry >> 52) & 1) as u8,
        unusable: 0,
        padding: 0,
    }
}

/// Writes the GDT, an empty IDT and page tables identity-mapping the first 4 GiB.
pub fn write_boot_tables(mem: &GuestRam) -> Result<(), CpuSetupError> {
    let w = |value: u64, addr: u64| {
        mem.write_obj(value, GuestAddress(addr))
            .map_err(CpuSetupError::Write)
    };
    for (i, entry) in GDT.iter().enumerate() {
        w(*entry, GDT_START + 8 * i as u64)?;
    }
    w(0, IDT_START)?;
    w(PDPT_START | PAGE_PRESENT_RW, PML4_START)?;
    for gib in 0..IDENTITY_MAPPED_GIB {
        let pd = PD_START + gib * 0x1000;
        w(pd | PAGE_PRESENT_RW, PDPT_START + gib * 8)?;
        for i in 0..512u64 {
            let addr = (gib << 30) | (i << 21);
            w(addr | PAGE_PRESENT_RW | PAGE_HUGE, pd + i * 8)?;
        }
    }
    Ok(())
}

/// MSRs every vCPU gets: fast strings on, MTRRs enabled with write-back as the default type.
pub fn boot_msrs() -> Vec<(u32, u64)> {
    vec![
        (MSR_IA32_MISC_ENABLE, MISC_ENABLE_FAST_STRING),
        (MSR_MTRR_DEF_TYPE, MTRR_ENABLE_WRITEBACK),
    ]
}

/// Puts the boot vCPU in long mode at `entry` with RSI pointing at the zero page.
pub fn setup_boot_vcpu(vcpu: &dyn Vcpu, entry: u64, zero_page: u64) -> Result<(), CpuSetupError> {
    let mut sregs = vcpu.sregs()?;
    sregs.gdt.base = GDT_START;
    sregs.gdt.limit = (std::mem::size_of_val(&GDT) - 1) as u16;
    sregs.idt.base = IDT_START;
    sregs.idt.limit = 7;
    sregs.cs = segment(1);
    let data = segment(2);
    sregs.ds = data;
    sregs.es = data;
    sregs.fs = data;
    sregs.gs = data;
    sregs.ss = data;
    sregs.tr = segment(3);
    sregs.cr3 = PML4_START;
    sregs.cr4 |= X86_CR4_PAE;
    sregs.cr0 |= X86_CR0_PE | X86_CR0_PG;
    sregs.efer |= EFER_LME | EFER_LMA;
    vcpu.set_sregs(&sregs)?;

    let mut regs = vcpu.regs()?;
    regs.rflags = 2;
    regs.rip = entry;
    regs.rsp = BOOT_STACK_POINTER;
    regs.rbp = BOOT_STACK_POINTER;
    regs.rsi = zero_page;
    vcpu.set_regs(&regs)?;

    let fpu = Fpu {
        fcw: 0x37f,
        mxcsr: 0x1f80,
        ..Default::default()
    };
    vcpu.set_fpu(&fpu)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hypervisor::mock::MockHypervisor;
    use crate::hypervisor::Hypervisor;

    #[test]
    fn gdt_segments_are_flat_64_bit_code_and_data() {
        let cs = segment(1);
        assert_eq!((cs.selector, cs.base, cs.limit), (8, 0, 0xffff_ffff));
        assert_eq!((cs.l, cs.db, cs.present, cs.s, cs.type_), (1, 0, 1, 1, 0xb));
        let ds = segment(2);
        assert_eq!((ds.l, ds.db, ds.type_), (0, 1, 0x3));
        assert_eq!(segment(3).type_, 0xb);
    }

    #[test]
    fn page_tables_identity_map_4_gib_with_2_mib_pages() {
        let mem = GuestRam::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
        write_boot_tables(&mem).unwrap();
        // Walk the tables for a few addresses as the MMU would.
        for addr in [0u64, 0x20_1234, 0x4000_0000, 0xfee0_0000, 0xffff_ffff] {
            let read = |a: u64| mem.read_obj::<u64>(GuestAddress(a)).unwrap();
            let pml4e = read(PML4_START + ((addr >> 39) & 0x1ff) * 8);
            let pdpte = read((pml4e & !0xfff) + ((addr >> 30) & 0x1ff) * 8);
            let pde = read((pdpte & !0xfff) + ((addr >> 21) & 0x1ff) * 8);
            assert_eq!(pde & PAGE_HUGE, PAGE_HUGE);
            assert_eq!((pde & !0x1f_ffff & !(1 << 63)) | (addr & 0x1f_ffff), addr);
        }
    }

    #[test]
    fn boot_vcpu_enters_long_mode_at_the_entry() {
        let hv = MockHypervisor::new();
        let vm = hv.create_vm().unwrap();
        let vcpu = vm.create_vcpu(0).unwrap();
        setup_boot_vcpu(vcpu.as_ref(), 0x100200, 0x7000).unwrap();
        let s = hv.state.lock().unwrap();
        let (regs, sregs) = (s.regs[&0], s.sregs[&0]);
        assert_eq!((regs.rip, regs.rsi), (0x100200, 0x7000));
        assert_eq!(sregs.efer & (EFER_LME | EFER_LMA), EFER_LME | EFER_LMA);
        assert_eq!(sregs.cr0 & X86_CR0_PG, X86_CR0_PG);
        assert_eq!(sregs.cr3, PML4_START);
        assert_eq!(sregs.cs.l, 1);
    }
}
