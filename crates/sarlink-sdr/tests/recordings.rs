//! Recordings written by other tools read the power they hold: rtl_433-named raw files in
//! every format and SigMF written by the official `sigmf` Python package (pair, bare name,
//! archive; cu8, ci16_le, cf32_le; a retune in `captures[1]`).
//!
//! `tests/recordings/make_recordings.py` writes them at test time with Python's standard
//! library (the SigMF metadata and archives by `sigmf` itself). Without `python3`, or without
//! the `sigmf` package for the SigMF part, the test prints why and returns (CI installs both).

use std::path::{Path, PathBuf};
use std::process::Command;

use sarlink_sdr::source::file::{FileOptions, FileSource, SampleFormat};
use sarlink_sdr::{Estimator, EstimatorConfig, IqBlock, IqSource, ReadStatus};

const RATE: u32 = 250_000;
const OFFSET_HZ: f64 = 50_000.0;
const FREQ: u64 = 433_920_000;
const RETUNE_FREQ: u64 = 434_500_000;
const TONE_DBFS: f64 = -20.0;
const RETUNE_TONE_DBFS: f64 = -30.0;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/recordings/make_recordings.py")
}

/// Runs the script in `mode` into a fresh directory of the test's own (`tag`); `None` (after
/// saying why) when Python or what the mode needs is missing.
fn generate(mode: &str, needs: &str, tag: &str) -> Option<PathBuf> {
    let probe = Command::new("python3").args(["-c", needs]).output();
    match probe {
        Ok(out) if out.status.success() => {}
        Ok(_) => {
            eprintln!(
                "skipping: python3 -c {needs:?} fails; install it with `python3 -m pip install sigmf`"
            );
            return None;
        }
        Err(e) => {
            eprintln!("skipping: python3 not runnable ({e})");
            return None;
        }
    }
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("recordings-{tag}"));
    let _ = std::fs::remove_dir_all(&dir);
    let out = Command::new("python3")
        .arg(script())
        .arg(mode)
        .arg(&dir)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "make_recordings.py {mode} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(dir)
}

/// Reads the whole recording through the estimator (10 kHz channel at the tone); returns
/// `(channel frequency, rssi dBFS)` per report. The estimator restarts when a block's centre
/// frequency changes, as a caller following a retune would.
fn reports(src: &mut FileSource) -> Vec<(u64, f64)> {
    let config = EstimatorConfig::new(src.sample_rate_hz()).channel(OFFSET_HZ, 10_000.0);
    let mut est = Estimator::new(config).unwrap();
    let mut block = IqBlock::with_capacity(8192);
    let mut out = Vec::new();
    let mut tuned = None;
    while src.read_block(&mut block).unwrap() == ReadStatus::Data {
        if tuned.is_some_and(|f| f != block.center_frequency_hz()) {
            est.reset();
        }
        tuned = Some(block.center_frequency_hz());
        est.process_block(&block, |r| out.push((r.frequency_hz, f64::from(r.rssi))))
            .unwrap();
    }
    out
}

fn assert_power(what: &str, reports: &[(u64, f64)], frequency: u64, dbfs: f64) {
    let at: Vec<f64> = reports
        .iter()
        .filter(|(f, _)| *f == frequency)
        .map(|(_, p)| *p)
        .collect();
    assert!(
        at.len() >= 2,
        "{what}: {} reports at {frequency} Hz: {reports:?}",
        at.len()
    );
    for p in &at {
        assert!(
            (p - dbfs).abs() < 0.5,
            "{what}: {p:.2} dBFS at {frequency} Hz, expected {dbfs} within 0.5 dB"
        );
    }
}

#[test]
fn raw_files_in_every_rtl_433_format_read_the_tone_power() {
    let Some(dir) = generate("raw", "import array, struct", "raw") else {
        return;
    };
    let channel = FREQ + OFFSET_HZ as u64;
    for (ext, format) in [
        ("cu8", SampleFormat::Cu8),
        ("cs8", SampleFormat::Cs8),
        ("cs16", SampleFormat::Ci16Le),
        ("cf32", SampleFormat::Cf32Le),
        ("cu16", SampleFormat::Cu16Le),
    ] {
        let path = dir.join(format!("tone_433.92M_250k.{ext}"));
        let mut src = FileSource::open(&path, &FileOptions::default()).unwrap();
        assert_eq!(src.format(), format);
        assert_eq!(
            (src.sample_rate_hz(), src.center_frequency_hz()),
            (RATE, FREQ)
        );
        assert_power(ext, &reports(&mut src), channel, TONE_DBFS);
    }
    // A name without parameters, given them explicitly.
    let options = FileOptions {
        sample_rate_hz: Some(RATE),
        center_frequency_hz: Some(FREQ),
    };
    let mut src = FileSource::open(dir.join("capture.cu8"), &options).unwrap();
    assert!(src.warnings().is_empty());
    assert_power("capture.cu8", &reports(&mut src), channel, TONE_DBFS);
}

#[test]
fn sigmf_written_by_the_sigmf_package_reads_the_tone_power() {
    let Some(dir) = generate("sigmf", "import sigmf", "sigmf-tone") else {
        return;
    };
    let channel = FREQ + OFFSET_HZ as u64;
    for (datatype, format) in [
        ("cu8", SampleFormat::Cu8),
        ("ci16_le", SampleFormat::Ci16Le),
        ("cf32_le", SampleFormat::Cf32Le),
    ] {
        let base = dir.join(format!("tone_{datatype}"));
        let spellings = [
            base.with_extension("sigmf-meta"),
            base.with_extension("sigmf-data"),
            base.clone(),
            dir.join(format!("tone_{datatype}_archive.sigmf")),
        ];
        for path in spellings {
            let what = path.display().to_string();
            let mut src = FileSource::open(&path, &FileOptions::default()).unwrap();
            assert_eq!(src.format(), format, "{what}");
            assert_eq!(src.sample_rate_hz(), RATE, "{what}");
            assert_eq!(src.len_samples(), 125_000, "{what}");
            assert!(src.warnings().is_empty(), "{what}");
            assert_power(&what, &reports(&mut src), channel, TONE_DBFS);
        }
    }
}

#[test]
fn a_sigmf_retune_in_captures_1_moves_the_reports_to_the_new_frequency() {
    let Some(dir) = generate("sigmf", "import sigmf", "sigmf-retune") else {
        return;
    };
    for path in [
        dir.join("retune_ci16_le.sigmf-meta"),
        dir.join("retune_ci16_le_archive.sigmf"),
    ] {
        let what = path.display().to_string();
        let mut src = FileSource::open(&path, &FileOptions::default()).unwrap();
        let starts: Vec<(u64, u64)> = src
            .segments()
            .iter()
            .map(|s| (s.sample_start, s.center_frequency_hz))
            .collect();
        assert_eq!(starts, [(0, FREQ), (62_500, RETUNE_FREQ)], "{what}");
        let reports = reports(&mut src);
        assert_power(&what, &reports, FREQ + OFFSET_HZ as u64, TONE_DBFS);
        assert_power(
            &what,
            &reports,
            RETUNE_FREQ + OFFSET_HZ as u64,
            RETUNE_TONE_DBFS,
        );
        // Reports come in order: the first frequency, then the second, never back.
        let switch = reports
            .iter()
            .position(|(f, _)| *f != FREQ + OFFSET_HZ as u64);
        let switch = switch.expect("reports after the retune");
        assert!(
            reports[switch..]
                .iter()
                .all(|(f, _)| *f == RETUNE_FREQ + OFFSET_HZ as u64)
        );
    }
}
