//! The backend's side of the display protocol's start: protocol features, then QEMU's scanouts.

use gpu_interface::DisplayMode;
use vhost::vhost_user::message::VhostUserU64;
use vhost::vhost_user::GpuBackend;

/// Asks QEMU for its protocol features (we use none of the optional ones: EDID comes from the
/// device itself, and DMABUF2 needs exportable GPU buffers) and for its scanouts' sizes.
/// Returns one entry per scanout QEMU reports; `None` for disabled ones.
pub fn display_modes(socket: &GpuBackend) -> std::io::Result<Vec<Option<DisplayMode>>> {
    let offered = socket.get_protocol_features()?;
    tracing::debug!(
        features = offered.value,
        "QEMU's vhost-user-gpu protocol features"
    );
    socket.set_protocol_features(&VhostUserU64::new(0))?;
    let info = socket.get_display_info()?;
    let modes = info
        .pmodes
        .iter()
        .map(|one| {
            let (w, h) = (one.r.width, one.r.height);
            (one.enabled != 0 && w > 0 && h > 0).then(|| DisplayMode::new(w, h))
        })
        .collect::<Vec<_>>();
    tracing::info!(
        "QEMU's scanouts: {:?}",
        modes.iter().flatten().collect::<Vec<_>>()
    );
    Ok(modes)
}
