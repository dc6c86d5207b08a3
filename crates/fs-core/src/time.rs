//! Timestamps and the clock fs-core reads them from.

/// A point in time since the Unix epoch, with nanosecond precision
/// (`wasi:clocks/wall-clock.datetime`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp {
    pub seconds: u64,
    pub nanoseconds: u32,
}

impl Timestamp {
    pub const EPOCH: Timestamp = Timestamp {
        seconds: 0,
        nanoseconds: 0,
    };

    /// Builds a timestamp, rejecting out-of-range nanoseconds the way
    /// `utimensat` does (EINVAL).
    pub fn new(seconds: u64, nanoseconds: u32) -> crate::Result<Timestamp> {
        if nanoseconds >= 1_000_000_000 {
            return Err(crate::ErrorCode::Invalid);
        }
        Ok(Timestamp {
            seconds,
            nanoseconds,
        })
    }

    pub fn as_nanos(self) -> u128 {
        self.seconds as u128 * 1_000_000_000 + self.nanoseconds as u128
    }
}

/// A new value for a timestamp in `set-times`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NewTimestamp {
    /// Leave it as it is (`UTIME_OMIT`).
    NoChange,
    /// The clock's current time (`UTIME_NOW`).
    Now,
    /// An explicit value.
    Timestamp(Timestamp),
}

/// Where fs-core reads the current time. Hosts pass the system clock; the
/// guest adapter passes `wasi:clocks/wall-clock`; tests pass a manual clock.
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

/// The host's real-time clock.
#[cfg(feature = "std")]
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

#[cfg(feature = "std")]
impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp {
            seconds: d.as_secs(),
            nanoseconds: d.subsec_nanos(),
        }
    }
}

/// A clock that only moves when told to: deterministic tests and fuzzing.
#[derive(Debug, Default)]
pub struct ManualClock {
    nanos: core::sync::atomic::AtomicU64,
}

impl ManualClock {
    pub fn new(start: Timestamp) -> Self {
        let c = ManualClock::default();
        c.set(start);
        c
    }
    pub fn set(&self, t: Timestamp) {
        let n = t
            .seconds
            .saturating_mul(1_000_000_000)
            .saturating_add(t.nanoseconds as u64);
        self.nanos.store(n, core::sync::atomic::Ordering::SeqCst);
    }
    pub fn advance_nanos(&self, by: u64) {
        self.nanos
            .fetch_add(by, core::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        let n = self.nanos.load(core::sync::atomic::Ordering::SeqCst);
        Timestamp {
            seconds: n / 1_000_000_000,
            nanoseconds: (n % 1_000_000_000) as u32,
        }
    }
}
