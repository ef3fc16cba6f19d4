//! What the drone and the ground share around their degradation controllers and alerts:
//! where resource readings come from ([`ResourceSettings`]), how readings read in a log
//! line ([`readings_text`]), and the gauges that show the level, the features and the
//! active alerts on `/metrics` ([`MonitorMetrics`]).
//!
//! The decisions are made in the sans-IO cores ([`crate::drone`], [`crate::ground`]); this
//! module only reads files (through [`ResourceSampler`]) and sets gauges.

use std::path::PathBuf;
use std::time::Duration;

use sarlink_monitor::degradation::{ControllerConfig, DegradationController, FeatureId, Readings};
use sarlink_monitor::metrics::{Gauge, RegisterError, Registry};
use sarlink_monitor::resources::ResourceSampler;
use sarlink_monitor::thresholds::{Level, MetricKind};

/// Where and how often resources are sampled, and the thresholds the degradation
/// controller applies to them.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceSettings {
    /// How often to sample (and step the degradation controller and the resource alerts).
    /// Default 1 s.
    pub interval: Duration,
    /// The root `/proc` files are read under (`stat`, `meminfo`, `self/...`). Default
    /// `/proc`.
    pub proc_root: PathBuf,
    /// The root `/sys` files are read under (`class/thermal/thermal_zone*`). Default `/sys`.
    pub sys_root: PathBuf,
    /// The degradation controller's thresholds. Default [`ControllerConfig::default`].
    pub degradation: ControllerConfig,
}

impl Default for ResourceSettings {
    fn default() -> Self {
        ResourceSettings {
            interval: Duration::from_secs(1),
            proc_root: PathBuf::from("/proc"),
            sys_root: PathBuf::from("/sys"),
            degradation: ControllerConfig::default(),
        }
    }
}

impl ResourceSettings {
    /// A sampler over these roots.
    pub fn sampler(&self) -> ResourceSampler {
        ResourceSampler::with_roots(&self.proc_root, &self.sys_root)
    }
}

/// `cpu 97.5 %, memory 41.2 %, temperature unknown`: the readings for a log line, unknown
/// ones said so (never 0).
pub fn readings_text(r: &Readings) -> String {
    let pct = |p: Option<sarlink_monitor::Percent>| {
        p.map_or_else(|| "unknown".to_owned(), |p| format!("{:.1} %", p.value()))
    };
    format!(
        "cpu {}, memory {}, temperature {}",
        pct(r.cpu),
        pct(r.memory),
        r.temperature
            .map_or_else(|| "unknown".to_owned(), |c| format!("{:.1} C", c.value()))
    )
}

/// The name of an alert severity: `warning`, `critical` or `cleared`.
pub fn severity_name(severity: sarlink_monitor::thresholds::Severity) -> &'static str {
    use sarlink_monitor::thresholds::Severity as S;
    match severity {
        S::Warning => "warning",
        S::Critical => "critical",
        S::Cleared => "cleared",
    }
}

/// `shed fsync-interval, mqtt-status-rate (shedding-4; cpu 97.0 %, ...)`: a degradation
/// change for humans (dashboards, MQTT).
pub fn degradation_text(
    event: &sarlink_monitor::degradation::Event,
    features: &[&str],
    level: &str,
    readings: &Readings,
) -> String {
    use sarlink_monitor::degradation::Action;
    let what = match event.action {
        Action::Disable(_) => format!("shed {}", features.join(", ")),
        Action::Enable(_) => format!("restored {}", features.join(", ")),
        Action::SetReportRate { .. } => format!("thermal level {:?}", event.cause).to_lowercase(),
    };
    format!("{what} ({level}; {})", readings_text(readings))
}

/// The name of an alert level: `warning`, `critical` or `cleared`.
pub fn level_name(level: Level) -> &'static str {
    match level {
        Level::Normal => "cleared",
        Level::Warning => "warning",
        Level::Critical => "critical",
    }
}

/// The gauges of one node's degradation and alerts:
/// - `sarlink_degradation_level`: 0 normal, else the most important class shed (3-6);
/// - `sarlink_feature_enabled{feature}`: 1 while the feature runs, 0 while shed;
/// - `sarlink_alerts_active{kind,severity}`: 1 while an alert of that kind is in force at
///   that severity (`warning`, `critical`);
/// - `sarlink_system_cpu_percent`, `sarlink_system_memory_percent`,
///   `sarlink_soc_temperature_celsius`: the controller's inputs (NaN when unknown).
#[derive(Debug, Clone)]
pub struct MonitorMetrics {
    level: Gauge,
    features: Vec<(FeatureId, Gauge)>,
    alerts: Vec<(MetricKind, Level, Gauge)>,
    cpu: Gauge,
    memory: Gauge,
    temperature: Gauge,
}

impl MonitorMetrics {
    /// Registers the gauges for `controller`'s features in `registry`.
    ///
    /// # Errors
    /// When a name clashes with a metric of another type.
    pub fn new(
        registry: &Registry,
        controller: &DegradationController,
    ) -> Result<MonitorMetrics, RegisterError> {
        let mut features = Vec::new();
        for (id, f) in controller.features() {
            if !f.critical {
                features.push((
                    id,
                    registry.gauge(
                        "sarlink_feature_enabled",
                        "1 while an optional feature runs, 0 while the degradation controller sheds it.",
                        &[("feature", &f.name)],
                    )?,
                ));
            }
        }
        let mut alerts = Vec::new();
        for kind in MetricKind::ALL {
            for level in [Level::Warning, Level::Critical] {
                alerts.push((
                    kind,
                    level,
                    registry.gauge(
                        "sarlink_alerts_active",
                        "1 while an alert of this kind is in force at this severity.",
                        &[("kind", kind.as_str()), ("severity", level_name(level))],
                    )?,
                ));
            }
        }
        let m = MonitorMetrics {
            level: registry.gauge(
                "sarlink_degradation_level",
                "0 when nothing is shed, else the most important priority class shed (3-6).",
                &[],
            )?,
            features,
            alerts,
            cpu: registry.gauge(
                "sarlink_system_cpu_percent",
                "Whole-machine CPU load the degradation controller acts on, percent (NaN when unknown).",
                &[],
            )?,
            memory: registry.gauge(
                "sarlink_system_memory_percent",
                "Whole-machine memory in use (MemTotal - MemAvailable), percent (NaN when unknown).",
                &[],
            )?,
            temperature: registry.gauge(
                "sarlink_soc_temperature_celsius",
                "SoC temperature from /sys/class/thermal, degrees Celsius (NaN when unknown).",
                &[],
            )?,
        };
        m.update(controller, &Readings::default(), std::iter::empty());
        Ok(m)
    }

    /// Sets every gauge from the controller, the latest readings and the active alerts.
    pub fn update(
        &self,
        controller: &DegradationController,
        readings: &Readings,
        active: impl Iterator<Item = (MetricKind, Level)>,
    ) {
        self.level
            .set(controller.shed_from().map_or(0.0, |p| f64::from(p.class())));
        for (id, g) in &self.features {
            g.set(if controller.is_enabled(*id) { 1.0 } else { 0.0 });
        }
        let active: Vec<(MetricKind, Level)> = active.collect();
        for (kind, level, g) in &self.alerts {
            g.set(if active.contains(&(*kind, *level)) {
                1.0
            } else {
                0.0
            });
        }
        self.cpu.set(
            readings
                .cpu
                .map_or(f64::NAN, sarlink_monitor::Percent::value),
        );
        self.memory.set(
            readings
                .memory
                .map_or(f64::NAN, sarlink_monitor::Percent::value),
        );
        self.temperature.set(
            readings
                .temperature
                .map_or(f64::NAN, sarlink_monitor::Celsius::value),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sarlink_monitor::{Celsius, Percent};

    #[test]
    fn unknown_readings_read_as_unknown_never_zero() {
        assert_eq!(
            readings_text(&Readings::default()),
            "cpu unknown, memory unknown, temperature unknown"
        );
        let r = Readings {
            cpu: Some(Percent::new(97.25).unwrap()),
            memory: None,
            temperature: Some(Celsius::new(71.0).unwrap()),
        };
        assert_eq!(
            readings_text(&r),
            "cpu 97.2 %, memory unknown, temperature 71.0 C"
        );
    }

    #[test]
    fn gauges_follow_the_controller_and_the_alerts() {
        use sarlink_monitor::degradation::{ControllerConfig, Priority};
        let registry = Registry::new();
        let mut c = DegradationController::new(ControllerConfig::default());
        c.register("stream", Priority::CriticalSafety, true)
            .unwrap();
        c.register("status-line", Priority::Convenience, false)
            .unwrap();
        let m = MonitorMetrics::new(&registry, &c).unwrap();
        let busy = Readings {
            cpu: Some(Percent::new(99.0).unwrap()),
            memory: None,
            temperature: None,
        };
        for s in 0..5 {
            c.step(Duration::from_secs(s), busy);
        }
        m.update(&c, &busy, [(MetricKind::Cpu, Level::Critical)].into_iter());
        let text = registry.to_prometheus_text();
        for line in [
            "sarlink_degradation_level 4",
            "sarlink_feature_enabled{feature=\"status-line\"} 0",
            "sarlink_alerts_active{kind=\"cpu\",severity=\"critical\"} 1",
            "sarlink_alerts_active{kind=\"cpu\",severity=\"warning\"} 0",
            "sarlink_system_cpu_percent 99",
            "sarlink_system_memory_percent NaN",
        ] {
            assert!(text.contains(line), "{line} not in\n{text}");
        }
        // Never-shed features get no gauge.
        assert!(!text.contains("feature=\"stream\""));
    }
}
