//! The frontend against the real backends `vgpu run --disk` and `--fs` start: QEMU's
//! qemu-storage-daemon exporting a disk image and virtiofsd sharing a directory, driven the
//! way a guest drives them (virtio-pci registers, rings and FUSE requests in memfd guest RAM).
//! scripts/setup.sh installs both; where one is missing the test says it skipped, and fails
//! instead when VGPU_E2E_REQUIRED=1 (as CI sets).

use std::path::PathBuf;

use vm_memory::{Bytes, GuestAddress};

use super::attach::{start_backend, Source};
use super::backend_process::{self, BackendProcess};
use super::tests::{needs_reset, poll_until, post_blk, wait_used, DATA, SECTOR, STATUS};
use super::*;
use crate::pci::msix::tests::RecordingSink;
use crate::virtio_pci::test_guest::Guest;
use crate::virtio_pci::transport::NOTIFY_OFFSET;

fn skip(test: &str, why: String) {
    if std::env::var("VGPU_E2E_REQUIRED").is_ok_and(|v| v == "1") {
        panic!("{test}: cannot run but VGPU_E2E_REQUIRED=1: {why}");
    }
    eprintln!("SKIPPED {test}: {why}");
}

/// The backend program `name` (from `env` or one of `candidates`); `None` after reporting the
/// skip of `test` when it is missing.
fn program_or_skip(
    test: &str,
    name: &'static str,
    env: &'static str,
    candidates: &[&str],
) -> Option<PathBuf> {
    match backend_process::find_program(name, env, candidates) {
        Ok(program) => Some(program),
        Err(e) => {
            skip(test, e.to_string());
            None
        }
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vgpu-real-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn qemu_storage_daemon_serves_a_disk_image_and_is_taken_back_after_a_restart() {
    const TEST: &str = "qemu_storage_daemon_serves_a_disk_image_and_is_taken_back_after_a_restart";
    let dir = scratch("qsd");
    let image = dir.join("disk.raw");
    let pattern: Vec<u8> = (0..64 * SECTOR).map(|i| (i * 7 % 253) as u8).collect();
    std::fs::write(&image, &pattern).unwrap();
    let source = Source::Image {
        path: image.clone(),
        format: "raw".into(),
        readonly: false,
    };
    let (process, socket) = match start_backend(&source, 1, 0) {
        Ok(started) => started,
        Err(e @ backend_process::BackendProcessError::NotFound(..)) => {
            return skip(TEST, e.to_string())
        }
        Err(e) => panic!("{e}"),
    };
    let process = process.expect("path= starts qemu-storage-daemon");
    let memory = crate::memory::Memory::new(1 << 20).unwrap();
    let device =
        VhostUserDevice::connect(DeviceKind::Block, &socket, vec![8], memory.ram.clone()).unwrap();
    let g = Guest::attach(Box::new(device), memory.ram, None, RecordingSink::default());
    // The capacity in config space is the image's, in sectors.
    assert_eq!(g.r(0x2000, 8), 64);
    g.init(VIRTIO_F_VERSION_1);
    g.driver_ok();

    post_blk(&g, 0, false, 3, 2);
    wait_used(&g, 1);
    let mut data = vec![0u8; 2 * SECTOR];
    g.mem.read_slice(&mut data, GuestAddress(DATA)).unwrap();
    assert_eq!(data, pattern[3 * SECTOR..5 * SECTOR]);
    assert_eq!(g.mem.read_obj::<u8>(GuestAddress(STATUS)).unwrap(), 0);

    g.mem
        .write_slice(&[0x5a; SECTOR], GuestAddress(DATA))
        .unwrap();
    post_blk(&g, 1, true, 9, 1);
    wait_used(&g, 2);
    assert_eq!(g.mem.read_obj::<u8>(GuestAddress(STATUS)).unwrap(), 0);
    let on_disk = std::fs::read(&image).unwrap();
    assert_eq!(on_disk[9 * SECTOR..10 * SECTOR], [0x5a; SECTOR]);
    assert_eq!(
        on_disk[8 * SECTOR..9 * SECTOR],
        pattern[8 * SECTOR..9 * SECTOR]
    );

    // The daemon dies: requests fail. Started again on the same socket, it takes the rings
    // over and the guest reads what it wrote before, without resetting its driver.
    drop(process);
    assert!(!socket.exists(), "the daemon takes its socket along");
    poll_until(&g, "disconnect noticed", needs_reset);
    post_blk(&g, 2, false, 9, 1);
    wait_used(&g, 3);
    assert_eq!(
        g.mem.read_obj::<u8>(GuestAddress(STATUS)).unwrap(),
        failing::VIRTIO_BLK_S_IOERR
    );
    let (process, again) = start_backend(&source, 1, 0).unwrap();
    assert_eq!(again, socket);
    poll_until(&g, "reconnect", |g| !needs_reset(g));
    g.mem.write_slice(&[0; SECTOR], GuestAddress(DATA)).unwrap();
    post_blk(&g, 3, false, 9, 1);
    wait_used(&g, 4);
    assert_eq!(g.mem.read_obj::<u8>(GuestAddress(STATUS)).unwrap(), 0);
    let mut data = vec![0u8; SECTOR];
    g.mem.read_slice(&mut data, GuestAddress(DATA)).unwrap();
    assert_eq!(data, [0x5a; SECTOR]);

    drop(g);
    drop(process);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Sends one QMP command on a fresh monitor connection (after the capabilities handshake);
/// returns the reply line.
fn qmp(monitor: &std::path::Path, command: &str) -> String {
    use std::io::{BufRead, BufReader, Write};
    let stream = std::os::unix::net::UnixStream::connect(monitor).unwrap();
    let mut lines = BufReader::new(stream.try_clone().unwrap()).lines();
    lines.next(); // the greeting
    let mut reply = |request: &str| {
        (&stream).write_all(request.as_bytes()).unwrap();
        lines
            .by_ref()
            .map(Result::unwrap)
            .find(|line| line.contains("\"return\"") || line.contains("\"error\""))
            .unwrap()
    };
    reply(r#"{"execute":"qmp_capabilities"}"#);
    reply(command)
}

#[test]
fn a_disk_resized_in_qemu_storage_daemon_shows_the_guest_its_new_capacity() {
    const TEST: &str = "a_disk_resized_in_qemu_storage_daemon_shows_the_guest_its_new_capacity";
    let Some(program) = program_or_skip(
        TEST,
        "qemu-storage-daemon",
        "VGPU_QEMU_STORAGE_DAEMON",
        super::attach::STORAGE_DAEMON_CANDIDATES,
    ) else {
        return;
    };
    let dir = scratch("resize");
    let image = dir.join("disk.raw");
    std::fs::write(&image, vec![0u8; 64 * SECTOR]).unwrap();
    let (socket, monitor) = (dir.join("blk.sock"), dir.join("qmp.sock"));
    let mut command =
        backend_process::storage_daemon_command(&program, &image, "raw", false, 1, &socket);
    command
        .arg("--chardev")
        .arg(format!(
            "socket,id=qmp,path={},server=on,wait=off",
            monitor.display()
        ))
        .arg("--monitor")
        .arg("chardev=qmp");
    let process = BackendProcess::start(command, socket.clone()).unwrap();
    let memory = crate::memory::Memory::new(1 << 20).unwrap();
    let device =
        VhostUserDevice::connect(DeviceKind::Block, &socket, vec![8], memory.ram.clone()).unwrap();
    let g = Guest::attach(Box::new(device), memory.ram, None, RecordingSink::default());
    g.init(VIRTIO_F_VERSION_1);
    g.driver_ok();
    assert_eq!(g.r(0x2000, 8), 64);
    let generation = g.r(0x15, 1);
    let resized = qmp(
        &monitor,
        &format!(
            r#"{{"execute":"block_resize","arguments":{{"node-name":"disk0","size":{}}}}}"#,
            128 * SECTOR
        ),
    );
    assert!(resized.contains("\"return\""), "block_resize: {resized}");
    // qemu-storage-daemon sends CONFIG_CHANGE_MSG on the backend channel; the frontend reads
    // the config again and raises a config interrupt.
    poll_until(&g, "the new capacity", |g| g.r(0x2000, 8) == 128);
    assert_ne!(g.r(0x15, 1), generation, "config generation moved");
    assert_eq!(g.r(crate::virtio_pci::transport::ISR_OFFSET, 1) & 2, 2);
    drop(g);
    drop(process);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// FUSE opcodes and sizes (include/uapi/linux/fuse.h).
const FUSE_LOOKUP: u32 = 1;
const FUSE_OPEN: u32 = 14;
const FUSE_READ: u32 = 15;
const FUSE_WRITE: u32 = 16;
const FUSE_RELEASE: u32 = 18;
const FUSE_INIT: u32 = 26;
const FUSE_CREATE: u32 = 35;
const FUSE_ROOT_ID: u64 = 1;
const FUSE_OUT_HEADER: usize = 16;
/// Where the request queue's rings and the request/reply buffers live.
const REQUEST_RINGS: u64 = 0x10000;
const FUSE_IN: u64 = 0x20000;
const FUSE_OUT: u64 = 0x30000;

/// A guest-side virtio-fs driver of one request queue: each request a two-buffer chain.
struct FuseGuest {
    g: Guest,
    next: u16,
}

impl FuseGuest {
    /// Sends `opcode` on `nodeid` with `body`; returns the reply's error and payload.
    fn call(&mut self, opcode: u32, nodeid: u64, body: &[u8]) -> (i32, Vec<u8>) {
        let unique = u64::from(self.next) + 1;
        let len = 40 + body.len() as u32;
        let header = [
            len.to_le_bytes().as_slice(),
            &opcode.to_le_bytes(),
            &unique.to_le_bytes(),
            &nodeid.to_le_bytes(),
            &[0u8; 16], // uid, gid, pid, total_extlen + padding
        ]
        .concat();
        let request = [header.as_slice(), body].concat();
        self.g
            .mem
            .write_slice(&request, GuestAddress(FUSE_IN))
            .unwrap();
        self.g
            .mem
            .write_slice(&[0u8; 16], GuestAddress(FUSE_OUT))
            .unwrap();
        let n = self.next;
        self.g.post_chain_at(
            REQUEST_RINGS,
            n,
            0,
            &[(FUSE_IN, len, false), (FUSE_OUT, 0x8000, true)],
        );
        self.g.w(NOTIFY_OFFSET + 4, 1, 2);
        self.next += 1;
        let calls = self.g.dev.lock().unwrap().call_fds().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while self.g.used_idx_at(REQUEST_RINGS) < self.next {
            assert!(
                std::time::Instant::now() < deadline,
                "virtiofsd never answered"
            );
            let _ = calls[1].read();
            std::thread::sleep(Duration::from_millis(1));
        }
        let mut out = [0u8; FUSE_OUT_HEADER];
        self.g
            .mem
            .read_slice(&mut out, GuestAddress(FUSE_OUT))
            .unwrap();
        let out_len = u32::from_le_bytes(out[0..4].try_into().unwrap()) as usize;
        let error = i32::from_le_bytes(out[4..8].try_into().unwrap());
        assert_eq!(u64::from_le_bytes(out[8..16].try_into().unwrap()), unique);
        let mut payload = vec![0u8; out_len.saturating_sub(FUSE_OUT_HEADER)];
        self.g
            .mem
            .read_slice(
                &mut payload,
                GuestAddress(FUSE_OUT + FUSE_OUT_HEADER as u64),
            )
            .unwrap();
        (error, payload)
    }

    fn ok(&mut self, opcode: u32, nodeid: u64, body: &[u8]) -> Vec<u8> {
        let (error, payload) = self.call(opcode, nodeid, body);
        assert_eq!(error, 0, "FUSE opcode {opcode} failed");
        payload
    }
}

fn u64_at(bytes: &[u8], offset: usize) -> u64 {
    u64::from_le_bytes(bytes[offset..offset + 8].try_into().unwrap())
}

#[test]
fn virtiofsd_shares_a_directory_both_ways() {
    const TEST: &str = "virtiofsd_shares_a_directory_both_ways";
    let Some(program) = program_or_skip(
        TEST,
        "virtiofsd",
        "VGPU_VIRTIOFSD",
        super::attach::VIRTIOFSD_CANDIDATES,
    ) else {
        return;
    };
    let dir = scratch("fs");
    let shared = dir.join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::write(shared.join("hello.txt"), b"written by the host\n").unwrap();
    let socket = dir.join("fs.sock");
    let command = backend_process::virtiofsd_command(&program, &shared, None, &socket);
    let _process = BackendProcess::start(command, socket.clone()).unwrap();

    let memory = crate::memory::Memory::new(1 << 20).unwrap();
    let kind = DeviceKind::Fs {
        tag: "share".into(),
    };
    let device = VhostUserDevice::connect(kind, &socket, vec![8, 8], memory.ram.clone()).unwrap();
    let g = Guest::attach(Box::new(device), memory.ram, None, RecordingSink::default());
    g.init(VIRTIO_F_VERSION_1);
    g.setup_queue(1, REQUEST_RINGS);
    g.driver_ok();
    let mut fs = FuseGuest { g, next: 0 };

    // FUSE_INIT 7.31.
    let init = [7u32, 31, 0, 0].map(u32::to_le_bytes).concat();
    let reply = fs.ok(FUSE_INIT, 0, &init);
    assert_eq!(u32::from_le_bytes(reply[0..4].try_into().unwrap()), 7);

    // Read the host's file.
    let entry = fs.ok(FUSE_LOOKUP, FUSE_ROOT_ID, b"hello.txt\0");
    let node = u64_at(&entry, 0);
    let open = fs.ok(FUSE_OPEN, node, &[0u32, 0].map(u32::to_le_bytes).concat());
    let fh = u64_at(&open, 0);
    let read = [
        fh.to_le_bytes().as_slice(),
        &0u64.to_le_bytes(),
        &4096u32.to_le_bytes(),
        &[0u8; 20],
    ]
    .concat();
    assert_eq!(fs.ok(FUSE_READ, node, &read), b"written by the host\n");
    let release = [fh.to_le_bytes().as_slice(), &[0u8; 16]].concat();
    fs.ok(FUSE_RELEASE, node, &release);

    // A missing name is ENOENT, not a hang.
    let (error, _) = fs.call(FUSE_LOOKUP, FUSE_ROOT_ID, b"absent\0");
    assert_eq!(error, -libc::ENOENT);

    // Create and write a file the host then reads.
    let create = [
        [(libc::O_WRONLY | libc::O_CREAT) as u32, 0o644, 0, 0]
            .map(u32::to_le_bytes)
            .concat(),
        b"from-guest.txt\0".to_vec(),
    ]
    .concat();
    let created = fs.ok(FUSE_CREATE, FUSE_ROOT_ID, &create);
    let (node, fh) = (u64_at(&created, 0), u64_at(&created, 128));
    let text = b"written by the guest\n";
    let write = [
        fh.to_le_bytes().as_slice(),
        &0u64.to_le_bytes(),
        &(text.len() as u32).to_le_bytes(),
        &[0u8; 20],
        text,
    ]
    .concat();
    let written = fs.ok(FUSE_WRITE, node, &write);
    assert_eq!(
        u32::from_le_bytes(written[0..4].try_into().unwrap()) as usize,
        text.len()
    );
    let release = [fh.to_le_bytes().as_slice(), &[0u8; 16]].concat();
    fs.ok(FUSE_RELEASE, node, &release);
    assert_eq!(std::fs::read(shared.join("from-guest.txt")).unwrap(), text);

    drop(fs);
    std::fs::remove_dir_all(&dir).unwrap();
}
