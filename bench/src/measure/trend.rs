//! Does a resource keep growing? A pure judgement over a time series, used by the soak for the
//! server's resident memory and open descriptors.
//!
//! The rule: samples taken before the warm-up ends are dropped; the rest are split by order into
//! thirds (first, middle, last) and each third is reduced to its median (m1, m2, m3; for an even
//! count the lower of the two middle values, so that a step is never split in half). The series
//! **keeps growing** when
//!
//! - `m3 − m1 > tolerance`, with `tolerance = max(absolute, relative × m1)`, and
//! - `m2 − m1 > tolerance / 3` and `m3 − m2 > tolerance / 3`: it grew in both halves of the run.
//!
//! Medians ignore single outliers (a sample taken in the middle of a burst, a spike that is
//! freed again); the tolerance absorbs allocator noise; the both-halves condition keeps one
//! step (an allocator arena that grows once, a cache that fills up) from failing a run, since a
//! step leaves either m2 − m1 or m3 − m2 near zero. A steady leak of L per second over a
//! measured span S gives m2 − m1 ≈ m3 − m2 ≈ L·S/3, so it is caught as soon as 2·L·S/3 exceeds the
//! tolerance (each half then carries more than tolerance / 2, so the second condition holds with
//! room to spare for noise). The Theil–Sen slope (median
//! of all pairwise slopes) is reported with the verdict, as the growth rate to read, but does not
//! decide it.

use serde::Serialize;

/// Fewer samples after the warm-up than this give no verdict (two per third).
pub const MIN_SAMPLES: usize = 6;

/// How much growth is noise: the larger of `absolute` and `relative` × the first third's median.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Tolerance {
    pub absolute: f64,
    pub relative: f64,
}

/// The verdict on one series.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Trend {
    /// Samples after the warm-up.
    pub samples: usize,
    /// Medians of the first, middle and last third after the warm-up.
    pub first: f64,
    pub middle: f64,
    pub last: f64,
    /// last − first.
    pub growth: f64,
    pub tolerance: f64,
    /// Theil–Sen slope after the warm-up, per hour.
    pub slope_per_hour: f64,
    pub growing: bool,
}

/// The median of `v` (NaN when empty); sorts a copy.
pub fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 { s[n / 2] } else { (s[n / 2 - 1] + s[n / 2]) / 2.0 }
}

/// The middle value of `v`, the lower of the two for an even count (NaN when empty).
fn lower_median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[(s.len() - 1) / 2]
}

/// Theil–Sen slope of (t, y) points: the median of the slopes of all pairs with distinct t.
/// Long series are thinned to at most 600 points first (the pairs grow with the square).
pub fn theil_sen(points: &[(f64, f64)]) -> f64 {
    let step = points.len().div_ceil(600).max(1);
    let p: Vec<(f64, f64)> = points.iter().step_by(step).copied().collect();
    let mut slopes = Vec::with_capacity(p.len() * p.len().saturating_sub(1) / 2);
    for (i, a) in p.iter().enumerate() {
        for b in &p[i + 1..] {
            if b.0 != a.0 {
                slopes.push((b.1 - a.1) / (b.0 - a.0));
            }
        }
    }
    if slopes.is_empty() { 0.0 } else { median(&slopes) }
}

/// Judges `points` (seconds since the load started, value) after `warmup` seconds; None when
/// fewer than [`MIN_SAMPLES`] samples are left.
pub fn judge(points: &[(f64, f64)], warmup: f64, tol: Tolerance) -> Option<Trend> {
    let after: Vec<(f64, f64)> = points.iter().copied().filter(|(t, v)| *t >= warmup && v.is_finite()).collect();
    let n = after.len();
    if n < MIN_SAMPLES {
        return None;
    }
    let k = n / 3;
    let values: Vec<f64> = after.iter().map(|p| p.1).collect();
    let (first, middle, last) =
        (lower_median(&values[..k]), lower_median(&values[k..n - k]), lower_median(&values[n - k..]));
    let growth = last - first;
    let tolerance = tol.absolute.max(tol.relative * first.abs());
    let growing = growth > tolerance && middle - first > tolerance / 3.0 && last - middle > tolerance / 3.0;
    Some(Trend {
        samples: n,
        first,
        middle,
        last,
        growth,
        tolerance,
        slope_per_hour: theil_sen(&after) * 3600.0,
        growing,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic noise in [-1, 1) (a linear congruential generator), so tests never flake.
    fn noise(seed: &mut u64) -> f64 {
        *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((*seed >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    }

    /// A 30-minute series sampled every 10 s: `f(t)` plus ±`amp` noise.
    fn series(amp: f64, f: impl Fn(f64) -> f64) -> Vec<(f64, f64)> {
        let mut seed = 42;
        (0..=180).map(|i| i as f64 * 10.0).map(|t| (t, f(t) + amp * noise(&mut seed))).collect()
    }

    /// RSS in MiB: the soak's default tolerance.
    const RSS: Tolerance = Tolerance { absolute: 8.0, relative: 0.10 };
    const FDS: Tolerance = Tolerance { absolute: 8.0, relative: 0.05 };
    const WARMUP: f64 = 360.0;

    /// Growth during the warm-up (caches, allocator arenas, the gateway's resume window), then flat.
    fn warm_then_flat(t: f64) -> f64 {
        40.0 + 20.0 * (t / 300.0).min(1.0)
    }

    #[test]
    fn a_flat_noisy_series_is_not_growing() {
        let v = judge(&series(3.0, warm_then_flat), WARMUP, RSS).unwrap();
        assert!(!v.growing, "{v:?}");
        assert_eq!(v.samples, 145);
        assert!(v.growth.abs() < 2.0 && v.slope_per_hour.abs() < 5.0, "{v:?}");
    }

    #[test]
    fn growth_inside_the_warm_up_does_not_count() {
        // +30 MiB over the first 20 minutes, flat after: a failure when judged from the start.
        let ramp = series(0.5, |t| 40.0 + 30.0 * (t / 1200.0).min(1.0));
        assert!(!judge(&ramp, 1200.0, RSS).unwrap().growing);
        assert!(judge(&ramp, 0.0, RSS).unwrap().growing);
    }

    #[test]
    fn a_single_step_is_not_a_leak() {
        // One +15 MiB step (an arena grown once) anywhere after the warm-up, then flat again.
        for at in (37..=180).map(|i| i as f64 * 10.0 - 5.0) {
            let v = judge(&series(1.0, |t| if t < at { 60.0 } else { 75.0 }), WARMUP, RSS).unwrap();
            assert!(!v.growing, "step at {at}: {v:?}");
        }
    }

    #[test]
    fn sawtooth_allocator_noise_is_not_a_leak() {
        // Memory freed back every 2 minutes: ±6 MiB around a constant.
        let v = judge(&series(0.5, |t| 60.0 + 6.0 * ((t % 120.0) / 60.0 - 1.0)), WARMUP, RSS).unwrap();
        assert!(!v.growing, "{v:?}");
    }

    #[test]
    fn a_steady_leak_is_caught() {
        // 1 MiB a minute, under ±3 MiB noise: 24 MiB over the measured 24 minutes.
        let v = judge(&series(3.0, |t| warm_then_flat(t) + t / 60.0), WARMUP, RSS).unwrap();
        assert!(v.growing, "{v:?}");
        assert!((v.slope_per_hour - 60.0).abs() < 6.0, "{v:?}");
        assert!(v.growth > 12.0, "{v:?}");
    }

    #[test]
    fn a_leak_in_steps_is_caught() {
        // +6 MiB every 4 minutes (a batch of leaked buffers at each reconnect wave).
        let v = judge(&series(1.0, |t| 50.0 + 6.0 * (t / 240.0).floor()), WARMUP, RSS).unwrap();
        assert!(v.growing, "{v:?}");
    }

    #[test]
    fn a_leak_below_the_tolerance_passes() {
        // 0.2 MiB a minute: 4.8 MiB over the measured span, under the 8 MiB floor. The limit of
        // what one run can tell from noise; documented, not hidden.
        let v = judge(&series(1.0, |t| 60.0 + t / 300.0), WARMUP, RSS).unwrap();
        assert!(!v.growing, "{v:?}");
        assert!(v.slope_per_hour > 9.0, "the slope still shows it: {v:?}");
    }

    #[test]
    fn descriptors_leaking_one_per_reconnect_are_caught() {
        // 40 descriptors ± the reconnecting clients in flight; one leaked every 30 s.
        let churn = series(4.0, |_| 40.0);
        assert!(!judge(&churn, WARMUP, FDS).unwrap().growing);
        let leak = series(4.0, |t| 40.0 + (t / 30.0).floor());
        let v = judge(&leak, WARMUP, FDS).unwrap();
        assert!(v.growing, "{v:?}");
        assert!((v.slope_per_hour - 120.0).abs() < 15.0, "{v:?}");
    }

    #[test]
    fn the_ci_run_catches_a_gross_leak() {
        // 60 s sampled every 5 s with a 20 s warm-up: 9 samples after it.
        let pts = |f: &dyn Fn(f64) -> f64| -> Vec<(f64, f64)> {
            let mut seed = 7;
            (0..=12).map(|i| i as f64 * 5.0).map(|t| (t, f(t) + noise(&mut seed))).collect()
        };
        let flat = judge(&pts(&|_| 90.0), 20.0, RSS).unwrap();
        assert_eq!(flat.samples, 9);
        assert!(!flat.growing, "{flat:?}");
        // 30 MiB a minute (a peer connection's buffers kept at every rejoin).
        assert!(judge(&pts(&|t| 90.0 + t / 2.0), 20.0, RSS).unwrap().growing);
    }

    #[test]
    fn too_few_samples_give_no_verdict() {
        let pts: Vec<(f64, f64)> = (0..10).map(|i| (i as f64 * 10.0, i as f64)).collect();
        assert_eq!(judge(&pts, 50.0, RSS), None);
        assert!(judge(&pts, 40.0, RSS).is_some());
    }

    #[test]
    fn medians_and_slopes() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
        assert_eq!(lower_median(&[4.0, 1.0, 3.0, 2.0]), 2.0);
        // One wild outlier does not move the Theil–Sen slope.
        let mut pts: Vec<(f64, f64)> = (0..20).map(|i| (i as f64, 2.0 * i as f64)).collect();
        pts[10].1 = 1000.0;
        assert!((theil_sen(&pts) - 2.0).abs() < 1e-9);
        assert_eq!(theil_sen(&[(1.0, 5.0)]), 0.0);
    }
}
