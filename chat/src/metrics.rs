//! Prometheus families of the community plane: `chorus_chat_*`, `chorus_gateway_*`.
//! Labels are bounded: event names and route groups, never ids.

use prometheus::{IntCounterVec, IntGauge, Opts, Registry};

use crate::gateway::hub::Hub;

pub struct ChatMetrics {
    pub events: IntCounterVec,
    pub messages: prometheus::IntCounter,
    pub gateway_connections: IntGauge,
    pub gateway_closes: IntCounterVec,
}

impl ChatMetrics {
    pub fn new(registry: &Registry, hub: &Hub) -> Self {
        let m = ChatMetrics {
            events: IntCounterVec::new(
                Opts::new("chorus_chat_events_total", "Dispatch events published, by event"),
                &["event"],
            )
            .expect("static metric definition"),
            messages: prometheus::IntCounter::new("chorus_chat_messages_total", "Messages created")
                .expect("static metric definition"),
            gateway_connections: IntGauge::new("chorus_gateway_connections", "Open gateway WebSocket connections")
                .expect("static metric definition"),
            gateway_closes: IntCounterVec::new(
                Opts::new("chorus_gateway_closes_total", "Gateway connections closed by the server, by close code"),
                &["code"],
            )
            .expect("static metric definition"),
        };
        // A second Chat in one registry (tests) would collide; the first registration wins.
        let _ = registry.register(Box::new(m.events.clone()));
        let _ = registry.register(Box::new(m.messages.clone()));
        let _ = registry.register(Box::new(m.gateway_connections.clone()));
        let _ = registry.register(Box::new(m.gateway_closes.clone()));
        let _ = registry.register(Box::new(hub.delivered.clone()));
        let _ = registry.register(Box::new(hub.slow_consumers.clone()));
        m
    }
}
