//! The bench's clients of Chorus: its REST API, its chat gateway, and voice peers (the /voice
//! WebSocket plus str0m peer connections sending and receiving real Opus or synthetic VP8
//! simulcast).

pub mod api;
pub mod audio;
pub mod chorus_signal;
pub mod gateway;
pub mod janus_signal;
pub mod video;
pub mod voice;
