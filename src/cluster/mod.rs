//! Cluster mode (`--cluster redis://…`): several Chorus nodes over one Redis and one MongoDB.
//!
//! Redis carries what must be shared and is cheap to lose: the event stream every node reads
//! (`bus`), the registry of live nodes and the claim on each snowflake node id (`nodes`), where
//! each voice room lives (`rooms`), presence (`presence`), voice states (`voice`) and rate limits
//! (`ratelimit`). The store
//! (MongoDB) stays the source of truth. Liveness is Redis's own key expiry — no node compares its
//! clock with another's. See docs/architecture.md "Cluster".

pub mod bus;
pub mod keys;
pub mod nodes;
pub mod presence;
pub mod ratelimit;
pub mod rooms;
pub mod voice;

use std::time::Duration;

use anyhow::{Context, Result};
use redis::aio::ConnectionManager;

pub use nodes::{NodeInfo, NodeRecord};

/// Every command but the stream reader's blocking read answers within this (a Redis stalled for
/// longer makes the command fail and be retried; it never hangs a request).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// A connection that reconnects by itself, for short commands.
pub async fn connect(url: &str) -> Result<ConnectionManager> {
    connect_with_timeout(url, RESPONSE_TIMEOUT).await
}

async fn connect_with_timeout(url: &str, response_timeout: Duration) -> Result<ConnectionManager> {
    let client = redis::Client::open(url).context("--cluster: not a Redis URL")?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_response_timeout(Some(response_timeout))
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_secs(1));
    client
        .get_connection_manager_with_config(config)
        .await
        .with_context(|| format!("connecting to Redis at {}", redact(url)))
}

/// The URL without its password, for logs and errors.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}://…@{}", &url[..scheme], &url[at + 1..]),
        _ => url.to_string(),
    }
}

/// Whether Redis answers (for `/readyz`).
pub async fn ping(conn: &ConnectionManager) -> bool {
    let mut conn = conn.clone();
    matches!(redis::cmd("PING").query_async::<String>(&mut conn).await, Ok(p) if p == "PONG")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_never_reaches_the_log() {
        assert_eq!(redact("redis://user:s3cret@10.0.0.5:6379/0"), "redis://…@10.0.0.5:6379/0");
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }
}
