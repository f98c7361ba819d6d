//! Measurements: latency histograms, the target server's /proc counters, its /metrics scrape,
//! per-packet keying of forwarded media, and the soak's judgement of growing series.

pub mod latency;
pub mod media;
pub mod metrics_scrape;
pub mod proc;
pub mod trend;
