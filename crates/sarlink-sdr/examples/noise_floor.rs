//! Noise floor and channel power of cu8 recordings, comparable with rtl_433's `noise` field.
//!
//! ```text
//! cargo run --release -p sarlink-sdr --example noise_floor -- [--interval-ms N] [--drone] FILE.cu8 ...
//! ```
//!
//! Channel: +-70 kHz around the centre (the 433.92 MHz captures carry FSK bursts at about
//! -33 and +39 kHz), or with `--drone` the drone binary's channel for a recording: 10 kHz at
//! the centre frequency. For each file, over reports every N ms (default 100): the median and the
//! 10th percentile of our noise floor scaled from the channel to the whole sampled band
//! (rtl_433 reports the mean power of the whole band while no pulse is present, in dB relative
//! to a full-scale cu8 sinusoid, the same reference as our dBFS), and the strongest channel
//! power seen.

use std::time::Duration;

use sarlink_sdr::source::file::FileSource;
use sarlink_sdr::{Estimator, EstimatorConfig, IqBlock, IqSource, ReadStatus};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut interval_ms = 100;
    if let Some(i) = args.iter().position(|a| a == "--interval-ms") {
        interval_ms = args
            .get(i + 1)
            .ok_or("--interval-ms needs a value")?
            .parse()?;
        args.drain(i..i + 2);
    }
    let drone = args.iter().any(|a| a == "--drone");
    args.retain(|a| a != "--drone");
    if args.is_empty() {
        eprintln!("usage: noise_floor [--interval-ms N] [--drone] FILE.cu8 ...");
        std::process::exit(2);
    }
    println!(
        "{:<28} {:>8} {:>12} {:>12} {:>10} {:>8}",
        "file", "rate", "median dBFS", "p10 dBFS", "max rssi", "reports"
    );
    for f in args {
        let mut src = FileSource::open_cu8(&f)?;
        let rate = src.sample_rate_hz();
        let width = if drone { 10_000.0 } else { 140_000.0 };
        let cfg = EstimatorConfig::new(rate)
            .center_frequency_hz(src.center_frequency_hz())
            .channel(0.0, width)
            .report_interval(Duration::from_millis(interval_ms));
        let mut est = Estimator::new(cfg)?;
        let to_full_band = 10.0 * (f64::from(rate) / est.channel_bandwidth_hz()).log10();
        let mut block = IqBlock::with_capacity(16_384);
        let (mut noise, mut max_rssi) = (Vec::new(), f32::NEG_INFINITY);
        while src.read_block(&mut block)? == ReadStatus::Data {
            est.process_block(&block, |r| {
                noise.push(f64::from(r.noise) + to_full_band);
                max_rssi = max_rssi.max(r.rssi);
            })?;
        }
        noise.sort_by(f64::total_cmp);
        // Interpolated between the two nearest ranks: the median of an even count is the mean
        // of the middle two.
        let at = |q: usize| {
            if noise.is_empty() {
                return f64::NAN;
            }
            let h = (noise.len() - 1) as f64 * q as f64 / 100.0;
            let lo = h.floor() as usize;
            let hi = (lo + 1).min(noise.len() - 1);
            noise[lo] + (h - lo as f64) * (noise[hi] - noise[lo])
        };
        let name = std::path::Path::new(&f)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or(f);
        println!(
            "{name:<28} {rate:>8} {:>12.2} {:>12.2} {max_rssi:>10.2} {:>8}",
            at(50),
            at(10),
            noise.len()
        );
    }
    Ok(())
}
