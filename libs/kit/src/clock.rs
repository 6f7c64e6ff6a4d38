//! Injected clocks. Everything that depends on time (the daily schedule,
//! cooldowns, trading hours, TWAP/VWAP slices) reads a [`Clock`], never the
//! system time, so tests run months of days and a 30-minute TWAP in seconds.

use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use tokio::sync::Notify;

/// A source of "now" that can also wait until a moment.
#[tonic::async_trait]
pub trait Clock: Send + Sync + Debug {
    /// The current moment, to the microsecond (what PostgreSQL keeps).
    fn now(&self) -> DateTime<Utc>;

    /// Completes once [`Clock::now`] has reached `deadline`.
    async fn sleep_until(&self, deadline: DateTime<Utc>);

    /// Completes after `duration` of this clock's time.
    async fn sleep(&self, duration: Duration) {
        let deadline = self.now() + TimeDelta::from_std(duration).unwrap_or(TimeDelta::MAX);
        self.sleep_until(deadline).await;
    }
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

#[tonic::async_trait]
impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now().trunc_subsecs(6)
    }

    async fn sleep_until(&self, deadline: DateTime<Utc>) {
        let remaining = (deadline - Utc::now()).to_std().unwrap_or(Duration::ZERO);
        tokio::time::sleep(remaining).await;
    }
}

/// A simulated clock: starts at a chosen moment and runs `speed` times faster
/// than real time; speed 0 holds still until [`SimClock::advance`] or
/// [`SimClock::set`] moves it (for tests).
#[derive(Debug, Clone)]
pub struct SimClock {
    inner: Arc<SimInner>,
}

#[derive(Debug)]
struct SimInner {
    state: Mutex<SimState>,
    moved: Notify,
}

#[derive(Debug, Clone, Copy)]
struct SimState {
    /// Simulated time at `anchor_real`.
    anchor_sim: DateTime<Utc>,
    anchor_real: Instant,
    speed: u32,
}

impl SimState {
    fn now(&self) -> DateTime<Utc> {
        let elapsed = self.anchor_real.elapsed().saturating_mul(self.speed);
        self.anchor_sim + TimeDelta::from_std(elapsed).unwrap_or(TimeDelta::MAX)
    }
}

/// Longest real wait between checks of a running simulated clock, so changes
/// of speed or jumps are noticed.
const MAX_REAL_WAIT: Duration = Duration::from_millis(200);

impl SimClock {
    /// A clock at `start` running `speed` simulated seconds per real second.
    #[must_use]
    pub fn new(start: DateTime<Utc>, speed: u32) -> Self {
        Self {
            inner: Arc::new(SimInner {
                state: Mutex::new(SimState {
                    anchor_sim: start,
                    anchor_real: Instant::now(),
                    speed,
                }),
                moved: Notify::new(),
            }),
        }
    }

    /// A clock that was at `start` when the wall clock read `epoch` and has
    /// run `speed` simulated seconds per real second since: processes
    /// started with the same three values share one simulated time, across
    /// restarts.
    #[must_use]
    pub fn anchored(start: DateTime<Utc>, epoch: DateTime<Utc>, speed: u32) -> Self {
        let real = (Utc::now() - epoch).max(TimeDelta::zero());
        let elapsed = real
            .checked_mul(i32::try_from(speed).unwrap_or(i32::MAX))
            .unwrap_or(TimeDelta::MAX);
        Self::new(start + elapsed, speed)
    }

    /// A clock at `start` that moves only when told.
    #[must_use]
    pub fn manual(start: DateTime<Utc>) -> Self {
        Self::new(start, 0)
    }

    fn update(&self, change: impl FnOnce(&mut SimState)) {
        {
            let mut state = self
                .inner
                .state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let now = state.now();
            state.anchor_sim = now;
            state.anchor_real = Instant::now();
            change(&mut state);
        }
        self.inner.moved.notify_waiters();
    }

    /// Jumps forward (or back) by `delta`.
    pub fn advance(&self, delta: TimeDelta) {
        self.update(|state| state.anchor_sim += delta);
    }

    /// Jumps to `moment`.
    pub fn set(&self, moment: DateTime<Utc>) {
        self.update(|state| state.anchor_sim = moment);
    }

    /// Changes the speed from now on.
    pub fn set_speed(&self, speed: u32) {
        self.update(|state| state.speed = speed);
    }

    #[must_use]
    pub fn speed(&self) -> u32 {
        self.state().speed
    }

    fn state(&self) -> SimState {
        *self
            .inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[tonic::async_trait]
impl Clock for SimClock {
    fn now(&self) -> DateTime<Utc> {
        self.state().now().trunc_subsecs(6)
    }

    async fn sleep_until(&self, deadline: DateTime<Utc>) {
        loop {
            // Register interest before reading, so a move in between is not missed.
            let moved = self.inner.moved.notified();
            let state = self.state();
            let remaining = deadline - state.now();
            if remaining <= TimeDelta::zero() {
                return;
            }
            if state.speed == 0 {
                moved.await;
                continue;
            }
            let real = remaining.to_std().unwrap_or(Duration::ZERO) / state.speed;
            tokio::select! {
                () = moved => {}
                () = tokio::time::sleep(real.min(MAX_REAL_WAIT)) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-03-02T14:30:00Z")
            .expect("valid")
            .with_timezone(&Utc)
    }

    #[tokio::test]
    async fn manual_clock_waits_for_advance() {
        let clock = SimClock::manual(start());
        let sleeper = {
            let clock = clock.clone();
            tokio::spawn(async move { clock.sleep(Duration::from_secs(3600)).await })
        };
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished());
        clock.advance(TimeDelta::minutes(30));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished());
        clock.advance(TimeDelta::minutes(30));
        sleeper.await.expect("sleeper finishes");
        assert_eq!(clock.now(), start() + TimeDelta::hours(1));
    }

    #[tokio::test]
    async fn fast_clock_runs_a_simulated_half_hour_quickly() {
        let clock = SimClock::new(start(), 3600);
        let real = Instant::now();
        clock.sleep(Duration::from_secs(1800)).await;
        assert!(clock.now() >= start() + TimeDelta::minutes(30));
        assert!(real.elapsed() < Duration::from_secs(5));
    }
}
