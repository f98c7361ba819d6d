//! Synthetic VP8 simulcast video: per layer (`q` 320×180, `h` 640×360, `f` 1280×720) frames of
//! realistic sizes for 150 / 500 / 1,500 kbit/s at 30 fps, a keyframe every 2 s or on request.
//! Each frame starts with a valid VP8 frame header (keyframes carry the size, which the SFU reads)
//! followed by a marker naming the talker, the layer and a sequence number, so every frame is
//! distinct and a receiver knows which layer it got.

/// Frames per second.
pub const FPS: u64 = 30;
/// Layers: rid, width, height, bits per second.
pub const LAYERS: [(&str, u16, u16, u64); 3] =
    [("q", 320, 180, 150_000), ("h", 640, 360, 500_000), ("f", 1280, 720, 1_500_000)];
/// A keyframe every this many frames per layer.
const KEYFRAME_EVERY: u64 = 2 * FPS;
/// Keyframes are this many times a delta frame's size.
const KEYFRAME_FACTOR: usize = 5;
const MARKER: u8 = 0xB7;

/// What a received frame says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameInfo {
    pub talker: u32,
    pub layer: u8,
    pub seq: u32,
    pub keyframe: bool,
}

pub struct VideoSource {
    talker: u32,
    seq: u32,
    frame: u64,
    force_keyframe: [bool; 3],
    rng: u64,
}

impl VideoSource {
    pub fn new(talker: u32) -> VideoSource {
        VideoSource {
            talker,
            seq: 0,
            frame: 0,
            force_keyframe: [true; 3],
            rng: (u64::from(talker) + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
        }
    }

    /// The next keyframe on `layer` comes at once (a PLI/FIR from the SFU).
    pub fn request_keyframe(&mut self, layer: usize) {
        if let Some(f) = self.force_keyframe.get_mut(layer) {
            *f = true;
        }
    }

    fn noise(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    /// The next frame time's three layer frames, index = layer.
    pub fn next_frames(&mut self) -> [Vec<u8>; 3] {
        let periodic = self.frame.is_multiple_of(KEYFRAME_EVERY);
        self.frame += 1;
        std::array::from_fn(|layer| {
            let (_, w, h, bps) = LAYERS[layer];
            let forced = std::mem::take(&mut self.force_keyframe[layer]);
            let keyframe = periodic || forced;
            let base = (bps / 8 / FPS) as usize;
            // ±20 % around the mean size.
            let jitter = (self.noise() % 41) as usize;
            let mut size = base * (80 + jitter) / 100;
            if keyframe {
                size *= KEYFRAME_FACTOR;
            }
            self.seq = self.seq.wrapping_add(1);
            encode(FrameInfo { talker: self.talker, layer: layer as u8, seq: self.seq, keyframe }, w, h, size)
        })
    }
}

/// A frame of `size` bytes (at least the headers) carrying `info`.
pub fn encode(info: FrameInfo, w: u16, h: u16, size: usize) -> Vec<u8> {
    let mut f = Vec::with_capacity(size.max(32));
    if info.keyframe {
        // Frame tag (key frame, version 0, shown), start code, 14-bit width and height.
        f.extend_from_slice(&[0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a]);
        f.extend_from_slice(&w.to_le_bytes());
        f.extend_from_slice(&h.to_le_bytes());
    } else {
        f.extend_from_slice(&[0x11, 0x02, 0x00]);
    }
    f.push(MARKER);
    f.push(info.layer);
    f.extend_from_slice(&info.talker.to_le_bytes());
    f.extend_from_slice(&info.seq.to_le_bytes());
    let filler = info.seq as u8;
    f.resize(size.max(f.len()), filler);
    f
}

/// Reads the marker of a frame made by [`encode`].
pub fn decode(frame: &[u8]) -> Option<FrameInfo> {
    let keyframe = frame.first()? & 0x01 == 0;
    let at = if keyframe { 10 } else { 3 };
    let m = frame.get(at..at + 10)?;
    if m[0] != MARKER || m[1] > 2 {
        return None;
    }
    Some(FrameInfo {
        talker: u32::from_le_bytes([m[2], m[3], m[4], m[5]]),
        layer: m[1],
        seq: u32::from_le_bytes([m[6], m[7], m[8], m[9]]),
        keyframe,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_have_realistic_sizes() {
        let mut src = VideoSource::new(7);
        let first = src.next_frames();
        for (layer, f) in first.iter().enumerate() {
            let info = decode(f).unwrap();
            assert_eq!((info.talker, info.layer as usize, info.keyframe), (7, layer, true));
            let (_, w, h, _) = LAYERS[layer];
            assert_eq!(&f[6..10], [w.to_le_bytes(), h.to_le_bytes()].concat().as_slice());
        }
        let mut bytes = [0usize; 3];
        let mut keyframes = 0;
        for _ in 0..FPS * 10 {
            for (layer, f) in src.next_frames().iter().enumerate() {
                let info = decode(f).unwrap();
                assert_eq!(info.layer as usize, layer);
                keyframes += usize::from(info.keyframe);
                bytes[layer] += f.len();
            }
        }
        // 10 s: about the target bitrates (keyframes every 2 s add ~13 %).
        for (layer, b) in bytes.iter().enumerate() {
            let bps = (*b * 8 / 10) as f64;
            let target = LAYERS[layer].3 as f64;
            assert!(bps > target * 0.95 && bps < target * 1.35, "layer {layer}: {bps} bit/s");
        }
        // Frame times 60, 120, 180, 240 and 300 after the first, on every layer.
        assert_eq!(keyframes, 3 * 5);
    }

    #[test]
    fn keyframe_on_request_and_garbage_is_refused() {
        let mut src = VideoSource::new(1);
        src.next_frames();
        src.request_keyframe(1);
        let f = src.next_frames();
        assert!(!decode(&f[0]).unwrap().keyframe);
        assert!(decode(&f[1]).unwrap().keyframe);
        assert_eq!(decode(&[0x11, 0x02]), None);
        assert_eq!(decode(&[0x11, 0x02, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0]), None);
    }
}
