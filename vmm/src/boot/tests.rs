//! Boot setup checked against guest memory, without KVM, using a synthetic bzImage whose setup
//! header follows the boot protocol.

use std::io::Cursor;

use linux_loader::loader::bootparam::boot_params;
use vm_memory::{Bytes, GuestAddress};

use super::layout::{CMDLINE_START, EBDA_START, HIGH_MEMORY_START, PML4_START, ZERO_PAGE_START};
use super::*;
use crate::memory::Memory;

const PAYLOAD_LEN: usize = 8192;

/// A bzImage: one setup sector after the boot sector, then `PAYLOAD_LEN` bytes of "kernel".
pub(crate) fn fake_bzimage(version: u16, xloadflags: u16) -> Vec<u8> {
    let mut image = vec![0u8; 1024 + PAYLOAD_LEN];
    let put = |image: &mut Vec<u8>, off: usize, bytes: &[u8]| {
        image[off..off + bytes.len()].copy_from_slice(bytes)
    };
    put(&mut image, 0x1f1, &[1]); // setup_sects
    put(&mut image, 0x1fe, &0xaa55u16.to_le_bytes());
    put(&mut image, 0x202, b"HdrS");
    put(&mut image, 0x206, &version.to_le_bytes());
    put(&mut image, 0x211, &[1]); // loadflags: LOADED_HIGH
    put(&mut image, 0x214, &0x10_0000u32.to_le_bytes()); // code32_start
    put(&mut image, 0x22c, &0x7fff_ffffu32.to_le_bytes()); // initrd_addr_max
    put(&mut image, 0x236, &xloadflags.to_le_bytes());
    put(&mut image, 0x238, &2047u32.to_le_bytes()); // cmdline_size
    for (i, b) in image[1024..].iter_mut().enumerate() {
        *b = (i % 251) as u8;
    }
    image
}

#[test]
fn loads_kernel_initrd_cmdline_e820_and_tables() {
    let mem = Memory::new(64 << 20).unwrap();
    let initrd: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
    let entry = load_linux(
        &mem.ram,
        &mut Cursor::new(fake_bzimage(0x020f, 3)),
        Some(&mut Cursor::new(initrd.clone())),
        "console=ttyS0 reboot=k panic=1",
        2,
    )
    .unwrap();
    assert_eq!(
        entry,
        BootEntry {
            entry: HIGH_MEMORY_START + 0x200,
            zero_page: ZERO_PAGE_START
        }
    );

    // The protected-mode payload sits at 1 MiB.
    let mut payload = vec![0u8; PAYLOAD_LEN];
    mem.ram
        .read_slice(&mut payload, GuestAddress(HIGH_MEMORY_START))
        .unwrap();
    assert_eq!(payload, fake_bzimage(0x020f, 3)[1024..]);

    let params: boot_params = mem.ram.read_obj(GuestAddress(ZERO_PAGE_START)).unwrap();
    let hdr = params.hdr;
    assert_eq!({ hdr.boot_flag }, 0xaa55);
    assert_eq!({ hdr.type_of_loader }, 0xff);
    assert_eq!({ hdr.cmd_line_ptr } as u64, CMDLINE_START);
    let mut cmdline = vec![0u8; hdr.cmdline_size as usize + 1];
    mem.ram
        .read_slice(&mut cmdline, GuestAddress(CMDLINE_START))
        .unwrap();
    assert_eq!(cmdline, b"console=ttyS0 reboot=k panic=1\0");

    // The initramfs is page aligned, at the top of RAM, intact.
    let (addr, size) = (hdr.ramdisk_image as u64, hdr.ramdisk_size as usize);
    assert_eq!(size, initrd.len());
    assert_eq!(addr % 4096, 0);
    assert!(addr + size as u64 <= 64 << 20 && addr + size as u64 > (64 << 20) - 4096);
    let mut back = vec![0u8; size];
    mem.ram.read_slice(&mut back, GuestAddress(addr)).unwrap();
    assert_eq!(back, initrd);

    // e820 in the zero page covers the RAM the VM has.
    let n = params.e820_entries as usize;
    let ram: u64 = params.e820_table[..n]
        .iter()
        .filter(|e| e.r#type == e820::E820_RAM)
        .map(|e| e.size)
        .sum();
    assert_eq!(ram, (64 << 20) - (HIGH_MEMORY_START - EBDA_START));

    // MP table and page tables were written.
    let mut sig = [0u8; 4];
    mem.ram
        .read_slice(&mut sig, GuestAddress(EBDA_START))
        .unwrap();
    assert_eq!(&sig, b"_MP_");
    assert_ne!(
        mem.ram.read_obj::<u64>(GuestAddress(PML4_START)).unwrap(),
        0
    );
}

#[test]
fn rejects_bad_kernels_initrds_and_command_lines() {
    let mem = Memory::new(16 << 20).unwrap();
    let none: Option<&mut Cursor<Vec<u8>>> = None;
    let not_a_kernel = vec![0x90u8; 4096];
    assert!(matches!(
        load_linux(&mem.ram, &mut Cursor::new(not_a_kernel), none, "", 1),
        Err(BootError::Kernel(_))
    ));

    let none: Option<&mut Cursor<Vec<u8>>> = None;
    assert!(matches!(
        load_linux(
            &mem.ram,
            &mut Cursor::new(fake_bzimage(0x0205, 0)),
            none,
            "",
            1
        ),
        Err(BootError::OldProtocol(0x0205))
    ));

    let none: Option<&mut Cursor<Vec<u8>>> = None;
    assert!(matches!(
        load_linux(
            &mem.ram,
            &mut Cursor::new(fake_bzimage(0x020f, 0)),
            none,
            "",
            1
        ),
        Err(BootError::No64BitEntry)
    ));

    let huge = vec![0u8; 16 << 20];
    assert!(matches!(
        load_linux(
            &mem.ram,
            &mut Cursor::new(fake_bzimage(0x020f, 3)),
            Some(&mut Cursor::new(huge)),
            "",
            1
        ),
        Err(BootError::InitrdTooBig { .. })
    ));

    let long = "x".repeat(4000);
    let none: Option<&mut Cursor<Vec<u8>>> = None;
    assert!(matches!(
        load_linux(
            &mem.ram,
            &mut Cursor::new(fake_bzimage(0x020f, 3)),
            none,
            &long,
            1
        ),
        Err(BootError::Cmdline(_))
    ));
}

#[test]
fn initrd_placement_respects_kernel_end_and_limits() {
    assert_eq!(
        initrd_address(0x1000, 0x20_0000, 0x100_0000),
        Some(0xff_f000)
    );
    assert_eq!(
        initrd_address(0x1001, 0x20_0000, 0x100_0000),
        Some(0xff_e000)
    );
    assert_eq!(initrd_address(0x100_0000, 0x20_0000, 0x100_0000), None);
    assert_eq!(initrd_limit(8 << 30, 0x7fff_ffff), 0x8000_0000);
    assert_eq!(initrd_limit(64 << 20, 0x7fff_ffff), 64 << 20);
}
