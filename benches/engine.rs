//! Decision-engine speed on 10- and 20-sample windows.
//!
//! The baseline in each group only sorts the four signals of the same window, the least work
//! any IQR evaluation must do, so the ratio shows the engine's overhead beyond sorting.

use std::hint::black_box;

use autoscaler_core::{Policy, Sample, ScaleState, Signal, WindowSample, evaluate};
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}

/// A window of mid-range load that reaches the IQR rule, the most expensive path.
fn window(len: usize) -> Vec<WindowSample> {
    (0..len)
        .map(|i| {
            let wobble = ((i * 7919) % 13) as f64;
            let at = now() - TimeDelta::seconds(10 * i as i64);
            let sample = Sample::new(
                at,
                40.0 + wobble,
                Some(50.0 + wobble / 2.0),
                1e6 + wobble * 1e4,
                5e5,
            )
            .expect("valid sample");
            WindowSample::from(sample)
        })
        .collect()
}

fn sort_signals(samples: &[WindowSample]) -> f64 {
    let mut total = 0.0;
    for signal in Signal::ALL {
        let mut values: Vec<f64> = samples
            .iter()
            .filter_map(|s| s.sample.value(signal))
            .collect();
        values.sort_unstable_by(f64::total_cmp);
        total += values[values.len() / 2];
    }
    total
}

fn engine(c: &mut Criterion) {
    let policy = Policy::default();
    let state = ScaleState::initial();
    for len in [10, 20] {
        let samples = window(len);
        let mut group = c.benchmark_group(format!("window_{len}"));
        group.bench_with_input(
            BenchmarkId::new("sort_baseline", len),
            &samples,
            |b, samples| b.iter(|| sort_signals(black_box(samples))),
        );
        group.bench_with_input(BenchmarkId::new("evaluate", len), &samples, |b, samples| {
            b.iter(|| evaluate(&policy, black_box(samples), now(), &state))
        });
        group.finish();
    }
}

criterion_group!(benches, engine);
criterion_main!(benches);
