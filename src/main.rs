//! `chorus`: one binary that runs the chat plane, voice signaling, the SFU, the web client and the
//! metrics endpoint. Configuration comes from flags, `CHORUS_*` variables and `chorus.toml`.

mod admin;
mod client_addr;
mod config;
mod media_addr;
mod ports;
mod server;
mod tls;
mod voice;
mod web;

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut cli = config::Cli::parse();
    let command = cli.command.take();
    let config = config::Config::load(cli)?;
    if let Some(config::Command::Ports) = command {
        print!("{}", ports::report(&config));
        return Ok(());
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&config.log)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    server::run(config).await
}
