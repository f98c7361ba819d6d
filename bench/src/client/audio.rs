//! Real Opus audio: a talker encodes 48 kHz mono 20 ms frames of a tone under noise (noise keeps
//! every encoded frame distinct, which the per-packet keying relies on); receivers can decode.

use anyhow::{Context, Result};

pub const SAMPLE_RATE: u32 = 48_000;
/// Samples per 20 ms frame.
pub const FRAME: usize = 960;

pub struct OpusSource {
    encoder: opus::Encoder,
    pcm: Vec<i16>,
    out: Vec<u8>,
    phase: f32,
    step: f32,
    rng: u64,
}

impl OpusSource {
    /// `seed` differs per talker (noise and pitch).
    pub fn new(seed: u64) -> Result<OpusSource> {
        let mut encoder =
            opus::Encoder::new(SAMPLE_RATE, opus::Channels::Mono, opus::Application::Voip).context("opus encoder")?;
        encoder.set_bitrate(opus::Bitrate::Bits(32_000)).context("opus bitrate")?;
        // Moderate complexity: many talkers share the bench's cores with the server.
        encoder.set_complexity(5).context("opus complexity")?;
        let hz = 220.0 + (seed % 32) as f32 * 20.0;
        Ok(OpusSource {
            encoder,
            pcm: vec![0; FRAME],
            out: vec![0; 1500],
            phase: 0.0,
            step: hz * std::f32::consts::TAU / SAMPLE_RATE as f32,
            rng: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
        })
    }

    /// The next encoded 20 ms frame.
    pub fn next_frame(&mut self) -> Result<Vec<u8>> {
        for s in &mut self.pcm {
            // xorshift64 noise at about -30 dBFS under a -10 dBFS tone.
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            let noise = ((self.rng >> 48) as i16 as f32) / 32.0;
            let tone = self.phase.sin() * 10_000.0;
            self.phase = (self.phase + self.step) % std::f32::consts::TAU;
            *s = (tone + noise) as i16;
        }
        let n = self.encoder.encode(&self.pcm, &mut self.out).context("opus encode")?;
        Ok(self.out[..n].to_vec())
    }
}

/// Decodes received frames to check they are real Opus.
pub struct OpusCheck {
    decoder: opus::Decoder,
    pcm: Vec<i16>,
}

impl OpusCheck {
    pub fn new() -> Result<OpusCheck> {
        Ok(OpusCheck {
            decoder: opus::Decoder::new(SAMPLE_RATE, opus::Channels::Mono).context("opus decoder")?,
            pcm: vec![0; FRAME * 6],
        })
    }

    /// True when `frame` decodes to exactly 20 ms.
    pub fn decodes(&mut self, frame: &[u8]) -> bool {
        matches!(self.decoder.decode(frame, &mut self.pcm, false), Ok(FRAME))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::media::payload_key;

    #[test]
    fn frames_decode_and_are_distinct() {
        let mut src = OpusSource::new(3).unwrap();
        let mut check = OpusCheck::new().unwrap();
        let mut keys = std::collections::HashSet::new();
        for _ in 0..250 {
            let f = src.next_frame().unwrap();
            assert!(f.len() > 20 && f.len() < 400, "{}", f.len());
            assert!(check.decodes(&f));
            assert!(keys.insert(payload_key(&f)));
        }
        let mut other = OpusSource::new(4).unwrap();
        for _ in 0..250 {
            assert!(!keys.contains(&payload_key(&other.next_frame().unwrap())));
        }
    }
}
