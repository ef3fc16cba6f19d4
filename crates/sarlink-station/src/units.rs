//! Parsing of option values for the sarlink binaries: human-friendly quantities, addresses,
//! durations, key files.

/// Parses a frequency or rate in Hz: `406028000`, `406.028e6`, `406.028M`, `433.92MHz`,
/// `250k`, `2.4M`. The result must be finite and positive.
///
/// # Errors
/// A message saying what is wrong.
pub fn parse_hz(text: &str) -> Result<f64, String> {
    let t = text.trim();
    let t = t
        .strip_suffix("Hz")
        .or_else(|| t.strip_suffix("hz"))
        .unwrap_or(t)
        .trim_end();
    let (number, scale) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1e3),
        Some('M') => (&t[..t.len() - 1], 1e6),
        Some('G' | 'g') => (&t[..t.len() - 1], 1e9),
        _ => (t, 1.0),
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a frequency (e.g. 406.028e6, 433.92M, 250k)"))?;
    let hz = value * scale;
    if hz.is_finite() && hz > 0.0 {
        Ok(hz)
    } else {
        Err(format!("{text:?} must be a positive frequency"))
    }
}

/// [`parse_hz`] rounded to a whole number of Hz.
///
/// # Errors
/// As [`parse_hz`], or when the value does not fit.
pub fn parse_hz_u64(text: &str) -> Result<u64, String> {
    let hz = parse_hz(text)?.round();
    if (1.0..=1e12).contains(&hz) {
        Ok(hz as u64)
    } else {
        Err(format!("{text:?} is out of range"))
    }
}

/// Parses an RTL-SDR sample rate (225 kHz to 3.2 MHz) in any [`parse_hz`] notation.
///
/// # Errors
/// A message saying what is wrong.
pub fn parse_sample_rate(text: &str) -> Result<u32, String> {
    let hz = parse_hz_u64(text)?;
    u32::try_from(hz)
        .ok()
        .filter(|hz| (225_001..=3_200_000).contains(hz))
        .ok_or_else(|| "an RTL-SDR samples at 225 kHz to 3.2 MHz".to_owned())
}

/// Parses `HOST:PORT` (the port must be a number).
///
/// # Errors
/// A message saying what is wrong.
pub fn parse_host_port(text: &str) -> Result<String, String> {
    if text
        .rsplit_once(':')
        .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
    {
        Ok(text.to_owned())
    } else {
        Err("expected HOST:PORT".to_owned())
    }
}

/// Parses a positive, finite number of seconds.
///
/// # Errors
/// A message saying what is wrong.
pub fn parse_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v),
        _ => Err("must be a positive number of seconds".to_owned()),
    }
}

/// Parses an interval: `250ms`, `1s`, `1.5s` or plain seconds (`0.2`), from 1 ms to 60 s.
///
/// # Errors
/// A message saying what is wrong.
pub fn parse_interval(text: &str) -> Result<std::time::Duration, String> {
    let t = text.trim();
    let (num, scale) = if let Some(ms) = t.strip_suffix("ms") {
        (ms, 1e-3)
    } else if let Some(s) = t.strip_suffix('s') {
        (s, 1.0)
    } else {
        (t, 1.0)
    };
    let secs = num
        .trim()
        .parse::<f64>()
        .map_err(|_| "not an interval: use e.g. 200ms or 1s".to_owned())?
        * scale;
    if secs.is_finite() && (0.001..=60.0).contains(&secs) {
        Ok(std::time::Duration::from_secs_f64(secs))
    } else {
        Err("must be from 1ms to 60s".to_owned())
    }
}

/// Parses a frequency correction in parts per million: a whole number from -1000 to 1000.
///
/// # Errors
/// A message saying what is wrong.
pub fn parse_ppm(text: &str) -> Result<i32, String> {
    match text.trim().parse::<i32>() {
        Ok(p) if (-1000..=1000).contains(&p) => Ok(p),
        Ok(_) => Err("must be from -1000 to 1000 ppm".to_owned()),
        Err(_) => Err("not a whole number of ppm".to_owned()),
    }
}

/// Reads a pre-shared key from the file named by `text`.
///
/// # Errors
/// A message saying why the file or key cannot be used.
pub fn parse_key_file(text: &str) -> Result<sarlink_link::PreSharedKey, String> {
    sarlink_link::PreSharedKey::from_file(std::path::Path::new(text)).map_err(|e| format!("{e:#}"))
}

/// Parses a receiver gain: `auto`, or a number of dB.
///
/// # Errors
/// A message saying what is wrong.
pub fn parse_gain(text: &str) -> Result<sarlink_sdr::Gain, String> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("auto") {
        return Ok(sarlink_sdr::Gain::Auto);
    }
    // rtl_tcp (`-g 0`) and rtl_433 users mean automatic gain by 0: make them say which.
    if t == "0" {
        return Err(
            "0 is ambiguous: use `auto` for automatic gain (what rtl_tcp and rtl_433 mean by 0), or `0dB` for a manual gain of 0 dB".to_owned(),
        );
    }
    let db: f32 = t
        .trim_end_matches("dB")
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is neither `auto` nor a gain in dB"))?;
    if db.is_finite() && (-10.0..=70.0).contains(&db) {
        Ok(sarlink_sdr::Gain::Db(db))
    } else {
        Err(format!("gain {db} dB is out of range (-10 to 70)"))
    }
}

#[cfg(test)]
mod units_tests {
    use super::*;

    #[test]
    fn frequencies_in_every_common_notation() {
        assert_eq!(parse_hz_u64("406028000"), Ok(406_028_000));
        assert_eq!(parse_hz_u64("406.028e6"), Ok(406_028_000));
        assert_eq!(parse_hz_u64("406.028M"), Ok(406_028_000));
        assert_eq!(parse_hz_u64("433.92MHz"), Ok(433_920_000));
        assert_eq!(parse_hz_u64("250k"), Ok(250_000));
        assert_eq!(parse_hz_u64("2.4M"), Ok(2_400_000));
        assert!(parse_hz("fast").is_err());
        assert!(parse_hz("-5M").is_err());
        assert!(parse_hz("0").is_err());
        assert!(parse_hz("inf").is_err());
    }

    #[test]
    fn gains() {
        assert_eq!(parse_gain("auto"), Ok(sarlink_sdr::Gain::Auto));
        assert_eq!(parse_gain("AUTO"), Ok(sarlink_sdr::Gain::Auto));
        assert_eq!(parse_gain("38.6"), Ok(sarlink_sdr::Gain::Db(38.6)));
        assert_eq!(parse_gain("20 dB"), Ok(sarlink_sdr::Gain::Db(20.0)));
        assert!(parse_gain("loud").is_err());
        assert!(parse_gain("500").is_err());
    }
}
