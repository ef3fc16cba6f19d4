//! The 0-100 quality score derived from SNR.

/// A measurement quality score; invariant: `0 <= value <= 100`.
///
/// Derived from the SNR by [`QualityScore::from_snr_db`]:
/// `score = round(100 * (1 - exp(-snr_db / 9)))` for `snr_db > 0`, and 0 otherwise. The
/// mapping rises steeply where SNR matters for homing (3 dB gives 28, 6 dB 49, 12 dB 74,
/// 20 dB 89, 30 dB 96) and reaches 100 at about 48 dB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QualityScore(u8);

impl QualityScore {
    /// The lowest score.
    pub const MIN: QualityScore = QualityScore(0);
    /// The highest score.
    pub const MAX: QualityScore = QualityScore(100);

    /// Wraps `value` if it is at most 100.
    ///
    /// # Examples
    ///
    /// ```
    /// use sarlink_sdr::QualityScore;
    /// assert_eq!(QualityScore::new(87).map(QualityScore::value), Some(87));
    /// assert_eq!(QualityScore::new(101), None);
    /// ```
    #[must_use]
    pub fn new(value: u8) -> Option<Self> {
        (value <= 100).then_some(QualityScore(value))
    }

    /// The score for an SNR in dB (see the type's documentation for the mapping); NaN gives 0.
    ///
    /// # Examples
    ///
    /// ```
    /// use sarlink_sdr::QualityScore;
    /// assert_eq!(QualityScore::from_snr_db(0.0).value(), 0);
    /// assert_eq!(QualityScore::from_snr_db(12.0).value(), 74);
    /// assert_eq!(QualityScore::from_snr_db(60.0).value(), 100);
    /// ```
    #[must_use]
    pub fn from_snr_db(snr_db: f32) -> Self {
        // NaN fails the comparison and maps to 0.
        if snr_db.is_nan() || snr_db <= 0.0 {
            return QualityScore::MIN;
        }
        let score = 100.0 * (1.0 - (-f64::from(snr_db) / 9.0).exp());
        // score is in [0, 100) for finite positive input, 100.0 for +inf: the cast is exact.
        QualityScore(score.round().clamp(0.0, 100.0) as u8)
    }

    /// The score, 0-100.
    #[must_use]
    pub fn value(self) -> u8 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn documented_points() {
        let pts = [
            (-5.0, 0),
            (3.0, 28),
            (6.0, 49),
            (12.0, 74),
            (20.0, 89),
            (30.0, 96),
        ];
        for (snr, q) in pts {
            assert_eq!(QualityScore::from_snr_db(snr).value(), q, "snr {snr}");
        }
        assert_eq!(QualityScore::from_snr_db(f32::INFINITY), QualityScore::MAX);
        assert_eq!(QualityScore::from_snr_db(f32::NAN), QualityScore::MIN);
    }

    proptest! {
        #[test]
        fn monotonic_and_bounded(a in -50.0f32..100.0, b in -50.0f32..100.0) {
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            let (ql, qh) = (QualityScore::from_snr_db(lo), QualityScore::from_snr_db(hi));
            prop_assert!(ql <= qh);
            prop_assert!(qh.value() <= 100);
        }
    }
}
