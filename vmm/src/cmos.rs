//! CMOS/RTC at ports 0x70-0x71: the wall clock from the host, in BCD, never "update in
//! progress", so that the guest's RTC probe and clock read return at once. NVRAM bytes the
//! guest writes are kept; the clock is read-only.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::bus::BusDevice;

pub const CMOS_PORT: u64 = 0x70;
pub const CMOS_LEN: u64 = 2;

const REG_SECONDS: u8 = 0x00;
const REG_MINUTES: u8 = 0x02;
const REG_HOURS: u8 = 0x04;
const REG_WEEKDAY: u8 = 0x06;
const REG_DAY: u8 = 0x07;
const REG_MONTH: u8 = 0x08;
const REG_YEAR: u8 = 0x09;
/// Status A: 32.768 kHz time base, 1024 Hz rate, UIP (bit 7) clear.
const REG_A: u8 = 0x0a;
/// Status B: 24-hour mode, BCD, no interrupts.
const REG_B: u8 = 0x0b;
const REG_C: u8 = 0x0c;
/// Status D: bit 7, "battery good".
const REG_D: u8 = 0x0d;
const REG_CENTURY: u8 = 0x32;

/// The CMOS: selected register, NVRAM, and where the clock comes from.
pub struct Cmos {
    index: u8,
    nvram: [u8; 128],
    now: fn() -> u64,
}

impl Default for Cmos {
    fn default() -> Self {
        Cmos::new()
    }
}

fn host_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn bcd(v: u64) -> u8 {
    (((v / 10) % 10) << 4 | (v % 10)) as u8
}

/// (year, month, day) of the proleptic Gregorian calendar for days since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Howard Hinnant's algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

impl Cmos {
    pub fn new() -> Cmos {
        Cmos::with_clock(host_now)
    }

    /// A CMOS whose clock reads `now()` seconds since the Unix epoch.
    pub fn with_clock(now: fn() -> u64) -> Cmos {
        Cmos {
            index: 0,
            nvram: [0; 128],
            now,
        }
    }

    fn register(&self, index: u8) -> u8 {
        let secs = (self.now)();
        let days = (secs / 86_400) as i64;
        let (year, month, day) = civil_from_days(days);
        match index {
            REG_SECONDS => bcd(secs % 60),
            REG_MINUTES => bcd(secs / 60 % 60),
            REG_HOURS => bcd(secs / 3600 % 24),
            // 1970-01-01 was a Thursday; the RTC counts Sunday as 1.
            REG_WEEKDAY => bcd(((days + 4).rem_euclid(7) + 1) as u64),
            REG_DAY => bcd(day.into()),
            REG_MONTH => bcd(month.into()),
            REG_YEAR => bcd(year.rem_euclid(100) as u64),
            REG_CENTURY => bcd(year.div_euclid(100) as u64),
            REG_A => 0x26,
            REG_B => 0x02,
            REG_C => 0,
            REG_D => 0x80,
            i => self.nvram[usize::from(i & 0x7f)],
        }
    }
}

impl BusDevice for Cmos {
    fn read(&mut self, _base: u64, offset: u64, data: &mut [u8]) {
        data.fill(0);
        if let Some(first) = data.first_mut() {
            *first = if offset == 0 {
                self.index
            } else {
                self.register(self.index)
            };
        }
    }

    fn write(&mut self, _base: u64, offset: u64, data: &[u8]) {
        let Some(&value) = data.first() else { return };
        if offset == 0 {
            // Bit 7 is the NMI mask, not part of the index.
            self.index = value & 0x7f;
        } else if self.index > REG_D && self.index != REG_CENTURY {
            self.nvram[usize::from(self.index)] = value;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(cmos: &mut Cmos, index: u8) -> u8 {
        cmos.write(CMOS_PORT, 0, &[0x80 | index]);
        let mut v = [0u8];
        cmos.read(CMOS_PORT, 1, &mut v);
        v[0]
    }

    #[test]
    fn clock_reads_the_host_time_in_bcd_and_is_never_updating() {
        // 2026-11-21 19:45:07 UTC, a Saturday.
        let mut cmos = Cmos::with_clock(|| 1_795_290_307);
        assert_eq!(read(&mut cmos, REG_A) & 0x80, 0);
        assert_eq!(read(&mut cmos, REG_SECONDS), 0x07);
        assert_eq!(read(&mut cmos, REG_MINUTES), 0x45);
        assert_eq!(read(&mut cmos, REG_HOURS), 0x19);
        assert_eq!(read(&mut cmos, REG_DAY), 0x21);
        assert_eq!(read(&mut cmos, REG_MONTH), 0x11);
        assert_eq!(read(&mut cmos, REG_YEAR), 0x26);
        assert_eq!(read(&mut cmos, REG_CENTURY), 0x20);
        assert_eq!(read(&mut cmos, REG_WEEKDAY), 7);
        assert_eq!(read(&mut cmos, REG_D), 0x80);
    }

    #[test]
    fn nvram_keeps_writes_but_the_clock_ignores_them() {
        let mut cmos = Cmos::with_clock(|| 0);
        cmos.write(CMOS_PORT, 0, &[0x40]);
        cmos.write(CMOS_PORT, 1, &[0x5a]);
        assert_eq!(read(&mut cmos, 0x40), 0x5a);
        cmos.write(CMOS_PORT, 0, &[REG_SECONDS]);
        cmos.write(CMOS_PORT, 1, &[0x33]);
        assert_eq!(read(&mut cmos, REG_SECONDS), 0);
        assert_eq!(read(&mut cmos, REG_YEAR), 0x70);
    }
}
