//! Prometheus families of the community plane: `chorus_chat_*`, `chorus_gateway_*`.
//! Labels are bounded: event names and route groups, never ids.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry};

use crate::gateway::hub::Hub;

pub struct ChatMetrics {
    pub events: IntCounterVec,
    pub messages: prometheus::IntCounter,
    /// Audit entries the store refused (the action they describe stood).
    pub audit_failures: prometheus::IntCounter,
    pub gateway_connections: IntGauge,
    pub gateway_closes: IntCounterVec,
    /// REST requests by route template (bounded: the router's own paths), method and status class.
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
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
            audit_failures: prometheus::IntCounter::new(
                "chorus_audit_log_failures_total",
                "Audit log entries not recorded because the store refused them",
            )
            .expect("static metric definition"),
            gateway_connections: IntGauge::new("chorus_gateway_connections", "Open gateway WebSocket connections")
                .expect("static metric definition"),
            gateway_closes: IntCounterVec::new(
                Opts::new("chorus_gateway_closes_total", "Gateway connections closed by the server, by close code"),
                &["code"],
            )
            .expect("static metric definition"),
            http_requests: IntCounterVec::new(
                Opts::new(
                    "chorus_chat_http_requests_total",
                    "REST requests, by route template, method and status class",
                ),
                &["route", "method", "status"],
            )
            .expect("static metric definition"),
            http_duration: HistogramVec::new(
                HistogramOpts::new("chorus_chat_http_request_duration_seconds", "REST request latency, by method")
                    .buckets(vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5]),
                &["method"],
            )
            .expect("static metric definition"),
        };
        // A second Chat in one registry (tests) would collide; the first registration wins.
        let _ = registry.register(Box::new(m.events.clone()));
        let _ = registry.register(Box::new(m.messages.clone()));
        let _ = registry.register(Box::new(m.audit_failures.clone()));
        let _ = registry.register(Box::new(m.gateway_connections.clone()));
        let _ = registry.register(Box::new(m.gateway_closes.clone()));
        let _ = registry.register(Box::new(m.http_requests.clone()));
        let _ = registry.register(Box::new(m.http_duration.clone()));
        let _ = registry.register(Box::new(hub.delivered.clone()));
        let _ = registry.register(Box::new(hub.slow_consumers.clone()));
        m
    }
}
