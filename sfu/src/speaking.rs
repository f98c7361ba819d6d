//! Speaking detection from RFC 6464 audio levels, with hysteresis.

use std::time::{Duration, Instant};

/// Levels are -dBov: 0 is loudest, 127 silence. At or below this counts as voice.
const LOUD_LEVEL: i8 = 50;
/// Consecutive loud packets (20 ms each) before "speaking" starts.
const START_PACKETS: u32 = 3;
/// Quiet time after the last loud packet before "speaking" stops.
const STOP_AFTER: Duration = Duration::from_millis(600);

/// One participant's speaking state.
#[derive(Debug, Default)]
pub struct SpeakingDetector {
    speaking: bool,
    loud_run: u32,
    last_loud: Option<Instant>,
}

impl SpeakingDetector {
    pub fn is_speaking(&self) -> bool {
        self.speaking
    }

    /// Feed one packet's level; returns the new state if it changed.
    pub fn on_level(&mut self, now: Instant, level: i8) -> Option<bool> {
        if level <= LOUD_LEVEL {
            self.loud_run += 1;
            self.last_loud = Some(now);
            if !self.speaking && self.loud_run >= START_PACKETS {
                self.speaking = true;
                return Some(true);
            }
        } else {
            self.loud_run = 0;
        }
        self.on_tick(now)
    }

    /// Time passes (DTX sends nothing in silence); returns the new state if it changed.
    pub fn on_tick(&mut self, now: Instant) -> Option<bool> {
        if self.speaking && self.last_loud.is_none_or(|t| now.saturating_duration_since(t) >= STOP_AFTER) {
            self.speaking = false;
            self.loud_run = 0;
            return Some(false);
        }
        None
    }

    /// Muting ends speaking at once.
    pub fn reset(&mut self) -> Option<bool> {
        self.loud_run = 0;
        self.last_loud = None;
        if self.speaking {
            self.speaking = false;
            Some(false)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_loud_packet_does_not_start_speaking() {
        let mut d = SpeakingDetector::default();
        let t = Instant::now();
        assert_eq!(d.on_level(t, 20), None);
        assert_eq!(d.on_level(t + Duration::from_millis(20), 127), None);
        assert!(!d.is_speaking());
    }

    #[test]
    fn speaking_starts_after_a_run_and_stops_after_silence() {
        let mut d = SpeakingDetector::default();
        let t = Instant::now();
        let ms = Duration::from_millis;
        assert_eq!(d.on_level(t, 30), None);
        assert_eq!(d.on_level(t + ms(20), 30), None);
        assert_eq!(d.on_level(t + ms(40), 30), Some(true));
        // Short pauses between words keep the state.
        assert_eq!(d.on_level(t + ms(300), 127), None);
        assert_eq!(d.on_tick(t + ms(500)), None);
        assert_eq!(d.on_tick(t + ms(700)), Some(false));
    }
}
