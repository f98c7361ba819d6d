//! Rate limits per user and per IP (governor's GCRA, keyed). A refusal carries the seconds to wait,
//! which REST answers as 429 + Retry-After and the gateway as close 4008.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

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

/// A refusal: wait this many seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited(pub u64);

pub struct RateLimits {
    rest_user: DefaultKeyedRateLimiter<Id>,
    rest_ip: DefaultKeyedRateLimiter<IpAddr>,
    auth_ip: DefaultKeyedRateLimiter<IpAddr>,
    messages: DefaultKeyedRateLimiter<Id>,
    connects: DefaultKeyedRateLimiter<IpAddr>,
    gateway_frames: Quota,
}

fn check<K: std::hash::Hash + Eq + Clone>(l: &DefaultKeyedRateLimiter<K>, key: &K) -> Result<(), Limited> {
    l.check_key(key).map_err(|not_until| {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        Limited(wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
    })
}

impl RateLimits {
    pub fn new(c: &RateLimitConfig) -> Self {
        RateLimits {
            rest_user: DefaultKeyedRateLimiter::keyed(quota(c.rest_per_user)),
            rest_ip: DefaultKeyedRateLimiter::keyed(quota(c.rest_per_ip)),
            auth_ip: DefaultKeyedRateLimiter::keyed(quota(c.auth_per_ip)),
            messages: DefaultKeyedRateLimiter::keyed(quota(c.messages_per_user)),
            connects: DefaultKeyedRateLimiter::keyed(quota(c.gateway_connects_per_ip)),
            gateway_frames: quota(c.gateway_frames),
        }
    }

    pub fn rest_user(&self, user: Id) -> Result<(), Limited> {
        check(&self.rest_user, &user)
    }
    pub fn rest_ip(&self, ip: IpAddr) -> Result<(), Limited> {
        check(&self.rest_ip, &ip)
    }
    pub fn auth_ip(&self, ip: IpAddr) -> Result<(), Limited> {
        check(&self.auth_ip, &ip)
    }
    pub fn message(&self, user: Id) -> Result<(), Limited> {
        check(&self.messages, &user)
    }
    pub fn gateway_connect(&self, ip: IpAddr) -> Result<(), Limited> {
        check(&self.connects, &ip)
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refuse_with_a_wait() {
        let l = RateLimits::new(&RateLimitConfig {
            auth_per_ip: Rate { per_minute: 6, burst: 2 },
            ..RateLimitConfig::default()
        });
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(l.auth_ip(ip).is_ok());
        assert!(l.auth_ip(ip).is_ok());
        let Limited(wait) = l.auth_ip(ip).unwrap_err();
        assert!((1..=10).contains(&wait), "{wait}");
        let other: IpAddr = "127.0.0.2".parse().unwrap();
        assert!(l.auth_ip(other).is_ok(), "keys are independent");
    }
}
