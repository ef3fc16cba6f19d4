//! `sarlink-ground`: parse, configure, run. See the library for everything else.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use clap::{Parser, Subcommand};
use sarlink_ground::layered::Layers;
use sarlink_ground::{GroundConfig, RunArgs, cmd, demo, load};

/// The sarlink ground station.
#[derive(Debug, Parser)]
#[command(
    name = "sarlink-ground",
    version,
    about = "sarlink ground station: receive drone RSSI, coordinate sources, relay commands"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Send an operator command to a drone through a ground station and print its answer
    Cmd(cmd::CmdArgs),
    /// Run the whole system in one process: ground, simulated drone, a link outage
    Demo(demo::DemoArgs),
    /// Load, spike, endurance and failure tests with many simulated drones
    Load(load::LoadArgs),
}

fn stop_flag() -> Result<Arc<AtomicBool>, std::io::Error> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    Ok(stop)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let stop = match stop_flag() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("sarlink-ground: cannot handle signals: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Some(Command::Cmd(args)) => match cmd::run(&args) {
            Ok(ack) if ack.ok => {
                println!("ack {}: ok", ack.id);
                ExitCode::SUCCESS
            }
            Ok(ack) => {
                println!(
                    "ack {}: refused ({}): {}",
                    ack.id,
                    ack.code.as_ref().map_or("?", |c| c.as_str()),
                    ack.reason.as_deref().unwrap_or("")
                );
                ExitCode::from(1)
            }
            Err(e) => {
                eprintln!("sarlink-ground cmd: {e:#}");
                ExitCode::from(2)
            }
        },
        Some(Command::Demo(args)) => match demo::run(&args, &mut std::io::stdout(), &stop) {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("sarlink-ground demo: {e:#}");
                ExitCode::FAILURE
            }
        },
        Some(Command::Load(args)) => match load::run(&args, &mut std::io::stdout(), &stop) {
            Ok(outcome) if outcome.passed => ExitCode::SUCCESS,
            Ok(_) => ExitCode::from(1),
            Err(e) => {
                eprintln!("sarlink-ground load: {e:#}");
                ExitCode::from(2)
            }
        },
        None => {
            let config = match Layers::load(cli.run.config.as_deref())
                .and_then(|l| GroundConfig::resolve(&cli.run, &l))
            {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("sarlink-ground: {e}");
                    return ExitCode::from(2);
                }
            };
            match sarlink_ground::run(&config, &stop) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("sarlink-ground: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
