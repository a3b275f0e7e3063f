//! A block backend that comes back: while the device fails requests (its backend gone), the
//! frontend tries the socket again every [`INTERVAL`]. A backend listening there is negotiated
//! with as at boot, must offer every feature the driver uses, and gets the rings where they
//! stand (after the requests failed meanwhile) with the same kick and call eventfds, so the
//! guest driver goes on without a reset. Requests in flight when the old backend died were
//! failed, not replayed (that needs INFLIGHT_SHMFD).

use std::path::Path;
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::time::{Duration, Instant};

use tracing::{info, trace, warn};
use vhost::vhost_user::Frontend;
use vhost::VhostBackend;
use virtio_queue::Queue;

use super::backend_requests::Shared;
use super::handshake::{negotiate, open, start_rings, Negotiated};
use super::watchdog::Watchdog;
use super::{DeviceKind, VhostUserDevice, PROTOCOL_FEATURES_BIT};

/// How often a lost backend's socket is tried.
pub(super) const INTERVAL: Duration = Duration::from_millis(200);
/// A live backend answers the handshake at once; one that accepted and stays silent (a
/// listener about to close) is given up on after this long, so the next attempt can start.
const HANDSHAKE_LIMIT: Duration = Duration::from_secs(1);

/// A backend negotiated with on a side thread, so that one that accepts and then never
/// answers holds neither the device nor the vCPU that touches it.
struct Connection {
    frontend: Frontend,
    watchdog: Watchdog,
    negotiated: Negotiated,
}

/// When to try next, the attempt under way, and what the transport is still to be told.
pub(super) struct Reconnect {
    timeout: Duration,
    next_attempt: Instant,
    attempt: Option<Receiver<Connection>>,
    recovered: bool,
}

impl Reconnect {
    pub(super) fn new(timeout: Duration) -> Self {
        Reconnect {
            timeout,
            next_attempt: Instant::now(),
            attempt: None,
            recovered: false,
        }
    }

    /// A connection the side thread finished negotiating, if any; starts the next attempt
    /// when one is due.
    fn poll(
        &mut self,
        socket: &Path,
        kind: &DeviceKind,
        queue_sizes: &[u16],
        shared: &Shared,
    ) -> Option<Connection> {
        if let Some(attempt) = &self.attempt {
            match attempt.try_recv() {
                Ok(connection) => {
                    self.attempt = None;
                    return Some(connection);
                }
                Err(TryRecvError::Empty) => return None,
                Err(TryRecvError::Disconnected) => self.attempt = None,
            }
        }
        let now = Instant::now();
        if now < self.next_attempt {
            return None;
        }
        self.next_attempt = now + INTERVAL;
        let (sender, receiver) = mpsc::channel();
        let (socket, kind, queue_sizes) =
            (socket.to_path_buf(), kind.clone(), queue_sizes.to_vec());
        let shared = shared.clone();
        let timeout = self.timeout;
        let spawned = std::thread::Builder::new()
            .name("vhost-user-reconnect".into())
            .spawn(move || {
                if let Some(connection) = attempt(&socket, &kind, &queue_sizes, &shared, timeout) {
                    let _ = sender.send(connection);
                }
            });
        match spawned {
            Ok(_) => self.attempt = Some(receiver),
            Err(err) => warn!(%err, "vhost-user: starting a reconnect attempt"),
        }
        None
    }

    pub(super) fn take_recovered(&mut self) -> bool {
        std::mem::take(&mut self.recovered)
    }
}

/// Connects to `socket` and negotiates as at boot.
fn attempt(
    socket: &Path,
    kind: &DeviceKind,
    queue_sizes: &[u16],
    shared: &Shared,
    timeout: Duration,
) -> Option<Connection> {
    let (mut frontend, watchdog) = match open(socket, queue_sizes.len(), timeout) {
        Ok(connection) => connection,
        Err(err) => {
            trace!(%err, "vhost-user: the backend is not back yet");
            return None;
        }
    };
    match watchdog.guard_within(HANDSHAKE_LIMIT.min(timeout), || {
        negotiate(kind, &mut frontend, queue_sizes, shared)
    }) {
        Ok(negotiated) => Some(Connection {
            frontend,
            watchdog,
            negotiated,
        }),
        Err(err) => {
            warn!(%err, socket = %socket.display(), "vhost-user: a returning backend failed to negotiate");
            None
        }
    }
}

impl VhostUserDevice {
    /// Takes the device back from failing mode once a backend listening on the socket again
    /// has been negotiated with. `queues` are the transport's rings, already adopted and
    /// drained of pending requests.
    pub(super) fn try_reconnect(&mut self, queues: &[Queue]) {
        let shared = &self.shared;
        let Some(Connection {
            mut frontend,
            watchdog,
            negotiated,
        }) = self
            .reconnect
            .poll(&self.socket, &self.kind, &self.queue_sizes, shared)
        else {
            return;
        };
        let Negotiated {
            features,
            protocol_features,
            config,
            requests,
            shm: _,
        } = negotiated;
        let in_use = self.acked_features & !PROTOCOL_FEATURES_BIT;
        if features & in_use != in_use {
            warn!(
                missing = format_args!("{:#x}", in_use & !features),
                "vhost-user: the returning backend lacks features the driver uses; still failing requests"
            );
            return;
        }
        let acked = in_use | (features & PROTOCOL_FEATURES_BIT);
        let started = watchdog.guard(|| {
            if self.acked_features != 0 {
                frontend
                    .set_features(acked)
                    .map_err(super::protocol("SET_FEATURES"))?;
            }
            match &self.rings {
                Some(rings) => start_rings(
                    &mut frontend,
                    &self.mem,
                    acked,
                    queues,
                    &rings.kicks,
                    &rings.calls,
                ),
                None => Ok(()),
            }
        });
        if let Err(err) = started {
            warn!(%err, "vhost-user: handing the rings to the returning backend failed");
            return;
        }
        self.frontend = frontend;
        self.watchdog = watchdog;
        self.backend_features = features;
        self.protocol_features = protocol_features;
        self.requests = requests;
        self.acked_features = acked;
        if config != self.config {
            self.config = config;
            self.config_changed = true;
        }
        self.active = self.rings.is_some();
        self.gone = false;
        self.adopted.fill(false);
        self.reconnect.recovered = true;
        info!(
            socket = %self.socket.display(),
            "vhost-user: the backend is back; the device serves requests again"
        );
    }
}
