//! A participant's link quality from str0m's once-a-second statistics.
//!
//! Each connection reports itself first (`PeerStats`: loss and round trip from transport-cc
//! feedback, over all its packets), then each of its streams (loss from RTP sequence numbers and
//! RTCP receiver reports, round trip from those reports). The connection's figures win; where it has
//! none — no transport-cc, as on a subscribe connection that carries only audio (see `offer_sdp`) —
//! the worst stream's figures since the previous report stand in.

use std::time::Duration;

use str0m::stats::{MediaEgressStats, MediaIngressStats, PeerStats};

use crate::Quality;
use crate::router::Pc;

/// Stream figures gathered since the last connection report.
#[derive(Debug, Default)]
pub(crate) struct LinkReports {
    loss_in: Option<f32>,
    loss_out: Option<f32>,
    rtt: Option<Duration>,
}

impl LinkReports {
    /// A stream the participant publishes, as the SFU receives it.
    pub fn stream_in(&mut self, st: &MediaIngressStats) {
        self.loss_in = worst(self.loss_in, st.loss);
    }

    /// A stream the SFU forwards to the participant, as its receiver reports it.
    pub fn stream_out(&mut self, st: &MediaEgressStats) {
        self.loss_out = worst(self.loss_out, st.loss);
        self.rtt = self.rtt.max(st.rtt);
    }

    /// A connection's own report: updates `q` and starts gathering streams afresh.
    pub fn connection_report(&mut self, pc: Pc, st: &PeerStats, q: &mut Quality) {
        match pc {
            Pc::Publish => {
                let streams = self.loss_in.take();
                q.loss_in = st.ingress_loss_fraction.or(streams).or(q.loss_in);
            }
            Pc::Subscribe => {
                let (loss, rtt) = (self.loss_out.take(), self.rtt.take());
                q.loss_out = st.egress_loss_fraction.or(loss).or(q.loss_out);
                q.rtt_ms = st.rtt.or(rtt).map(|d| d.as_secs_f32() * 1000.0).or(q.rtt_ms);
            }
        }
    }
}

fn worst(a: Option<f32>, b: Option<f32>) -> Option<f32> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, y) => x.or(y),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_stream_stands_in_when_the_connection_has_no_figure() {
        assert_eq!(worst(Some(0.1), Some(0.3)), Some(0.3));
        assert_eq!(worst(None, Some(0.2)), Some(0.2));
        assert_eq!(worst(Some(0.2), None), Some(0.2));
        assert_eq!(worst(None, None), None);
    }
}
