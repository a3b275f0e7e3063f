//! The slice server: one process owns the host Vulkan device and serves every slice of it. Each
//! slice has a vtest socket whose clients share the slice's memory quota and its tenant in the
//! live scheduler; the control socket reads and changes the scheduler while tenants run.

use std::{
    os::unix::net::UnixListener,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
};

use gpu_interface::{MemoryQuota, SliceLimits};
use scheduler::{LiveScheduler, PolicyKind, TenantId};
use venus::DeviceSelector;

use super::{
    config::SlicesConfig,
    control::{self, Reply, Request, SliceRow},
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
    tenant: TenantId,
    quota: Arc<MemoryQuota>,
    socket: PathBuf,
    clients: Arc<AtomicUsize>,
}

pub struct SliceServer {
    live: Arc<LiveScheduler>,
    slices: Vec<Slice>,
}

fn listen(path: &Path) -> Result<UnixListener, ServeError> {
    // A socket left by an earlier server that is gone; a live one would refuse our bind.
    if std::os::unix::net::UnixStream::connect(path).is_err() {
        let _ = std::fs::remove_file(path);
    }
    UnixListener::bind(path).map_err(|e| ServeError::Listen(path.into(), e))
}

impl SliceServer {
    /// Binds every slice's socket and starts serving its clients; the control socket is
    /// served by [`SliceServer::serve_control`].
    pub fn start(config: &SlicesConfig, selector: DeviceSelector) -> Result<Self, ServeError> {
        let live = LiveScheduler::new(config.params.clone(), config.policy)?;
        let mut slices = Vec::new();
        for s in &config.slices {
            let tenant = live.add_tenant(s.spec.clone())?;
            let quota = MemoryQuota::new(s.memory);
            let limits = SliceLimits {
                quota: Some(quota.clone()),
                gate: Some(live.gate(tenant)),
            };
            let listener = listen(&s.socket)?;
            let clients = Arc::new(AtomicUsize::new(0));
            let (name, selector, counted) =
                (s.spec.name.clone(), selector.clone(), clients.clone());
            std::thread::Builder::new()
                .name(format!("slice-{name}"))
                .spawn(move || {
                    let served =
                        venus::vtest::serve_slice(&name, listener, selector, limits, &counted);
                    if let Err(e) = served {
                        tracing::error!("slice {name}: {e}");
                    }
                })
                .map_err(|e| ServeError::Listen(s.socket.clone(), e))?;
            tracing::info!(
                slice = %s.spec.name,
                memory_mib = s.memory >> 20,
                weight = s.spec.weight,
                "slice serving vtest on {}",
                s.socket.display()
            );
            slices.push(Slice {
                name: s.spec.name.clone(),
                tenant,
                quota,
                socket: s.socket.clone(),
                clients,
            });
        }
        Ok(Self { live, slices })
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
        let s = self
            .slices
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| format!("no slice {name:?}"))?;
        self.live
            .set_weight(s.tenant, weight)
            .map_err(|e| e.to_string())?;
        tracing::info!("slices: {name} weight now {weight}");
        Ok(())
    }

    pub fn list(&self) -> Reply {
        let stats = self.live.stats();
        let slices = self
            .slices
            .iter()
            .zip(stats)
            .map(|(s, t)| SliceRow {
                name: s.name.clone(),
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
                clients: s.clients.load(Ordering::Relaxed),
            })
            .collect();
        Reply {
            ok: true,
            error: None,
            policy: self.live.policy().name().into(),
            slices,
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
