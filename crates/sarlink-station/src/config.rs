//! Layered configuration shared by both binaries: every option comes from the command
//! line, else the environment (`SARLINK_<KEY>`), else a TOML file (`--config`), else its
//! default. A bad value is an error that names the key and where it came from.

mod drone;
mod ground;

pub use drone::{DEFAULT_CONNECT, DEFAULT_FREQUENCY_HZ, DroneArgs, DroneSettings};
pub use ground::{DEFAULT_LISTEN, GroundArgs, GroundSettings};

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The HTTP endpoint's address: `http` from the first layer that has it, else the older
/// name `metrics` (kept as an alias), else none.
fn http_address(layers: &Layers, cli: Option<String>) -> Result<Option<String>, ConfigError> {
    let parse = |s: &str| crate::units::parse_host_port(s).map(Some);
    match layers.get_with("http", cli, || None, parse)? {
        (Some(addr), _) => Ok(Some(addr)),
        (None, _) => Ok(layers.get_with("metrics", None, || None, parse)?.0),
    }
}

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The command line (`--key`).
    Cli,
    /// An environment variable.
    Env(String),
    /// The configuration file.
    File(PathBuf),
    /// The built-in default.
    Default,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Cli => f.write_str("command line"),
            Origin::Env(var) => write!(f, "environment variable {var}"),
            Origin::File(path) => write!(f, "config file {}", path.display()),
            Origin::Default => f.write_str("default"),
        }
    }
}

/// A configuration value that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The value does not parse.
    #[error("invalid value {value:?} for `{key}` (from {origin}): {reason}")]
    Invalid {
        /// The option's key, e.g. `rate`.
        key: String,
        /// The text given.
        value: String,
        /// Where it came from.
        origin: Origin,
        /// Why it was refused.
        reason: String,
    },
    /// The configuration file cannot be read or parsed.
    #[error("config file {path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The file has a key no option uses (likely a typo).
    #[error("config file {path}: unknown key `{key}`")]
    UnknownKey {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
    },
}

/// The environment and file layers; the command-line layer is passed per lookup.
#[derive(Debug, Default)]
pub struct Layers {
    env: BTreeMap<String, String>,
    file: BTreeMap<String, String>,
    file_path: Option<PathBuf>,
}

impl Layers {
    /// Reads the process environment and, when given, the TOML file.
    ///
    /// # Errors
    /// When the file cannot be read or is not a flat TOML table of scalars and arrays.
    pub fn load(config_file: Option<&Path>) -> Result<Self, ConfigError> {
        let env = std::env::vars()
            .filter(|(k, _)| k.starts_with("SARLINK_"))
            .collect();
        let mut layers = Layers {
            env,
            ..Layers::default()
        };
        if let Some(path) = config_file {
            let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
                path: path.to_owned(),
                reason: e.to_string(),
            })?;
            layers = layers.with_file_text(path, &text)?;
        }
        Ok(layers)
    }

    /// Layers from explicit parts (tests).
    pub fn from_parts(
        env: &[(&str, &str)],
        file: Option<(&Path, &str)>,
    ) -> Result<Self, ConfigError> {
        let env = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let layers = Layers {
            env,
            ..Layers::default()
        };
        match file {
            Some((path, text)) => layers.with_file_text(path, text),
            None => Ok(layers),
        }
    }

    fn with_file_text(mut self, path: &Path, text: &str) -> Result<Self, ConfigError> {
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::File {
                path: path.to_owned(),
                reason: e.message().to_owned(),
            })?;
        for (key, value) in table {
            let text = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                other => {
                    return Err(ConfigError::File {
                        path: path.to_owned(),
                        reason: format!(
                            "key `{key}` must be a string, number or boolean, not {}",
                            other.type_str()
                        ),
                    });
                }
            };
            self.file.insert(key.replace('-', "_"), text);
        }
        self.file_path = Some(path.to_owned());
        Ok(self)
    }

    /// The resolved options as TOML that `--config` accepts unchanged: one `key = "value"`
    /// line per option with where the value came from as a comment, and a commented-out
    /// line for an option that is unset. `options` is (key, value given on the command
    /// line, default text or `None` for unset).
    pub fn to_toml(&self, options: &[(&str, Option<String>, Option<&str>)]) -> String {
        let mut out = String::new();
        for (key, cli, default) in options {
            match (self.raw(key, cli.clone()), default) {
                (Some((value, origin)), _) => {
                    let v = toml::Value::String(value);
                    out.push_str(&format!("{key} = {v}  # from {origin}\n"));
                }
                (None, Some(d)) => {
                    let v = toml::Value::String((*d).to_owned());
                    out.push_str(&format!("{key} = {v}  # default\n"));
                }
                (None, None) => out.push_str(&format!("# {key} is not set (default: none)\n")),
            }
        }
        out
    }

    /// Fails on file keys that are not in `known` (so a typo is not silently ignored).
    ///
    /// # Errors
    /// [`ConfigError::UnknownKey`] for the first unknown key.
    pub fn check_file_keys(&self, known: &[&str]) -> Result<(), ConfigError> {
        for key in self.file.keys() {
            if !known.contains(&key.as_str()) {
                return Err(ConfigError::UnknownKey {
                    path: self.file_path.clone().unwrap_or_default(),
                    key: key.clone(),
                });
            }
        }
        Ok(())
    }

    /// The raw text for `key` from the first layer that has it, with its origin. `key` is
    /// the option's name with `_` (`compression_threshold`); its variable is
    /// `SARLINK_COMPRESSION_THRESHOLD`.
    pub fn raw(&self, key: &str, cli: Option<String>) -> Option<(String, Origin)> {
        if let Some(v) = cli {
            return Some((v, Origin::Cli));
        }
        let var = format!("SARLINK_{}", key.to_ascii_uppercase());
        if let Some(v) = self.env.get(&var) {
            return Some((v.clone(), Origin::Env(var)));
        }
        let path = self.file_path.clone().unwrap_or_default();
        self.file.get(key).map(|v| (v.clone(), Origin::File(path)))
    }

    /// Resolves `key` with `parse`, falling back to `default`.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the key and its origin when `parse` fails.
    pub fn get_with<T>(
        &self,
        key: &str,
        cli: Option<String>,
        default: impl FnOnce() -> T,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<(T, Origin), ConfigError> {
        match self.raw(key, cli) {
            None => Ok((default(), Origin::Default)),
            Some((value, origin)) => match parse(value.trim()) {
                Ok(v) => Ok((v, origin)),
                Err(reason) => Err(ConfigError::Invalid {
                    key: key.to_owned(),
                    value,
                    origin,
                    reason,
                }),
            },
        }
    }

    /// Resolves `key` through `FromStr`, falling back to `default`.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the key and its origin.
    pub fn get<T: FromStr>(
        &self,
        key: &str,
        cli: Option<String>,
        default: T,
    ) -> Result<T, ConfigError>
    where
        T::Err: fmt::Display,
    {
        self.get_with(
            key,
            cli,
            || default,
            |s| s.parse::<T>().map_err(|e| e.to_string()),
        )
        .map(|(v, _)| v)
    }

    /// Resolves an optional `key` (no default).
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the key and its origin.
    pub fn get_opt<T: FromStr>(
        &self,
        key: &str,
        cli: Option<String>,
    ) -> Result<Option<T>, ConfigError>
    where
        T::Err: fmt::Display,
    {
        self.get_with(
            key,
            cli,
            || None,
            |s| s.parse::<T>().map(Some).map_err(|e| e.to_string()),
        )
        .map(|(v, _)| v)
    }
}

/// The receiver options both programs resolve the same way: sample rate, gain, ppm and
/// bias tee (the source and the frequency differ in their defaults).
pub(crate) struct Radio {
    pub(crate) sample_rate_hz: u32,
    pub(crate) sample_rate_given: bool,
    pub(crate) gain: sarlink_sdr::Gain,
    pub(crate) ppm: Option<i32>,
    pub(crate) bias_tee: bool,
}

/// Resolves [`Radio`] from the command line's `sample_rate`, `gain`, `ppm` and `bias_tee`
/// and the other layers.
pub(crate) fn radio(
    layers: &Layers,
    sample_rate: Option<String>,
    gain: Option<String>,
    ppm: Option<String>,
    bias_tee: bool,
) -> Result<Radio, ConfigError> {
    let sample_rate_given = layers.raw("sample_rate", sample_rate.clone()).is_some();
    Ok(Radio {
        sample_rate_hz: layers
            .get_with(
                "sample_rate",
                sample_rate,
                || 1_024_000,
                crate::units::parse_sample_rate,
            )?
            .0,
        sample_rate_given,
        gain: layers
            .get_with(
                "gain",
                gain,
                || sarlink_sdr::Gain::Auto,
                crate::units::parse_gain,
            )?
            .0,
        ppm: layers
            .get_with(
                "ppm",
                ppm,
                || None,
                |s| crate::units::parse_ppm(s).map(Some),
            )?
            .0,
        bias_tee: bias_tee || layers.get("bias_tee", None, false)?,
    })
}

/// The command-line options of resource monitoring and degradation, the same for both
/// programs (each also comes from the environment and the configuration file).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ResourceArgs {
    /// CPU or memory percentage that counts as high pressure: 5 samples in a row shed
    /// priority classes 4-6 [default: 85]
    #[arg(long, value_name = "PERCENT")]
    pub high_pressure: Option<String>,
    /// Recovery: CPU below this for 10 samples restores shed features [default: 70]
    #[arg(long, value_name = "PERCENT")]
    pub recovery_cpu: Option<String>,
    /// Recovery: memory below this for 10 samples restores shed features [default: 75]
    #[arg(long, value_name = "PERCENT")]
    pub recovery_memory: Option<String>,
    /// Thermal steps Warm, Hot, Critical in degrees Celsius, ascending [default: 70,80,85]
    #[arg(long, value_name = "C,C,C")]
    pub thermal_steps: Option<String>,
    /// How often to sample whole-machine CPU, memory and SoC temperature, step the
    /// degradation controller and evaluate the resource alerts, e.g. 500ms [default: 1s]
    #[arg(long, value_name = "INTERVAL")]
    pub resource_interval: Option<String>,
    /// Read `stat` and `meminfo` under this directory instead of /proc (tests, containers)
    /// [default: /proc]
    #[arg(long, value_name = "DIR")]
    pub proc_root: Option<String>,
    /// Read `class/thermal/thermal_zone*` under this directory instead of /sys [default: /sys]
    #[arg(long, value_name = "DIR")]
    pub sys_root: Option<String>,
}

impl ResourceArgs {
    /// The `--print-config` entries: key, command-line value, default.
    pub(crate) fn toml_entries(&self) -> Vec<(&'static str, Option<String>, Option<&'static str>)> {
        vec![
            ("high_pressure", self.high_pressure.clone(), Some("85")),
            ("recovery_cpu", self.recovery_cpu.clone(), Some("70")),
            ("recovery_memory", self.recovery_memory.clone(), Some("75")),
            (
                "thermal_steps",
                self.thermal_steps.clone(),
                Some("70,80,85"),
            ),
            (
                "resource_interval",
                self.resource_interval.clone(),
                Some("1s"),
            ),
            ("proc_root", self.proc_root.clone(), Some("/proc")),
            ("sys_root", self.sys_root.clone(), Some("/sys")),
        ]
    }
}

/// Resolves `resource_interval`, `proc_root`, `sys_root` and the degradation thresholds
/// (`high_pressure`, `recovery_cpu`, `recovery_memory`, `thermal_steps`), shared by both
/// binaries.
pub(crate) fn resource_settings(
    layers: &Layers,
    args: &ResourceArgs,
) -> Result<crate::monitoring::ResourceSettings, ConfigError> {
    let ResourceArgs {
        high_pressure: high,
        recovery_cpu,
        recovery_memory,
        thermal_steps: thermal,
        resource_interval: interval,
        proc_root,
        sys_root,
    } = args.clone();
    let defaults = crate::monitoring::ResourceSettings::default();
    let interval = layers
        .get_with(
            "resource_interval",
            interval,
            || defaults.interval,
            |s| {
                let d = crate::units::parse_interval(s)?;
                if d < std::time::Duration::from_millis(100) {
                    Err("must be at least 100ms (CPU load is a difference of ticks)".to_owned())
                } else {
                    Ok(d)
                }
            },
        )?
        .0;
    let percent = |s: &str| -> Result<f64, String> {
        match s.trim_end_matches('%').trim().parse::<f64>() {
            Ok(p) if (1.0..=100.0).contains(&p) => Ok(p),
            _ => Err("must be a percentage from 1 to 100".to_owned()),
        }
    };
    let mut degradation = defaults.degradation;
    degradation.high_pressure_percent = layers
        .get_with(
            "high_pressure",
            high,
            || degradation.high_pressure_percent,
            percent,
        )?
        .0;
    let (cpu, cpu_origin) = layers.get_with(
        "recovery_cpu",
        recovery_cpu,
        || degradation.recovery_cpu_percent,
        percent,
    )?;
    let (memory, memory_origin) = layers.get_with(
        "recovery_memory",
        recovery_memory,
        || degradation.recovery_memory_percent,
        percent,
    )?;
    degradation.recovery_cpu_percent = cpu;
    degradation.recovery_memory_percent = memory;
    degradation.thermal_steps_c = layers
        .get_with(
            "thermal_steps",
            thermal,
            || degradation.thermal_steps_c,
            |s| {
                let steps: Vec<f64> = s
                    .split(',')
                    .map(|w| w.trim().trim_end_matches('C').trim().parse::<f64>())
                    .collect::<Result<_, _>>()
                    .map_err(|_| "three temperatures, e.g. 70,80,85".to_owned())?;
                match steps[..] {
                    [a, b, c] if a.is_finite() && a < b && b < c && c < 150.0 => Ok([a, b, c]),
                    _ => Err("three ascending temperatures below 150, e.g. 70,80,85".to_owned()),
                }
            },
        )?
        .0;
    for (key, recovery, origin) in [
        ("recovery_cpu", cpu, cpu_origin),
        ("recovery_memory", memory, memory_origin),
    ] {
        if recovery >= degradation.high_pressure_percent {
            return Err(ConfigError::Invalid {
                key: key.to_owned(),
                value: recovery.to_string(),
                origin,
                reason: format!(
                    "must be below high_pressure ({}): there would be no hysteresis",
                    degradation.high_pressure_percent
                ),
            });
        }
    }
    Ok(crate::monitoring::ResourceSettings {
        interval,
        proc_root: layers.get("proc_root", proc_root, defaults.proc_root)?,
        sys_root: layers.get("sys_root", sys_root, defaults.sys_root)?,
        degradation,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layers(env: &[(&str, &str)], file: Option<&str>) -> Layers {
        Layers::from_parts(env, file.map(|t| (Path::new("/etc/sarlink.toml"), t))).unwrap()
    }

    #[test]
    fn precedence_is_cli_then_env_then_file_then_default() {
        let all = layers(&[("SARLINK_RATE", "5")], Some("rate = 2"));
        assert_eq!(all.get::<f32>("rate", Some("7".into()), 10.0), Ok(7.0));
        assert_eq!(all.get::<f32>("rate", None, 10.0), Ok(5.0));
        let file_only = layers(&[], Some("rate = 2"));
        assert_eq!(file_only.get::<f32>("rate", None, 10.0), Ok(2.0));
        assert_eq!(layers(&[], None).get::<f32>("rate", None, 10.0), Ok(10.0));
    }

    #[test]
    fn bad_values_name_the_key_and_origin() {
        let l = layers(
            &[("SARLINK_RATE", "fast")],
            Some("compression-threshold = \"big\""),
        );
        let err = l.get::<f32>("rate", None, 10.0).unwrap_err();
        assert!(
            matches!(&err, ConfigError::Invalid { key, origin: Origin::Env(var), .. } if key == "rate" && var == "SARLINK_RATE")
        );
        assert!(err.to_string().contains("SARLINK_RATE"), "{err}");
        let err = l
            .get::<usize>("compression_threshold", None, 1024)
            .unwrap_err();
        assert!(
            err.to_string().contains("compression_threshold")
                && err.to_string().contains("/etc/sarlink.toml"),
            "{err}"
        );
        let err = l
            .get::<usize>("compression_threshold", Some("-1".into()), 1024)
            .unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Invalid {
                origin: Origin::Cli,
                ..
            }
        ));
    }

    #[test]
    fn unknown_file_keys_and_bad_files_are_errors() {
        let l = layers(&[], Some("rat = 5"));
        assert_eq!(
            l.check_file_keys(&["rate"]),
            Err(ConfigError::UnknownKey {
                path: "/etc/sarlink.toml".into(),
                key: "rat".into()
            })
        );
        assert!(Layers::from_parts(&[], Some((Path::new("x.toml"), "rate = [1, 2]"))).is_err());
        assert!(Layers::from_parts(&[], Some((Path::new("x.toml"), "rate = "))).is_err());
    }

    #[test]
    fn http_takes_the_old_name_metrics_as_an_alias_and_http_wins() {
        use clap::Parser as _;
        let args =
            DroneArgs::try_parse_from(["sarlink-drone", "--metrics", "127.0.0.1:9100"]).unwrap();
        let s = DroneSettings::resolve(&args, &layers(&[], None)).unwrap();
        assert_eq!(s.http.as_deref(), Some("127.0.0.1:9100"));
        let none = DroneArgs::default();
        let env = layers(&[("SARLINK_METRICS", "127.0.0.1:9101")], None);
        assert_eq!(
            GroundSettings::resolve(&GroundArgs::default(), &env)
                .unwrap()
                .http
                .as_deref(),
            Some("127.0.0.1:9101")
        );
        let both = layers(
            &[("SARLINK_HTTP", "127.0.0.1:9102")],
            Some("metrics = \"127.0.0.1:9103\""),
        );
        let s = DroneSettings::resolve(&none, &both).unwrap();
        assert_eq!(s.http.as_deref(), Some("127.0.0.1:9102"));
        let bad = layers(&[("SARLINK_HTTP", "nowhere")], None);
        assert!(DroneSettings::resolve(&none, &bad).is_err());
        assert_eq!(
            DroneSettings::resolve(&none, &layers(&[], None))
                .unwrap()
                .http,
            None
        );
    }
}
