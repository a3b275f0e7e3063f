//! Scheduler parameters, named after the systems they come from, and their valid ranges.

use crate::clock::{Nanos, MS};

/// Time slice range (NVIDIA vGPU: 1-30 ms).
pub const SLICE_RANGE_MS: (u64, u64) = (1, 30);
/// Scheduling frequency range (NVIDIA vGPU: 63-960 Hz).
pub const FREQUENCY_RANGE_HZ: (u64, u64) = (63, 960);
/// Averaging factor range (NVIDIA vGPU: 1-60, default 33).
pub const AVERAGING_RANGE: (u32, u32) = (1, 60);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParamsError {
    #[error("time slice {0} ns is outside 1-30 ms")]
    Slice(Nanos),
    #[error("scheduling frequency {0} Hz is outside 63-960 Hz")]
    Frequency(u64),
    #[error("averaging factor {0} is outside 1-60")]
    Averaging(u32),
    #[error("{0} must be positive")]
    Zero(&'static str),
    #[error("interactive bandwidth {0}% is outside 1-90%")]
    Bandwidth(u32),
    #[error("anticipation {0} ns is longer than a time slice")]
    Anticipation(Nanos),
}

/// Knobs shared by all policies; each policy reads those it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    /// Length of one tenant's turn. A slice ends at the first job boundary past it.
    pub slice: Nanos,
    /// Overrun is repaid over at most this many slices (NVIDIA's averaging factor): a tenant's
    /// debt is capped at `averaging_factor` slices, so shares average out over that horizon.
    pub averaging_factor: u32,
    /// Weighted policy: credit is handed out per balance period (GVT-g: 100 ms)...
    pub balance_period: Nanos,
    /// ...in this many stages, so that credit arrives smoothly.
    pub balance_stages: u32,
    /// Fixed-share: each tenant is reserved 1/max_instances of the device.
    pub max_instances: u32,
    /// A job running longer than this is reported and its tenant penalised.
    pub watchdog_timeout: Nanos,
    /// The overrun past the timeout is charged this many extra times.
    pub watchdog_penalty: u32,
    /// Deadline policy: an interactive job should start within this of becoming ready.
    pub interactive_deadline: Nanos,
    /// Deadline policy: the share of each balance period an interactive tenant may take in the
    /// latency class before it competes as an ordinary fair tenant.
    pub interactive_bandwidth_pct: u32,
    /// A tenant whose job completed with nothing queued counts as still backlogged for this
    /// long (anticipatory scheduling, as BFQ idles a queue): real tenants submit one job, wait
    /// for it and submit the next, and without this every completion would hand the device to
    /// the other tenants, so shares would alternate 1:1 whatever the weights. 0 (the default)
    /// is work-conserving.
    /// At most one slice, so a silent tenant cannot hold the device idle for long.
    pub anticipation: Nanos,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            slice: 2 * MS,
            averaging_factor: 33,
            balance_period: 100 * MS,
            balance_stages: 10,
            max_instances: 8,
            watchdog_timeout: 100 * MS,
            watchdog_penalty: 1,
            interactive_deadline: 2 * MS,
            interactive_bandwidth_pct: 25,
            anticipation: 0,
        }
    }
}

impl Params {
    /// Sets the slice from a scheduling frequency, as NVIDIA's `RmPVMRL` does.
    pub fn with_frequency(mut self, hz: u64) -> Result<Self, ParamsError> {
        if !(FREQUENCY_RANGE_HZ.0..=FREQUENCY_RANGE_HZ.1).contains(&hz) {
            return Err(ParamsError::Frequency(hz));
        }
        self.slice = 1_000_000_000 / hz;
        Ok(self)
    }

    pub fn with_slice(mut self, slice: Nanos) -> Self {
        self.slice = slice;
        self
    }

    pub fn validate(&self) -> Result<(), ParamsError> {
        if self.slice < SLICE_RANGE_MS.0 * MS || self.slice > SLICE_RANGE_MS.1 * MS {
            return Err(ParamsError::Slice(self.slice));
        }
        if !(AVERAGING_RANGE.0..=AVERAGING_RANGE.1).contains(&self.averaging_factor) {
            return Err(ParamsError::Averaging(self.averaging_factor));
        }
        if self.balance_period == 0 {
            return Err(ParamsError::Zero("balance period"));
        }
        if self.balance_stages == 0 {
            return Err(ParamsError::Zero("balance stages"));
        }
        if self.max_instances == 0 {
            return Err(ParamsError::Zero("max instances"));
        }
        if self.watchdog_timeout == 0 {
            return Err(ParamsError::Zero("watchdog timeout"));
        }
        if self.interactive_deadline == 0 {
            return Err(ParamsError::Zero("interactive deadline"));
        }
        if !(1..=90).contains(&self.interactive_bandwidth_pct) {
            return Err(ParamsError::Bandwidth(self.interactive_bandwidth_pct));
        }
        if self.anticipation > self.slice {
            return Err(ParamsError::Anticipation(self.anticipation));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frequency_maps_to_slice_and_is_range_checked() {
        let p = Params::default().with_frequency(500).unwrap();
        assert_eq!(p.slice, 2 * MS);
        assert!(p.validate().is_ok());
        assert_eq!(
            Params::default().with_frequency(62).unwrap_err(),
            ParamsError::Frequency(62)
        );
        assert!(Params::default().with_frequency(961).is_err());
        // 960 Hz gives a 1.04 ms slice, 63 Hz a 15.9 ms one: both inside 1-30 ms.
        assert!(Params::default()
            .with_frequency(960)
            .unwrap()
            .validate()
            .is_ok());
        assert!(Params::default()
            .with_frequency(63)
            .unwrap()
            .validate()
            .is_ok());
    }

    #[test]
    fn out_of_range_values_are_rejected() {
        assert!(Params::default().with_slice(31 * MS).validate().is_err());
        assert!(Params::default().with_slice(MS / 2).validate().is_err());
        let p = Params {
            averaging_factor: 61,
            ..Params::default()
        };
        assert_eq!(p.validate(), Err(ParamsError::Averaging(61)));
        let p = Params {
            averaging_factor: 0,
            ..Params::default()
        };
        assert!(p.validate().is_err());
    }
}
