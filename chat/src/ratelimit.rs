//! Rate limits per user and per IP (governor's GCRA, keyed). A refusal carries the seconds to wait,
//! which REST answers as 429 + Retry-After and the gateway as close 4008.
//!
//! In a cluster a [`SharedLimiter`] (the binary's, on Redis) holds the same budgets for every node,
//! so a client gets one budget whichever node it reaches. When it does not answer, the local
//! limiter decides (counted in `chorus_ratelimit_shared_fallbacks_total`, logged once per outage).
//! A gateway connection's frame limit is per connection and stays local.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::id::Id;

/// Requests per minute (sustained) with a burst, for each limited thing.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    pub per_minute: u32,
    pub burst: u32,
}

#[derive(Debug, Clone)]
pub struct RateLimitConfig {
    /// Every authenticated REST call, per user.
    pub rest_per_user: Rate,
    /// Every REST call, per client IP.
    pub rest_per_ip: Rate,
    /// Register and login, per client IP (slows password guessing).
    pub auth_per_ip: Rate,
    /// Message sends, per user.
    pub messages_per_user: Rate,
    /// Frames a gateway connection may send.
    pub gateway_frames: Rate,
    /// New gateway connections (IDENTIFY/RESUME), per IP.
    pub gateway_connects_per_ip: Rate,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            rest_per_user: Rate { per_minute: 3000, burst: 200 },
            rest_per_ip: Rate { per_minute: 12000, burst: 1000 },
            auth_per_ip: Rate { per_minute: 60, burst: 20 },
            messages_per_user: Rate { per_minute: 600, burst: 50 },
            gateway_frames: Rate { per_minute: 120, burst: 60 },
            gateway_connects_per_ip: Rate { per_minute: 600, burst: 200 },
        }
    }
}

impl RateLimitConfig {
    /// Limits high enough for load tests and benchmarks on one machine.
    pub fn unlimited() -> Self {
        let r = Rate { per_minute: u32::MAX / 2, burst: u32::MAX / 2 };
        RateLimitConfig {
            rest_per_user: r,
            rest_per_ip: r,
            auth_per_ip: r,
            messages_per_user: r,
            gateway_frames: r,
            gateway_connects_per_ip: r,
        }
    }
}

fn quota(rate: Rate) -> Quota {
    let burst = NonZeroU32::new(rate.burst.max(1)).unwrap_or(NonZeroU32::MIN);
    let per_minute = rate.per_minute.max(1);
    let period = Duration::from_secs_f64(60.0 / f64::from(per_minute));
    Quota::with_period(period.max(Duration::from_nanos(1)))
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst)
}

/// Second-factor attempts per account: a burst of 6, then one a minute. Three codes are valid at a
/// time (one step of clock skew), so a guesser needs about 333,000 tries: some 230 days at this
/// pace, with about one chance in 700 a day.
const MFA_ATTEMPTS: Rate = Rate { per_minute: 1, burst: 6 };

/// A refusal: wait this many seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited(pub u64);

impl Rate {
    /// Benchmarks' "unlimited" rates never need a shared budget.
    fn is_unlimited(self) -> bool {
        self.per_minute >= u32::MAX / 2
    }
}

/// A budget shared by every node: `key` names the limit and whose it is.
#[async_trait]
pub trait SharedLimiter: Send + Sync + 'static {
    /// Ok(Ok) admitted, Ok(Err) refused, Err: the shared store did not answer.
    async fn check(&self, key: &str, rate: Rate) -> Result<Result<(), Limited>, String>;

    /// Admits `key` at most once per `period` (slow mode); answers like [`SharedLimiter::check`].
    async fn once_per(&self, key: &str, period: Duration) -> Result<Result<(), Limited>, String>;

    /// Whether [`SharedLimiter::once_per`] would refuse `key` now, without taking it.
    async fn once_per_waiting(&self, key: &str) -> Result<Result<(), Limited>, String>;
}

pub struct RateLimits {
    config: RateLimitConfig,
    shared: std::sync::OnceLock<Arc<dyn SharedLimiter>>,
    /// Set while the shared limiter fails, so an outage is logged once.
    shared_failing: AtomicBool,
    pub shared_fallbacks: prometheus::IntCounter,
    rest_user: DefaultKeyedRateLimiter<Id>,
    rest_ip: DefaultKeyedRateLimiter<IpAddr>,
    auth_ip: DefaultKeyedRateLimiter<IpAddr>,
    messages: DefaultKeyedRateLimiter<Id>,
    connects: DefaultKeyedRateLimiter<IpAddr>,
    /// Second-factor codes tried, per account (brute force of six digits).
    mfa: DefaultKeyedRateLimiter<Id>,
    gateway_frames: Quota,
    /// Slow mode: when each (channel, member) may post again.
    slow_mode: parking_lot::Mutex<std::collections::HashMap<(Id, Id), std::time::Instant>>,
}

fn slow_mode_key(channel: Id, user: Id) -> String {
    format!("slow:{channel}:{user}")
}

/// Refused (with the whole seconds left, rounded up) while `next` — when the member may post
/// again — is still ahead.
fn slow_mode_wait(next: Option<&std::time::Instant>, now: std::time::Instant) -> Result<(), Limited> {
    match next {
        Some(at) if *at > now => {
            let wait = *at - now;
            Err(Limited(wait.as_secs() + u64::from(wait.subsec_nanos() > 0)))
        }
        _ => Ok(()),
    }
}

/// Slow-mode entries kept before expired ones are swept out.
const SLOW_MODE_SWEEP_AT: usize = 10_000;

fn check<K: std::hash::Hash + Eq + Clone>(l: &DefaultKeyedRateLimiter<K>, key: &K) -> Result<(), Limited> {
    l.check_key(key).map_err(|not_until| {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        Limited(wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
    })
}

impl RateLimits {
    pub fn new(c: &RateLimitConfig) -> Self {
        RateLimits {
            config: c.clone(),
            shared: std::sync::OnceLock::new(),
            shared_failing: AtomicBool::new(false),
            shared_fallbacks: prometheus::IntCounter::new(
                "chorus_ratelimit_shared_fallbacks_total",
                "Rate-limit checks decided locally because the cluster's shared limiter did not answer",
            )
            .expect("static metric definition"),
            rest_user: DefaultKeyedRateLimiter::keyed(quota(c.rest_per_user)),
            rest_ip: DefaultKeyedRateLimiter::keyed(quota(c.rest_per_ip)),
            auth_ip: DefaultKeyedRateLimiter::keyed(quota(c.auth_per_ip)),
            messages: DefaultKeyedRateLimiter::keyed(quota(c.messages_per_user)),
            connects: DefaultKeyedRateLimiter::keyed(quota(c.gateway_connects_per_ip)),
            mfa: DefaultKeyedRateLimiter::keyed(quota(MFA_ATTEMPTS)),
            gateway_frames: quota(c.gateway_frames),
            slow_mode: parking_lot::Mutex::default(),
        }
    }

    /// Makes every budget but the per-connection frame limit cluster-wide (set once, at start-up).
    pub fn share(&self, limiter: Arc<dyn SharedLimiter>) {
        let _ = self.shared.set(limiter);
    }

    /// The shared budget when there is one and it answers, else the local one.
    async fn limit(
        &self,
        key: impl FnOnce() -> String,
        rate: Rate,
        local: impl FnOnce() -> Result<(), Limited>,
    ) -> Result<(), Limited> {
        let Some(shared) = self.shared.get().filter(|_| !rate.is_unlimited()) else { return local() };
        let verdict = shared.check(&key(), rate).await;
        self.shared_or_local(verdict, local)
    }

    /// The shared limiter's verdict, or this node's when it does not answer (counted; an outage
    /// logged once, and its end).
    fn shared_or_local(
        &self,
        verdict: Result<Result<(), Limited>, String>,
        local: impl FnOnce() -> Result<(), Limited>,
    ) -> Result<(), Limited> {
        match verdict {
            Ok(verdict) => {
                if self.shared_failing.swap(false, Ordering::Relaxed) {
                    tracing::info!("rate limits: the shared limiter answers again");
                }
                verdict
            }
            Err(e) => {
                self.shared_fallbacks.inc();
                if !self.shared_failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "rate limits: the shared limiter does not answer ({e}); limiting per node until it does"
                    );
                }
                local()
            }
        }
    }

    pub async fn rest_user(&self, user: Id) -> Result<(), Limited> {
        self.limit(|| format!("rest_user:{user}"), self.config.rest_per_user, || check(&self.rest_user, &user)).await
    }
    pub async fn rest_ip(&self, ip: IpAddr) -> Result<(), Limited> {
        self.limit(|| format!("rest_ip:{ip}"), self.config.rest_per_ip, || check(&self.rest_ip, &ip)).await
    }
    pub async fn auth_ip(&self, ip: IpAddr) -> Result<(), Limited> {
        self.limit(|| format!("auth_ip:{ip}"), self.config.auth_per_ip, || check(&self.auth_ip, &ip)).await
    }
    pub async fn message(&self, user: Id) -> Result<(), Limited> {
        self.limit(|| format!("message:{user}"), self.config.messages_per_user, || check(&self.messages, &user)).await
    }
    pub async fn gateway_connect(&self, ip: IpAddr) -> Result<(), Limited> {
        self.limit(|| format!("connect:{ip}"), self.config.gateway_connects_per_ip, || check(&self.connects, &ip)).await
    }
    /// Slow mode: one message per `period` per member in a channel.
    pub async fn slow_mode(&self, channel: Id, user: Id, period: Duration) -> Result<(), Limited> {
        let local = || {
            let now = std::time::Instant::now();
            let mut next = self.slow_mode.lock();
            if next.len() >= SLOW_MODE_SWEEP_AT {
                next.retain(|_, at| *at > now);
            }
            slow_mode_wait(next.get(&(channel, user)), now)?;
            next.insert((channel, user), now + period);
            Ok(())
        };
        let Some(shared) = self.shared.get() else { return local() };
        let verdict = shared.once_per(&slow_mode_key(channel, user), period).await;
        self.shared_or_local(verdict, local)
    }

    /// Whether [`RateLimits::slow_mode`] would refuse the member now, without taking their turn (to
    /// refuse a send before its files are uploaded).
    pub async fn slow_mode_waiting(&self, channel: Id, user: Id) -> Result<(), Limited> {
        let local = || slow_mode_wait(self.slow_mode.lock().get(&(channel, user)), std::time::Instant::now());
        let Some(shared) = self.shared.get() else { return local() };
        let verdict = shared.once_per_waiting(&slow_mode_key(channel, user)).await;
        self.shared_or_local(verdict, local)
    }

    /// A second-factor code tried for this account (see [`MFA_ATTEMPTS`]), whatever the client's
    /// address, and never lifted for benchmarks.
    pub async fn mfa_attempt(&self, user: Id) -> Result<(), Limited> {
        self.limit(|| format!("mfa:{user}"), MFA_ATTEMPTS, || check(&self.mfa, &user)).await
    }

    /// A fresh limiter for one gateway connection's frames.
    pub fn gateway_frame_limiter(&self) -> governor::DefaultDirectRateLimiter {
        governor::RateLimiter::direct(self.gateway_frames)
    }

    /// Forgets idle keys so the maps stay small.
    pub fn shrink(&self) {
        self.rest_user.retain_recent();
        self.rest_ip.retain_recent();
        self.auth_ip.retain_recent();
        self.messages.retain_recent();
        self.connects.retain_recent();
        self.mfa.retain_recent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Down;

    #[async_trait]
    impl SharedLimiter for Down {
        async fn check(&self, _: &str, _: Rate) -> Result<Result<(), Limited>, String> {
            Err("connection refused".into())
        }
        async fn once_per(&self, _: &str, _: Duration) -> Result<Result<(), Limited>, String> {
            Err("connection refused".into())
        }
        async fn once_per_waiting(&self, _: &str) -> Result<Result<(), Limited>, String> {
            Err("connection refused".into())
        }
    }

    struct RefuseAll;

    #[async_trait]
    impl SharedLimiter for RefuseAll {
        async fn check(&self, _: &str, _: Rate) -> Result<Result<(), Limited>, String> {
            Ok(Err(Limited(7)))
        }
        async fn once_per(&self, _: &str, _: Duration) -> Result<Result<(), Limited>, String> {
            Ok(Err(Limited(7)))
        }
        async fn once_per_waiting(&self, _: &str) -> Result<Result<(), Limited>, String> {
            Ok(Err(Limited(7)))
        }
    }

    #[tokio::test]
    async fn a_shared_limiter_that_answers_decides() {
        let l = RateLimits::new(&RateLimitConfig::default());
        l.share(Arc::new(RefuseAll));
        assert_eq!(l.auth_ip("127.0.0.1".parse().unwrap()).await, Err(Limited(7)));
    }

    #[tokio::test]
    async fn a_shared_limiter_that_fails_falls_back_to_the_local_budget_and_counts_it() {
        let l = RateLimits::new(&RateLimitConfig {
            auth_per_ip: Rate { per_minute: 6, burst: 2 },
            ..RateLimitConfig::default()
        });
        l.share(Arc::new(Down));
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(l.auth_ip(ip).await.is_ok());
        assert!(l.auth_ip(ip).await.is_ok());
        assert!(l.auth_ip(ip).await.is_err(), "the local budget still holds");
        assert_eq!(l.shared_fallbacks.get(), 3);
    }

    #[tokio::test]
    async fn asking_whether_slow_mode_would_refuse_does_not_take_the_members_turn() {
        let l = RateLimits::new(&RateLimitConfig::default());
        let (c, u) = (Id::from_raw(1), Id::from_raw(2));
        let period = Duration::from_secs(30);
        assert!(l.slow_mode_waiting(c, u).await.is_ok());
        assert!(l.slow_mode_waiting(c, u).await.is_ok(), "asking twice takes nothing");
        assert!(l.slow_mode(c, u, period).await.is_ok(), "the turn is still there");
        let Limited(wait) = l.slow_mode_waiting(c, u).await.unwrap_err();
        assert!((29..=30).contains(&wait), "{wait}");
    }

    #[tokio::test]
    async fn slow_mode_admits_one_message_per_period_per_member_and_channel() {
        let l = RateLimits::new(&RateLimitConfig::default());
        let (c, u, other) = (Id::from_raw(1), Id::from_raw(2), Id::from_raw(3));
        let period = Duration::from_secs(30);
        assert!(l.slow_mode(c, u, period).await.is_ok());
        let Limited(wait) = l.slow_mode(c, u, period).await.unwrap_err();
        assert!((29..=30).contains(&wait), "{wait}");
        assert!(l.slow_mode(c, other, period).await.is_ok(), "another member has a budget of their own");
        assert!(l.slow_mode(other, u, period).await.is_ok(), "and so has another channel");
    }

    #[tokio::test]
    async fn slow_mode_falls_back_to_this_node_when_the_shared_limiter_fails() {
        let l = RateLimits::new(&RateLimitConfig::default());
        l.share(Arc::new(Down));
        let (c, u) = (Id::from_raw(1), Id::from_raw(2));
        assert!(l.slow_mode(c, u, Duration::from_secs(5)).await.is_ok());
        assert!(l.slow_mode(c, u, Duration::from_secs(5)).await.is_err());
        assert_eq!(l.shared_fallbacks.get(), 2);
    }

    #[tokio::test]
    async fn burst_then_refuse_with_a_wait() {
        let l = RateLimits::new(&RateLimitConfig {
            auth_per_ip: Rate { per_minute: 6, burst: 2 },
            ..RateLimitConfig::default()
        });
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(l.auth_ip(ip).await.is_ok());
        assert!(l.auth_ip(ip).await.is_ok());
        let Limited(wait) = l.auth_ip(ip).await.unwrap_err();
        assert!((1..=10).contains(&wait), "{wait}");
        let other: IpAddr = "127.0.0.2".parse().unwrap();
        assert!(l.auth_ip(other).await.is_ok(), "keys are independent");
    }
}
