//! Voice tokens (`signaling::token::VoiceTokens::verify`): the `token` of a `/voice` `join`.
//!
//! Asserts: no panic on any string; a string not issued by the server never verifies (no
//! `alg: none`, no key confusion, no unsigned claims); a token the server issued verifies to
//! exactly the grant it was issued for, is refused for another channel, and after any edit
//! either is refused or still names exactly the same claims.
#![no_main]

use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use signaling::token::{Rights, TokenError, VoiceGrant, VoiceTokens};

const SECRET: &[u8] = b"fuzzing secret, 32 bytes at least!!";

#[derive(Debug, Arbitrary)]
enum Input {
    /// Anything a client may send as its token.
    Raw { token: String, expected: Option<u64> },
    /// A token the server issued, then edited byte by byte.
    Issued { user_id: u64, guild_id: Option<u64>, channel_id: u64, rights: u8, edits: Vec<(u16, u8)> },
}

fuzz_target!(|input: Input| {
    let tokens = VoiceTokens::new(SECRET);
    match input {
        Input::Raw { token, expected } => {
            let r = tokens.verify(&token, expected);
            assert!(r.is_err(), "a token the server never issued verified: {token:?} -> {r:?}");
        }
        Input::Issued { user_id, guild_id, channel_id, rights, edits } => {
            let rights = Rights {
                speak: rights & 1 != 0,
                video: rights & 2 != 0,
                mute_members: rights & 4 != 0,
                deafen_members: rights & 8 != 0,
                move_members: rights & 16 != 0,
                server_muted: rights & 32 != 0,
                server_deafened: rights & 64 != 0,
            };
            let grant = VoiceGrant { user_id, guild_id, channel_id, rights };
            let (token, exp) = tokens.issue(&grant, Duration::from_secs(60)).expect("issue");
            let claims = tokens.verify(&token, Some(channel_id)).expect("an issued token verifies");
            assert_eq!(
                (claims.user_id, claims.guild_id, claims.channel_id, claims.rights, claims.expires_at),
                (user_id, guild_id, channel_id, rights, exp)
            );
            assert_eq!(tokens.verify(&token, None), Ok(claims));
            let other = channel_id.wrapping_add(1);
            assert_eq!(
                tokens.verify(&token, Some(other)),
                Err(TokenError::WrongChannel { expected: other, got: channel_id })
            );
            let mut edited = token.into_bytes();
            for (at, byte) in edits {
                if edited.is_empty() {
                    break;
                }
                let i = usize::from(at) % edited.len();
                edited[i] = byte;
            }
            if let Ok(edited) = String::from_utf8(edited)
                && let Ok(c) = tokens.verify(&edited, None)
            {
                assert_eq!(c, claims, "an edited token verified with other claims: {edited}");
            }
        }
    }
});
