//! The Prometheus text exposition parsed back line by line.

use std::time::Duration;

use sarlink_monitor::metrics::Registry;

#[derive(Debug, PartialEq)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

/// Parses one sample line strictly: `name{l="v",...} value`.
fn parse_sample(line: &str) -> Sample {
    let name_end = line.find(['{', ' ']).expect("name ends");
    let name = &line[..name_end];
    assert!(
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    );
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(r) = rest.strip_prefix('{') {
        rest = r;
        loop {
            let eq = rest.find("=\"").expect("label =\"");
            let label = rest[..eq].to_owned();
            assert!(
                label.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "{label}"
            );
            let mut chars = rest[eq + 2..].char_indices();
            let mut value = String::new();
            let end = loop {
                let (i, c) = chars.next().expect("unterminated label value");
                match c {
                    '\\' => match chars.next().expect("escape").1 {
                        '\\' => value.push('\\'),
                        '"' => value.push('"'),
                        'n' => value.push('\n'),
                        other => panic!("bad escape \\{other}"),
                    },
                    '"' => break eq + 2 + i + 1,
                    '\n' => panic!("raw newline"),
                    c => value.push(c),
                }
            };
            labels.push((label, value));
            rest = &rest[end..];
            if let Some(r) = rest.strip_prefix(',') {
                rest = r;
            } else {
                rest = rest.strip_prefix('}').expect("labels close");
                break;
            }
        }
    }
    let value = rest.strip_prefix(' ').expect("space before value");
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().unwrap_or_else(|_| panic!("bad value {v:?}")),
    };
    Sample {
        name: name.to_owned(),
        labels,
        value,
    }
}

fn unescape_help(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('\\') => out.push('\\'),
                Some('n') => out.push('\n'),
                other => panic!("bad help escape {other:?}"),
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[derive(Debug, Default)]
struct Family {
    name: String,
    help: String,
    kind: String,
    samples: Vec<Sample>,
}

/// Groups lines into families, checking HELP then TYPE then samples of that family only.
fn parse(text: &str) -> Vec<Family> {
    assert!(text.ends_with('\n'));
    let mut families: Vec<Family> = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let help = line
            .strip_prefix("# HELP ")
            .unwrap_or_else(|| panic!("expected HELP: {line}"));
        let (name, help) = help.split_once(' ').expect("HELP name text");
        let ty = lines.next().expect("TYPE after HELP");
        let ty = ty
            .strip_prefix(&format!("# TYPE {name} "))
            .expect("TYPE for same name");
        assert!(["counter", "gauge", "summary"].contains(&ty));
        assert!(
            families.iter().all(|f| f.name != name),
            "family {name} repeated"
        );
        let mut family = Family {
            name: name.to_owned(),
            help: unescape_help(help),
            kind: ty.to_owned(),
            samples: Vec::new(),
        };
        while lines.peek().is_some_and(|l| !l.starts_with('#')) {
            let s = parse_sample(lines.next().unwrap());
            let suffix = s.name.strip_prefix(name).expect("sample of this family");
            let allowed: &[&str] = if ty == "summary" {
                &["", "_sum", "_count"]
            } else {
                &[""]
            };
            assert!(allowed.contains(&suffix), "{}", s.name);
            family.samples.push(s);
        }
        assert!(!family.samples.is_empty());
        families.push(family);
    }
    families
}

fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(l, v)| (l.to_string(), v.to_string()))
        .collect()
}

#[test]
fn exposition_round_trips_structure_values_and_escaping() {
    let r = Registry::new();
    let tricky = "quote \" backslash \\ newline \n end";
    r.counter(
        "frames_sent",
        "Frames sent.\nSecond \\ line",
        &[("link", tricky)],
    )
    .unwrap()
    .add(7);
    r.counter("frames_sent", "", &[("link", "plain")])
        .unwrap()
        .inc();
    r.counter("errors_total", "Errors", &[]).unwrap().add(2);
    r.gauge("cpu_temperature_celsius", "CPU temperature", &[])
        .unwrap()
        .set(61.25);
    r.gauge("odd_gauge", "Infinite", &[("b", "2"), ("a", "1")])
        .unwrap()
        .set(f64::INFINITY);
    let h = r
        .histogram("rssi_cycle_seconds", "Cycle time", &[("stage", "fft")])
        .unwrap();
    for ms in 1..=100 {
        h.record(Duration::from_millis(ms));
    }

    let text = r.snapshot().to_prometheus_text();
    assert_eq!(
        r.to_prometheus_text(),
        text,
        "the direct encoder writes exactly what the snapshot's does"
    );
    let families = parse(&text);
    let names: Vec<&str> = families.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "cpu_temperature_celsius",
            "errors_total",
            "frames_sent_total",
            "odd_gauge",
            "rssi_cycle_seconds"
        ]
    );

    let frames = &families[2];
    assert_eq!(frames.kind, "counter");
    assert_eq!(frames.help, "Frames sent.\nSecond \\ line");
    assert_eq!(frames.samples.len(), 2);
    let tricky_sample = frames.samples.iter().find(|s| s.value == 7.0).unwrap();
    assert_eq!(tricky_sample.labels, labels(&[("link", tricky)]));

    assert_eq!(
        families[1].samples[0],
        Sample {
            name: "errors_total".into(),
            labels: vec![],
            value: 2.0
        }
    );
    assert_eq!(families[0].kind, "gauge");
    assert_eq!(families[0].samples[0].value, 61.25);
    assert_eq!(
        families[3].samples[0].labels,
        labels(&[("a", "1"), ("b", "2")])
    );
    assert_eq!(families[3].samples[0].value, f64::INFINITY);

    let summary = &families[4];
    assert_eq!(summary.kind, "summary");
    let by_suffix = |q: Option<&str>, suffix: &str| {
        summary
            .samples
            .iter()
            .find(|s| {
                s.name == format!("rssi_cycle_seconds{suffix}")
                    && s.labels
                        .iter()
                        .find(|(l, _)| l == "quantile")
                        .map(|(_, v)| v.as_str())
                        == q
            })
            .unwrap_or_else(|| panic!("{q:?} {suffix}"))
    };
    let p50 = by_suffix(Some("0.5"), "");
    assert_eq!(p50.labels, labels(&[("stage", "fft"), ("quantile", "0.5")]));
    assert!((p50.value - 0.050).abs() < 0.0001, "{}", p50.value);
    assert!((by_suffix(Some("0.99"), "").value - 0.099).abs() < 0.0001);
    assert!(by_suffix(Some("0.95"), "").value > p50.value);
    assert!((by_suffix(None, "_sum").value - 5.050).abs() < 1e-9);
    assert_eq!(by_suffix(None, "_count").value, 100.0);
}

#[test]
fn empty_registry_exposes_nothing() {
    assert_eq!(Registry::new().snapshot().to_prometheus_text(), "");
    assert_eq!(Registry::new().to_prometheus_text(), "");
}
