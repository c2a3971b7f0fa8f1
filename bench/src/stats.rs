//! Order statistics over samples (nearest-rank percentiles: every figure is a value that was
//! actually measured).

use serde_json::{json, Value};

/// The `p`-th percentile (0..=100) of `samples` by nearest rank; `None` when empty.
pub fn percentile(samples: &[f64], p: f64) -> Option<f64> {
    let mut v: Vec<f64> = samples.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v.get(rank.clamp(1, v.len()) - 1).copied()
}

/// Median (nearest rank, the lower middle for an even count).
pub fn median(samples: &[f64]) -> Option<f64> {
    percentile(samples, 50.0)
}

/// The arithmetic mean of the finite samples; `None` when there are none.
pub fn mean(samples: &[f64]) -> Option<f64> {
    let v: Vec<f64> = samples.iter().copied().filter(|x| x.is_finite()).collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// n, min, median, p95, p99, max, mean as JSON (values rounded to 0.01).
pub fn summary(samples: &[f64]) -> Value {
    let mean = mean(samples);
    json!({
        "n": samples.len(),
        "min": percentile(samples, 0.0).map(round2),
        "median": median(samples).map(round2),
        "p95": percentile(samples, 95.0).map(round2),
        "p99": percentile(samples, 99.0).map(round2),
        "max": percentile(samples, 100.0).map(round2),
        "mean": mean.map(round2),
    })
}

pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 95.0), Some(95.0));
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&v, 0.0), Some(1.0));
        assert_eq!(percentile(&v, 100.0), Some(100.0));
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[]), None);
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
    }
}
