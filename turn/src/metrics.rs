//! `chorus_turn_*` Prometheus families. Labels are bounded: direction and refusal reason.

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

use crate::server::{Counters, Refusal};

#[derive(Clone)]
pub struct TurnMetrics {
    pub allocations: IntGauge,
    pub allocations_total: IntCounter,
    pub relayed_bytes: IntCounterVec,
    pub refused: IntCounterVec,
    pub tls_connections: IntGauge,
}

impl TurnMetrics {
    pub fn new(registry: &Registry) -> Result<TurnMetrics, prometheus::Error> {
        let m = TurnMetrics {
            allocations: IntGauge::new("chorus_turn_allocations", "TURN allocations open now")?,
            allocations_total: IntCounter::new("chorus_turn_allocations_total", "TURN allocations granted")?,
            relayed_bytes: IntCounterVec::new(
                Opts::new("chorus_turn_relayed_bytes_total", "Payload bytes relayed by the embedded TURN server"),
                &["direction"],
            )?,
            refused: IntCounterVec::new(
                Opts::new("chorus_turn_refused_total", "TURN requests and packets refused or dropped"),
                &["reason"],
            )?,
            tls_connections: IntGauge::new("chorus_turn_tls_connections", "TURN-over-TLS connections open now")?,
        };
        registry.register(Box::new(m.allocations.clone()))?;
        registry.register(Box::new(m.allocations_total.clone()))?;
        registry.register(Box::new(m.relayed_bytes.clone()))?;
        registry.register(Box::new(m.refused.clone()))?;
        registry.register(Box::new(m.tls_connections.clone()))?;
        for r in Refusal::ALL {
            m.refused.with_label_values(&[r.label()]);
        }
        Ok(m)
    }

    /// Adds what the core counted since `last` (the core keeps plain integers; this runs on a tick).
    pub fn flush(&self, now: &Counters, last: &mut Counters, open: usize) {
        self.allocations.set(open as i64);
        self.allocations_total.inc_by(now.allocations_total - last.allocations_total);
        self.relayed_bytes.with_label_values(&["to_peer"]).inc_by(now.bytes_to_peer - last.bytes_to_peer);
        self.relayed_bytes.with_label_values(&["to_client"]).inc_by(now.bytes_to_client - last.bytes_to_client);
        for r in Refusal::ALL {
            let i = r as usize;
            self.refused.with_label_values(&[r.label()]).inc_by(now.refused[i] - last.refused[i]);
        }
        *last = now.clone();
    }
}
