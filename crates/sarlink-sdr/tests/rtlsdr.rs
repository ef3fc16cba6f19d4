//! The `rtlsdr` feature without hardware: opening is a clear error, not a panic.
#![cfg(feature = "rtlsdr")]

use sarlink_sdr::source::rtlsdr::{OpenError, RtlSdrConfig, RtlSdrSource};

#[test]
fn opening_without_a_device_is_a_clear_error() {
    if !RtlSdrSource::devices().is_empty() {
        eprintln!("skipping: an rtl-sdr dongle is attached");
        return;
    }
    match RtlSdrSource::open(RtlSdrConfig::default()) {
        Err(
            e @ OpenError::NoDevice {
                index: 0,
                attached: 0,
            },
        ) => {
            assert_eq!(e.to_string(), "cannot open rtl-sdr device 0 (0 attached)");
        }
        other => panic!("expected NoDevice, got {other:?}"),
    }
}

#[test]
fn a_bad_transfer_length_is_rejected_before_touching_usb() {
    let cfg = RtlSdrConfig {
        transfer_len: 1000,
        ..RtlSdrConfig::default()
    };
    assert!(matches!(
        RtlSdrSource::open(cfg),
        Err(OpenError::BadTransferLen { len: 1000 })
    ));
}

#[test]
fn settings_it_cannot_honour_are_refused_before_touching_usb() {
    let cfg = RtlSdrConfig {
        center_frequency_hz: 3_000_000_000,
        ..RtlSdrConfig::default()
    };
    let err = RtlSdrSource::open(cfg).unwrap_err();
    assert!(
        matches!(
            err,
            OpenError::FrequencyOutOfRange {
                frequency_hz: 3_000_000_000,
                min_hz: 24_000_000,
                max_hz: 1_766_000_000
            }
        ),
        "{err:?}"
    );
    let cfg = RtlSdrConfig {
        bias_tee: Some(true),
        ..RtlSdrConfig::default()
    };
    assert!(matches!(
        RtlSdrSource::open(cfg),
        Err(OpenError::BiasTeeUnsupported)
    ));
}
