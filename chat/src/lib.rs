//! # chat — the community plane of Chorus
//!
//! Owns accounts, sessions, guilds, channels, roles and permissions, invites, members, messages,
//! reactions, pins, typing, presence, read state, search and direct messages; their REST API under
//! `/api/v1`, the gateway WebSocket at `/gateway`, and their storage (SQLite and MongoDB behind one
//! trait).
//!
//! It must not know about media: voice is reached only through the [`voice::VoiceGrants`] trait (who
//! may join, answered with a signed token) and reported back through [`voice::VoiceStates`]. The binary
//! wires both to the signaling side.

pub mod id;
pub mod model;
pub mod permissions;
pub mod store;

pub use id::{Id, Snowflakes};
