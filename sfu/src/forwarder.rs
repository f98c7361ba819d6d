//! Simulcast layer selection: which layer of a video track one subscriber receives.
//!
//! The target layer is the best one that fits both the size the subscriber asked for
//! and its share of the bandwidth estimate. Switching up waits for a keyframe on the
//! new layer; switching down happens at once (and asks for a keyframe).

use std::time::{Duration, Instant};

/// One simulcast layer, by rid: `q` (quarter), `h` (half), `f` (full).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Layer {
    Q = 0,
    H = 1,
    F = 2,
}

impl Layer {
    pub const ALL: [Layer; 3] = [Layer::Q, Layer::H, Layer::F];

    /// The layer of a rid; an absent rid (no simulcast) is the full layer.
    pub fn from_rid(rid: Option<&str>) -> Option<Layer> {
        match rid {
            None => Some(Layer::F),
            Some("q") => Some(Layer::Q),
            Some("h") => Some(Layer::H),
            Some("f") => Some(Layer::F),
            Some(_) => None,
        }
    }

    pub fn rid(self) -> &'static str {
        match self {
            Layer::Q => "q",
            Layer::H => "h",
            Layer::F => "f",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// What the publisher sends on one layer, measured.
#[derive(Debug, Clone, Copy, Default)]
pub struct LayerStats {
    /// From the last VP8 keyframe header; 0 when not known yet.
    pub width: u16,
    pub height: u16,
    /// Bits per second over the last window.
    pub bitrate_bps: u64,
    /// When the last packet of this layer arrived.
    pub last_seen: Option<Instant>,
    window_start: Option<Instant>,
    window_bytes: u64,
}

/// A layer that sent nothing for this long is treated as off.
const LAYER_STALE: Duration = Duration::from_millis(1500);

impl LayerStats {
    pub fn on_frame(&mut self, now: Instant, bytes: usize, dims: Option<(u16, u16)>) {
        if let Some((w, h)) = dims {
            self.width = w;
            self.height = h;
        }
        self.last_seen = Some(now);
        let start = *self.window_start.get_or_insert(now);
        self.window_bytes += bytes as u64;
        let elapsed = now.saturating_duration_since(start);
        if elapsed >= Duration::from_millis(500) {
            self.bitrate_bps = self.window_bytes * 8 * 1000 / elapsed.as_millis().max(1) as u64;
            self.window_start = Some(now);
            self.window_bytes = 0;
        }
    }

    pub fn is_active(&self, now: Instant) -> bool {
        self.last_seen.is_some_and(|t| now.saturating_duration_since(t) < LAYER_STALE)
    }
}

/// What a subscriber asked for (`subscribe` message).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Preference {
    pub max_width: Option<u32>,
    pub max_height: Option<u32>,
    pub paused: bool,
}

/// The target layer of one subscriber of a video track: [`choose_layer`] for a simulcast track; a
/// single-layer track (screen share) is all (`F`) or, paused, nothing.
pub fn target_layer(
    now: Instant,
    simulcast: bool,
    layers: &[LayerStats; 3],
    pref: &Preference,
    budget_bps: Option<u64>,
) -> Option<Layer> {
    if simulcast { choose_layer(now, layers, pref, budget_bps) } else { (!pref.paused).then_some(Layer::F) }
}

/// Choose the target layer for one subscriber.
///
/// Size: the smallest active layer that covers the requested box (no upscaling needed),
/// or the largest active layer when none does. Unknown sizes are assumed as 1/4, 1/2 and
/// 1/1 of 1280x720. Bandwidth: step down while the layer's bitrate exceeds the budget.
pub fn choose_layer(
    now: Instant,
    layers: &[LayerStats; 3],
    pref: &Preference,
    budget_bps: Option<u64>,
) -> Option<Layer> {
    if pref.paused {
        return None;
    }
    let active: Vec<Layer> = Layer::ALL.into_iter().filter(|l| layers[l.index()].is_active(now)).collect();
    let (&lowest, &highest) = (active.first()?, active.last()?);
    let dims = |l: Layer| {
        let s = &layers[l.index()];
        if s.width > 0 && s.height > 0 {
            (s.width as u32, s.height as u32)
        } else {
            let div = [4, 2, 1][l.index()];
            (1280 / div, 720 / div)
        }
    };
    let mut chosen = highest;
    if pref.max_width.is_some() || pref.max_height.is_some() {
        let want_w = pref.max_width.unwrap_or(u32::MAX);
        let want_h = pref.max_height.unwrap_or(u32::MAX);
        chosen = active
            .iter()
            .copied()
            .find(|l| {
                let (w, h) = dims(*l);
                w >= want_w || h >= want_h
            })
            .unwrap_or(highest);
    }
    if let Some(budget) = budget_bps {
        while chosen > lowest && layers[chosen.index()].bitrate_bps > budget {
            let idx = active.iter().position(|l| *l == chosen).unwrap_or(0);
            if idx == 0 {
                break;
            }
            chosen = active[idx - 1];
        }
    }
    Some(chosen)
}

/// Decision for one incoming video frame and one subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Drop,
    Forward,
    /// Forward; the subscriber moved to this layer (up at a keyframe, or down at once).
    Switched {
        up: bool,
    },
}

/// One subscriber's view of one simulcast video track.
#[derive(Debug, Default, Clone)]
pub struct LayerForwarder {
    pub current: Option<Layer>,
    pub target: Option<Layer>,
}

impl LayerForwarder {
    pub fn set_target(&mut self, target: Option<Layer>) {
        self.target = target;
        if target.is_none() {
            self.current = None;
        }
    }

    /// Whether the frame of `layer` goes to this subscriber.
    #[inline]
    pub fn on_frame(&mut self, layer: Layer, keyframe: bool) -> Decision {
        let Some(target) = self.target else {
            return Decision::Drop;
        };
        if layer == target {
            match self.current {
                Some(c) if c == target => Decision::Forward,
                Some(c) if target < c => {
                    self.current = Some(target);
                    Decision::Switched { up: false }
                }
                _ if keyframe => {
                    let up = self.current.is_some();
                    self.current = Some(target);
                    Decision::Switched { up }
                }
                _ => Decision::Drop,
            }
        } else if Some(layer) == self.current {
            Decision::Forward
        } else {
            Decision::Drop
        }
    }

    /// A keyframe on the target layer is needed before the subscriber can move to it.
    pub fn wants_keyframe(&self) -> Option<Layer> {
        match (self.current, self.target) {
            (c, Some(t)) if c != Some(t) => Some(t),
            _ => None,
        }
    }
}

/// Width and height from a VP8 keyframe (RFC 6386 section 9.1), if `frame` is one.
pub fn vp8_keyframe_size(frame: &[u8]) -> Option<(u16, u16)> {
    if frame.len() < 10 || frame[0] & 1 != 0 || frame[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let w = u16::from_le_bytes([frame[6], frame[7]]) & 0x3fff;
    let h = u16::from_le_bytes([frame[8], frame[9]]) & 0x3fff;
    Some((w, h))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three_layers(now: Instant) -> [LayerStats; 3] {
        let mut l = [LayerStats::default(); 3];
        for (i, (w, h, bps)) in
            [(320, 180, 150_000), (640, 360, 500_000), (1280, 720, 1_500_000)].into_iter().enumerate()
        {
            l[i].width = w;
            l[i].height = h;
            l[i].bitrate_bps = bps;
            l[i].last_seen = Some(now);
        }
        l
    }

    #[test]
    fn small_tile_gets_low_layer_and_large_tile_high_layer() {
        let now = Instant::now();
        let l = three_layers(now);
        let small = Preference { max_width: Some(320), max_height: Some(180), paused: false };
        let large = Preference { max_width: Some(1280), max_height: Some(720), paused: false };
        assert_eq!(choose_layer(now, &l, &small, None), Some(Layer::Q));
        assert_eq!(choose_layer(now, &l, &large, Some(5_000_000)), Some(Layer::F));
        assert_eq!(choose_layer(now, &l, &large, Some(600_000)), Some(Layer::H));
        let paused = Preference { paused: true, ..large };
        assert_eq!(choose_layer(now, &l, &paused, None), None);
    }

    #[test]
    fn switch_up_waits_for_keyframe_and_down_is_immediate() {
        let mut f = LayerForwarder::default();
        f.set_target(Some(Layer::Q));
        assert_eq!(f.on_frame(Layer::Q, false), Decision::Drop);
        assert_eq!(f.on_frame(Layer::Q, true), Decision::Switched { up: false });
        f.set_target(Some(Layer::F));
        assert_eq!(f.wants_keyframe(), Some(Layer::F));
        assert_eq!(f.on_frame(Layer::F, false), Decision::Drop);
        assert_eq!(f.on_frame(Layer::Q, false), Decision::Forward);
        assert_eq!(f.on_frame(Layer::F, true), Decision::Switched { up: true });
        assert_eq!(f.on_frame(Layer::Q, false), Decision::Drop);
        f.set_target(Some(Layer::H));
        assert_eq!(f.on_frame(Layer::H, false), Decision::Switched { up: false });
    }

    #[test]
    fn vp8_keyframe_header_gives_size() {
        let mut kf = vec![0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a];
        kf.extend_from_slice(&640u16.to_le_bytes());
        kf.extend_from_slice(&360u16.to_le_bytes());
        assert_eq!(vp8_keyframe_size(&kf), Some((640, 360)));
        kf[0] |= 1;
        assert_eq!(vp8_keyframe_size(&kf), None);
    }
}
