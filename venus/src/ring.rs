//! Rings (vkCreateRingMESA): a command buffer in shared memory that the driver fills and we
//! drain on a thread of our own, with a head we advance, a tail the driver advances and a status
//! word (IDLE, FATAL, ALIVE). Also the virtqueue/ring seqno waits and the alive monitor.

use std::{
    sync::{
        atomic::{AtomicU32, Ordering},
        Arc, Condvar, Mutex, Weak,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use tracing::{debug, warn};

use crate::{
    context::{Context, RenderError, StreamCx},
    protocol::{generated::VkRingCreateInfoMESA, wire::Arena, wire::Cursor},
    resource::SharedMemory,
};

pub const STATUS_IDLE: u32 = 1;
pub const STATUS_FATAL: u32 = 2;
pub const STATUS_ALIVE: u32 = 4;
/// Largest ring buffer accepted (the head and tail are 32-bit; this bounds our copy).
pub const MAX_RING_BUFFER: usize = 16 << 20;

#[derive(Default)]
struct State {
    running: bool,
    pending_notify: bool,
    virtqueue_seqno: u64,
    /// The head as last stored: the position up to which commands have run.
    processed: u32,
}

pub struct Ring {
    pub id: u64,
    mem: Arc<SharedMemory>,
    head: usize,
    tail: usize,
    status: usize,
    buffer: usize,
    buffer_size: usize,
    extra: usize,
    extra_size: usize,
    idle_timeout: Duration,
    pub(crate) monitored: bool,
    state: Mutex<State>,
    cond: Condvar,
    thread: Mutex<Option<JoinHandle<()>>>,
}

fn seqno_ge(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) >= 0
}

impl Ring {
    /// Checks the layout the driver asks for against the resource it names.
    pub fn new(
        id: u64,
        mem: Arc<SharedMemory>,
        info: &VkRingCreateInfoMESA,
        monitored: bool,
    ) -> Result<Self, RenderError> {
        let bad = |what: &str| RenderError::Invalid(format!("ring {id:#x}: {what}"));
        let base = info.offset;
        if base
            .checked_add(info.size)
            .is_none_or(|end| end > mem.size())
        {
            return Err(bad("ring region outside its resource"));
        }
        let regions = [
            (info.headOffset, 4),
            (info.tailOffset, 4),
            (info.statusOffset, 4),
            (info.bufferOffset, info.bufferSize),
            (info.extraOffset, info.extraSize),
        ];
        for (i, &(off, len)) in regions.iter().enumerate() {
            if off.checked_add(len).is_none_or(|end| end > info.size) || off % 4 != 0 {
                return Err(bad("a ring region is outside the ring or unaligned"));
            }
            for &(o2, l2) in &regions[i + 1..] {
                if len != 0 && l2 != 0 && off < o2 + l2 && o2 < off + len {
                    return Err(bad("ring regions overlap"));
                }
            }
        }
        if !info.bufferSize.is_power_of_two() || info.bufferSize > MAX_RING_BUFFER {
            return Err(bad("buffer size is not a power of two up to 16 MiB"));
        }
        let ring = Ring {
            id,
            head: base + info.headOffset,
            tail: base + info.tailOffset,
            status: base + info.statusOffset,
            buffer: base + info.bufferOffset,
            buffer_size: info.bufferSize,
            extra: base + info.extraOffset,
            extra_size: info.extraSize,
            idle_timeout: Duration::from_nanos(info.idleTimeout.min(1_000_000_000)),
            monitored,
            mem,
            state: Mutex::new(State {
                running: true,
                ..Default::default()
            }),
            cond: Condvar::new(),
            thread: Mutex::new(None),
        };
        if ring.word(ring.head).load(Ordering::Acquire) != 0
            || ring.word(ring.status).load(Ordering::Acquire) != 0
        {
            return Err(bad("head and status must start at 0"));
        }
        Ok(ring)
    }

    fn word(&self, offset: usize) -> &AtomicU32 {
        // The offsets were checked in `new` against the mapping they index.
        self.mem
            .atomic_u32(offset)
            .expect("ring control word checked at creation")
    }

    pub fn start(self: &Arc<Self>, ctx: Weak<Context>) {
        let ring = self.clone();
        let handle = std::thread::Builder::new()
            .name(format!("venus-ring-{:x}", self.id & 0xffff))
            .spawn(move || ring.run(ctx))
            .expect("spawn ring thread");
        *self.thread.lock().unwrap() = Some(handle);
    }

    pub fn set_fatal_status(&self) {
        self.word(self.status)
            .fetch_or(STATUS_FATAL, Ordering::SeqCst);
        let mut s = self.state.lock().unwrap();
        s.running = false;
        self.cond.notify_all();
    }

    pub fn set_alive(&self) {
        self.word(self.status)
            .fetch_or(STATUS_ALIVE, Ordering::SeqCst);
    }

    /// Stops the ring thread and waits for it (never called from the ring's own thread).
    pub fn stop(&self) {
        {
            let mut s = self.state.lock().unwrap();
            s.running = false;
            self.cond.notify_all();
        }
        let handle = self.thread.lock().unwrap().take();
        if let Some(h) = handle {
            if h.thread().id() != std::thread::current().id() {
                let _ = h.join();
            }
        }
    }

    pub fn notify(&self) {
        let mut s = self.state.lock().unwrap();
        s.pending_notify = true;
        self.cond.notify_all();
    }

    pub fn write_extra(&self, offset: usize, value: u32) -> Result<(), RenderError> {
        if offset
            .checked_add(4)
            .is_none_or(|end| end > self.extra_size)
        {
            return Err(RenderError::Invalid(format!(
                "ring extra offset {offset} out of range"
            )));
        }
        self.mem
            .atomic_u32(self.extra + offset)?
            .store(value, Ordering::Release);
        Ok(())
    }

    pub fn submit_virtqueue_seqno(&self, seqno: u64) {
        let mut s = self.state.lock().unwrap();
        s.virtqueue_seqno = seqno;
        self.cond.notify_all();
    }

    /// On the ring: waits until the context stream has reached `seqno`.
    pub fn wait_virtqueue_seqno(&self, seqno: u64) -> bool {
        let mut s = self.state.lock().unwrap();
        while s.running && s.virtqueue_seqno < seqno {
            s = self.cond.wait(s).unwrap();
        }
        s.virtqueue_seqno >= seqno
    }

    /// On the context stream: waits until the ring has run every command before `seqno`.
    pub fn wait_ring_seqno(&self, seqno: u32) -> bool {
        self.notify();
        let mut s = self.state.lock().unwrap();
        while s.running && !seqno_ge(s.processed, seqno) {
            s = self.cond.wait(s).unwrap();
        }
        seqno_ge(s.processed, seqno)
    }

    fn running(&self) -> bool {
        self.state.lock().unwrap().running
    }

    fn store_head(&self, head: u32) {
        self.word(self.head).store(head, Ordering::Release);
        let mut s = self.state.lock().unwrap();
        s.processed = head;
        self.cond.notify_all();
    }

    /// Sleeps until notified (or stopped), with the IDLE bit set so the driver knows to notify.
    fn idle(&self, cur: u32) {
        let status = self.word(self.status);
        status.fetch_or(STATUS_IDLE, Ordering::SeqCst);
        if self.word(self.tail).load(Ordering::SeqCst) == cur {
            let mut s = self.state.lock().unwrap();
            while s.running && !s.pending_notify {
                s = self.cond.wait(s).unwrap();
            }
            s.pending_notify = false;
        }
        status.fetch_and(!STATUS_IDLE, Ordering::SeqCst);
    }

    fn copy_out(&self, cur: u32, out: &mut [u8]) -> Result<(), RenderError> {
        let off = cur as usize & (self.buffer_size - 1);
        let first = out.len().min(self.buffer_size - off);
        self.mem.read(self.buffer + off, &mut out[..first])?;
        self.mem.read(self.buffer, &mut out[first..])?;
        Ok(())
    }

    fn run(self: Arc<Self>, ctx: Weak<Context>) {
        // Short polling sleeps only stay short with a small timer slack (the default 50 us
        // would make every 10 us sleep a 60 us one, a round trip's worth).
        // SAFETY: prctl(PR_SET_TIMERSLACK) on this thread; no pointers.
        unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1000u64) };
        let mut cx = StreamCx::for_ring(self.id);
        let mut arena = Arena::default();
        let mut cmd = vec![0u8; self.buffer_size];
        let mut cur: u32 = 0;
        let mut last_work = Instant::now();
        let mut relax = 0u32;
        // VENUS_RECORD_DIR: every batch this ring runs is appended to a file there (the input of
        // `vgpu bench venus`'s decoder row).
        let mut record = std::env::var_os("VENUS_RECORD_DIR").and_then(|dir| {
            let path = std::path::Path::new(&dir).join(format!(
                "ring-{}-{:x}.bin",
                std::process::id(),
                self.id
            ));
            // Buffered: a write per batch would add its syscall to every round trip measured.
            std::fs::File::create(path)
                .ok()
                .map(|f| std::io::BufWriter::with_capacity(1 << 20, f))
        });
        while self.running() {
            let Some(ctx) = ctx.upgrade() else { break };
            let tail = self.word(self.tail).load(Ordering::Acquire);
            let size = tail.wrapping_sub(cur) as usize;
            if size == 0 {
                let since_work = last_work.elapsed();
                if since_work >= self.idle_timeout {
                    drop(ctx);
                    self.idle(cur);
                    last_work = Instant::now();
                    relax = 0;
                } else {
                    relax_backoff(since_work, &mut relax);
                }
                continue;
            }
            let result = if size > self.buffer_size {
                Err(RenderError::Invalid(format!(
                    "ring tail {tail} is {size} bytes past the head"
                )))
            } else {
                self.copy_out(cur, &mut cmd[..size]).and_then(|()| {
                    if let Some(f) = record.as_mut() {
                        use std::io::Write;
                        let _ = f.write_all(&cmd[..size]);
                    }
                    let mut cursor = Cursor::new(&cmd[..size]);
                    while cursor.has_command() {
                        ctx.execute_one(&mut cx, &mut cursor, &mut arena)?;
                        self.store_head(cur.wrapping_add(cursor.position() as u32));
                    }
                    Ok(())
                })
            };
            if let Err(e) = result {
                warn!("venus ring {:#x}: {e}; the ring is now FATAL", self.id);
                ctx.set_fatal(&e);
                self.set_fatal_status();
                break;
            }
            cur = tail;
            last_work = Instant::now();
            relax = 0;
        }
        debug!("venus ring {:#x} stopped", self.id);
    }
}

/// How long the ring keeps yielding (never sleeping) after its last command. A submit-and-wait
/// loop comes back within tens of microseconds, and any sleep, however short, costs far more
/// than that where waking an idle CPU is slow (a virtual machine's: measured here, 3.7k round
/// trips/s sleeping against 12k spinning). 2 ms of spinning per burst of work is cheap.
const SPIN_AFTER_WORK: Duration = Duration::from_millis(2);

/// Yields during SPIN_AFTER_WORK, then sleeps 10 to 80 us; the ring goes idle (waiting for a
/// notify) after the driver's idle timeout.
fn relax_backoff(since_work: Duration, iter: &mut u32) {
    if since_work < SPIN_AFTER_WORK {
        std::thread::yield_now();
    } else {
        *iter += 1;
        let shift = (*iter / 64).min(3);
        std::thread::sleep(Duration::from_micros(10 << shift));
    }
}

/// Sets ALIVE on every monitored ring at the rate the driver asked for, so its watchdog knows
/// the renderer is still there.
#[derive(Default)]
pub struct Monitor {
    shared: Arc<(Mutex<MonitorState>, Condvar)>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Default)]
struct MonitorState {
    period_us: u32,
    stop: bool,
}

impl Monitor {
    pub fn watch(&self, ctx: Weak<Context>, period_us: u32) {
        let (lock, cond) = &*self.shared;
        let mut s = lock.lock().unwrap();
        if s.period_us == 0 || period_us < s.period_us {
            s.period_us = period_us;
            cond.notify_all();
        }
        drop(s);
        let mut thread = self.thread.lock().unwrap();
        if thread.is_none() {
            let shared = self.shared.clone();
            *thread = Some(std::thread::spawn(move || monitor_loop(&shared, ctx)));
        }
    }

    pub fn stop(&self) {
        {
            let (lock, cond) = &*self.shared;
            lock.lock().unwrap().stop = true;
            cond.notify_all();
        }
        if let Some(h) = self.thread.lock().unwrap().take() {
            let _ = h.join();
        }
    }
}

fn monitor_loop(shared: &(Mutex<MonitorState>, Condvar), ctx: Weak<Context>) {
    let (lock, cond) = shared;
    let mut s = lock.lock().unwrap();
    while !s.stop {
        if let Some(ctx) = ctx.upgrade() {
            for ring in ctx.rings.lock().unwrap().values().filter(|r| r.monitored) {
                ring.set_alive();
            }
        }
        let period = Duration::from_micros(u64::from(s.period_us.max(1000)));
        s = cond.wait_timeout(s, period).unwrap().0;
    }
}

#[cfg(test)]
mod tests {
    use super::seqno_ge;

    #[test]
    fn seqnos_compare_across_wraparound() {
        assert!(seqno_ge(5, 5));
        assert!(seqno_ge(6, 5));
        assert!(!seqno_ge(4, 5));
        assert!(seqno_ge(3, u32::MAX - 2));
    }
}
