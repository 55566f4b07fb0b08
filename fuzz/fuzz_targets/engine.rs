//! Feeds arbitrary windows and policies to the engine and checks its invariants.

#![no_main]

use std::time::Duration;

use arbitrary::Arbitrary;
use autoscaler_core::{evaluate, Decision, Policy, Rule, Sample, ScaleState, Vote, WindowSample};
use chrono::{DateTime, TimeDelta, Utc};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct RawSample {
    seconds_ago: i16,
    cpu: f64,
    memory: Option<f64>,
    network_in: Option<f64>,
    network_out: Option<f64>,
    is_outlier: bool,
}

#[derive(Debug, Arbitrary)]
struct Input {
    window_seconds: u16,
    iqr_multiplier: u8,
    level: u8,
    samples: Vec<RawSample>,
}

fuzz_target!(|input: Input| {
    let now = DateTime::<Utc>::UNIX_EPOCH + TimeDelta::days(20_000);
    let window: Vec<WindowSample> = input
        .samples
        .iter()
        .filter_map(|raw| {
            let at = now - TimeDelta::seconds(i64::from(raw.seconds_ago));
            // Sample construction rejects invalid values, so the engine receives only valid samples.
            let sample =
                Sample::partial(at, raw.cpu, raw.memory, raw.network_in, raw.network_out).ok()?;
            Some(WindowSample { sample, is_outlier: raw.is_outlier })
        })
        .collect();
    let policy = Policy {
        window: Duration::from_secs(u64::from(input.window_seconds.max(1))),
        iqr_multiplier: f64::from(input.iqr_multiplier) / 10.0,
        ..Policy::default()
    };
    let state = ScaleState { level: u32::from(input.level.clamp(1, 10)), ..ScaleState::initial() };
    let evaluation = evaluate(&policy, &window, now, &state);

    assert!(!evaluation.reason().is_empty());
    assert!(evaluation.evidence.window_samples <= window.len());
    if let (Rule::Iqr, Some(iqr)) = (evaluation.rule, &evaluation.evidence.iqr) {
        let tally = |vote| {
            iqr.signals.iter().filter(|s| s.vote == vote).map(|s| s.weight).sum::<u32>()
        };
        assert_eq!(iqr.up_votes, tally(Vote::Up));
        assert_eq!(iqr.down_votes, tally(Vote::Down));
        let expected = if iqr.up_votes >= policy.vote_threshold {
            Decision::ScaleUp
        } else if iqr.down_votes >= policy.vote_threshold {
            Decision::ScaleDown
        } else {
            Decision::NoAction
        };
        assert_eq!(evaluation.decision, expected);
    }
    if evaluation.rule == Rule::NoData {
        assert_eq!(evaluation.evidence.window_samples, 0);
    }
});
