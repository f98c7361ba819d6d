//! `chorus-bench`: the load benchmark of Chorus. It owns the load clients (REST, chat gateway,
//! and str0m voice peers sending real Opus), the scenarios (`voice`, `video`, `join`, `chat`, a
//! voice `ramp`, and a CI `smoke` of the first four), the measurements (latency histograms, loss and
//! jitter per talker → listener pair, the server's /proc counters and /metrics), and the reports
//! (terminal table, JSON, Markdown, SVG latency CDFs). Traffic goes only to the target server,
//! normally on 127.0.0.1.

mod cli;
mod client;
mod measure;
mod plot;
mod progress;
mod report;
mod scenario;
mod target;

use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;

use cli::{Cli, Command, OutputArgs, TargetArgs};
use report::Report;
use target::Target;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("chorus-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("chorus-bench: some checks failed (see above)");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("chorus-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the command; Ok(false) when a check failed.
async fn run(cli: Cli) -> Result<bool> {
    let (target_args, output): (&TargetArgs, &OutputArgs) = match &cli.command {
        Command::Voice(a) => (&a.target, &a.output),
        Command::Video(a) => (&a.target, &a.output),
        Command::Join(a) => (&a.target, &a.output),
        Command::Chat(a) => (&a.target, &a.output),
        Command::Ramp(a) => (&a.target, &a.output),
        Command::Smoke(a) => (&a.target, &a.output),
    };
    let mut target = Target::open(&target_args.spec()?).await?;
    let result: Result<Vec<Report>> = match &cli.command {
        Command::Voice(a) => scenario::voice::run(&mut target, true, &a.voice).await.map(|r| vec![r]),
        Command::Video(a) => scenario::video::run(&mut target, true, &a.video).await.map(|r| vec![r]),
        Command::Join(a) => scenario::join::run(&mut target, true, &a.join).await.map(|r| vec![r]),
        Command::Chat(a) => scenario::chat::run(&mut target, &a.chat).await.map(|r| vec![r]),
        Command::Ramp(a) => scenario::ramp::run(&mut target, &a.ramp).await.map(|r| vec![r]),
        Command::Smoke(a) => scenario::smoke::run(&mut target, a.seconds).await,
    };
    let reports = match result {
        Ok(r) => r,
        Err(e) => {
            let tail = target.log_tail();
            target.shutdown().await;
            return Err(if tail.is_empty() { e } else { e.context(tail) });
        }
    };
    target.shutdown().await;
    for r in &reports {
        print!("{}", report::table(r));
    }
    report::write_files(&reports, output.json.as_deref(), output.markdown.as_deref())?;
    if let Some(dir) = &output.plots {
        for f in plot::write_cdfs(&reports, dir)? {
            println!("plot: {}", f.display());
        }
    }
    Ok(reports.iter().all(|r| r.failures.is_empty()))
}
