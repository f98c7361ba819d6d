//! Simulcast layer selection: which layer of a video track one subscriber receives.
//!
//! The target layer is the best one that fits both the size the subscriber asked for
//! and its share of the bandwidth estimate. Every switch, up or down, happens at a keyframe of
//! the new layer (a VP8 decoder fed another layer's delta frames shows garbage until one
//! comes); until then the old layer goes on. Three rules keep a subscriber whose estimate hovers
//! near a layer's rate from flapping between layers: moving up needs a margin over the layer's
//! rate ([`UP_MARGIN_PERCENT`]); a layer left for lack of bandwidth stays out of reach for a
//! while ([`UP_HOLD`], doubled when the subscriber fails again soon after); and soon after such a
//! loss, the layer above must fit for [`UP_STABLE`] before the subscriber moves up.

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
/// A layer whose last frame is this much older than the newest frame of another layer has been turned off
/// by its publisher (Chromium drops its top layer when its uplink cannot carry it): sooner than
/// [`LAYER_STALE`], so that its subscribers move down before their picture freezes for long. Nine frame
/// times at 30 fps — more than a frame delayed by a retransmission.
const LAYER_STOPPED: Duration = Duration::from_millis(300);

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

/// Which layers of a track are on: each sent within [`LAYER_STALE`], and none stopped while another goes on
/// ([`LAYER_STOPPED`]).
pub fn active_layers(now: Instant, layers: &[LayerStats; 3]) -> [bool; 3] {
    let newest = layers.iter().filter_map(|l| l.last_seen).max();
    std::array::from_fn(|i| {
        let l = &layers[i];
        let stopped =
            l.last_seen.zip(newest).is_some_and(|(seen, n)| n.saturating_duration_since(seen) > LAYER_STOPPED);
        l.is_active(now) && !stopped
    })
}

/// A layer above the forwarded one is chosen only when its rate plus this share fits the budget.
pub const UP_MARGIN_PERCENT: u64 = 10;
/// How long a layer left for lack of bandwidth stays out of reach, at first.
pub const UP_HOLD: Duration = Duration::from_secs(4);
/// The longest hold, for a subscriber that keeps losing layers to its bandwidth.
const UP_HOLD_MAX: Duration = Duration::from_secs(32);
/// A down-switch this soon after the last hold ended doubles the next hold.
const HOLD_MEMORY: Duration = Duration::from_secs(20);
/// How long a layer above must fit before a subscriber that recently lost a layer for lack of bandwidth
/// moves up: a probe through a shaping router's queue can show a moment's capacity the link does not have.
pub const UP_STABLE: Duration = Duration::from_millis(1500);

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
    current: Option<Layer>,
) -> Option<Layer> {
    if simulcast { choose_layer(now, layers, pref, budget_bps, current) } else { (!pref.paused).then_some(Layer::F) }
}

/// Choose the target layer for one subscriber.
///
/// Size: the smallest active layer that covers the requested box (no upscaling needed),
/// or the largest active layer when none does. Unknown sizes are assumed as 1/4, 1/2 and
/// 1/1 of 1280x720. Bandwidth: step down while the layer does not fit the budget; a layer
/// above `current` (the one forwarded now) fits only with [`UP_MARGIN_PERCENT`] to spare.
pub fn choose_layer(
    now: Instant,
    layers: &[LayerStats; 3],
    pref: &Preference,
    budget_bps: Option<u64>,
    current: Option<Layer>,
) -> Option<Layer> {
    if pref.paused {
        return None;
    }
    let on = active_layers(now, layers);
    let active: Vec<Layer> = Layer::ALL.into_iter().filter(|l| on[l.index()]).collect();
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
        let fits = |l: Layer| {
            let bps = layers[l.index()].bitrate_bps;
            let margin = if current.is_some_and(|c| l > c) { bps * UP_MARGIN_PERCENT / 100 } else { 0 };
            bps + margin <= budget
        };
        while chosen > lowest && !fits(chosen) {
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
    /// Forward; the subscriber moved to this layer (at its keyframe, up or down).
    Switched {
        up: bool,
    },
}

/// One subscriber's view of one simulcast video track.
#[derive(Debug, Default, Clone)]
pub struct LayerForwarder {
    /// The layer forwarded now.
    pub current: Option<Layer>,
    /// The layer to move to at its next keyframe (equal to `current` once there).
    pub target: Option<Layer>,
    /// The layer last left for lack of bandwidth and until when it and those above stay out of reach.
    hold: Option<(Layer, Instant)>,
    /// How long the last hold was.
    hold_len: Duration,
    /// A layer above the target that has fitted since then.
    rising: Option<(Layer, Instant)>,
    /// Whether the budget held the target below what the size asked for at the last choice.
    limited: bool,
}

impl LayerForwarder {
    pub fn set_target(&mut self, target: Option<Layer>) {
        self.target = target;
        if target.is_none() {
            self.current = None;
        }
    }

    /// Chooses the target anew ([`target_layer`]) under the hold, and starts a hold when the
    /// budget (not the size asked for, nor a layer the publisher stopped) takes a layer away.
    pub fn retarget(
        &mut self,
        now: Instant,
        simulcast: bool,
        layers: &[LayerStats; 3],
        pref: &Preference,
        budget_bps: Option<u64>,
    ) {
        // The margin is over the layer forwarded, or the one being moved to (which then keeps it).
        let reference = self.current.max(self.target);
        let mut target = target_layer(now, simulcast, layers, pref, budget_bps, reference);
        if let (Some((held, until)), Some(t)) = (self.hold, target)
            && now < until
            && t >= held
        {
            // The best active layer below the held one; when there is none, the layer chosen.
            let on = active_layers(now, layers);
            target = Layer::ALL.into_iter().rfind(|l| *l < held && on[l.index()]).or(target);
        }
        // Up from a target the budget held down, soon after a layer was lost for lack of bandwidth, only
        // once the layer above has fitted for UP_STABLE; otherwise (the first climb, a larger tile, a layer
        // the publisher restarts) at once.
        let wary = self.limited && self.hold.is_some_and(|(_, until)| now < until + HOLD_MEMORY);
        match (self.target, target) {
            (Some(was), Some(t)) if t > was && wary => {
                let since = match self.rising {
                    Some((l, since)) if l == t => since,
                    _ => now,
                };
                self.rising = Some((t, since));
                if now.saturating_duration_since(since) < UP_STABLE {
                    target = Some(was);
                }
            }
            _ => self.rising = None,
        }
        let sized = target_layer(now, simulcast, layers, pref, None, None);
        // A hold only on a layer the subscriber had (not one it was still waiting for a keyframe of).
        if let (Some(was), Some(t)) = (self.target, target)
            && t < was
            && was <= sized.unwrap_or(Layer::Q)
            && self.current >= Some(was)
        {
            let again = self.hold.is_some_and(|(_, until)| now < until + HOLD_MEMORY);
            self.hold_len = if again { (self.hold_len * 2).clamp(UP_HOLD, UP_HOLD_MAX) } else { UP_HOLD };
            self.hold = Some((was, now + self.hold_len));
        }
        self.limited = target < sized;
        self.set_target(target);
    }

    /// Whether the budget keeps this subscriber under the layer its size asks for, with no hold standing: its
    /// estimator should look for more room ([`Reprobe`]).
    pub fn wants_more(&self, now: Instant) -> bool {
        self.limited && self.hold.is_none_or(|(_, until)| now >= until)
    }

    /// The layer the bandwidth estimator should find room for: the one the size asked for wants, so that
    /// str0m probes for it (a rise of the desired rate starts a probe; in the application-limited region
    /// it probes for twice the desired rate every 5 s); while a hold stands, only the target — probing a
    /// link that just proved too small costs the audio on it packets.
    pub fn wanted(&self, now: Instant, simulcast: bool, layers: &[LayerStats; 3], pref: &Preference) -> Option<Layer> {
        if self.hold.is_some_and(|(_, until)| now < until) && self.target.is_some() {
            return self.target;
        }
        target_layer(now, simulcast, layers, pref, None, None)
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
                _ if keyframe => {
                    let up = self.current.is_some_and(|c| c < target);
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

/// How soon a subscriber that the estimate keeps under the layers it wants has its estimator probe again;
/// the interval doubles while it stays held, up to [`PROBE_AGAIN_MAX`] (each probe sends up to twice the
/// estimate: on a link that really is that small, a burst its audio pays for).
pub const PROBE_AGAIN: Duration = Duration::from_secs(3);
const PROBE_AGAIN_MAX: Duration = Duration::from_secs(12);

/// Has a subscriber's estimator probe again while the estimate keeps it under the layers it wants: str0m
/// probes for a desired rate only when it rises (otherwise every 15 s when the estimate stands still, or when
/// little is sent), so after a cap lifts the estimate — bounded by 1.5× what is sent — would stay where the
/// cap left it. After [`PROBE_AGAIN`] (then 6 s, 12 s, 12 s …) the desired rate goes down to the estimate for
/// one layer choice; the next raises it again, and str0m probes at up to twice the estimate.
#[derive(Debug, Default, Clone, Copy)]
pub struct Reprobe {
    at: Option<Instant>,
    /// The wait before the next probe after `at` (zero: [`PROBE_AGAIN`]).
    next: Duration,
    /// The last choice lowered the rate: the next one must raise it again, however small the change.
    dipped: bool,
}

impl Reprobe {
    /// The desired rate to give the estimator at this choice — `desired`, or the estimate when it is time to
    /// probe again — and whether it must be given even if it differs little from the last (the dip and the
    /// rise after it). `wants_more`: a subscription is held under its size's layer with no hold standing
    /// ([`LayerForwarder::wants_more`]).
    pub fn desired(&mut self, now: Instant, wants_more: bool, estimate: Option<u64>, desired: u64) -> (u64, bool) {
        let rise = std::mem::take(&mut self.dipped);
        let Some(estimate) = estimate.filter(|e| wants_more && *e < desired) else {
            *self = Reprobe::default();
            return (desired, rise);
        };
        match self.at {
            Some(at) if now >= at => {
                let wait = self.next.max(PROBE_AGAIN);
                self.at = Some(now + wait);
                self.next = (wait * 2).min(PROBE_AGAIN_MAX);
                self.dipped = true;
                (estimate, true)
            }
            Some(_) => (desired, rise),
            None => {
                self.at = Some(now + PROBE_AGAIN);
                self.next = PROBE_AGAIN * 2;
                (desired, rise)
            }
        }
    }
}

/// One subscriber's RTP timestamps of a simulcast track, continuous across layer switches. Each layer is
/// its own RTP stream with its own random timestamp base (RFC 3550 §5.1), so forwarding a new layer's
/// timestamps as they are makes the receiver's clock jump: Chromium froze the picture for ~3 s at each
/// switch. At a switch the new layer's timestamps are shifted to go on from the last one forwarded, by
/// the arrival time between the two frames.
#[derive(Debug, Default, Clone, Copy)]
pub struct Timestamps {
    /// Added to the publisher's timestamps (90 kHz ticks, modulo 2^32 as on the wire).
    offset: u32,
    /// The last timestamp forwarded and when its frame arrived.
    last: Option<(u32, Instant)>,
}

impl Timestamps {
    /// The timestamp to forward for a frame with `input` that arrived at `at`; `switched`: the first
    /// frame of a layer the subscriber just moved to. Works on the 32 bits RTP carries, so any input
    /// (a wrap, a jump backwards, an extended value far from the last) maps to a timestamp.
    pub fn map(&mut self, input: u64, at: Instant, switched: bool) -> u64 {
        let input = input as u32;
        if let (true, Some((last, last_at))) = (switched, self.last) {
            let ticks =
                (at.saturating_duration_since(last_at).as_micros() * 90 / 1000).clamp(1, u32::MAX as u128) as u32;
            self.offset = last.wrapping_add(ticks).wrapping_sub(input);
        }
        let out = input.wrapping_add(self.offset);
        self.last = Some((out, at));
        out as u64
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

    const LARGE: Preference = Preference { max_width: Some(1280), max_height: Some(720), paused: false };

    #[test]
    fn a_layer_that_stops_while_the_others_go_on_is_off_after_300_ms() {
        let start = Instant::now();
        let mut l = three_layers(start);
        for ms in [100, 300] {
            let now = start + Duration::from_millis(ms);
            l[0].last_seen = Some(now);
            l[1].last_seen = Some(now);
            assert_eq!(active_layers(now, &l), [true, true, ms <= 300], "at {ms} ms");
        }
        let now = start + Duration::from_millis(301);
        l[0].last_seen = Some(now);
        assert_eq!(active_layers(now, &l), [true, true, false]);
        // A large tile then gets the best layer still on.
        assert_eq!(choose_layer(now, &l, &LARGE, Some(5_000_000), Some(Layer::F)), Some(Layer::H));
    }

    #[test]
    fn layers_that_all_pause_stay_on_until_they_are_stale() {
        let start = Instant::now();
        let l = three_layers(start);
        assert_eq!(active_layers(start + Duration::from_millis(1400), &l), [true; 3]);
        assert_eq!(active_layers(start + Duration::from_millis(1600), &l), [false; 3]);
    }

    #[test]
    fn a_subscriber_held_under_its_layers_probes_again_after_3_s_then_less_often() {
        let start = Instant::now();
        let mut r = Reprobe::default();
        let mut probes = Vec::new();
        let mut told = Vec::new();
        for ms in (0..=40_000).step_by(500) {
            let (rate, tell) = r.desired(start + Duration::from_millis(ms), true, Some(2_200_000), 2_400_000);
            if rate == 2_200_000 {
                probes.push(ms);
            }
            if tell {
                told.push(ms);
            }
        }
        // Down to the estimate for one choice (the next raises it again: a probe), after 3, 6, 12, 12 s.
        assert_eq!(probes, [3_000, 9_000, 21_000, 33_000]);
        // Both the dip and the rise are given, though each changes the rate by less than a fifth.
        assert_eq!(told, [3_000, 3_500, 9_000, 9_500, 21_000, 21_500, 33_000, 33_500]);
    }

    #[test]
    fn a_subscriber_not_held_under_its_layers_never_probes_again() {
        let start = Instant::now();
        let mut r = Reprobe::default();
        for (ms, wants_more, estimate) in
            [(0, false, Some(1_000_000)), (3_000, true, Some(3_000_000)), (6_000, true, None)]
        {
            assert_eq!(
                r.desired(start + Duration::from_millis(ms), wants_more, estimate, 2_400_000),
                (2_400_000, false)
            );
        }
        // The 3 s count starts again once it is held.
        assert_eq!(
            r.desired(start + Duration::from_millis(9_000), true, Some(1_000_000), 2_400_000),
            (2_400_000, false)
        );
        assert_eq!(
            r.desired(start + Duration::from_millis(11_000), true, Some(1_000_000), 2_400_000),
            (2_400_000, false)
        );
    }

    #[test]
    fn small_tile_gets_low_layer_and_large_tile_high_layer() {
        let now = Instant::now();
        let l = three_layers(now);
        let small = Preference { max_width: Some(320), max_height: Some(180), paused: false };
        assert_eq!(choose_layer(now, &l, &small, None, None), Some(Layer::Q));
        assert_eq!(choose_layer(now, &l, &LARGE, Some(5_000_000), None), Some(Layer::F));
        assert_eq!(choose_layer(now, &l, &LARGE, Some(600_000), None), Some(Layer::H));
        let paused = Preference { paused: true, ..LARGE };
        assert_eq!(choose_layer(now, &l, &paused, None, None), None);
    }

    #[test]
    fn a_layer_above_the_forwarded_one_needs_a_margin_over_its_rate() {
        let now = Instant::now();
        let l = three_layers(now);
        // 1.6 Mbit/s holds `f` (1.5) once there, but does not take a subscriber from `h` up to it.
        assert_eq!(choose_layer(now, &l, &LARGE, Some(1_600_000), Some(Layer::F)), Some(Layer::F));
        assert_eq!(choose_layer(now, &l, &LARGE, Some(1_600_000), Some(Layer::H)), Some(Layer::H));
        assert_eq!(choose_layer(now, &l, &LARGE, Some(1_650_000), Some(Layer::H)), Some(Layer::F));
    }

    #[test]
    fn switch_up_waits_for_keyframe() {
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
    }

    #[test]
    fn switch_down_waits_for_a_keyframe_of_the_lower_layer_while_the_upper_goes_on() {
        let mut f = LayerForwarder { current: Some(Layer::F), target: Some(Layer::F), ..Default::default() };
        f.set_target(Some(Layer::H));
        assert_eq!(f.wants_keyframe(), Some(Layer::H));
        assert_eq!(f.on_frame(Layer::H, false), Decision::Drop);
        assert_eq!(f.on_frame(Layer::F, false), Decision::Forward);
        assert_eq!(f.on_frame(Layer::H, true), Decision::Switched { up: false });
        assert_eq!(f.on_frame(Layer::F, false), Decision::Drop);
        assert_eq!(f.on_frame(Layer::H, false), Decision::Forward);
    }

    /// A forwarder on `f` whose budget just fell to 1 Mbit/s at `now`.
    fn squeezed(now: Instant, l: &[LayerStats; 3]) -> LayerForwarder {
        let mut f = LayerForwarder { current: Some(Layer::F), target: Some(Layer::F), ..Default::default() };
        f.retarget(now, true, l, &LARGE, Some(1_000_000));
        assert_eq!(f.target, Some(Layer::H));
        f
    }

    #[test]
    fn a_layer_left_for_lack_of_bandwidth_stays_out_of_reach_for_the_hold() {
        let now = Instant::now();
        let l = three_layers(now);
        let mut f = squeezed(now, &l);
        f.on_frame(Layer::H, true);
        let plenty = Some(10_000_000);
        let later = now + UP_HOLD - Duration::from_millis(100);
        f.retarget(later, true, &three_layers(later), &LARGE, plenty);
        assert_eq!(f.target, Some(Layer::H), "still held");
        let after = steady(&mut f, now + UP_HOLD, UP_STABLE, plenty);
        assert_eq!(f.target, Some(Layer::F), "the hold is over, and `f` fitted for UP_STABLE");
        assert!(after >= now + UP_HOLD + UP_STABLE);
    }

    /// Retargets every 500 ms from `from` for `span` with `budget`; returns the last time.
    fn steady(f: &mut LayerForwarder, from: Instant, span: Duration, budget: Option<u64>) -> Instant {
        let mut t = from;
        loop {
            f.retarget(t, true, &three_layers(t), &LARGE, budget);
            if t >= from + span {
                return t;
            }
            t += Duration::from_millis(500);
        }
    }

    #[test]
    fn after_a_loss_a_moment_of_room_does_not_move_a_subscriber_up() {
        let now = Instant::now();
        let mut f = squeezed(now, &three_layers(now));
        f.on_frame(Layer::H, true);
        let mut t = now + UP_HOLD;
        for budget in [10_000_000, 1_000_000, 10_000_000] {
            f.retarget(t, true, &three_layers(t), &LARGE, Some(budget));
            t += Duration::from_millis(500);
        }
        assert_eq!(f.target, Some(Layer::H), "room that came, went and came again: not yet");
        steady(&mut f, t, UP_STABLE, Some(10_000_000));
        assert_eq!(f.target, Some(Layer::F));
    }

    #[test]
    fn the_first_climb_takes_the_room_there_is_at_once() {
        let now = Instant::now();
        let mut f = LayerForwarder::default();
        f.retarget(now, true, &three_layers(now), &LARGE, Some(1_000_000));
        assert_eq!(f.target, Some(Layer::H), "the first choice, held down by the budget");
        let t = now + Duration::from_millis(500);
        f.retarget(t, true, &three_layers(t), &LARGE, Some(10_000_000));
        assert_eq!(f.target, Some(Layer::F));
    }

    #[test]
    fn failing_again_soon_after_a_hold_doubles_the_next() {
        let now = Instant::now();
        let mut f = squeezed(now, &three_layers(now));
        let t1 = steady(&mut f, now + UP_HOLD, UP_STABLE, Some(10_000_000));
        assert_eq!(f.target, Some(Layer::F));
        f.on_frame(Layer::F, true);
        let t2 = t1 + Duration::from_secs(1);
        f.retarget(t2, true, &three_layers(t2), &LARGE, Some(1_000_000));
        assert_eq!(f.target, Some(Layer::H));
        steady(&mut f, t2 + UP_HOLD, UP_STABLE, Some(10_000_000));
        assert_eq!(f.target, Some(Layer::H), "the second hold is twice the first");
        steady(&mut f, t2 + UP_HOLD * 2, UP_STABLE, Some(10_000_000));
        assert_eq!(f.target, Some(Layer::F));
    }

    #[test]
    fn the_estimator_is_asked_for_the_size_wanted_once_the_hold_is_over() {
        let now = Instant::now();
        let l = three_layers(now);
        let f = squeezed(now, &l);
        assert_eq!(f.wanted(now, true, &l, &LARGE), Some(Layer::H), "held: nothing above `h`");
        let after = now + UP_HOLD;
        assert_eq!(f.wanted(after, true, &three_layers(after), &LARGE), Some(Layer::F));
        let small = Preference { max_width: Some(640), max_height: Some(360), paused: false };
        assert_eq!(f.wanted(after, true, &three_layers(after), &small), Some(Layer::H), "the tile wants no more");
        assert_eq!(LayerForwarder::default().wanted(now, true, &l, &LARGE), Some(Layer::F), "no target yet: the size");
    }

    #[test]
    fn a_layer_still_waited_for_starts_no_hold_and_keeps_its_target_without_the_margin() {
        let now = Instant::now();
        let l = three_layers(now);
        let mut f = LayerForwarder { current: Some(Layer::H), target: Some(Layer::F), ..Default::default() };
        f.retarget(now, true, &l, &LARGE, Some(1_550_000));
        assert_eq!(f.target, Some(Layer::F), "moving to `f`: no margin asked of it");
        f.retarget(now, true, &l, &LARGE, Some(1_000_000));
        assert_eq!(f.target, Some(Layer::H));
        assert_eq!(f.wanted(now, true, &l, &LARGE), Some(Layer::F), "no hold: `f` was never had");
    }

    #[test]
    fn a_smaller_tile_or_a_layer_the_publisher_stopped_starts_no_hold() {
        let now = Instant::now();
        let l = three_layers(now);
        let mut f = LayerForwarder { current: Some(Layer::F), target: Some(Layer::F), ..Default::default() };
        let small = Preference { max_width: Some(640), max_height: Some(360), paused: false };
        f.retarget(now, true, &l, &small, Some(10_000_000));
        assert_eq!(f.target, Some(Layer::H));
        f.retarget(now, true, &l, &LARGE, Some(10_000_000));
        assert_eq!(f.target, Some(Layer::F), "the tile grew back: no hold, no wait");
        let mut no_f = l;
        no_f[Layer::F.index()].last_seen = None;
        f.retarget(now, true, &no_f, &LARGE, Some(10_000_000));
        assert_eq!(f.target, Some(Layer::H));
        f.retarget(now, true, &l, &LARGE, Some(10_000_000));
        assert_eq!(f.target, Some(Layer::F), "the publisher sends `f` again: no hold, no wait");
    }

    #[test]
    fn timestamps_go_on_across_a_layer_switch_by_the_time_between_the_frames() {
        let t0 = Instant::now();
        let mut ts = Timestamps::default();
        assert_eq!(ts.map(1_000_000, t0, true), 1_000_000, "the first layer's timestamps pass as they are");
        assert_eq!(ts.map(1_003_000, t0 + Duration::from_millis(33), false), 1_003_000);
        // The next layer's base is elsewhere; its first frame comes 33 ms later.
        let out = ts.map(7_777_000, t0 + Duration::from_millis(66), true);
        assert_eq!(out, 1_003_000 + 2_970);
        assert_eq!(ts.map(7_780_000, t0 + Duration::from_millis(99), false), out + 3_000, "and go on from there");
    }

    #[test]
    fn timestamps_wrap_as_on_the_wire_whatever_the_input() {
        let t0 = Instant::now();
        let mut ts = Timestamps::default();
        assert_eq!(ts.map(u32::MAX as u64 - 1_000, t0, true), u32::MAX as u64 - 1_000);
        let out = ts.map(5, t0 + Duration::from_millis(33), true);
        assert_eq!(out, (u32::MAX as u64 - 1_000 + 2_970) % (1 << 32), "past the wrap");
        assert_eq!(
            ts.map(u64::MAX, t0 + Duration::from_millis(66), false),
            (u32::MAX as u64).wrapping_add(out).wrapping_sub(5) % (1 << 32)
        );
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
