//! What a software slice of a host GPU imposes on a backend: a memory quota every allocation
//! path charges, and a submit gate every queue submission passes. Backends that are not serving
//! a slice get [`SliceLimits::none`] and pay nothing.

use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc,
};

/// An allocation the quota cannot take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{wanted} bytes do not fit the slice's quota ({used} of {limit} bytes in use)")]
pub struct OverQuota {
    pub wanted: u64,
    pub used: u64,
    pub limit: u64,
}

/// A slice's memory: a limit and what its allocations hold now, shared by every context of the
/// slice. Charging is one compare-and-swap, so concurrent allocators never overshoot.
#[derive(Debug)]
pub struct MemoryQuota {
    limit: u64,
    used: AtomicU64,
}

impl MemoryQuota {
    pub fn new(limit: u64) -> Arc<Self> {
        Arc::new(Self {
            limit,
            used: AtomicU64::new(0),
        })
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }

    /// Takes `bytes` from the quota until the returned charge is dropped.
    pub fn charge(self: &Arc<Self>, bytes: u64) -> Result<QuotaCharge, OverQuota> {
        let mut used = self.used.load(Ordering::Acquire);
        loop {
            let after = used
                .checked_add(bytes)
                .filter(|&after| after <= self.limit)
                .ok_or(OverQuota {
                    wanted: bytes,
                    used,
                    limit: self.limit,
                })?;
            match self
                .used
                .compare_exchange_weak(used, after, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    return Ok(QuotaCharge {
                        quota: self.clone(),
                        bytes,
                    })
                }
                Err(now) => used = now,
            }
        }
    }
}

/// Bytes held from a quota; dropping it (the memory freed, or its owner gone) gives them back.
#[derive(Debug)]
pub struct QuotaCharge {
    quota: Arc<MemoryQuota>,
    bytes: u64,
}

impl QuotaCharge {
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl Drop for QuotaCharge {
    fn drop(&mut self) {
        self.quota.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// Permission to put one job on the host GPU, from [`SubmitGate::enter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateTicket(pub u64);

/// The one hook through which a backend asks a scheduler before it submits to the host GPU.
pub trait SubmitGate: Send + Sync {
    /// Blocks until the slice's next job may run on the device.
    fn enter(&self) -> GateTicket;
    /// The job finished after `device_ns` of device time, or was abandoned (`device_ns` is
    /// what it held the device for): the device goes to whoever is next.
    fn leave(&self, ticket: GateTicket, device_ns: u64);
}

/// The limits a backend context serves under.
#[derive(Clone, Default)]
pub struct SliceLimits {
    pub quota: Option<Arc<MemoryQuota>>,
    pub gate: Option<Arc<dyn SubmitGate>>,
}

impl SliceLimits {
    /// No slice: unlimited memory, submissions straight to the device.
    pub fn none() -> Self {
        Self::default()
    }

    /// Charges `bytes` to the quota; `Ok(None)` where there is none.
    pub fn charge(&self, bytes: u64) -> Result<Option<QuotaCharge>, OverQuota> {
        self.quota.as_ref().map(|q| q.charge(bytes)).transpose()
    }
}

impl std::fmt::Debug for SliceLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SliceLimits")
            .field("quota", &self.quota)
            .field("gate", &self.gate.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_stop_at_the_limit_and_return_when_dropped() {
        let q = MemoryQuota::new(100);
        let a = q.charge(60).unwrap();
        let err = q.charge(41).unwrap_err();
        assert_eq!(
            err,
            OverQuota {
                wanted: 41,
                used: 60,
                limit: 100
            }
        );
        let b = q.charge(40).unwrap();
        assert_eq!(q.used(), 100);
        assert!(q.charge(1).is_err());
        drop(a);
        assert_eq!(q.used(), 40);
        drop(b);
        assert_eq!(q.used(), 0);
        assert!(q.charge(u64::MAX).is_err(), "no overflow past the limit");
    }

    #[test]
    fn concurrent_allocators_never_exceed_the_quota() {
        let q = MemoryQuota::new(1000);
        let peak = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let (q, peak) = (q.clone(), peak.clone());
                std::thread::spawn(move || {
                    let mut held = Vec::new();
                    let mut granted = 0u64;
                    for n in 0..20_000u64 {
                        let bytes = 1 + (n * 7 + i) % 97;
                        if let Ok(c) = q.charge(bytes) {
                            granted += bytes;
                            held.push(c);
                        }
                        peak.fetch_max(q.used(), Ordering::Relaxed);
                        if held.len() > 3 {
                            held.remove(0);
                        }
                    }
                    granted
                })
            })
            .collect();
        let granted: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert!(granted > 1000, "the quota was used and reused: {granted}");
        assert!(peak.load(Ordering::Relaxed) <= 1000);
        assert_eq!(q.used(), 0, "every charge came back");
    }
}
