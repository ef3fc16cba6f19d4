//! `sarlink-drone`: parse, configure, run. See the library for everything else.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use clap::Parser as _;
use sarlink_drone::layered::Layers;
use sarlink_drone::{Cli, DroneConfig};

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = match Layers::load(cli.config.as_deref())
        .and_then(|layers| DroneConfig::resolve(&cli, &layers))
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sarlink-drone: {e}");
            return ExitCode::from(2);
        }
    };
    if cli.print_config {
        println!(
            "connect = {:?}\nnode = {:?}\nsource = {:?}\nfrequency_hz = {:?}\nsample_rate_hz = {}\ngain = {:?}\nrate_hz = {}\nkey = {}\ncompression_threshold = {}\ncalibration_db = {:?}\nseconds = {:?}\nquiet = {}",
            config.connect,
            config.node.as_str(),
            config.source.to_string(),
            config.frequency_hz,
            config.sample_rate_hz,
            config.gain,
            config.rate_hz,
            if config.key.is_some() { "set" } else { "none" },
            config.compression_threshold,
            config.calibration_db,
            config.seconds,
            config.quiet
        );
        return ExitCode::SUCCESS;
    }
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(signal, Arc::clone(&stop)) {
            eprintln!("sarlink-drone: cannot handle signal {signal}: {e}");
            return ExitCode::FAILURE;
        }
    }
    match sarlink_drone::run(&config, &stop) {
        Ok(summary) => {
            if !config.quiet {
                eprintln!(
                    "sarlink-drone: {} reports, {} streamed, {} commands, {} connections",
                    summary.reports, summary.streamed, summary.commands, summary.connections
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sarlink-drone: {e:#}");
            ExitCode::FAILURE
        }
    }
}
