//! `sarlink-ground`: parse, configure, run. Everything else is in `sarlink-station` (and the
//! demo and load tool in `sarlink-tools`).

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use clap::{Parser, Subcommand};
use sarlink_station::cmd;
use sarlink_station::config::{GroundArgs, GroundSettings, Layers};
use sarlink_tools::{demo, load};

/// The sarlink ground station.
#[derive(Debug, Parser)]
#[command(
    name = "sarlink-ground",
    version,
    about = "sarlink ground station: receive drone RSSI, serve the ground's own receiver to drones, relay commands"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: GroundArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Manage the fleet CA: init, issue NODE, revoke NODE
    Ca(sarlink_station::ca::CaArgs),
    /// Send an operator command to a drone through a ground station and print its answer
    Cmd(cmd::CmdArgs),
    /// Run the whole system in one process: ground, simulated drone, a link outage
    Demo(demo::DemoArgs),
    /// Load, spike, endurance and failure tests with many simulated drones
    Load(load::LoadArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sarlink-ground: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the chosen command; the exit code says how it went.
fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    Ok(match cli.command {
        Some(Command::Ca(args)) => {
            println!("{}", sarlink_station::ca::run(&args)?);
            ExitCode::SUCCESS
        }
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
        Some(Command::Demo(args)) => {
            demo::run(&args, &mut std::io::stdout(), &stop)?;
            ExitCode::SUCCESS
        }
        Some(Command::Load(args)) => match load::run(&args, &mut std::io::stdout(), &stop) {
            Ok(outcome) if outcome.passed => ExitCode::SUCCESS,
            Ok(_) => ExitCode::from(1),
            Err(e) => {
                eprintln!("sarlink-ground load: {e:#}");
                ExitCode::from(2)
            }
        },
        None => {
            let (settings, layers) = match Layers::load(cli.run.config.as_deref())
                .and_then(|l| Ok((GroundSettings::resolve(&cli.run, &l)?, l)))
            {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("sarlink-ground: {e}");
                    return Ok(ExitCode::from(2));
                }
            };
            if cli.run.print_config {
                print!("{}", GroundSettings::to_toml(&cli.run, &layers));
                return Ok(ExitCode::SUCCESS);
            }
            let reload = Arc::new(AtomicBool::new(false));
            signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&reload))?;
            sarlink_station::node::ground::run(&settings, &stop, &reload)?;
            ExitCode::SUCCESS
        }
    })
}
