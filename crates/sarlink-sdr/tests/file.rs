//! Recordings: raw formats with rtl_433 names, explicit values, SigMF in each datatype and
//! with retunes, looping, errors.

use std::path::PathBuf;
use std::time::Duration;

use num_complex::Complex;
use sarlink_sdr::source::file::{
    ArchiveError, FileOptions, FileSource, OpenError, OpenWarning, SampleFormat,
};
use sarlink_sdr::{CU8_LUT, ControlError, Gain, IqBlock, IqSource, ReadStatus};

fn tmp(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("sdr-file-tests");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// 1000 cu8 samples of a recognisable ramp.
fn ramp() -> Vec<u8> {
    (0..2000u32).map(|i| (i * 7 % 256) as u8).collect()
}

fn read_all(src: &mut FileSource, cap: usize) -> Vec<Complex<f32>> {
    let mut block = IqBlock::with_capacity(cap);
    let mut out = Vec::new();
    while src.read_block(&mut block).unwrap() == ReadStatus::Data {
        out.extend_from_slice(block.samples());
    }
    out
}

#[test]
fn cu8_named_file_reads_rate_frequency_and_every_sample() {
    let path = tmp("ramp_868.3M_1024k.cu8");
    let mut bytes = ramp();
    bytes.push(9); // a dangling half sample is ignored
    std::fs::write(&path, &bytes).unwrap();
    let mut src = FileSource::open_cu8(&path).unwrap();
    assert_eq!(
        (src.sample_rate_hz(), src.center_frequency_hz()),
        (1_024_000, 868_300_000)
    );
    let mut block = IqBlock::with_capacity(300);
    let mut n = 0;
    let mut timestamps = Vec::new();
    while src.read_block(&mut block).unwrap() == ReadStatus::Data {
        timestamps.push(block.timestamp());
        assert_eq!(block.sample_rate_hz(), 1_024_000);
        for s in block.samples() {
            assert_eq!(s.re, CU8_LUT[usize::from(bytes[2 * n])]);
            assert_eq!(s.im, CU8_LUT[usize::from(bytes[2 * n + 1])]);
            n += 1;
        }
    }
    assert_eq!(n, 1000);
    // 300-sample blocks at 1.024 MS/s: 292.96875 us apart.
    assert_eq!(timestamps[1], Duration::from_nanos(292_968));
    assert_eq!(timestamps.len(), 4);
    // Ended streams stay ended.
    assert_eq!(src.read_block(&mut block).unwrap(), ReadStatus::End);
    assert!(block.is_empty());
}

#[test]
fn explicit_parameters_override_a_name_without_them() {
    let path = tmp("capture.cu8");
    std::fs::write(&path, ramp()).unwrap();
    match FileSource::open_cu8(&path) {
        Err(OpenError::NameWithoutParameters { missing, .. }) => assert_eq!(missing, "sample rate"),
        other => panic!("expected NameWithoutParameters, got {other:?}"),
    }
    let src = FileSource::open_cu8_with(&path, 2_048_000, 1_090_000_000).unwrap();
    assert_eq!(
        (src.sample_rate_hz(), src.center_frequency_hz()),
        (2_048_000, 1_090_000_000)
    );
    assert!(matches!(
        FileSource::open_cu8_with(&path, 0, 1),
        Err(OpenError::ZeroSampleRate)
    ));
    assert!(matches!(
        FileSource::open_cu8(tmp("missing_433.92M_250k.cu8")),
        Err(OpenError::Io { .. })
    ));
}

#[test]
fn looping_wraps_to_the_start_and_time_keeps_running() {
    let path = tmp("loop_433.92M_250k.cu8");
    std::fs::write(&path, ramp()).unwrap();
    let mut src = FileSource::open_cu8(&path).unwrap().looping(true);
    let mut block = IqBlock::with_capacity(700);
    let mut all = Vec::new();
    for _ in 0..5 {
        assert_eq!(src.read_block(&mut block).unwrap(), ReadStatus::Data);
        assert_eq!(block.len(), 700);
        all.extend_from_slice(block.samples());
    }
    assert_eq!(block.timestamp(), Duration::from_micros(4 * 2800));
    for (i, s) in all.iter().enumerate() {
        let k = i % 1000;
        assert_eq!(s.re, CU8_LUT[usize::from(ramp()[2 * k])], "sample {i}");
    }
}

#[test]
fn an_empty_looping_file_ends_instead_of_spinning() {
    let path = tmp("empty_433.92M_250k.cu8");
    std::fs::write(&path, b"").unwrap();
    let mut src = FileSource::open_cu8(&path).unwrap().looping(true);
    assert_eq!(
        src.read_block(&mut IqBlock::with_capacity(10)).unwrap(),
        ReadStatus::End
    );
}

#[test]
fn recordings_cannot_be_retuned() {
    let path = tmp("ctl_433.92M_250k.cu8");
    std::fs::write(&path, ramp()).unwrap();
    let mut src = FileSource::open_cu8(&path).unwrap();
    assert!(matches!(
        src.set_frequency(1),
        Err(ControlError::Unsupported { .. })
    ));
    assert!(matches!(
        src.set_gain(Gain::Auto),
        Err(ControlError::Unsupported { .. })
    ));
    assert!(matches!(
        src.set_sample_rate(1),
        Err(ControlError::Unsupported { .. })
    ));
}

fn write_sigmf(name: &str, datatype: &str, data: &[u8]) -> PathBuf {
    let base = tmp(name);
    let meta = format!(
        r#"{{"global": {{"core:datatype": "{datatype}", "core:sample_rate": 2400000.0, "core:version": "1.0.0"}},
            "captures": [{{"core:sample_start": 0, "core:frequency": 121500000}}], "annotations": []}}"#
    );
    std::fs::write(base.with_extension("sigmf-meta"), meta).unwrap();
    std::fs::write(base.with_extension("sigmf-data"), data).unwrap();
    base
}

#[test]
fn sigmf_recordings_in_every_supported_datatype_read_the_same_samples() {
    let truth: Vec<(f32, f32)> = vec![(0.5, -0.25), (-1.0, 0.0), (0.125, 0.75)];
    let cf32: Vec<u8> = truth
        .iter()
        .flat_map(|&(i, q)| [i.to_le_bytes(), q.to_le_bytes()])
        .flatten()
        .collect();
    let ci16: Vec<u8> = truth
        .iter()
        .flat_map(|&(i, q)| {
            [
                ((i * 32768.0) as i16).to_le_bytes(),
                ((q * 32768.0).round() as i16).to_le_bytes(),
            ]
        })
        .flatten()
        .collect();
    for (name, datatype, data, format) in [
        ("f.sigmf-meta", "cf32_le", cf32, SampleFormat::Cf32Le),
        ("s.sigmf-meta", "ci16_le", ci16, SampleFormat::Ci16Le),
    ] {
        let base = write_sigmf(name.split('.').next().unwrap(), datatype, &data);
        // Any of the three spellings opens it.
        for path in [
            base.with_extension("sigmf-meta"),
            base.with_extension("sigmf-data"),
            base.clone(),
        ] {
            let mut src = FileSource::open_sigmf(&path).unwrap();
            assert_eq!(src.format(), format);
            assert_eq!(
                (src.sample_rate_hz(), src.center_frequency_hz()),
                (2_400_000, 121_500_000)
            );
            let got = read_all(&mut src, 2);
            let got: Vec<(f32, f32)> = got.iter().map(|c| (c.re, c.im)).collect();
            assert_eq!(got, truth, "{datatype}");
        }
    }
    let base = write_sigmf("u", "cu8", &[255, 0, 128, 127]);
    let got = read_all(&mut FileSource::open_sigmf(base).unwrap(), 8);
    assert_eq!(
        got,
        [
            Complex::new(1.0, -1.0),
            Complex::new(CU8_LUT[128], CU8_LUT[127])
        ]
    );
}

#[test]
fn bad_sigmf_metadata_is_an_error() {
    let base = write_sigmf("bad_type", "ri16_le", &[]);
    assert!(
        matches!(FileSource::open_sigmf(&base), Err(OpenError::UnsupportedDatatype { datatype }) if datatype == "ri16_le")
    );
    for (name, meta) in [
        ("bad_json", "{not json"),
        (
            "no_rate",
            r#"{"global": {"core:datatype": "cu8"}, "captures": [{"core:frequency": 1e8}]}"#,
        ),
        (
            "no_freq",
            r#"{"global": {"core:datatype": "cu8", "core:sample_rate": 1e6}, "captures": []}"#,
        ),
        (
            "neg_rate",
            r#"{"global": {"core:datatype": "cu8", "core:sample_rate": -5}, "captures": [{"core:frequency": 1e8}]}"#,
        ),
    ] {
        let base = tmp(name);
        std::fs::write(base.with_extension("sigmf-meta"), meta).unwrap();
        std::fs::write(base.with_extension("sigmf-data"), b"").unwrap();
        assert!(
            matches!(
                FileSource::open_sigmf(&base),
                Err(OpenError::InvalidMeta { .. })
            ),
            "{name}"
        );
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

#[test]
fn a_missing_file_keeps_the_operating_system_reason() {
    for name in [
        "missing_433.92M_250k.cu8",
        "missing.sigmf-meta",
        "missing.sigmf",
    ] {
        let path = tmp(name);
        let os_reason = std::fs::File::open(&path).unwrap_err().to_string();
        let err = FileSource::open(&path, &FileOptions::default()).unwrap_err();
        match &err {
            OpenError::Io { source, .. } => {
                assert_eq!(source.kind(), std::io::ErrorKind::NotFound)
            }
            other => panic!("{name}: expected Io, got {other:?}"),
        }
        let text = error_chain(&err);
        assert!(text.contains(&os_reason), "{text:?} lacks {os_reason:?}");
        assert!(text.contains(name), "{text:?}");
    }
}

#[test]
fn an_unknown_format_is_refused_not_read_as_cu8() {
    for name in ["capture_433.92M_250k.wav", "capture_433.92M_250k", "rec"] {
        let path = tmp(name);
        std::fs::write(&path, ramp()).unwrap();
        let err = FileSource::open(&path, &FileOptions::default()).unwrap_err();
        assert!(
            matches!(err, OpenError::UnknownFormat { .. }),
            "{name}: {err:?}"
        );
        assert!(err.to_string().contains(".cf32"), "{err}");
    }
    // open_sigmf refuses a raw file instead of misreading it.
    let raw = tmp("x_433.92M_250k.cu8");
    std::fs::write(&raw, ramp()).unwrap();
    assert!(matches!(
        FileSource::open_sigmf(&raw),
        Err(OpenError::UnknownFormat { .. })
    ));
}

#[test]
fn each_raw_extension_is_read_in_its_own_format() {
    let truth = [(0.5f32, -0.25f32), (-1.0, 0.0), (0.125, 0.75)];
    let cf32: Vec<u8> = truth
        .iter()
        .flat_map(|&(i, q)| [i.to_le_bytes(), q.to_le_bytes()])
        .flatten()
        .collect();
    let cs8: Vec<u8> = truth
        .iter()
        .flat_map(|&(i, q)| [(i * 128.0) as i8 as u8, (q * 128.0) as i8 as u8])
        .collect();
    let cu16: Vec<u8> = truth
        .iter()
        .flat_map(|&(i, q)| {
            [
                ((i * 32767.5 + 32767.5).round() as u16).to_le_bytes(),
                ((q * 32767.5 + 32767.5).round() as u16).to_le_bytes(),
            ]
        })
        .flatten()
        .collect();
    for (ext, bytes, tolerance) in [("cf32", cf32, 0.0), ("cs8", cs8, 0.0), ("cu16", cu16, 2e-5)] {
        let path = tmp(&format!("three_433.92M_250k.{ext}"));
        std::fs::write(&path, &bytes).unwrap();
        let mut src = FileSource::open(&path, &FileOptions::default()).unwrap();
        let got = read_all(&mut src, 8);
        assert_eq!(got.len(), 3, "{ext}");
        for (g, t) in got.iter().zip(truth) {
            assert!(
                (g.re - t.0).abs() <= tolerance && (g.im - t.1).abs() <= tolerance,
                "{ext}: {g} vs {t:?}"
            );
        }
    }
}

#[test]
fn explicit_values_apply_to_bare_names_and_win_over_the_name_with_a_warning() {
    let bare = tmp("capture.cu8");
    std::fs::write(&bare, ramp()).unwrap();
    let options = FileOptions {
        sample_rate_hz: Some(2_048_000),
        center_frequency_hz: Some(1_090_000_000),
    };
    let src = FileSource::open(&bare, &options).unwrap();
    assert_eq!(
        (src.sample_rate_hz(), src.center_frequency_hz()),
        (2_048_000, 1_090_000_000)
    );
    assert!(src.warnings().is_empty());
    let only_rate = FileOptions {
        sample_rate_hz: Some(2_048_000),
        center_frequency_hz: None,
    };
    assert!(matches!(
        FileSource::open(&bare, &only_rate),
        Err(OpenError::NameWithoutParameters {
            missing: "centre frequency",
            ..
        })
    ));
    let named = tmp("named_433.92M_250k.cs16");
    std::fs::write(&named, [0u8; 40]).unwrap();
    let src = FileSource::open(&named, &options).unwrap();
    assert_eq!(
        (src.sample_rate_hz(), src.center_frequency_hz()),
        (2_048_000, 1_090_000_000)
    );
    assert_eq!(
        src.warnings(),
        [
            OpenWarning::Conflict {
                setting: "sample rate",
                in_file: 250_000,
                explicit: 2_048_000
            },
            OpenWarning::Conflict {
                setting: "centre frequency",
                in_file: 433_920_000,
                explicit: 1_090_000_000
            }
        ]
    );
    assert_eq!(
        src.warnings()[0].to_string(),
        "the sample rate given (2048000) overrides the recording's (250000)"
    );
}

#[test]
fn blocks_follow_sigmf_captures_and_never_straddle_a_retune() {
    let base = tmp("retune");
    let meta = r#"{"global": {"core:datatype": "cu8", "core:sample_rate": 1000},
        "captures": [{"core:sample_start": 0, "core:frequency": 433920000},
                     {"core:sample_start": 700, "core:frequency": 434500000}]}"#;
    std::fs::write(base.with_extension("sigmf-meta"), meta).unwrap();
    std::fs::write(base.with_extension("sigmf-data"), ramp()).unwrap();
    let mut src = FileSource::open(&base, &FileOptions::default())
        .unwrap()
        .looping(true);
    assert_eq!(src.segments().len(), 2);
    let mut block = IqBlock::with_capacity(300);
    let mut seen = Vec::new();
    for _ in 0..9 {
        assert_eq!(src.read_block(&mut block).unwrap(), ReadStatus::Data);
        seen.push((block.len(), block.center_frequency_hz()));
    }
    let (a, b) = (433_920_000, 434_500_000);
    assert_eq!(
        seen,
        [
            (300, a),
            (300, a),
            (100, a),
            (300, b),
            // The loop goes back to the first capture.
            (300, a),
            (300, a),
            (100, a),
            (300, b),
            (300, a)
        ]
    );
}

#[test]
fn hostile_archives_and_oversized_metadata_are_typed_errors() {
    let junk = tmp("junk.sigmf");
    std::fs::write(&junk, vec![0x41u8; 4096]).unwrap();
    assert!(matches!(
        FileSource::open(&junk, &FileOptions::default()),
        Err(OpenError::Archive { .. })
    ));
    let empty = tmp("empty.sigmf");
    std::fs::write(&empty, vec![0u8; 1024]).unwrap();
    assert!(matches!(
        FileSource::open(&empty, &FileOptions::default()),
        Err(OpenError::Archive {
            source: ArchiveError::NoMeta,
            ..
        })
    ));
    let big = tmp("big");
    let mut text = String::from(r#"{"global": {"core:datatype": "cu8"}, "captures": ["#);
    while text.len() < 2 << 20 {
        text.push_str(r#"{"core:sample_start": 0},"#);
    }
    std::fs::write(big.with_extension("sigmf-meta"), text).unwrap();
    std::fs::write(big.with_extension("sigmf-data"), b"").unwrap();
    assert!(matches!(
        FileSource::open(&big, &FileOptions::default()),
        Err(OpenError::MetaTooLarge { .. })
    ));
}
