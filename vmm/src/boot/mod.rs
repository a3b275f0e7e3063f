//! Linux boot: a bzImage loaded with linux-loader (64-bit boot protocol), the zero page with the
//! e820 map and command line, the initramfs near the top of low memory, and the MP table that
//! tells the kernel about CPUs and the IOAPIC.

use std::io::{Read, Seek};

use linux_loader::cmdline::Cmdline;
use linux_loader::loader::bootparam::boot_params;
use linux_loader::loader::bzimage::BzImage;
use linux_loader::loader::KernelLoader;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryRegion, ReadVolatile};

pub mod e820;
pub mod layout;
pub mod mptable;
pub mod x86;

use layout::{CMDLINE_MAX_SIZE, CMDLINE_START, HIGH_MEMORY_START, ZERO_PAGE_START};

use crate::memory::{GuestRam, MMIO_HOLE_START};

const KERNEL_BOOT_FLAG_MAGIC: u16 = 0xaa55;
const KERNEL_HDR_MAGIC: u32 = 0x5372_6448;
const KERNEL_LOADER_OTHER: u8 = 0xff;
/// Offset of the 64-bit entry point (startup_64) from the protected-mode kernel's start.
const STARTUP_64_OFFSET: u64 = 0x200;
/// Boot protocol 2.06: cmdline_size and the 64-bit entry exist.
const MIN_BOOT_PROTOCOL: u16 = 0x0206;
/// loadflags bit: the kernel may keep using the loader's segments (we set them up ourselves).
const LOADFLAG_KEEP_SEGMENTS: u8 = 1 << 6;
/// xloadflags bit: the kernel has a 64-bit entry at +0x200.
const XLF_KERNEL_64: u16 = 1;

/// Why a Linux guest could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error("the kernel is not a bzImage linux-loader can load")]
    Kernel(#[source] linux_loader::loader::Error),
    #[error("the kernel's boot protocol {0:#x} is older than 2.06")]
    OldProtocol(u16),
    #[error("the kernel has no 64-bit entry point")]
    No64BitEntry,
    #[error("kernel command line is invalid or too long (max {0} bytes)")]
    Cmdline(usize),
    #[error("reading the initramfs failed")]
    ReadInitrd(#[source] std::io::Error),
    #[error("the initramfs ({size} bytes) does not fit in guest memory below {limit:#x} after the kernel")]
    InitrdTooBig { size: u64, limit: u64 },
    #[error("writing boot data into guest memory failed")]
    Write(#[source] vm_memory::GuestMemoryError),
    #[error(transparent)]
    MpTable(#[from] mptable::MpTableError),
    #[error(transparent)]
    Cpu(#[from] x86::CpuSetupError),
}

/// Where the boot vCPU starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootEntry {
    pub entry: u64,
    pub zero_page: u64,
}

/// Loads `kernel` (and `initrd`) into `mem`, writes the zero page, command line, e820 map, MP
/// table and boot page tables. The boot vCPU then needs [`x86::setup_boot_vcpu`].
pub fn load_linux<K: Read + ReadVolatile + Seek, I: Read>(
    mem: &GuestRam,
    kernel: &mut K,
    initrd: Option<&mut I>,
    cmdline: &str,
    cpus: u8,
) -> Result<BootEntry, BootError> {
    let memory_size: u64 = mem.iter().map(|r| r.len()).sum();
    let loaded = BzImage::load(mem, None, kernel, Some(GuestAddress(HIGH_MEMORY_START)))
        .map_err(BootError::Kernel)?;
    let mut hdr = loaded.setup_header.ok_or(BootError::No64BitEntry)?;
    if hdr.version < MIN_BOOT_PROTOCOL {
        return Err(BootError::OldProtocol(hdr.version));
    }
    if hdr.version >= 0x020c && hdr.xloadflags & XLF_KERNEL_64 == 0 {
        return Err(BootError::No64BitEntry);
    }

    let cmdline_limit = (hdr.cmdline_size as usize).clamp(1, CMDLINE_MAX_SIZE);
    let mut cl = Cmdline::new(cmdline_limit).map_err(|_| BootError::Cmdline(cmdline_limit))?;
    cl.insert_str(cmdline)
        .map_err(|_| BootError::Cmdline(cmdline_limit - 1))?;
    linux_loader::loader::load_cmdline(mem, GuestAddress(CMDLINE_START), &cl)
        .map_err(|_| BootError::Cmdline(cmdline_limit - 1))?;
    let cmdline_len = cl.as_cstring().map(|c| c.as_bytes().len()).unwrap_or(0);

    hdr.type_of_loader = KERNEL_LOADER_OTHER;
    hdr.boot_flag = KERNEL_BOOT_FLAG_MAGIC;
    hdr.header = KERNEL_HDR_MAGIC;
    hdr.loadflags |= LOADFLAG_KEEP_SEGMENTS;
    hdr.cmd_line_ptr = CMDLINE_START as u32;
    hdr.cmdline_size = cmdline_len as u32;

    if let Some(initrd) = initrd {
        let mut image = Vec::new();
        initrd
            .read_to_end(&mut image)
            .map_err(BootError::ReadInitrd)?;
        let limit = initrd_limit(memory_size, hdr.initrd_addr_max);
        let addr = initrd_address(image.len() as u64, loaded.kernel_end, limit).ok_or(
            BootError::InitrdTooBig {
                size: image.len() as u64,
                limit,
            },
        )?;
        mem.write_slice(&image, GuestAddress(addr))
            .map_err(BootError::Write)?;
        hdr.ramdisk_image = addr as u32;
        hdr.ramdisk_size = image.len() as u32;
    }

    let mut params = boot_params {
        hdr,
        ..Default::default()
    };
    let map = e820::e820_map(memory_size);
    params.e820_table[..map.len()].copy_from_slice(&map);
    params.e820_entries = map.len() as u8;
    mem.write_obj(params, GuestAddress(ZERO_PAGE_START))
        .map_err(BootError::Write)?;

    mptable::setup_mptable(mem, cpus)?;
    x86::write_boot_tables(mem)?;
    tracing::debug!(
        "kernel at {:#x}..{:#x}, cmdline {cmdline:?}",
        loaded.kernel_load.0,
        loaded.kernel_end
    );
    Ok(BootEntry {
        entry: loaded.kernel_load.0 + STARTUP_64_OFFSET,
        zero_page: ZERO_PAGE_START,
    })
}

/// The end (exclusive) of memory the initramfs may occupy: low RAM, and the kernel's limit.
fn initrd_limit(memory_size: u64, initrd_addr_max: u32) -> u64 {
    let max = if initrd_addr_max == 0 {
        0x37ff_ffff // boot protocol default for old kernels
    } else {
        u64::from(initrd_addr_max)
    };
    memory_size.min(MMIO_HOLE_START).min(max + 1)
}

/// The initramfs goes page-aligned as high as it fits below `limit`, above the kernel.
fn initrd_address(size: u64, kernel_end: u64, limit: u64) -> Option<u64> {
    let addr = limit.checked_sub(size)? & !0xfff;
    (addr >= kernel_end).then_some(addr)
}

#[cfg(test)]
pub(crate) mod tests;
