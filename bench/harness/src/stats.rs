//! Percentiles and result lines.

use std::time::Duration;

/// The `q`-quantile (0.0..=1.0) of `samples`, nearest-rank; sorts in place.
pub fn quantile(samples: &mut [f64], q: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    samples.sort_by(f64::total_cmp);
    let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
    samples[rank - 1]
}

/// Durations as milliseconds.
pub fn millis(durations: &[Duration]) -> Vec<f64> {
    durations.iter().map(|d| d.as_secs_f64() * 1e3).collect()
}

/// One line `bench/run` collects: `RESULT <implementation> <metric> <value>`.
pub fn report(implementation: &str, metric: &str, value: f64) {
    println!("RESULT {implementation} {metric} {value:.3}");
}
