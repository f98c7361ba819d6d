//! RFC 4571 framing of ICE-TCP connections (`sfu::tcp::Deframer`, `sfu::tcp::frame`), fed a byte
//! stream as any client may send it, cut into reads at places the input chooses.
//!
//! Input: byte 0 is the read size (1–256 bytes); the rest is the stream. Asserts: no panic; every
//! frame that comes out is 1–MAX_FRAME bytes and equals what an independent reading of the stream
//! (length, then that many bytes) gives, in order; an error comes exactly where that reading finds
//! a length of 0 or above MAX_FRAME; the bytes held never exceed what one frame and one read need;
//! every frame re-framed with `frame` is its 2-byte length and itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sfu::tcp::{Deframer, FrameError, MAX_FRAME, frame};

/// The frames of a whole stream read the simple way, and the error that ends it, if any.
fn reference(mut s: &[u8]) -> (Vec<&[u8]>, Option<FrameError>) {
    let mut out = Vec::new();
    while s.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([s[0], s[1]]));
        if len == 0 {
            return (out, Some(FrameError::Empty));
        }
        if len > MAX_FRAME {
            return (out, Some(FrameError::TooLarge(len)));
        }
        if s.len() < 2 + len {
            break;
        }
        out.push(&s[2..2 + len]);
        s = &s[2 + len..];
    }
    (out, None)
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, stream)) = data.split_first() else { return };
    let cut = usize::from(cut).max(1);
    let (want, want_err) = reference(stream);
    let mut d = Deframer::default();
    let mut got: Vec<Vec<u8>> = Vec::new();
    let mut err = None;
    'read: for chunk in stream.chunks(cut) {
        d.push(chunk);
        loop {
            match d.next_frame() {
                Ok(Some(f)) => {
                    assert!(!f.is_empty() && f.len() <= MAX_FRAME);
                    assert_eq!(frame(f).map(|r| r[2..].to_vec()), Some(f.to_vec()));
                    got.push(f.to_vec());
                }
                Ok(None) => break,
                Err(e) => {
                    err = Some(e);
                    break 'read;
                }
            }
        }
        assert!(d.pending() < 2 + MAX_FRAME + cut, "held {} bytes", d.pending());
    }
    assert_eq!(err, want_err);
    let want: Vec<Vec<u8>> = want.into_iter().map(<[u8]>::to_vec).collect();
    assert_eq!(got, want);
});
