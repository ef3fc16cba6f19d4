//! `sarlink-drone`: parse, configure, run. Everything else is in `sarlink-station`.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use clap::Parser as _;
use sarlink_station::config::{DroneArgs, DroneSettings, Layers};
use sarlink_station::node::drone::DroneNode;

fn main() -> ExitCode {
    // MAVLink's time_boot_ms counts from here.
    sarlink_station::node::mavlink::mark_process_start();
    let args = DroneArgs::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let (settings, layers) = match Layers::load(args.config.as_deref())
        .and_then(|layers| Ok((DroneSettings::resolve(&args, &layers)?, layers)))
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("sarlink-drone: {e}");
            return ExitCode::from(2);
        }
    };
    if args.print_config {
        print!("{}", DroneSettings::to_toml(&args, &layers));
        return ExitCode::SUCCESS;
    }
    match run(&settings) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sarlink-drone: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the drone until SIGINT/SIGTERM or `--seconds`.
fn run(settings: &DroneSettings) -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    let deadline = settings
        .seconds
        .map(|s| Instant::now() + Duration::from_secs_f64(s));
    let summary = DroneNode::start(settings)?.run(&stop, deadline, settings.quiet)?;
    if !settings.quiet {
        let s = &summary.stats;
        let lat = &summary.ground_latency;
        eprintln!(
            "sarlink-drone: {} reports, {} streamed, {} ground records (measurement to coordinator p50 {:.2} ms, p99 {:.2} ms), {} commands ({} refused), {} connections, {} fallbacks, {} recoveries",
            s.measured,
            s.streamed,
            s.ground_records,
            lat.p50.as_secs_f64() * 1e3,
            lat.p99.as_secs_f64() * 1e3,
            s.commands,
            s.refused,
            s.connections,
            s.fallbacks,
            s.recoveries
        );
    }
    Ok(())
}
