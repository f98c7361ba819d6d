//! Chorus's embedded TURN server (RFC 8656), so that one binary serves users whose networks allow
//! only TLS on port 443, or block UDP to the SFU's ports, with nothing else to install.
//!
//! It owns: the STUN/TURN wire format ([`wire`]), TURN REST credentials and nonces
//! ([`credentials`]), the allocation state machine without sockets ([`server`]), and the listeners
//! and relay sockets around it ([`io`]). It relays **only to this node's SFU addresses** — given to
//! it as [`Targets`] — never to anything else, so it cannot be used as an open relay.
//!
//! It must not know about rooms, participants' rights or the chat side: a valid credential, which
//! signaling hands out in `joined`, is all it checks.

pub mod credentials;
pub mod io;
pub mod metrics;
pub mod server;
pub mod wire;

pub use io::{OpenRelays, TurnConfig, TurnError, TurnServer};
pub use server::{Limits, Targets};
