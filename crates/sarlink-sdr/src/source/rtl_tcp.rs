//! Client for an `rtl_tcp` server (the network front end of librtlsdr).
//!
//! # Protocol
//!
//! On connect the server sends a 12-byte header: the magic `RTL0`, the tuner type (u32
//! big-endian) and the number of tuner gain steps (u32 big-endian). It then streams unsigned
//! 8-bit interleaved I/Q without framing. The client sends 5-byte commands: one command byte
//! and a u32 big-endian parameter:
//!
//! | byte | command | parameter |
//! |---|---|---|
//! | `0x01` | centre frequency | Hz |
//! | `0x02` | sample rate | Hz |
//! | `0x03` | gain mode | 0 automatic, 1 manual |
//! | `0x04` | tuner gain | tenths of dB (two's complement) |
//! | `0x05` | frequency correction | ppm (two's complement) |
//! | `0x08` | RTL2832 digital AGC | 0 off, 1 on |
//!
//! After connecting (and after every [`RtlTcpSource::reconnect`]) the client sends, in this
//! order: sample rate, centre frequency, frequency correction, digital AGC, gain mode and, for
//! a manual gain, the gain.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::block::{Gain, IqBlock, samples_to_duration};
use crate::source::{ControlError, IqSource, ReadStatus, SourceError};

/// Command byte: set centre frequency (Hz).
pub const CMD_SET_FREQUENCY: u8 = 0x01;
/// Command byte: set sample rate (Hz).
pub const CMD_SET_SAMPLE_RATE: u8 = 0x02;
/// Command byte: gain mode (0 automatic, 1 manual).
pub const CMD_SET_GAIN_MODE: u8 = 0x03;
/// Command byte: tuner gain (tenths of dB).
pub const CMD_SET_GAIN: u8 = 0x04;
/// Command byte: frequency correction (ppm).
pub const CMD_SET_FREQ_CORRECTION: u8 = 0x05;
/// Command byte: RTL2832 digital AGC (0 off, 1 on).
pub const CMD_SET_AGC_MODE: u8 = 0x08;

/// Encodes one command as the 5 bytes sent on the wire.
///
/// # Examples
///
/// ```
/// use sarlink_sdr::source::rtl_tcp::{CMD_SET_FREQUENCY, command};
/// assert_eq!(command(CMD_SET_FREQUENCY, 433_920_000), [0x01, 0x19, 0xDD, 0x18, 0x00]);
/// ```
#[must_use]
pub fn command(cmd: u8, param: u32) -> [u8; 5] {
    let p = param.to_be_bytes();
    [cmd, p[0], p[1], p[2], p[3]]
}

/// Tuner description from the server's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunerInfo {
    /// librtlsdr tuner type (1 E4000, 2 FC0012, 3 FC0013, 4 FC2580, 5 R820T, 6 R828D).
    pub tuner_type: u32,
    /// Number of gain steps the tuner offers.
    pub gain_count: u32,
}

/// Settings the client applies on every connect; fields document their defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct RtlTcpConfig {
    /// Sample rate, Hz; default 250 000.
    pub sample_rate_hz: u32,
    /// Centre frequency, Hz; default 433 920 000.
    pub center_frequency_hz: u64,
    /// Tuner gain; default [`Gain::Auto`].
    pub gain: Gain,
    /// Frequency correction, ppm; default 0.
    pub ppm: i32,
    /// RTL2832 digital AGC; default off.
    pub rtl_agc: bool,
    /// Longest wait for the TCP connection; default 5 s.
    pub connect_timeout: Duration,
    /// Longest wait for data on a read or header; default 2 s.
    pub read_timeout: Duration,
}

impl Default for RtlTcpConfig {
    fn default() -> Self {
        RtlTcpConfig {
            sample_rate_hz: 250_000,
            center_frequency_hz: 433_920_000,
            gain: Gain::Auto,
            ppm: 0,
            rtl_agc: false,
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(2),
        }
    }
}

/// Connecting to an rtl_tcp server failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The address did not resolve.
    #[error("cannot resolve {addr}")]
    Resolve {
        /// The address given.
        addr: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Connecting or reading the header failed.
    #[error("cannot connect to {addr}")]
    Io {
        /// The server.
        addr: SocketAddr,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The header did not arrive in time.
    #[error("no rtl_tcp header from {addr} within {timeout:?}")]
    Timeout {
        /// The server.
        addr: SocketAddr,
        /// The configured read timeout.
        timeout: Duration,
    },
    /// The server closed the connection before sending the whole header.
    #[error("{addr} closed the connection before the rtl_tcp header")]
    Closed {
        /// The server.
        addr: SocketAddr,
    },
    /// The header does not start with `RTL0`.
    #[error("{addr} is not an rtl_tcp server (header starts {found:02x?})")]
    BadMagic {
        /// The server.
        addr: SocketAddr,
        /// The first four bytes received.
        found: [u8; 4],
    },
    /// A setting is not representable in the protocol.
    #[error("{what} {value} does not fit the rtl_tcp protocol")]
    OutOfRange {
        /// The setting.
        what: &'static str,
        /// Its value.
        value: f64,
    },
    /// Sending the initial settings failed.
    #[error("failed to send command {command:#04x}")]
    Send {
        /// The command byte.
        command: u8,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// An [`IqSource`] reading from an rtl_tcp server.
///
/// Errors from reading drop the connection (except [`SourceError::Timeout`], which keeps
/// the partial block for the next call); [`reconnect`](Self::reconnect) connects again and
/// re-applies the current settings. Settings changed while disconnected are kept and applied on
/// reconnect (the call returns [`ControlError::NotConnected`]).
#[derive(Debug)]
pub struct RtlTcpSource {
    addr: SocketAddr,
    config: RtlTcpConfig,
    stream: Option<TcpStream>,
    tuner: TunerInfo,
    scratch: Vec<u8>,
    filled: usize,
    delivered: u64,
}

impl RtlTcpSource {
    /// Connects, reads the header and sends the settings in `config`.
    ///
    /// # Errors
    ///
    /// [`ConnectError`] if the address does not resolve, the connection or header fails or
    /// times out, the header is not rtl_tcp's, or a setting does not fit the protocol.
    pub fn connect(
        addr: impl ToSocketAddrs + ToString,
        config: RtlTcpConfig,
    ) -> Result<Self, ConnectError> {
        let resolved = addr
            .to_socket_addrs()
            .and_then(|mut a| {
                a.next()
                    .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"))
            })
            .map_err(|source| ConnectError::Resolve {
                addr: addr.to_string(),
                source,
            })?;
        let mut src = RtlTcpSource {
            addr: resolved,
            config,
            stream: None,
            tuner: TunerInfo {
                tuner_type: 0,
                gain_count: 0,
            },
            scratch: Vec::new(),
            filled: 0,
            delivered: 0,
        };
        src.reconnect()?;
        Ok(src)
    }

    /// Drops any connection, connects again and re-sends the current settings. Sample
    /// timestamps continue from the samples delivered so far.
    ///
    /// # Errors
    ///
    /// As [`RtlTcpSource::connect`]; the source stays disconnected.
    pub fn reconnect(&mut self) -> Result<(), ConnectError> {
        self.stream = None;
        self.filled = 0;
        let addr = self.addr;
        let io_err = |source| ConnectError::Io { addr, source };
        let mut stream =
            TcpStream::connect_timeout(&addr, self.config.connect_timeout).map_err(io_err)?;
        stream
            .set_read_timeout(Some(self.config.read_timeout))
            .map_err(io_err)?;
        stream
            .set_write_timeout(Some(self.config.read_timeout))
            .map_err(io_err)?;
        // Commands are tiny and latency matters more than batching.
        stream.set_nodelay(true).map_err(io_err)?;
        let mut header = [0u8; 12];
        stream.read_exact(&mut header).map_err(|e| match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ConnectError::Timeout {
                addr,
                timeout: self.config.read_timeout,
            },
            io::ErrorKind::UnexpectedEof => ConnectError::Closed { addr },
            _ => io_err(e),
        })?;
        if &header[..4] != b"RTL0" {
            return Err(ConnectError::BadMagic {
                addr,
                found: [header[0], header[1], header[2], header[3]],
            });
        }
        self.tuner = TunerInfo {
            tuner_type: u32::from_be_bytes([header[4], header[5], header[6], header[7]]),
            gain_count: u32::from_be_bytes([header[8], header[9], header[10], header[11]]),
        };
        let mut commands = Vec::with_capacity(6);
        commands.push(command(CMD_SET_SAMPLE_RATE, self.config.sample_rate_hz));
        let freq = u32::try_from(self.config.center_frequency_hz).map_err(|_| {
            ConnectError::OutOfRange {
                what: "centre frequency (Hz)",
                value: self.config.center_frequency_hz as f64,
            }
        })?;
        commands.push(command(CMD_SET_FREQUENCY, freq));
        // Two's complement on the wire, as librtlsdr reads it back into an int.
        commands.push(command(CMD_SET_FREQ_CORRECTION, self.config.ppm as u32));
        commands.push(command(CMD_SET_AGC_MODE, u32::from(self.config.rtl_agc)));
        commands.extend(gain_commands(self.config.gain).map_err(|value| {
            ConnectError::OutOfRange {
                what: "gain (dB)",
                value,
            }
        })?);
        for c in &commands {
            stream.write_all(c).map_err(|source| ConnectError::Send {
                command: c[0],
                source,
            })?;
        }
        self.stream = Some(stream);
        Ok(())
    }

    /// Whether a connection is up.
    #[must_use]
    pub fn is_connected(&self) -> bool {
        self.stream.is_some()
    }

    /// The tuner the server reported.
    #[must_use]
    pub fn tuner(&self) -> TunerInfo {
        self.tuner
    }

    /// The current settings.
    #[must_use]
    pub fn config(&self) -> &RtlTcpConfig {
        &self.config
    }

    /// Sets the frequency correction in ppm.
    ///
    /// # Errors
    ///
    /// As [`IqSource::set_frequency`].
    pub fn set_ppm(&mut self, ppm: i32) -> Result<(), ControlError> {
        self.config.ppm = ppm;
        self.send(&[command(CMD_SET_FREQ_CORRECTION, ppm as u32)])
    }

    fn send(&mut self, commands: &[[u8; 5]]) -> Result<(), ControlError> {
        let Some(stream) = &mut self.stream else {
            return Err(ControlError::NotConnected);
        };
        for c in commands {
            if let Err(source) = stream.write_all(c) {
                self.stream = None;
                return Err(ControlError::Send {
                    command: c[0],
                    source,
                });
            }
        }
        Ok(())
    }
}

/// The commands for a gain setting; `Err(dB)` when it does not fit.
fn gain_commands(gain: Gain) -> Result<Vec<[u8; 5]>, f64> {
    Ok(match gain {
        Gain::Auto => vec![command(CMD_SET_GAIN_MODE, 0)],
        Gain::Db(db) => {
            let tenths = (f64::from(db) * 10.0).round();
            if !(-1000.0..=1000.0).contains(&tenths) {
                return Err(f64::from(db));
            }
            // In range, so the casts are exact; two's complement on the wire.
            vec![
                command(CMD_SET_GAIN_MODE, 1),
                command(CMD_SET_GAIN, tenths as i32 as u32),
            ]
        }
    })
}

impl IqSource for RtlTcpSource {
    fn read_block(&mut self, block: &mut IqBlock) -> Result<ReadStatus, SourceError> {
        let Some(stream) = &mut self.stream else {
            return Err(SourceError::NotConnected);
        };
        let want = 2 * block.capacity();
        if self.scratch.len() < want {
            self.scratch.resize(want, 0);
        }
        while self.filled < want {
            match stream.read(&mut self.scratch[self.filled..want]) {
                Ok(0) => {
                    self.stream = None;
                    self.filled = 0;
                    return Err(SourceError::Disconnected);
                }
                Ok(n) => self.filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(SourceError::Timeout {
                        timeout: self.config.read_timeout,
                    });
                }
                Err(source) => {
                    self.stream = None;
                    self.filled = 0;
                    return Err(SourceError::Io {
                        what: "rtl_tcp stream",
                        source,
                    });
                }
            }
        }
        let rate = self.config.sample_rate_hz;
        block.start(
            rate,
            self.config.center_frequency_hz,
            samples_to_duration(self.delivered, rate),
        );
        let n = block.extend_from_cu8(&self.scratch[..want]);
        self.scratch.copy_within(want..self.filled, 0);
        self.filled -= want;
        self.delivered += n as u64;
        Ok(ReadStatus::Data)
    }

    fn sample_rate_hz(&self) -> u32 {
        self.config.sample_rate_hz
    }

    fn center_frequency_hz(&self) -> u64 {
        self.config.center_frequency_hz
    }

    fn set_frequency(&mut self, frequency_hz: u64) -> Result<(), ControlError> {
        let hz = u32::try_from(frequency_hz).map_err(|_| ControlError::OutOfRange {
            what: "centre frequency (Hz)",
            value: frequency_hz as f64,
        })?;
        self.config.center_frequency_hz = frequency_hz;
        self.send(&[command(CMD_SET_FREQUENCY, hz)])
    }

    fn set_gain(&mut self, gain: Gain) -> Result<(), ControlError> {
        let cmds = gain_commands(gain).map_err(|value| ControlError::OutOfRange {
            what: "gain (dB)",
            value,
        })?;
        self.config.gain = gain;
        self.send(&cmds)
    }

    fn set_sample_rate(&mut self, sample_rate_hz: u32) -> Result<(), ControlError> {
        if sample_rate_hz == 0 {
            return Err(ControlError::OutOfRange {
                what: "sample rate (Hz)",
                value: 0.0,
            });
        }
        // Keep time continuous across the change.
        let t = samples_to_duration(self.delivered, self.config.sample_rate_hz);
        self.delivered = (t.as_secs_f64() * f64::from(sample_rate_hz)).round() as u64;
        self.config.sample_rate_hz = sample_rate_hz;
        self.send(&[command(CMD_SET_SAMPLE_RATE, sample_rate_hz)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gain_is_tenths_of_db_twos_complement() {
        assert_eq!(gain_commands(Gain::Auto).unwrap(), vec![[0x03, 0, 0, 0, 0]]);
        assert_eq!(
            gain_commands(Gain::Db(49.6)).unwrap(),
            vec![[0x03, 0, 0, 0, 1], [0x04, 0, 0, 0x01, 0xF0]]
        );
        assert_eq!(
            gain_commands(Gain::Db(-1.0)).unwrap()[1],
            [0x04, 0xFF, 0xFF, 0xFF, 0xF6]
        );
        assert!(gain_commands(Gain::Db(f32::NAN)).is_err());
        assert_eq!(gain_commands(Gain::Db(150.0)), Err(150.0));
    }
}
