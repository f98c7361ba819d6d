//! The operations of the community plane. Each takes the acting user and parsed input, checks
//! permissions, writes through the store, publishes the resulting gateway event and returns the
//! API shape. HTTP handlers and the gateway call these; nothing here knows about HTTP.

pub mod access;
pub mod accounts;
pub mod attachments;
pub mod audit;
pub mod channels;
pub mod guilds;
pub mod invites;
pub mod members;
pub mod messages;
pub mod mfa;
pub mod presence;
pub mod previews;
pub mod ready;
pub mod roles;
pub(crate) mod visibility;
pub mod voice;

pub use access::{ChannelAccess, GuildAccess};
