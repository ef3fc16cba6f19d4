//! `sarlink-ground cmd`: sends one operator command through a ground station to a drone and
//! reports the drone's `ack`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use sarlink_link::driver::{Backoff, Client, ClientConfig, ClientEvent};
use sarlink_link::{PreSharedKey, SessionConfig};
use sarlink_schema::{Ack, Cmd, CmdOp, FrequencyHz, Message, NodeName, Role};

use crate::units;

/// Arguments of `sarlink-ground cmd`.
#[derive(Debug, Clone, clap::Args)]
pub struct CmdArgs {
    /// The ground station, HOST:PORT
    #[arg(long, default_value = "127.0.0.1:7355")]
    pub connect: String,
    /// The drone to command (its node name)
    #[arg(long)]
    pub target: String,
    /// File holding the pre-shared key, when the ground requires one
    #[arg(long)]
    pub key_file: Option<PathBuf>,
    /// TLS: directory with the fleet's ca.pem and the operator's NAME.pem and NAME.key
    #[arg(long, value_name = "DIR")]
    pub tls: Option<PathBuf>,
    /// With TLS: our name, the one in our certificate [default: operator]
    #[arg(long, default_value = "operator")]
    pub node: String,
    /// With TLS: the name the ground's certificate must carry
    #[arg(long, default_value = "ground")]
    pub ground_name: String,
    /// Give up after this many seconds without an answer
    #[arg(long, default_value_t = 5.0)]
    pub timeout: f64,
    /// tune FREQ | gain DB | gain auto | rate HZ | stream on|off
    #[arg(
        required = true,
        num_args = 1..=2,
        value_names = ["OP", "VALUE"],
        allow_negative_numbers = true
    )]
    pub op: Vec<String>,
}

/// Parses `OP [VALUE]` into a command op.
///
/// # Errors
/// A message saying what is wrong.
pub fn parse_op(words: &[String]) -> Result<CmdOp, String> {
    let value = words.get(1).map(String::as_str);
    let need = |what: &str| value.ok_or_else(|| format!("{} needs {what}", words[0]));
    match words[0].as_str() {
        "tune" => {
            let hz = units::parse_hz_u64(need("a frequency, e.g. 406.028e6")?)?;
            Ok(CmdOp::Tune {
                frequency_hz: FrequencyHz::new(hz).map_err(|e| e.to_string())?,
            })
        }
        "gain" => match need("a gain in dB or `auto`")? {
            "auto" => Ok(CmdOp::GainAuto),
            v => v
                .parse::<f32>()
                .ok()
                .filter(|g| g.is_finite())
                .map(|gain_db| CmdOp::Gain { gain_db })
                .ok_or_else(|| format!("{v:?} is not a gain in dB")),
        },
        "rate" => {
            let v = need("reports per second")?;
            v.parse::<f32>()
                .ok()
                .filter(|h| h.is_finite() && *h > 0.0)
                .map(|hz| CmdOp::Rate { hz })
                .ok_or_else(|| format!("{v:?} is not a rate in Hz"))
        }
        "stream" => match need("on or off")? {
            "on" => Ok(CmdOp::Stream { on: true }),
            "off" => Ok(CmdOp::Stream { on: false }),
            v => Err(format!("stream takes on or off, not {v:?}")),
        },
        other => Err(format!(
            "unknown command {other:?}: use tune, gain, rate or stream"
        )),
    }
}

/// Sends the command and waits for the drone's answer.
///
/// # Errors
/// When the arguments are bad, the ground cannot be reached, or no answer comes in time.
pub fn run(args: &CmdArgs) -> anyhow::Result<Ack> {
    let op = parse_op(&args.op).map_err(anyhow::Error::msg)?;
    let target =
        NodeName::new(args.target.as_str()).map_err(|e| anyhow::anyhow!("--target: {e}"))?;
    let name = if args.tls.is_some() {
        NodeName::new(args.node.as_str()).map_err(|e| anyhow::anyhow!("--node: {e}"))?
    } else {
        NodeName::new(format!("operator-{}", std::process::id())).expect("short valid name")
    };
    let mut session = SessionConfig::new(Role::Observer, name, crate::record::new_stream_id());
    if let Some(path) = &args.key_file {
        session.key = Some(PreSharedKey::from_file(path)?);
    }
    let mut config = ClientConfig::new(session, args.connect.clone());
    if let Some(dir) = &args.tls {
        config.tls = Some(crate::ca::client_tls(dir, &args.node, &args.ground_name)?);
    }
    config.backoff = Backoff {
        initial: Duration::from_millis(200),
        max: Duration::from_secs(1),
        jitter: 0.2,
    };
    let client = Client::spawn(config)?;
    let deadline = Instant::now() + Duration::from_secs_f64(args.timeout);
    let id = 1;
    let mut sent = false;
    let mut last_problem = None;
    loop {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            client.close();
            anyhow::bail!(
                "no answer from {} within {} s{}",
                args.connect,
                args.timeout,
                last_problem.map_or(String::new(), |p| format!(" (last problem: {p})"))
            );
        };
        match client.events().recv_timeout(left) {
            Ok(ClientEvent::Connected { .. }) if !sent => {
                sent = client.send(Message::Cmd(Cmd {
                    id,
                    target: Some(target.clone()),
                    op: op.clone(),
                }));
            }
            Ok(ClientEvent::Ack(ack)) if ack.id == id => {
                client.close();
                return Ok(ack);
            }
            Ok(ClientEvent::Disconnected { cause, .. }) => last_problem = Some(cause.to_string()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn ops_parse() {
        assert_eq!(
            parse_op(&words("tune 406.028e6")),
            Ok(CmdOp::Tune {
                frequency_hz: FrequencyHz::new(406_028_000).unwrap()
            })
        );
        assert_eq!(
            parse_op(&words("gain 20.5")),
            Ok(CmdOp::Gain { gain_db: 20.5 })
        );
        assert_eq!(parse_op(&words("gain auto")), Ok(CmdOp::GainAuto));
        assert_eq!(parse_op(&words("rate 5")), Ok(CmdOp::Rate { hz: 5.0 }));
        assert_eq!(
            parse_op(&words("stream off")),
            Ok(CmdOp::Stream { on: false })
        );
        for bad in [
            "tune",
            "tune x",
            "gain",
            "rate -1",
            "stream maybe",
            "fly home",
        ] {
            assert!(parse_op(&words(bad)).is_err(), "{bad}");
        }
    }
}
