//! A log-linear latency histogram in microseconds (≤ 1.6 % relative error above 128 µs, exact
//! below), with percentiles, merging and a CDF for plots.

use serde::Serialize;

/// Exact buckets below this value; above it, 64 sub-buckets per power of two.
const LINEAR: u64 = 128;
const SUB: u64 = 64;
const SUB_BITS: u32 = 6;
/// Covers up to 2^46 µs, far beyond any run.
const BUCKETS: usize = (LINEAR + 40 * SUB) as usize;

#[derive(Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    count: u64,
    sum: u128,
    min: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram { counts: vec![0; BUCKETS], count: 0, sum: 0, min: u64::MAX, max: 0 }
    }
}

fn index(v: u64) -> usize {
    if v < LINEAR {
        return v as usize;
    }
    let msb = 63 - v.leading_zeros();
    let shift = msb - SUB_BITS;
    let top = v >> shift; // in SUB..2*SUB
    let i = LINEAR + u64::from(shift - 1) * SUB + (top - SUB);
    (i as usize).min(BUCKETS - 1)
}

/// The middle of bucket `i`.
fn value(i: usize) -> u64 {
    let i = i as u64;
    if i < LINEAR {
        return i;
    }
    let shift = (i - LINEAR) / SUB + 1;
    let top = (i - LINEAR) % SUB + SUB;
    (top << shift) + (1u64 << shift) / 2
}

/// Percentiles of one histogram, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Summary {
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Histogram {
    pub fn record_us(&mut self, us: u64) {
        self.counts[index(us)] += 1;
        self.count += 1;
        self.sum += u128::from(us);
        self.min = self.min.min(us);
        self.max = self.max.max(us);
    }

    pub fn record(&mut self, d: std::time::Duration) {
        self.record_us(u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// The value at quantile `q` (0..=1) in µs; the exact max for q = 1, 0 when empty.
    pub fn quantile_us(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        if q >= 1.0 {
            return self.max;
        }
        let rank = ((q.max(0.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return value(i).clamp(self.min, self.max);
            }
        }
        self.max
    }

    pub fn summary(&self) -> Summary {
        let ms = |us: u64| us as f64 / 1000.0;
        Summary {
            count: self.count,
            mean_ms: if self.count == 0 { 0.0 } else { self.sum as f64 / self.count as f64 / 1000.0 },
            p50_ms: ms(self.quantile_us(0.50)),
            p95_ms: ms(self.quantile_us(0.95)),
            p99_ms: ms(self.quantile_us(0.99)),
            p999_ms: ms(self.quantile_us(0.999)),
            max_ms: ms(self.quantile_us(1.0)),
        }
    }

    /// (latency in ms, fraction ≤ it) for every non-empty bucket: the CDF.
    pub fn cdf(&self) -> Vec<(f64, f64)> {
        let mut out = Vec::new();
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            if *c > 0 {
                seen += c;
                out.push((value(i) as f64 / 1000.0, seen as f64 / self.count as f64));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_is_zero() {
        let h = Histogram::default();
        assert_eq!(h.quantile_us(0.5), 0);
        assert_eq!(h.summary(), Summary::default());
    }

    #[test]
    fn small_values_are_exact() {
        let mut h = Histogram::default();
        for v in 1..=100 {
            h.record_us(v);
        }
        assert_eq!(h.quantile_us(0.5), 50);
        assert_eq!(h.quantile_us(0.99), 99);
        assert_eq!(h.quantile_us(1.0), 100);
        assert_eq!(h.quantile_us(0.0), 1);
    }

    #[test]
    fn large_values_within_two_percent() {
        let mut h = Histogram::default();
        for v in 1..=100_000u64 {
            h.record_us(v * 10);
        }
        for (q, exact) in [(0.5, 500_000.0), (0.95, 950_000.0), (0.99, 990_000.0), (0.999, 999_000.0)] {
            let got = h.quantile_us(q) as f64;
            assert!((got - exact).abs() / exact < 0.02, "q{q}: {got} vs {exact}");
        }
        assert_eq!(h.quantile_us(1.0), 1_000_000);
        assert!((h.summary().mean_ms - 500.005).abs() < 0.01);
    }

    #[test]
    fn buckets_are_monotonic_and_contain_their_values() {
        let mut last = 0;
        for v in [0u64, 1, 127, 128, 129, 200, 255, 256, 1000, 65_535, 1 << 30, 1 << 45] {
            let i = index(v);
            assert!(i >= last);
            last = i;
            let mid = value(i);
            let err = mid.abs_diff(v) as f64 / (v.max(1)) as f64;
            assert!(err <= 0.016, "{v} -> bucket {i} middle {mid}");
        }
    }

    #[test]
    fn merge_adds_up() {
        let mut a = Histogram::default();
        let mut b = Histogram::default();
        a.record_us(10);
        b.record_us(30);
        b.record_us(20);
        a.merge(&b);
        assert_eq!(a.summary().count, 3);
        assert_eq!(a.quantile_us(0.5), 20);
        assert_eq!(a.quantile_us(1.0), 30);
        let cdf = a.cdf();
        assert_eq!(cdf.last().map(|p| p.1), Some(1.0));
    }
}
