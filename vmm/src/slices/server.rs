//! The slice server: one process owns the host Vulkan device and serves every slice of it. Each
//! slice has a vtest socket whose clients share the slice's memory quota and its tenant in the
//! live scheduler; the control socket reads and changes the scheduler while tenants run, and
//! makes and removes slices of the file's `[[type]]`s.

use std::{
    os::unix::net::{UnixListener, UnixStream},
    path::{Path, PathBuf},
    sync::{atomic::Ordering, Arc, Mutex, MutexGuard},
};

use gpu_interface::{MemoryQuota, SliceLimits};
use scheduler::{LiveScheduler, PolicyKind, TenantId, TenantSpec};
use venus::{vtest::SliceClients, DeviceSelector};
use vgpu_mdev::software::uuid_for;

use crate::vhost_user::{self, DisplaySocket, Endpoint, GpuVhostUserBackend, VhostUserDisplay};

use super::{
    config::{SlicesConfig, TypeConfig},
    control::{self, Reply, Request, SliceRow, TypeRow},
};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {0}: {1}")]
    Listen(PathBuf, std::io::Error),
    #[error("scheduler: {0}")]
    Sched(#[from] scheduler::SchedError),
}

struct Slice {
    name: String,
    uuid: String,
    mdev_type: Option<String>,
    tenant: TenantId,
    quota: Arc<MemoryQuota>,
    socket: PathBuf,
    clients: Arc<SliceClients>,
}

impl Slice {
    /// Stops accepting on its socket (clients connected go on until they leave).
    fn close(&self) {
        self.clients.stop.store(true, Ordering::Release);
        let _ = UnixStream::connect(&self.socket);
        let _ = std::fs::remove_file(&self.socket);
    }
}

pub struct SliceServer {
    live: Arc<LiveScheduler>,
    selector: DeviceSelector,
    gated: bool,
    /// Where the sockets of slices made at run time go.
    dir: PathBuf,
    types: Vec<TypeConfig>,
    slices: Mutex<Vec<Slice>>,
}

fn listen(path: &Path) -> Result<UnixListener, ServeError> {
    // A socket left by an earlier server that is gone; a live one would refuse our bind.
    if UnixStream::connect(path).is_err() {
        let _ = std::fs::remove_file(path);
    }
    UnixListener::bind(path).map_err(|e| ServeError::Listen(path.into(), e))
}

impl SliceServer {
    /// Binds every slice's socket and starts serving its clients; the control socket is
    /// served by [`SliceServer::serve_control`]. Ungated (`gated` false, for the benchmark's
    /// no-scheduler baseline), submissions go straight to the device; quotas still hold.
    pub fn start(
        config: &SlicesConfig,
        selector: DeviceSelector,
        gated: bool,
    ) -> Result<Self, ServeError> {
        let live = LiveScheduler::new(config.params.clone(), config.policy)?;
        let dir = config
            .control
            .parent()
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let server = Self {
            live,
            selector,
            gated,
            dir,
            types: config.types.clone(),
            slices: Mutex::new(Vec::new()),
        };
        for s in &config.slices {
            let uuid = uuid_for(&s.spec.name);
            let slice = server.open(s.spec.clone(), uuid, None, s.memory, &s.socket)?;
            if let Some(path) = &s.vhost_user {
                serve_gpu(
                    &s.spec.name,
                    path,
                    server.limits(slice.tenant, &slice.quota),
                )?;
            }
            server.lock().push(slice);
        }
        Ok(server)
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Slice>> {
        self.slices.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What a slice's devices serve under.
    fn limits(&self, tenant: TenantId, quota: &Arc<MemoryQuota>) -> SliceLimits {
        SliceLimits {
            quota: Some(quota.clone()),
            gate: self.gated.then(|| self.live.gate(tenant)),
        }
    }

    /// A slice's tenant, quota and socket, serving.
    fn open(
        &self,
        spec: TenantSpec,
        uuid: String,
        mdev_type: Option<String>,
        memory: u64,
        socket: &Path,
    ) -> Result<Slice, ServeError> {
        let name = spec.name.clone();
        let listener = listen(socket)?;
        let tenant = self.live.add_tenant(spec)?;
        let quota = MemoryQuota::new(memory);
        let limits = self.limits(tenant, &quota);
        let clients = Arc::new(SliceClients::default());
        let (label, selector, counted) = (name.clone(), self.selector.clone(), clients.clone());
        std::thread::Builder::new()
            .name(format!("slice-{name}"))
            .spawn(move || {
                let served = venus::vtest::serve_slice(&label, listener, selector, limits, counted);
                if let Err(e) = served {
                    tracing::error!("slice {label}: {e}");
                }
            })
            .map_err(|e| ServeError::Listen(socket.into(), e))?;
        tracing::info!(
            slice = %name,
            memory_mib = memory >> 20,
            "slice serving vtest on {}",
            socket.display()
        );
        Ok(Slice {
            name,
            uuid,
            mdev_type,
            tenant,
            quota,
            socket: socket.into(),
            clients,
        })
    }

    /// Answers one control request.
    pub fn handle(&self, request: Request) -> Reply {
        let result = match request {
            Request::List => Ok(()),
            Request::Set { slice, weight } => self.set_weight(&slice, weight),
            Request::Policy { policy } => policy
                .parse::<PolicyKind>()
                .map(|p| {
                    self.live.set_policy(p);
                    tracing::info!("slices: policy now {p}");
                })
                .map_err(|e| e.to_string()),
            Request::Create { mdev_type, uuid } => self.create(&mdev_type, &uuid),
            Request::Remove { uuid } => self.remove(&uuid),
        };
        let mut reply = self.list();
        if let Err(e) = result {
            tracing::warn!("slices control: {e}");
            reply.ok = false;
            reply.error = Some(e);
        }
        reply
    }

    fn set_weight(&self, name: &str, weight: u32) -> Result<(), String> {
        let tenant = self
            .lock()
            .iter()
            .find(|s| s.name == name || s.uuid == name)
            .map(|s| s.tenant)
            .ok_or_else(|| format!("no slice {name:?}"))?;
        self.live
            .set_weight(tenant, weight)
            .map_err(|e| e.to_string())?;
        tracing::info!("slices: {name} weight now {weight}");
        Ok(())
    }

    fn live_of_type(slices: &[Slice], name: &str) -> u64 {
        slices
            .iter()
            .filter(|s| s.mdev_type.as_deref() == Some(name))
            .count() as u64
    }

    fn create(&self, mdev_type: &str, uuid: &str) -> Result<(), String> {
        let uuid = vgpu_mdev::mdev::parse_uuid(uuid).map_err(|e| e.to_string())?;
        let t = self
            .types
            .iter()
            .find(|t| t.name == mdev_type)
            .ok_or_else(|| format!("no type {mdev_type:?}"))?;
        let mut slices = self.lock();
        if slices.iter().any(|s| s.uuid == uuid) {
            return Err(format!("slice {uuid} exists already"));
        }
        if Self::live_of_type(&slices, &t.name) >= u64::from(t.instances) {
            return Err(format!("type {mdev_type} has no instances left"));
        }
        let mut spec = t.spec.clone();
        spec.name = uuid.clone();
        let socket = self.dir.join(format!("{uuid}.sock"));
        let slice = self
            .open(spec, uuid.clone(), Some(t.name.clone()), t.memory, &socket)
            .map_err(|e| e.to_string())?;
        slices.push(slice);
        Ok(())
    }

    fn remove(&self, uuid: &str) -> Result<(), String> {
        let mut slices = self.lock();
        let i = slices
            .iter()
            .position(|s| s.uuid == uuid)
            .ok_or_else(|| format!("no slice {uuid}"))?;
        if slices[i].clients.connected.load(Ordering::Acquire) > 0 {
            return Err(format!("slice {uuid} is in use"));
        }
        let slice = slices.remove(i);
        slice.close();
        self.live
            .remove_tenant(slice.tenant)
            .map_err(|e| e.to_string())?;
        tracing::info!("slices: removed {uuid}");
        Ok(())
    }

    /// The scheduler the slices submit through.
    pub fn live(&self) -> &Arc<LiveScheduler> {
        &self.live
    }

    pub fn list(&self) -> Reply {
        let stats = self.live.stats();
        let slices = self.lock();
        let rows = slices
            .iter()
            .filter_map(|s| {
                let t = stats.iter().find(|t| t.name == s.name)?;
                Some(SliceRow {
                    name: s.name.clone(),
                    uuid: s.uuid.clone(),
                    mdev_type: s.mdev_type.clone(),
                    socket: s.socket.display().to_string(),
                    memory_used: s.quota.used(),
                    memory_quota: s.quota.limit(),
                    weight: t.weight,
                    share_pct: t.share_pct,
                    target: t.target,
                    measured: t.measured,
                    used_ms: t.used_ns as f64 / 1e6,
                    jobs: t.jobs,
                    queued: t.queued,
                    clients: s.clients.connected.load(Ordering::Relaxed),
                })
            })
            .collect();
        let types = self
            .types
            .iter()
            .map(|t| TypeRow {
                name: t.name.clone(),
                memory: t.memory,
                weight: t.spec.weight,
                available_instances: u64::from(t.instances)
                    .saturating_sub(Self::live_of_type(&slices, &t.name)),
            })
            .collect();
        Reply {
            ok: true,
            error: None,
            policy: self.live.policy().name().into(),
            slices: rows,
            types,
        }
    }

    /// Serves the control socket until it fails; each connection on a thread of its own.
    pub fn serve_control(self: &Arc<Self>, path: &Path) -> Result<(), ServeError> {
        let listener = listen(path)?;
        tracing::info!("slices: control socket {}", path.display());
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let me = self.clone();
            std::thread::spawn(move || control::serve_connection(stream, &|r| me.handle(r)));
        }
        Ok(())
    }
}

/// A virtio-gpu device of the slice on a vhost-user socket (QEMU's vhost-user-gpu-pci, or our
/// VMM's `--gpu vhost-user`), one frontend after another, on a thread of its own: its
/// resources charge the slice's quota and its venus contexts pass the slice's gate.
fn serve_gpu(name: &str, path: &Path, limits: SliceLimits) -> Result<(), ServeError> {
    let (kind, backend) = virtio_gpu::backend::BackendKind::default_backend();
    let mut device = virtio_gpu::GpuDevice::new(backend, virtio_gpu::GpuConfig::default());
    device.set_slice_limits(limits);
    let display = DisplaySocket::default();
    device.set_display_listener(Box::new(VhostUserDisplay::new(display.clone())));
    let vhost = GpuVhostUserBackend::new(device, 1, display);
    let endpoint = Endpoint::Path(path.into());
    let label = name.to_string();
    std::thread::Builder::new()
        .name(format!("slice-{name}-gpu"))
        .spawn(move || {
            if let Err(e) = vhost_user::serve_connections(vhost, endpoint, None) {
                tracing::error!("slice {label}: vhost-user GPU: {e}");
            }
        })
        .map_err(|e| ServeError::Listen(path.into(), e))?;
    // The thread binds the socket: frontends started once we return must find it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !path.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    tracing::info!(slice = name, backend = ?kind, "slice serving vhost-user GPU on {}", path.display());
    Ok(())
}

impl Drop for SliceServer {
    fn drop(&mut self) {
        for s in self.lock().iter() {
            s.close();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(dir: &Path) -> SliceServer {
        let text = format!(
            "policy = \"fair\"\ncontrol = \"{}\"\n[[slice]]\nname = \"a\"\nmemory = \"64M\"\n\
             [[type]]\nname = \"s\"\nmemory = \"32M\"\ninstances = 1\nweight = 4\n",
            dir.join("control.sock").display()
        );
        let config = SlicesConfig::parse(&text, Path::new("test.toml")).unwrap();
        SliceServer::start(&config, DeviceSelector::All, true).unwrap()
    }

    fn refused(reply: Reply) -> String {
        assert!(!reply.ok, "{reply:?}");
        reply.error.unwrap()
    }

    #[test]
    fn control_requests_make_remove_and_steer_slices() {
        let dir = std::env::temp_dir().join(format!("vgpu-slices-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let s = server(&dir);
        let uuid = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee";
        let create = |uuid: &str| Request::Create {
            mdev_type: "s".into(),
            uuid: uuid.into(),
        };
        let reply = s.handle(create(uuid));
        assert!(reply.ok, "{reply:?}");
        let made = reply.slices.iter().find(|r| r.uuid == uuid).unwrap();
        assert_eq!((made.memory_quota, made.weight), (32 << 20, 4));
        assert!(dir.join(format!("{uuid}.sock")).exists());
        assert_eq!(reply.types[0].available_instances, 0);
        let other = "aaaaaaaa-bbbb-4ccc-8ddd-ffffffffffff";
        assert!(refused(s.handle(create(other))).contains("no instances left"));
        assert!(refused(s.handle(create("nope"))).contains("not a UUID"));
        let wrong_type = Request::Create {
            mdev_type: "big".into(),
            uuid: other.into(),
        };
        assert!(refused(s.handle(wrong_type)).contains("no type"));
        let weight = |slice: &str, weight| Request::Set {
            slice: slice.into(),
            weight,
        };
        assert!(s.handle(weight(uuid, 8)).ok);
        assert!(refused(s.handle(weight("b", 2))).contains("no slice"));
        assert!(refused(s.handle(weight("a", 0))).contains("weight 0"));
        let policy = |p: &str| Request::Policy { policy: p.into() };
        assert_eq!(s.handle(policy("deadline")).policy, "deadline");
        assert!(!s.handle(policy("lottery")).ok);

        let reply = s.handle(Request::Remove { uuid: uuid.into() });
        assert!(reply.ok && reply.slices.len() == 1, "{reply:?}");
        assert!(!dir.join(format!("{uuid}.sock")).exists());
        assert_eq!(reply.types[0].available_instances, 1);
        assert!(refused(s.handle(Request::Remove { uuid: uuid.into() })).contains("no slice"));
        drop(s);
        assert!(!dir.join("a.sock").exists(), "sockets go with the server");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
