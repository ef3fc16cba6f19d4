//! The graceful-degradation controller driven deterministically: scenarios for each rule and
//! properties over arbitrary reading sequences.

use std::time::Duration;

use proptest::prelude::*;
use sarlink_monitor::degradation::*;
use sarlink_monitor::{Celsius, Percent};

struct Fixture {
    c: DegradationController,
    ids: Vec<FeatureId>,
    now: Duration,
}

/// One feature per class 1-6 (ids 0-5), plus a critical class-6 feature (id 6).
fn fixture() -> Fixture {
    let mut c = DegradationController::new(ControllerConfig::default());
    let mut ids: Vec<FeatureId> = Priority::ALL
        .iter()
        .map(|&p| {
            c.register(
                &format!("class{}", p.class()),
                p,
                p == Priority::CriticalSafety,
            )
            .unwrap()
        })
        .collect();
    ids.push(
        c.register("flight log", Priority::Convenience, true)
            .unwrap(),
    );
    Fixture {
        c,
        ids,
        now: Duration::ZERO,
    }
}

fn readings(cpu: f64, mem: f64, temp: Option<f64>) -> Readings {
    Readings {
        cpu: Some(Percent::new(cpu).unwrap()),
        memory: Some(Percent::new(mem).unwrap()),
        temperature: temp.map(|t| Celsius::new(t).unwrap()),
    }
}

impl Fixture {
    fn step(&mut self, r: Readings) -> Vec<Event> {
        self.now += Duration::from_secs(1);
        self.c.step(self.now, r).to_vec()
    }

    /// Steps `n` times and expects no events.
    fn quiet(&mut self, n: usize, r: Readings) {
        for i in 0..n {
            assert_eq!(self.step(r), [], "step {i} of {n}");
        }
    }

    fn set(&self, indices: &[usize]) -> FeatureSet {
        indices
            .iter()
            .fold(FeatureSet::EMPTY, |s, &i| s.with(self.ids[i]))
    }

    fn event(&self, cause: Cause, action: Action) -> Event {
        Event {
            at: self.now,
            cause,
            action,
        }
    }
}

#[test]
fn high_pressure_needs_five_consecutive_samples_and_sheds_classes_4_to_6() {
    let mut f = fixture();
    let busy = readings(86.0, 20.0, Some(50.0));
    f.quiet(4, busy);
    f.quiet(1, readings(84.9, 84.9, Some(50.0))); // breaks the run
    f.quiet(4, readings(20.0, 85.0, Some(50.0))); // memory alone counts too
    let events = f.step(busy);
    assert_eq!(
        events,
        [f.event(Cause::HighPressure, Action::Disable(f.set(&[3, 4, 5])))]
    );
    assert_eq!(f.c.shed_from(), Some(Priority::Enhanced));
    // The critical class-6 feature and classes 1-3 keep running.
    for i in [0, 1, 2, 6] {
        assert!(f.c.is_enabled(f.ids[i]), "feature {i}");
    }
    f.quiet(20, busy); // already shed: no repeated events
}

#[test]
fn extreme_pressure_sheds_class_3_at_once_and_never_classes_1_2() {
    let mut f = fixture();
    let events = f.step(readings(95.0, 90.0, Some(86.0)));
    assert_eq!(
        events,
        [
            f.event(
                Cause::Thermal(ThermalLevel::Critical),
                Action::SetReportRate { hz: 1 }
            ),
            f.event(
                Cause::ExtremePressure,
                Action::Disable(f.set(&[2, 3, 4, 5]))
            ),
        ]
    );
    assert_eq!(f.c.disabled(), f.set(&[2, 3, 4, 5]));
    // Unknown temperature never counts as extreme.
    let mut g = fixture();
    let r = Readings {
        temperature: None,
        ..readings(95.0, 90.0, None)
    };
    assert_eq!(g.step(r), []);
}

#[test]
fn recovery_starts_after_ten_calm_samples_then_one_class_per_three() {
    let mut f = fixture();
    let busy = readings(90.0, 50.0, None);
    let calm = readings(69.9, 74.9, None);
    f.quiet(4, busy);
    assert_eq!(f.step(busy).len(), 1);

    f.quiet(9, calm);
    f.quiet(1, readings(70.0, 10.0, None)); // not calm: the run restarts
    f.quiet(5, calm);
    f.quiet(1, Readings { cpu: None, ..calm }); // unknown CPU is not calm either
    f.quiet(9, calm);
    let e = f.step(calm);
    assert_eq!(
        e,
        [f.event(
            Cause::Recovery(Priority::Enhanced),
            Action::Enable(f.set(&[3]))
        )]
    );
    f.quiet(2, calm);
    let e = f.step(calm);
    assert_eq!(
        e,
        [f.event(
            Cause::Recovery(Priority::Optimisation),
            Action::Enable(f.set(&[4]))
        )]
    );
    f.quiet(2, calm);
    let e = f.step(calm);
    assert_eq!(
        e,
        [f.event(
            Cause::Recovery(Priority::Convenience),
            Action::Enable(f.set(&[5]))
        )]
    );
    assert_eq!(f.c.disabled(), FeatureSet::EMPTY);
    assert_eq!(f.c.shed_from(), None);
    f.quiet(30, calm);
}

#[test]
fn pressure_during_recovery_sheds_again() {
    let mut f = fixture();
    let busy = readings(90.0, 50.0, None);
    let calm = readings(10.0, 10.0, None);
    f.quiet(4, busy);
    f.step(busy);
    f.quiet(9, calm);
    assert_eq!(f.step(calm).len(), 1); // class 4 back
    f.quiet(4, busy);
    let e = f.step(busy);
    assert_eq!(
        e,
        [f.event(Cause::HighPressure, Action::Disable(f.set(&[3])))]
    );
    assert_eq!(f.c.disabled(), f.set(&[3, 4, 5]));
}

#[test]
fn thermal_steps_set_report_rate_and_shed_then_cool_down_with_hysteresis() {
    let mut f = fixture();
    let at = |t: f64| readings(30.0, 30.0, Some(t));
    assert_eq!(f.c.report_rate_hz(), 10);
    f.quiet(3, at(69.9));
    let e = f.step(at(70.0));
    assert_eq!(
        e,
        [f.event(
            Cause::Thermal(ThermalLevel::Warm),
            Action::SetReportRate { hz: 5 }
        )]
    );
    let e = f.step(at(80.0));
    assert_eq!(
        e,
        [
            f.event(
                Cause::Thermal(ThermalLevel::Hot),
                Action::SetReportRate { hz: 2 }
            ),
            f.event(
                Cause::Thermal(ThermalLevel::Hot),
                Action::Disable(f.set(&[4, 5]))
            ),
        ]
    );
    let e = f.step(at(85.0));
    assert_eq!(
        e,
        [
            f.event(
                Cause::Thermal(ThermalLevel::Critical),
                Action::SetReportRate { hz: 1 }
            ),
            f.event(
                Cause::Thermal(ThermalLevel::Critical),
                Action::Disable(f.set(&[3]))
            ),
        ]
    );
    assert_eq!(f.c.report_rate_hz(), 1);
    // 83 C is within the 3 C hysteresis of the 85 C step: nothing changes, even though
    // CPU and memory have long been calm.
    f.quiet(30, at(83.0));
    f.quiet(9, at(81.0));
    let e = f.step(at(81.0));
    assert_eq!(
        e,
        [
            f.event(
                Cause::Thermal(ThermalLevel::Hot),
                Action::SetReportRate { hz: 2 }
            ),
            f.event(
                Cause::Recovery(Priority::Enhanced),
                Action::Enable(f.set(&[3]))
            ),
        ]
    );
    // Hot still holds classes 5-6 off until the level falls.
    f.quiet(9, at(60.0));
    let e = f.step(at(60.0));
    assert_eq!(
        e,
        [
            f.event(
                Cause::Thermal(ThermalLevel::Warm),
                Action::SetReportRate { hz: 5 }
            ),
            f.event(
                Cause::Recovery(Priority::Optimisation),
                Action::Enable(f.set(&[4]))
            ),
        ]
    );
    // Warm sheds nothing: class 6 follows 3 calm samples later, the rate stays at 5 Hz.
    f.quiet(2, at(60.0));
    let e = f.step(at(60.0));
    assert_eq!(
        e,
        [f.event(
            Cause::Recovery(Priority::Convenience),
            Action::Enable(f.set(&[5]))
        )]
    );
    f.quiet(6, at(60.0));
    let e = f.step(at(60.0));
    assert_eq!(
        e,
        [f.event(
            Cause::Thermal(ThermalLevel::Normal),
            Action::SetReportRate { hz: 10 }
        )]
    );
    assert_eq!(f.c.thermal_level(), ThermalLevel::Normal);
}

#[test]
fn thermal_flapping_at_a_step_changes_the_rate_once() {
    let mut f = fixture();
    let mut changes = 0;
    for i in 0..100 {
        let t = if i % 2 == 0 { 69.5 } else { 70.5 };
        changes += f.step(readings(30.0, 30.0, Some(t))).len();
    }
    assert_eq!(changes, 1);
    assert_eq!(f.c.report_rate_hz(), 5);
}

/// A run of samples in one regime: (regime, length, seeds).
fn runs() -> impl Strategy<Value = Vec<(u8, usize, u8, u8, u8)>> {
    prop::collection::vec(
        (0u8..5, 1usize..25, any::<u8>(), any::<u8>(), any::<u8>()),
        0..30,
    )
}

fn expand(runs: &[(u8, usize, u8, u8, u8)]) -> Vec<Readings> {
    let mut out = Vec::new();
    for &(regime, len, a, b, c) in runs {
        for i in 0..len {
            let j = |s: u8, m: usize| (usize::from(s) + i * 7) % m;
            let (cpu, mem, temp) = match regime {
                0 => (
                    j(a, 70) as f64,
                    j(b, 75) as f64,
                    Some(20.0 + j(c, 50) as f64),
                ),
                1 => (
                    85.0 + j(a, 16) as f64,
                    j(b, 101) as f64,
                    Some(40.0 + j(c, 40) as f64),
                ),
                2 => (
                    90.0 + j(a, 11) as f64,
                    88.0 + j(b, 13) as f64,
                    Some(85.0 + j(c, 20) as f64),
                ),
                3 => (
                    j(a, 101) as f64,
                    j(b, 101) as f64,
                    Some(60.0 + j(c, 35) as f64),
                ),
                _ => (j(a, 101) as f64, j(b, 101) as f64, None),
            };
            let unknown = regime == 4 && j(c, 5) == 0;
            out.push(Readings {
                cpu: (!unknown).then(|| Percent::new(cpu).unwrap()),
                memory: Some(Percent::new(mem).unwrap()),
                temperature: temp.map(|t| Celsius::new(t).unwrap()),
            });
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn controller_invariants(
        features in prop::collection::vec((1u8..=6, any::<bool>()), 1..20),
        runs in runs(),
    ) {
        let config = ControllerConfig::default();
        let mut c = DegradationController::new(config);
        let ids: Vec<FeatureId> = features
            .iter()
            .enumerate()
            .map(|(i, &(class, critical))| {
                c.register(&format!("f{i}"), Priority::from_class(class).unwrap(), critical).unwrap()
            })
            .collect();
        let protected: Vec<bool> = features.iter().map(|&(class, critical)| critical || class <= 2).collect();
        let class_of = |id: FeatureId| features[id.index()].0;
        let calm = |r: &Readings| {
            r.cpu.is_some_and(|v| v.value() < 70.0) && r.memory.is_some_and(|v| v.value() < 75.0)
        };

        let readings = expand(&runs);
        let mut model = FeatureSet::EMPTY;
        let mut rate = 10;
        for (n, r) in readings.iter().enumerate() {
            let events = c.step(Duration::from_secs(n as u64), *r).to_vec();
            let enables: Vec<FeatureSet> = events.iter().filter_map(|e| match e.action {
                Action::Enable(s) => Some(s),
                _ => None,
            }).collect();
            let disabled_now = events.iter().any(|e| matches!(e.action, Action::Disable(_)));
            prop_assert!(enables.len() <= 1, "two enables in one step: {events:?}");
            if let Some(set) = enables.first() {
                prop_assert!(!disabled_now, "enable and disable in one step: {events:?}");
                let classes: Vec<u8> = set.iter().map(class_of).collect();
                prop_assert!(classes.windows(2).all(|w| w[0] == w[1]), "more than one class: {classes:?}");
                prop_assert!(n + 1 >= 10 && readings[n + 1 - 10..=n].iter().all(calm),
                    "enable without 10 calm samples at {n}");
            }
            for e in &events {
                prop_assert_eq!(e.at, Duration::from_secs(n as u64));
                match e.action {
                    Action::Disable(s) => {
                        prop_assert!(s.iter().all(|id| !protected[id.index()]), "{s:?}");
                        prop_assert_eq!(s.difference(model), s, "disabling twice");
                        model = model.union(s);
                    }
                    Action::Enable(s) => {
                        prop_assert_eq!(model.difference(s).union(s), model, "enabling twice");
                        model = model.difference(s);
                    }
                    Action::SetReportRate { hz } => {
                        prop_assert!(config.report_rates_hz.contains(&hz));
                        rate = hz;
                    }
                }
            }
            prop_assert_eq!(model, c.disabled());
            prop_assert_eq!(rate, c.report_rate_hz());
            // Shedding is by class: a disabled class implies every less important
            // non-critical feature is disabled too.
            let disabled = c.disabled();
            for &a in &ids {
                for &b in &ids {
                    if disabled.contains(a) && class_of(b) > class_of(a) && !protected[b.index()] {
                        prop_assert!(disabled.contains(b));
                    }
                }
                prop_assert!(!(protected[a.index()] && disabled.contains(a)));
            }
        }
    }
}
