//! `chorus-bench`: the load benchmark of Chorus. It owns the load clients (REST, chat gateway,
//! and str0m voice peers sending real Opus), the scenarios (`voice`, `video`, `join`, `chat`, a
//! voice `ramp`, a CI `smoke` of the first four, `compare` with Janus and the machine's forwarding
//! `floor`, and a long `soak` with
//! joins and leaves), the measurements (latency histograms, loss and jitter per talker → listener
//! pair, the server's /proc counters and /metrics, growth of a series after a warm-up), and the
//! reports (terminal table, JSON, Markdown, SVG latency CDFs and resources over time). Traffic goes only to the target server,
//! normally on 127.0.0.1, or inside a network namespace of the bench's own (Janus runs).

mod cli;
mod client;
mod janus;
mod measure;
mod netns;
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
    let needs_namespace = match &cli.command {
        Command::Compare(_) => true,
        Command::Voice(a) => a.target.is_janus(),
        Command::Video(a) => a.target.is_janus(),
        Command::Join(a) => a.target.is_janus(),
        Command::Chat(a) => a.target.is_janus(),
        Command::Ramp(a) => a.target.is_janus(),
        Command::Smoke(a) => a.target.is_janus(),
        Command::Soak(a) => a.target.is_janus(),
        Command::Upload(_) | Command::Cluster(_) | Command::Floor(_) => false,
    };
    if needs_namespace && netns::inside().is_none() {
        return netns::rerun_inside().unwrap_or_else(|e| {
            eprintln!("chorus-bench: {e:#}");
            ExitCode::FAILURE
        });
    }
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
        Command::Compare(a) => {
            let chorus = target::Spec::Spawn { bin: a.spawn.clone(), extra: a.server_args.clone() };
            let janus = target::Spec::Janus { bin: a.janus.clone() };
            let reports = scenario::compare::run(&chorus, &janus, a.rounds, &a.steps, &a.voice).await?;
            return finish(&reports, &a.output);
        }
        Command::Cluster(a) => {
            let report = scenario::cluster::run(&a.spawn, &a.cluster).await?;
            return finish(&[report], &a.output);
        }
        Command::Floor(a) => {
            let voice = a.voice.clone();
            let report = tokio::task::spawn_blocking(move || scenario::floor::run(&voice)).await??;
            return finish(&[report], &a.output);
        }
        Command::Voice(a) => (&a.target, &a.output),
        Command::Video(a) => (&a.target, &a.output),
        Command::Join(a) => (&a.target, &a.output),
        Command::Chat(a) => (&a.target, &a.output),
        Command::Ramp(a) => (&a.target, &a.output),
        Command::Smoke(a) => (&a.target, &a.output),
        Command::Soak(a) => (&a.target, &a.output),
        Command::Upload(a) => (&a.target, &a.output),
    };
    let mut target = Target::open(&target_args.spec()?).await?;
    let result: Result<Vec<Report>> = match &cli.command {
        Command::Voice(a) => scenario::voice::run(&mut target, true, &a.voice).await.map(|r| vec![r]),
        Command::Video(a) => scenario::video::run(&mut target, true, &a.video).await.map(|r| vec![r]),
        Command::Join(a) => scenario::join::run(&mut target, true, &a.join).await.map(|r| vec![r]),
        Command::Chat(a) => scenario::chat::run(&mut target, &a.chat).await.map(|r| vec![r]),
        Command::Ramp(a) => scenario::ramp::run(&mut target, &a.ramp).await.map(|r| vec![r]),
        Command::Smoke(a) => scenario::smoke::run(&mut target, a.seconds).await,
        Command::Soak(a) => scenario::soak::run(&mut target, &a.soak).await.map(|r| vec![r]),
        Command::Upload(a) => scenario::upload::run(&mut target, &a.upload).await.map(|r| vec![r]),
        Command::Compare(_) | Command::Cluster(_) | Command::Floor(_) => {
            Err(anyhow::anyhow!("this scenario starts its own targets"))
        }
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
    finish(&reports, output)
}

/// Prints the tables, writes the files asked for; Ok(false) when a check failed.
fn finish(reports: &[Report], output: &OutputArgs) -> Result<bool> {
    for r in reports {
        print!("{}", report::table(r));
    }
    report::write_files(reports, output.json.as_deref(), output.markdown.as_deref())?;
    if let Some(dir) = &output.plots {
        let mut files = plot::write_cdfs(reports, dir)?;
        files.extend(plot::write_cpu_vs_load(reports, dir)?);
        files.extend(plot::write_resources(reports, dir)?);
        for f in files {
            println!("plot: {}", f.display());
        }
    }
    Ok(reports.iter().all(|r| r.failures.is_empty()))
}
