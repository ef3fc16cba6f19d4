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
