//! Measurements: latency histograms, the target server's /proc counters, its /metrics scrape, and
//! per-packet keying of forwarded media.

pub mod latency;
pub mod media;
pub mod metrics_scrape;
pub mod proc;
