//! `chorus_voice_*` Prometheus families (bounded labels: error codes only).

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

#[derive(Clone)]
pub struct VoiceMetrics {
    pub sessions: IntGauge,
    pub joins: IntCounter,
    pub errors: IntCounterVec,
    pub join_latency: Histogram,
}

impl VoiceMetrics {
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let m = VoiceMetrics {
            sessions: IntGauge::new("chorus_voice_sessions", "Open /voice sessions")?,
            joins: IntCounter::new("chorus_voice_joins_total", "Successful voice joins")?,
            errors: IntCounterVec::new(
                Opts::new("chorus_voice_errors_total", "Errors sent to voice clients, by code"),
                &["code"],
            )?,
            join_latency: Histogram::with_opts(
                HistogramOpts::new("chorus_voice_join_latency_seconds", "From the join message to the joined answer")
                    .buckets(vec![0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0]),
            )?,
        };
        registry.register(Box::new(m.sessions.clone()))?;
        registry.register(Box::new(m.joins.clone()))?;
        registry.register(Box::new(m.errors.clone()))?;
        registry.register(Box::new(m.join_latency.clone()))?;
        Ok(m)
    }
}
