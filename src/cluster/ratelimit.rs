//! Rate limits shared by every node: GCRA as one Lua call on Redis's own clock (TIME), so nodes
//! whose clocks differ still share one budget. A check that takes longer than [`CHECK_TIMEOUT`]
//! counts as unanswered and chat's local limiter decides.

use std::time::Duration;

use async_trait::async_trait;
use chat::ratelimit::{Limited, Rate, SharedLimiter};
use redis::aio::ConnectionManager;

/// A stalled Redis must not hold every request: past this the local limiter decides.
const CHECK_TIMEOUT: Duration = Duration::from_millis(250);

// KEYS[1]: the budget; ARGV[1]: emission interval (µs); ARGV[2]: burst tolerance (µs).
// Returns 0 when admitted, else the µs to wait. The key expires when the budget is full again.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
if now < tat - tolerance then return tat - tolerance - now end
local new_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
return 0
";

pub struct RedisLimiter {
    conn: ConnectionManager,
    script: redis::Script,
}

impl RedisLimiter {
    pub fn new(conn: ConnectionManager) -> Self {
        RedisLimiter { conn, script: redis::Script::new(GCRA) }
    }
}

/// The emission interval and burst tolerance of a rate, in microseconds.
pub fn gcra_params(rate: Rate) -> (u64, u64) {
    let interval = 60_000_000 / u64::from(rate.per_minute.max(1));
    (interval, interval * u64::from(rate.burst.max(1) - 1))
}

#[async_trait]
impl SharedLimiter for RedisLimiter {
    async fn check(&self, key: &str, rate: Rate) -> Result<Result<(), Limited>, String> {
        let (interval, tolerance) = gcra_params(rate);
        let mut conn = self.conn.clone();
        let call = async {
            self.script
                .key(format!("chorus:rl:{key}"))
                .arg(interval)
                .arg(tolerance)
                .invoke_async::<i64>(&mut conn)
                .await
        };
        match tokio::time::timeout(CHECK_TIMEOUT, call).await {
            Ok(Ok(0)) => Ok(Ok(())),
            // Whole seconds, rounded up, as Retry-After says.
            Ok(Ok(wait_us)) => Ok(Err(Limited((wait_us.max(1) as u64).div_ceil(1_000_000)))),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {CHECK_TIMEOUT:?}")),
        }
    }

    async fn once_per(&self, key: &str, period: Duration) -> Result<Result<(), Limited>, String> {
        let mut conn = self.conn.clone();
        let key = format!("chorus:rl:{key}");
        let millis = u64::try_from(period.as_millis()).unwrap_or(u64::MAX).max(1);
        let call = async {
            // SET NX: the first message of the period takes the key; the others read how long it lives.
            let taken: Option<String> =
                redis::cmd("SET").arg(&key).arg(1).arg("NX").arg("PX").arg(millis).query_async(&mut conn).await?;
            if taken.is_some() {
                return Ok::<i64, redis::RedisError>(0);
            }
            redis::cmd("PTTL").arg(&key).query_async::<i64>(&mut conn).await
        };
        match tokio::time::timeout(CHECK_TIMEOUT, call).await {
            Ok(Ok(0)) => Ok(Ok(())),
            // -2: the key expired between the two commands; -1 cannot happen (always set with PX).
            Ok(Ok(wait_ms)) if wait_ms < 0 => Ok(Ok(())),
            Ok(Ok(wait_ms)) => Ok(Err(Limited((wait_ms as u64).div_ceil(1000)))),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {CHECK_TIMEOUT:?}")),
        }
    }

    async fn once_per_waiting(&self, key: &str) -> Result<Result<(), Limited>, String> {
        let mut conn = self.conn.clone();
        let mut pttl = redis::cmd("PTTL");
        pttl.arg(format!("chorus:rl:{key}"));
        let call = pttl.query_async::<i64>(&mut conn);
        match tokio::time::timeout(CHECK_TIMEOUT, call).await {
            // -2: no key (nothing posted this period).
            Ok(Ok(wait_ms)) if wait_ms <= 0 => Ok(Ok(())),
            Ok(Ok(wait_ms)) => Ok(Err(Limited((wait_ms as u64).div_ceil(1000)))),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {CHECK_TIMEOUT:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_burst_is_the_tolerance_of_that_many_intervals_less_one() {
        assert_eq!(gcra_params(Rate { per_minute: 60, burst: 20 }), (1_000_000, 19_000_000));
        assert_eq!(gcra_params(Rate { per_minute: 60, burst: 1 }), (1_000_000, 0));
    }
}
