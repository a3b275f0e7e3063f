//! A passed-through function's BARs in guest physical space.
//!
//! Every page of a BAR that vfio-pci lets us mmap, and that no trap needs (the MSI-X table and
//! PBA, quirk windows), becomes a KVM memory slot over the device's own memory: guest accesses
//! there never exit. The slots follow the BAR when the guest moves it and vanish while decoding
//! is off. What is left is trapped by the PCI root's MMIO region for the BAR and forwarded.

use std::sync::Arc;

use tracing::{debug, warn};

use super::api::{HostMapping, VfioDeviceApi};
use super::VfioError;
use crate::hypervisor::Vm as HvVm;
use crate::pci::config::NUM_BARS;
use crate::pci::BarSpec;

const PAGE: u64 = 4096;

/// A range of a BAR the VMM must see accesses to: (BAR, offset, length).
pub type Trap = (usize, u64, u64);

pub struct MappedArea {
    pub offset: u64,
    pub len: u64,
    pub slot: u32,
    mapping: Arc<dyn HostMapping>,
    /// Where the slot is in the guest now (a placement KVM refused leaves it out).
    placed: Option<u64>,
}

pub struct BarMaps {
    vm: Arc<dyn HvVm>,
    areas: Vec<Vec<MappedArea>>,
}

/// `areas` less the pages any of `traps` touches, each piece page aligned.
pub fn subtract_traps(
    areas: &[(u64, u64)],
    traps: &[(u64, u64)],
    region_size: u64,
) -> Vec<(u64, u64)> {
    let mut pieces: Vec<(u64, u64)> = areas
        .iter()
        .filter_map(|&(start, len)| {
            let s = start.checked_next_multiple_of(PAGE)?;
            let e = start.checked_add(len)?.min(region_size) / PAGE * PAGE;
            (e > s).then_some((s, e))
        })
        .collect();
    for &(start, len) in traps {
        let ts = start / PAGE * PAGE;
        let te = start
            .saturating_add(len)
            .div_ceil(PAGE)
            .saturating_mul(PAGE);
        pieces = pieces
            .into_iter()
            .flat_map(|(s, e)| {
                let mut out = Vec::new();
                if te <= s || ts >= e {
                    out.push((s, e));
                } else {
                    if ts > s {
                        out.push((s, ts));
                    }
                    if te < e {
                        out.push((te, e));
                    }
                }
                out
            })
            .collect();
    }
    pieces.into_iter().map(|(s, e)| (s, e - s)).collect()
}

impl BarMaps {
    /// Maps the mappable, untrapped pages of every BAR in `bars` into this process, one
    /// memory slot each from `next_slot`; nothing is in the guest until [`BarMaps::moved`].
    pub fn map(
        api: &dyn VfioDeviceApi,
        vm: Arc<dyn HvVm>,
        bars: &[BarSpec],
        traps: &[Trap],
        mut next_slot: impl FnMut() -> u32,
    ) -> Result<BarMaps, VfioError> {
        let mut areas: Vec<Vec<MappedArea>> = (0..NUM_BARS).map(|_| Vec::new()).collect();
        for bar in bars.iter().filter(|b| b.index < NUM_BARS) {
            let Some(region) = api.region(bar.index as u32) else {
                continue;
            };
            let bar_traps: Vec<(u64, u64)> = traps
                .iter()
                .filter(|t| t.0 == bar.index)
                .map(|t| (t.1, t.2))
                .collect();
            for (offset, len) in subtract_traps(&region.mappable_areas(), &bar_traps, region.size) {
                let mapping = api.mmap(bar.index as u32, offset, len)?;
                let slot = next_slot();
                debug!(bar = bar.index, offset, len, slot, "vfio: BAR area mapped");
                areas[bar.index].push(MappedArea {
                    offset,
                    len,
                    slot,
                    mapping,
                    placed: None,
                });
            }
        }
        Ok(BarMaps { vm, areas })
    }

    /// The guest put BAR `bar` at `base` (`None`: decoding off): the slots follow.
    pub fn moved(&mut self, bar: usize, base: Option<u64>) {
        let Some(areas) = self.areas.get_mut(bar) else {
            return;
        };
        for area in areas {
            let host = area.mapping.host_addr();
            if let Some(gpa) = area.placed.take() {
                if let Err(err) = self.vm.set_user_memory_region(area.slot, gpa, 0, host) {
                    warn!(%err, bar, "vfio: removing a BAR slot failed");
                }
            }
            let Some(gpa) = base.and_then(|b| b.checked_add(area.offset)) else {
                continue;
            };
            debug!(
                bar,
                gpa,
                len = area.len,
                slot = area.slot,
                "vfio: BAR slot placed"
            );
            match self
                .vm
                .set_user_memory_region(area.slot, gpa, area.len, host)
            {
                Ok(()) => area.placed = Some(gpa),
                // A hostile guest's BAR address (beyond the physical address width, over RAM):
                // the area stays out of the guest and its accesses go nowhere.
                Err(err) => warn!(%err, bar, gpa, "vfio: placing a BAR slot failed"),
            }
        }
    }

    /// Whether `offset` of `bar` is served by a slot (no exit) rather than trapped.
    pub fn is_mapped(&self, bar: usize, offset: u64) -> bool {
        self.areas.get(bar).is_some_and(|areas| {
            areas
                .iter()
                .any(|a| (a.offset..a.offset + a.len).contains(&offset))
        })
    }

    pub fn areas(&self, bar: usize) -> &[MappedArea] {
        self.areas.get(bar).map_or(&[], |a| a.as_slice())
    }

    /// Takes every slot out of the guest (the VM ends or the device resets).
    pub fn unmap_all(&mut self) {
        for bar in 0..NUM_BARS {
            self.moved(bar, None);
        }
    }
}
