//! Prometheus text exposition format 0.0.4, written by hand: the format is a few lines per
//! family and we already own the snapshot type (see the crate README for why no crate).

use std::fmt::Write as _;
use std::time::Duration;

use super::{Family, Handle, Histogram, MetricType, Snapshot, Value};

/// A piece of [`super::Registry::to_prometheus_text`]'s output: text written under the
/// registry lock, or histograms to read after it is released.
pub(super) enum Segment {
    Text(String),
    Histograms {
        name: String,
        help: String,
        series: Vec<(Vec<(String, String)>, Histogram)>,
    },
}

/// Writes a counter or gauge family as [`encode`] would, reading the atomics directly.
pub(super) fn encode_scalar_family(out: &mut String, name: &str, family: &Family) {
    let mut value = String::new();
    let (name, type_name) = match family.metric_type {
        MetricType::Counter if name.ends_with("_total") => (name.to_owned(), "counter"),
        MetricType::Counter => (format!("{name}_total"), "counter"),
        _ => (name.to_owned(), "gauge"),
    };
    header(out, &name, &family.help, type_name);
    for (labels, handle) in &family.series {
        value.clear();
        // Writing to a String cannot fail.
        let _ = match handle {
            Handle::Counter(c) => write!(value, "{}", c.value()),
            Handle::Gauge(g) => write_float(&mut value, g.value()),
            Handle::Histogram(_) => continue,
        };
        sample(out, &name, "", labels, None, &value);
    }
}

/// Concatenates the segments, reading each histogram now.
pub(super) fn join(segments: Vec<Segment>) -> String {
    let mut out = String::new();
    for segment in segments {
        match segment {
            Segment::Text(t) => out.push_str(&t),
            Segment::Histograms { name, help, series } => {
                header(&mut out, &name, &help, "summary");
                for (labels, h) in series {
                    summary(&mut out, &name, &labels, &h.snapshot());
                }
            }
        }
    }
    out
}

fn header(out: &mut String, name: &str, help: &str, type_name: &str) {
    out.push_str("# HELP ");
    out.push_str(name);
    out.push(' ');
    escape_help(help, out);
    out.push('\n');
    let _ = writeln!(out, "# TYPE {name} {type_name}");
}

fn summary(
    out: &mut String,
    name: &str,
    labels: &[(String, String)],
    h: &super::HistogramSnapshot,
) {
    for (q, v) in [("0.5", h.p50), ("0.95", h.p95), ("0.99", h.p99)] {
        sample(out, name, "", labels, Some(q), &seconds(v));
    }
    sample(out, name, "_sum", labels, None, &seconds(h.sum));
    sample(out, name, "_count", labels, None, &h.count.to_string());
}

fn write_float(out: &mut String, v: f64) -> std::fmt::Result {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v == f64::INFINITY {
        out.push_str("+Inf");
    } else if v == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else {
        write!(out, "{v}")?;
    }
    Ok(())
}

pub(super) fn encode(snapshot: &Snapshot) -> String {
    let mut out = String::new();
    for family in &snapshot.families {
        let (name, type_name) = match family.metric_type {
            MetricType::Counter if family.name.ends_with("_total") => {
                (family.name.clone(), "counter")
            }
            MetricType::Counter => (format!("{}_total", family.name), "counter"),
            MetricType::Gauge => (family.name.clone(), "gauge"),
            MetricType::Histogram => (family.name.clone(), "summary"),
        };
        out.push_str("# HELP ");
        out.push_str(&name);
        out.push(' ');
        escape_help(&family.help, &mut out);
        out.push('\n');
        // Writing to a String cannot fail.
        let _ = writeln!(out, "# TYPE {name} {type_name}");
        for series in &family.series {
            let labels = &series.labels;
            match &series.value {
                Value::Counter(v) => sample(&mut out, &name, "", labels, None, &v.to_string()),
                Value::Gauge(v) => sample(&mut out, &name, "", labels, None, &float(*v)),
                Value::Histogram(h) => {
                    for (q, v) in [("0.5", h.p50), ("0.95", h.p95), ("0.99", h.p99)] {
                        sample(&mut out, &name, "", labels, Some(q), &seconds(v));
                    }
                    sample(&mut out, &name, "_sum", labels, None, &seconds(h.sum));
                    sample(
                        &mut out,
                        &name,
                        "_count",
                        labels,
                        None,
                        &h.count.to_string(),
                    );
                }
            }
        }
    }
    out
}

fn sample(
    out: &mut String,
    name: &str,
    suffix: &str,
    labels: &[(String, String)],
    quantile: Option<&str>,
    value: &str,
) {
    out.push_str(name);
    out.push_str(suffix);
    if !labels.is_empty() || quantile.is_some() {
        out.push('{');
        let quantile = quantile.map(|q| ("quantile", q));
        let pairs = labels
            .iter()
            .map(|(l, v)| (l.as_str(), v.as_str()))
            .chain(quantile);
        for (i, (label, v)) in pairs.enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(label);
            out.push_str("=\"");
            escape_label_value(v, out);
            out.push('"');
        }
        out.push('}');
    }
    out.push(' ');
    out.push_str(value);
    out.push('\n');
}

fn escape_help(text: &str, out: &mut String) {
    if !text.contains(['\\', '\n']) {
        out.push_str(text);
        return;
    }
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn escape_label_value(text: &str, out: &mut String) {
    if !text.contains(['\\', '"', '\n']) {
        out.push_str(text);
        return;
    }
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn float(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v == f64::INFINITY {
        "+Inf".to_owned()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else {
        v.to_string()
    }
}

fn seconds(d: Duration) -> String {
    float(d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_use_prometheus_spellings() {
        assert_eq!(float(f64::NAN), "NaN");
        assert_eq!(float(f64::INFINITY), "+Inf");
        assert_eq!(float(f64::NEG_INFINITY), "-Inf");
        assert_eq!(float(0.25), "0.25");
        assert_eq!(seconds(Duration::from_millis(1500)), "1.5");
    }

    #[test]
    fn escapes() {
        let mut s = String::new();
        escape_label_value("a\\b\"c\nd", &mut s);
        assert_eq!(s, r#"a\\b\"c\nd"#);
        let mut s = String::new();
        escape_help("x\\y\"z\n", &mut s);
        assert_eq!(s, r#"x\\y"z\n"#);
    }
}
