//! Threshold rules over arbitrary observation sequences.

use std::time::Duration;

use proptest::prelude::*;
use sarlink_monitor::Percent;
use sarlink_monitor::thresholds::*;

fn severity_rank(s: Severity) -> u8 {
    match s {
        Severity::Cleared => 0,
        Severity::Warning => 1,
        Severity::Critical => 2,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn alerts_are_debounced_rate_limited_and_current(
        samples in prop::collection::vec((1u64..4_000, 0u8..=100), 0..300),
    ) {
        let config = ThresholdConfig::default();
        let rule = *config.rule(MetricKind::Cpu);
        let needed = rule.debounce_samples as usize;
        let mut t = Thresholds::new(config);
        let mut now = Duration::ZERO;
        let mut history: Vec<f64> = Vec::new();
        let mut last_alert: Option<Alert> = None;
        let mut level = Level::Normal;
        for (dt_ms, cpu) in samples {
            now += Duration::from_millis(dt_ms);
            let value = f64::from(cpu);
            history.push(value);
            let alert = t.observe(now, Observation::Cpu(Percent::new(value).unwrap()));
            let new_level = t.level(MetricKind::Cpu);
            // A rise is confirmed by `needed` consecutive samples at or above the limit.
            if new_level > level {
                let limit = if new_level == Level::Critical {
                    rule.limits.critical()
                } else {
                    rule.limits.warning()
                };
                prop_assert!(history.len() >= needed);
                prop_assert!(history[history.len() - needed..].iter().all(|&v| v >= limit));
            }
            level = new_level;
            if let Some(a) = alert {
                // Alerts always announce the current level, never a repeat.
                prop_assert_eq!(a.severity, Severity::from(level));
                prop_assert_eq!(a.at, now);
                if let Some(prev) = last_alert {
                    prop_assert_ne!(prev.severity, a.severity);
                    let escalation = severity_rank(a.severity) > severity_rank(prev.severity);
                    prop_assert!(escalation || now - prev.at >= rule.min_notify_interval,
                        "{prev:?} then {a:?}");
                }
                last_alert = Some(a);
            }
        }
    }
}
