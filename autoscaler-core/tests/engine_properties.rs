//! Property tests: the engine against a plain reference implementation, order independence,
//! and no panic on any valid input.

use std::collections::BTreeSet;

use autoscaler_core::engine::decide;
use autoscaler_core::{Decision, MaterialityFloor, Policy, Rule, Sample, Signal, WindowSample};
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use proptest::prelude::*;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap()
}

/// Raw values of one generated sample: seconds before `now`, CPU, memory, network, flag.
type Raw = (i64, f64, Option<f64>, Option<f64>, Option<f64>, bool);

fn raw_sample() -> impl Strategy<Value = Raw> {
    let percent = prop_oneof![
        0.0..=100.0,
        0.0..=12.0,
        85.0..=100.0,
        Just(0.0),
        Just(100.0)
    ];
    let memory = prop_oneof![
        3 => (0.0..=100.0f64).prop_map(Some),
        1 => (0.0..=25.0f64).prop_map(Some),
        1 => (85.0..=100.0f64).prop_map(Some),
        1 => Just(None),
    ];
    let bytes = || prop_oneof![9 => (0.0..1e7f64).prop_map(Some), 1 => Just(None)];
    let flagged = proptest::bool::weighted(0.2);
    (-60i64..420, percent, memory, bytes(), bytes(), flagged)
}

fn to_window(raws: &[Raw]) -> Vec<WindowSample> {
    raws.iter()
        .map(|&(ago, cpu, memory, network_in, network_out, is_outlier)| {
            let at = now() - TimeDelta::seconds(ago);
            let sample = Sample::partial(at, cpu, memory, network_in, network_out).unwrap();
            WindowSample { sample, is_outlier }
        })
        .collect()
}

/// Windows whose timestamps are distinct, so "latest" is unambiguous for the reference.
fn distinct_window() -> impl Strategy<Value = Vec<Raw>> {
    proptest::collection::vec(raw_sample(), 0..40).prop_map(|raws| {
        let mut seen = BTreeSet::new();
        raws.into_iter().filter(|raw| seen.insert(raw.0)).collect()
    })
}

fn policy() -> impl Strategy<Value = Policy> {
    prop_oneof![Just(Policy::default()), Just(Policy::without_floors())]
}

/// Decides by the rules written as plainly as possible, straight from their description.
fn reference(policy: &Policy, samples: &[WindowSample], now: DateTime<Utc>) -> (Decision, Rule) {
    let start = now - TimeDelta::from_std(policy.window).unwrap();
    let mut window: Vec<WindowSample> = Vec::new();
    for item in samples {
        if item.sample.timestamp() > start && item.sample.timestamp() <= now {
            window.push(*item);
        }
    }
    if window.is_empty() {
        return (Decision::NoAction, Rule::NoData);
    }
    window.sort_by_key(|item| item.sample.timestamp());
    let latest = *window.last().unwrap();

    if window.len() >= policy.min_sustained_samples {
        let total = window.len() as f64;
        let mut low = 0.0;
        let mut high = 0.0;
        for item in &window {
            let cpu = item.sample.cpu_utilization();
            let memory = item.sample.memory_usage();
            if cpu < policy.low_cpu_below
                && memory.is_some()
                && memory.unwrap() < policy.low_memory_below
            {
                low += 1.0;
            }
            let memory_high = memory.is_some() && memory.unwrap() > policy.high_memory_above;
            if cpu > policy.high_cpu_above || memory_high {
                high += 1.0;
            }
        }
        if low / total >= policy.sustained_share {
            return (Decision::ScaleDown, Rule::SustainedLow);
        }
        if high / total >= policy.sustained_share {
            return (Decision::ScaleUp, Rule::SustainedHigh);
        }
    }

    let baseline: Vec<Sample> = window[..window.len() - 1]
        .iter()
        .filter(|item| !item.is_outlier)
        .map(|item| item.sample)
        .collect();
    if baseline.len() < policy.min_baseline_samples {
        return (Decision::NoAction, Rule::InsufficientData);
    }
    let mut up = 0;
    let mut down = 0;
    for signal in Signal::ALL {
        let Some(current) = latest.sample.value(signal) else {
            continue;
        };
        let mut values: Vec<f64> = baseline.iter().filter_map(|s| s.value(signal)).collect();
        if values.len() < policy.min_baseline_samples {
            continue;
        }
        values.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let n = values.len();
        let q1 = values[n / 4];
        let q3 = values[(3 * n) / 4];
        let median = values[n / 2];
        let floor = match policy.floors.get(signal) {
            MaterialityFloor::Absolute(points) => points,
            MaterialityFloor::FractionOfMedian(fraction) => fraction * median,
        };
        let spread = if q3 - q1 > floor { q3 - q1 } else { floor };
        if current > q3 + policy.iqr_multiplier * spread {
            up += policy.weights.get(signal);
        } else if current < q1 - policy.iqr_multiplier * spread {
            down += policy.weights.get(signal);
        }
    }
    if up >= policy.vote_threshold {
        (Decision::ScaleUp, Rule::Iqr)
    } else if down >= policy.vote_threshold {
        (Decision::ScaleDown, Rule::Iqr)
    } else {
        (Decision::NoAction, Rule::Iqr)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn engine_matches_reference(raws in distinct_window(), policy in policy()) {
        let samples = to_window(&raws);
        let (decision, rule, _) = decide(&policy, &samples, now());
        prop_assert_eq!((decision, rule), reference(&policy, &samples, now()));
    }

    #[test]
    fn decision_ignores_input_order(
        raws in proptest::collection::vec(raw_sample(), 0..40),
        seed in any::<u64>(),
        policy in policy(),
    ) {
        let samples = to_window(&raws);
        let mut shuffled = samples.clone();
        // A seeded Fisher-Yates shuffle keeps the case reproducible from its inputs.
        let mut state = seed;
        for i in (1..shuffled.len()).rev() {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let j = (state >> 33) as usize % (i + 1);
            shuffled.swap(i, j);
        }
        prop_assert_eq!(decide(&policy, &samples, now()), decide(&policy, &shuffled, now()));
        let mut reversed = samples.clone();
        reversed.reverse();
        prop_assert_eq!(decide(&policy, &samples, now()), decide(&policy, &reversed, now()));
    }

    #[test]
    fn evaluate_never_panics(
        raws in proptest::collection::vec(raw_sample(), 0..60),
        window_seconds in 1u64..100_000,
        multiplier in 0.0f64..10.0,
        level in 1u32..=10,
    ) {
        let policy = Policy {
            window: std::time::Duration::from_secs(window_seconds),
            iqr_multiplier: multiplier,
            ..Policy::default()
        };
        let state = autoscaler_core::ScaleState { level, ..Default::default() };
        let evaluation = autoscaler_core::evaluate(&policy, &to_window(&raws), now(), &state);
        prop_assert!(!evaluation.reason().is_empty());
    }
}
