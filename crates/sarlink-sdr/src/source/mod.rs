//! Where samples come from: one trait, [`IqSource`], and its implementations.
//!
//! | source | module | control |
//! |---|---|---|
//! | RTL-SDR over USB (feature `rtlsdr`, links GPL code) | `rtlsdr` | frequency, gain, rate |
//! | an `rtl_tcp` server | [`rtl_tcp`] | frequency, gain, rate |
//! | cu8 / SigMF recordings | [`file`](mod@file) | none (`Unsupported`) |
//! | simulated beacon | [`sim`] | frequency, gain, rate |

use std::io;
use std::time::Duration;

use crate::block::{Gain, IqBlock};

pub mod file;
pub mod rtl_tcp;
#[cfg(feature = "rtlsdr")]
pub mod rtlsdr;
pub mod sim;

/// What [`IqSource::read_block`] produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum ReadStatus {
    /// The block holds at least one sample.
    Data,
    /// The stream has ended; the block is empty.
    End,
}

/// A stream of complex samples with their sample rate, centre frequency and time.
///
/// Call order: any number of `set_*` calls and [`read_block`](IqSource::read_block) calls, in
/// any order; a setting applies to samples read after it (hardware may deliver a few samples
/// taken before a retune).
pub trait IqSource {
    /// Fills `block` (up to its capacity) with the next samples, replacing its contents.
    ///
    /// # Errors
    ///
    /// [`SourceError`] when the underlying file, connection or device fails; the source may
    /// then need a reconnect (see the implementation).
    fn read_block(&mut self, block: &mut IqBlock) -> Result<ReadStatus, SourceError>;

    /// Current sample rate, Hz.
    fn sample_rate_hz(&self) -> u32;

    /// Current centre frequency, Hz.
    fn center_frequency_hz(&self) -> u64;

    /// Retunes the receiver.
    ///
    /// # Errors
    ///
    /// [`ControlError::Unsupported`] where the source cannot retune (recordings), or the
    /// failure to pass the request on.
    fn set_frequency(&mut self, frequency_hz: u64) -> Result<(), ControlError>;

    /// Changes the gain.
    ///
    /// # Errors
    ///
    /// [`ControlError::Unsupported`] where the source has no gain control, or the failure to
    /// pass the request on.
    fn set_gain(&mut self, gain: Gain) -> Result<(), ControlError>;

    /// Changes the sample rate.
    ///
    /// # Errors
    ///
    /// [`ControlError::Unsupported`] where the source cannot, or the failure to pass the
    /// request on.
    fn set_sample_rate(&mut self, sample_rate_hz: u32) -> Result<(), ControlError>;
}

/// Reading samples failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// Reading the file or socket failed.
    #[error("i/o error reading {what}")]
    Io {
        /// What was being read.
        what: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The server closed the connection; call `reconnect`.
    #[error("connection closed by the server")]
    Disconnected,
    /// No complete block arrived within the read timeout. The rtl_tcp client keeps the bytes
    /// received so far for the next call; the RTL-SDR source drops the partial block.
    #[error("no samples within {timeout:?}")]
    Timeout {
        /// The configured read timeout.
        timeout: Duration,
    },
    /// The source is not connected; call `reconnect`.
    #[error("not connected")]
    NotConnected,
    /// The device stopped streaming.
    #[error("device stopped streaming")]
    DeviceStopped,
}

/// A control request (retune, gain, rate) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// The source cannot do this.
    #[error("{what} is not supported by this source")]
    Unsupported {
        /// The setting requested.
        what: &'static str,
    },
    /// The value is outside what the source accepts.
    #[error("{what} {value} is out of range")]
    OutOfRange {
        /// The setting requested.
        what: &'static str,
        /// The value given.
        value: f64,
    },
    /// Sending the command failed.
    #[error("failed to send command {command:#04x}")]
    Send {
        /// The rtl_tcp command byte.
        command: u8,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The device refused the setting.
    #[error("device rejected the {what} setting")]
    Rejected {
        /// The setting requested.
        what: &'static str,
    },
    /// The source is not connected; call `reconnect`.
    #[error("not connected")]
    NotConnected,
}
