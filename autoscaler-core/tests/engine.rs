//! Exact-value tests of the decision engine: the documented worked examples, every row of the
//! scenario table, and the boundaries of each rule.

use autoscaler_core::engine::{Fences, SignalEvidence, decide};
use autoscaler_core::{
    Block, Decision, Outcome, Policy, Rule, Sample, ScaleState, Signal, Vote, WindowSample,
    evaluate,
};
use chrono::{DateTime, TimeDelta, TimeZone, Utc};

/// Values of one sample: CPU %, memory %, network in, network out.
type Values = (f64, f64, f64, f64);

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 22, 5, 21, 0).unwrap()
}

fn sample(seconds_ago: i64, (cpu, memory, network_in, network_out): Values) -> WindowSample {
    let at = now() - TimeDelta::seconds(seconds_ago);
    Sample::new(at, cpu, Some(memory), network_in, network_out)
        .unwrap()
        .into()
}

/// Builds a window: `baseline` 30 s apart ending 30 s ago, then `latest` at `now`.
fn window(baseline: &[Values], latest: Values) -> Vec<WindowSample> {
    let count = baseline.len() as i64;
    let mut samples: Vec<WindowSample> = baseline
        .iter()
        .enumerate()
        .map(|(index, values)| sample(30 * (count - index as i64), *values))
        .collect();
    samples.push(sample(0, latest));
    samples
}

fn signal(evaluation: &autoscaler_core::Evaluation, signal: Signal) -> SignalEvidence {
    let iqr = evaluation.evidence.iqr.as_ref().expect("IQR evidence");
    *iqr.signals
        .iter()
        .find(|s| s.signal == signal)
        .expect("signal evidence")
}

fn fences(evidence: &SignalEvidence) -> Fences {
    evidence.fences.expect("fences")
}

const CPU: [f64; 8] = [45.0, 48.0, 50.0, 52.0, 55.0, 58.0, 60.0, 62.0];
const MEMORY: [f64; 8] = [30.0, 32.0, 34.0, 36.0, 38.0, 40.0, 42.0, 44.0];
const NETWORK_IN: [f64; 8] = [
    5000.0, 5200.0, 5500.0, 5800.0, 6000.0, 6200.0, 6500.0, 6800.0,
];
const NETWORK_OUT: [f64; 8] = [
    2000.0, 2100.0, 2200.0, 2300.0, 2400.0, 2500.0, 2600.0, 2700.0,
];

/// The shared eight-sample baseline of the scenario tests. Its fences: CPU 35..75,
/// memory 22..54, network in 4000..8000, network out 1600..3200.
fn baseline() -> Vec<Values> {
    (0..8)
        .map(|i| (CPU[i], MEMORY[i], NETWORK_IN[i], NETWORK_OUT[i]))
        .collect()
}

fn evaluate_default(samples: &[WindowSample]) -> autoscaler_core::Evaluation {
    evaluate(&Policy::default(), samples, now(), &ScaleState::initial())
}

#[test]
fn example_1_cpu_scale_up_vote() {
    let evaluation = evaluate_default(&window(&baseline(), (78.0, 38.0, 6000.0, 2400.0)));
    let cpu = signal(&evaluation, Signal::Cpu);
    let cpu_fences = fences(&cpu);
    assert_eq!(cpu.baseline_values, 8);
    assert_eq!(cpu_fences.q1, 50.0);
    assert_eq!(cpu_fences.q3, 60.0);
    assert_eq!(cpu_fences.iqr, 10.0);
    assert_eq!(cpu_fences.lower, 35.0);
    assert_eq!(cpu_fences.upper, 75.0);
    assert_eq!(cpu.value, Some(78.0));
    assert_eq!(cpu.vote, Vote::Up);
    assert_eq!(cpu.weight, 2);
    assert_eq!(evaluation.rule, Rule::Iqr);
    assert_eq!(evaluation.decision, Decision::ScaleUp);
}

#[test]
fn example_2_network_scale_down_vote() {
    let network_in = [5000.0, 5200.0, 5500.0, 5800.0, 6000.0, 6200.0, 6500.0];
    let baseline: Vec<Values> = (0..7)
        .map(|i| (CPU[i], MEMORY[i], network_in[i], NETWORK_OUT[i]))
        .collect();
    let evaluation = evaluate_default(&window(&baseline, (52.0, 36.0, 3000.0, 2300.0)));
    let network = signal(&evaluation, Signal::NetworkIn);
    let network_fences = fences(&network);
    assert_eq!(network.baseline_values, 7);
    assert_eq!(network_fences.q1, 5200.0);
    assert_eq!(network_fences.q3, 6200.0);
    assert_eq!(network_fences.iqr, 1000.0);
    assert_eq!(network_fences.lower, 3700.0);
    assert_eq!(network_fences.upper, 7700.0);
    assert_eq!(network.vote, Vote::Down);
    assert_eq!(network.weight, 1);
    let iqr = evaluation.evidence.iqr.as_ref().unwrap();
    assert_eq!(iqr.down_votes, 1);
    assert_eq!(iqr.up_votes, 0);
    // One network vote alone is below the threshold of 2.
    assert_eq!(evaluation.decision, Decision::NoAction);
}

#[test]
fn example_2_unchanged_without_floors() {
    let network_in = [5000.0, 5200.0, 5500.0, 5800.0, 6000.0, 6200.0, 6500.0];
    let baseline: Vec<Values> = (0..7)
        .map(|i| (CPU[i], MEMORY[i], network_in[i], NETWORK_OUT[i]))
        .collect();
    let samples = window(&baseline, (52.0, 36.0, 3000.0, 2300.0));
    let evaluation = evaluate(
        &Policy::without_floors(),
        &samples,
        now(),
        &ScaleState::initial(),
    );
    let network_fences = fences(&signal(&evaluation, Signal::NetworkIn));
    assert_eq!(network_fences.lower, 3700.0);
    assert_eq!(network_fences.upper, 7700.0);
}

#[test]
fn example_3_combined_decision() {
    let evaluation = evaluate_default(&window(&baseline(), (78.0, 45.0, 3000.0, 2500.0)));
    assert_eq!(signal(&evaluation, Signal::Cpu).vote, Vote::Up);
    assert_eq!(signal(&evaluation, Signal::Memory).vote, Vote::Within);
    assert_eq!(signal(&evaluation, Signal::NetworkIn).vote, Vote::Down);
    assert_eq!(signal(&evaluation, Signal::NetworkOut).vote, Vote::Within);
    let iqr = evaluation.evidence.iqr.as_ref().unwrap();
    assert_eq!(iqr.up_votes, 2);
    assert_eq!(iqr.down_votes, 1);
    assert_eq!(evaluation.decision, Decision::ScaleUp);
    assert_eq!(
        evaluation.reason(),
        "IQR scale up: 2 up votes, 1 down vote against 8 baseline samples of last 5 minutes \
         (CPU 78.00% above upper fence 75.00%; Network In 3000 below lower fence 4000)"
    );
}

#[test]
fn scenario_baseline_fences() {
    let evaluation = evaluate_default(&window(&baseline(), (55.0, 38.0, 6000.0, 2400.0)));
    let expected = [
        (Signal::Cpu, 50.0, 60.0, 35.0, 75.0),
        (Signal::Memory, 34.0, 42.0, 22.0, 54.0),
        (Signal::NetworkIn, 5500.0, 6500.0, 4000.0, 8000.0),
        (Signal::NetworkOut, 2200.0, 2600.0, 1600.0, 3200.0),
    ];
    for (name, q1, q3, lower, upper) in expected {
        let found = fences(&signal(&evaluation, name));
        assert_eq!((found.q1, found.q3), (q1, q3), "{name:?} quartiles");
        assert_eq!(
            (found.lower, found.upper),
            (lower, upper),
            "{name:?} fences"
        );
    }
}

fn sustained_window(values: Values) -> Vec<WindowSample> {
    (0..10).map(|i| sample(30 * i, values)).collect()
}

#[test]
fn scenario_extreme_low() {
    let evaluation = evaluate_default(&sustained_window((5.0, 12.0, 1000.0, 500.0)));
    assert_eq!(evaluation.decision, Decision::ScaleDown);
    assert_eq!(evaluation.rule, Rule::SustainedLow);
    assert!(evaluation.flags_latest());
    assert_eq!(evaluation.evidence.sustained_low.unwrap().share, 1.0);
    assert_eq!(
        evaluation.reason(),
        "Sustained scale down: CPU < 10% and Memory < 20% for 100.0% of last 5 minutes \
         (Current: CPU 5.00%, Memory 12.00%)"
    );
}

#[test]
fn scenario_extreme_high_cpu() {
    let evaluation = evaluate_default(&sustained_window((95.0, 50.0, 1000.0, 500.0)));
    assert_eq!(evaluation.decision, Decision::ScaleUp);
    assert_eq!(evaluation.rule, Rule::SustainedHigh);
    assert!(evaluation.flags_latest());
    assert_eq!(
        evaluation.reason(),
        "Sustained scale up: CPU > 90% for 100.0% of last 5 minutes (Current: 95.00%)"
    );
}

#[test]
fn scenario_extreme_high_memory() {
    let evaluation = evaluate_default(&sustained_window((40.0, 95.0, 1000.0, 500.0)));
    assert_eq!(evaluation.decision, Decision::ScaleUp);
    assert_eq!(evaluation.rule, Rule::SustainedHigh);
    assert_eq!(
        evaluation.reason(),
        "Sustained scale up: Memory > 90% for 100.0% of last 5 minutes (Current: 95.00%)"
    );
}

#[test]
fn sustained_reason_matches_documented_format() {
    // 17 of 20 samples above 90 % CPU: 85.0 %, the share in the documented reason.
    let mut samples: Vec<WindowSample> = (1..=17)
        .map(|i| sample(10 * i, (95.0, 68.0, 2e6, 1e6)))
        .collect();
    samples.extend((18..=20).map(|i| sample(10 * i, (50.0, 68.0, 2e6, 1e6))));
    samples[0] = sample(0, (92.5, 68.3, 2048000.0, 1024000.0));
    let evaluation = evaluate_default(&samples);
    assert_eq!(evaluation.decision, Decision::ScaleUp);
    assert_eq!(
        evaluation.reason(),
        "Sustained scale up: CPU > 90% for 85.0% of last 5 minutes (Current: 92.50%)"
    );
}

/// Runs one IQR scenario row and checks the votes and the decision.
fn iqr_row(latest: Values, up: u32, down: u32, decision: Decision) {
    let evaluation = evaluate_default(&window(&baseline(), latest));
    assert_eq!(evaluation.rule, Rule::Iqr, "{latest:?}");
    let iqr = evaluation.evidence.iqr.as_ref().unwrap();
    assert_eq!(iqr.up_votes, up, "up votes for {latest:?}");
    assert_eq!(iqr.down_votes, down, "down votes for {latest:?}");
    assert_eq!(evaluation.decision, decision, "decision for {latest:?}");
}

#[test]
fn scenario_high_cpu_only() {
    iqr_row((80.0, 38.0, 6000.0, 2400.0), 2, 0, Decision::ScaleUp);
}

#[test]
fn scenario_low_cpu_only() {
    iqr_row((30.0, 38.0, 6000.0, 2400.0), 0, 2, Decision::ScaleDown);
}

#[test]
fn scenario_high_cpu_and_network() {
    iqr_row((80.0, 38.0, 9000.0, 2400.0), 3, 0, Decision::ScaleUp);
}

#[test]
fn scenario_low_all_metrics() {
    iqr_row((30.0, 20.0, 3000.0, 1000.0), 0, 6, Decision::ScaleDown);
}

#[test]
fn scenario_mixed_signals() {
    iqr_row((80.0, 38.0, 3000.0, 2400.0), 2, 1, Decision::ScaleUp);
}

#[test]
fn scenario_all_normal() {
    iqr_row((55.0, 38.0, 6000.0, 2400.0), 0, 0, Decision::NoAction);
    let evaluation = evaluate_default(&window(&baseline(), (55.0, 38.0, 6000.0, 2400.0)));
    assert_eq!(
        evaluation.reason(),
        "IQR no action: 0 up votes, 0 down votes against 8 baseline samples of last 5 minutes \
         (all signals within fences)"
    );
    assert!(!evaluation.flags_latest());
}

#[test]
fn value_on_fence_casts_no_vote() {
    // 75 is exactly the CPU upper fence and 35 exactly the lower one.
    iqr_row((75.0, 38.0, 6000.0, 2400.0), 0, 0, Decision::NoAction);
    iqr_row((35.0, 38.0, 6000.0, 2400.0), 0, 0, Decision::NoAction);
    // Network in on its lower fence (4000) with CPU below its fence: only CPU votes.
    iqr_row((34.9, 38.0, 4000.0, 2400.0), 0, 2, Decision::ScaleDown);
}

/// Five-sample windows where `matching` samples have 95 % CPU.
fn share_window(matching: usize, total: usize) -> Vec<WindowSample> {
    (0..total)
        .map(|i| {
            let cpu = if i < matching { 95.0 } else { 50.0 };
            let at = now() - TimeDelta::milliseconds(250 * i as i64);
            Sample::new(at, cpu, Some(50.0), 0.0, 0.0).unwrap().into()
        })
        .collect()
}

#[test]
fn share_of_exactly_80_percent_fires() {
    let evaluation = evaluate_default(&share_window(4, 5));
    assert_eq!(evaluation.rule, Rule::SustainedHigh);
    assert_eq!(evaluation.decision, Decision::ScaleUp);
    let evaluation = evaluate_default(&share_window(800, 1000));
    assert_eq!(evaluation.rule, Rule::SustainedHigh);
}

#[test]
fn share_of_79_9_percent_does_not_fire() {
    let evaluation = evaluate_default(&share_window(799, 1000));
    let high = evaluation.evidence.sustained_high.unwrap();
    assert_eq!(high.matching, 799);
    assert!(!high.fired);
    assert_ne!(evaluation.rule, Rule::SustainedHigh);
}

#[test]
fn two_samples_cannot_sustain() {
    let evaluation = evaluate_default(&share_window(2, 2));
    assert_eq!(evaluation.evidence.sustained_high, None);
    assert_eq!(evaluation.rule, Rule::InsufficientData);
    assert_eq!(evaluation.decision, Decision::NoAction);
    let evaluation = evaluate_default(&share_window(3, 3));
    assert_eq!(evaluation.rule, Rule::SustainedHigh);
}

#[test]
fn three_baseline_samples_are_insufficient() {
    let evaluation = evaluate_default(&window(&baseline()[..3], (80.0, 38.0, 6000.0, 2400.0)));
    assert_eq!(evaluation.rule, Rule::InsufficientData);
    assert_eq!(evaluation.decision, Decision::NoAction);
    assert_eq!(evaluation.evidence.baseline_samples, Some(3));
    assert_eq!(
        evaluation.reason(),
        "Insufficient data for IQR analysis: 3 baseline samples in last 5 minutes, need 4"
    );
}

#[test]
fn four_baseline_samples_run_iqr() {
    // Baseline CPU [45, 48, 50, 52]: Q1 = v[1] = 48, Q3 = v[3] = 52, IQR 4, floor 5,
    // upper fence 52 + 7.5 = 59.5.
    let evaluation = evaluate_default(&window(&baseline()[..4], (60.0, 33.0, 5500.0, 2150.0)));
    assert_eq!(evaluation.rule, Rule::Iqr);
    let cpu = signal(&evaluation, Signal::Cpu);
    let cpu_fences = fences(&cpu);
    assert_eq!(
        (cpu_fences.q1, cpu_fences.q3, cpu_fences.iqr),
        (48.0, 52.0, 4.0)
    );
    assert_eq!(cpu_fences.floor, 5.0);
    assert_eq!(cpu_fences.upper, 59.5);
    assert_eq!(cpu.vote, Vote::Up);
    assert_eq!(evaluation.decision, Decision::ScaleUp);
}

#[test]
fn flagged_samples_leave_baseline() {
    let mut samples = window(&baseline(), (80.0, 38.0, 6000.0, 2400.0));
    for item in samples.iter_mut().take(5) {
        item.is_outlier = true;
    }
    let evaluation = evaluate_default(&samples);
    assert_eq!(evaluation.evidence.baseline_samples, Some(3));
    assert_eq!(evaluation.rule, Rule::InsufficientData);
}

#[test]
fn absent_memory_matches_no_rule_and_casts_no_vote() {
    let without_memory = |seconds_ago: i64, cpu: f64| -> WindowSample {
        let at = now() - TimeDelta::seconds(seconds_ago);
        Sample::new(at, cpu, None, 6000.0, 2400.0).unwrap().into()
    };
    // Idle CPU but no memory: sustained low needs both, so it cannot fire.
    let idle: Vec<WindowSample> = (0..10).map(|i| without_memory(30 * i, 2.0)).collect();
    let evaluation = evaluate_default(&idle);
    assert_eq!(evaluation.evidence.sustained_low.unwrap().matching, 0);
    assert_ne!(evaluation.decision, Decision::ScaleDown);

    // Busy CPU without memory: the CPU half of the sustained-high rule still matches.
    let busy: Vec<WindowSample> = (0..10).map(|i| without_memory(30 * i, 95.0)).collect();
    assert_eq!(evaluate_default(&busy).rule, Rule::SustainedHigh);

    // IQR: memory casts no vote and reports absent.
    let mut samples: Vec<WindowSample> = CPU
        .iter()
        .enumerate()
        .map(|(i, cpu)| without_memory(30 * (8 - i as i64), *cpu))
        .collect();
    samples.push(without_memory(0, 80.0));
    let evaluation = evaluate_default(&samples);
    let memory = signal(&evaluation, Signal::Memory);
    assert_eq!(memory.vote, Vote::Absent);
    assert_eq!(memory.value, None);
    assert_eq!(memory.fences, None);
    assert_eq!(evaluation.decision, Decision::ScaleUp);
}

#[test]
fn empty_window_is_no_data() {
    let evaluation = evaluate_default(&[]);
    assert_eq!(evaluation.decision, Decision::NoAction);
    assert_eq!(evaluation.rule, Rule::NoData);
    assert_eq!(
        evaluation.reason(),
        "No recent data: no sample in last 5 minutes"
    );
    assert_eq!(evaluation.outcome, Outcome::Unchanged);
}

#[test]
fn samples_older_than_window_are_ignored() {
    // Exactly 5 minutes old is outside (now - 5 min, now]; so are older ones and future ones.
    let samples = vec![
        sample(300, (95.0, 95.0, 0.0, 0.0)),
        sample(600, (95.0, 95.0, 0.0, 0.0)),
        sample(900, (95.0, 95.0, 0.0, 0.0)),
        sample(-30, (95.0, 95.0, 0.0, 0.0)),
    ];
    let evaluation = evaluate_default(&samples);
    assert_eq!(evaluation.rule, Rule::NoData);
    assert_eq!(evaluation.evidence.window_samples, 0);
}

#[test]
fn window_length_is_a_setting() {
    // Twelve samples 5 minutes apart fit a 60-minute window.
    let samples: Vec<WindowSample> = (0..12)
        .map(|i| sample(300 * i, (95.0, 50.0, 0.0, 0.0)))
        .collect();
    let short = evaluate_default(&samples);
    assert_eq!(short.evidence.window_samples, 1);
    let policy = Policy {
        window: std::time::Duration::from_secs(3600),
        ..Policy::default()
    };
    let long = evaluate(&policy, &samples, now(), &ScaleState::initial());
    assert_eq!(long.evidence.window_samples, 12);
    assert_eq!(long.rule, Rule::SustainedHigh);
    assert!(
        long.reason().contains("of last 60 minutes"),
        "{}",
        long.reason()
    );
}

/// An idle instance: CPU near 0.1 % with noise of a few hundredths, memory steady.
fn idle_window(blip: f64) -> Vec<WindowSample> {
    let noise = [
        0.132, 0.134, 0.101, 0.118, 0.145, 0.127, 0.109, 0.139, 0.121, 0.116,
    ];
    let mut samples: Vec<WindowSample> = noise
        .iter()
        .enumerate()
        .map(|(i, cpu)| sample(25 * (10 - i as i64), (*cpu, 30.0, 50_000.0, 40_000.0)))
        .collect();
    samples.push(sample(0, (blip, 30.0, 50_000.0, 40_000.0)));
    samples
}

#[test]
fn floor_ignores_idle_blip() {
    let evaluation = evaluate_default(&idle_window(0.5));
    let cpu = signal(&evaluation, Signal::Cpu);
    assert_eq!(cpu.vote, Vote::Within);
    assert_eq!(evaluation.decision, Decision::NoAction);
}

#[test]
fn zero_floor_votes_on_idle_blip() {
    let samples = idle_window(0.5);
    let (decision, rule, evidence) = decide(&Policy::without_floors(), &samples, now());
    let cpu = evidence.iqr.as_ref().unwrap().signals[0];
    assert_eq!(cpu.fences.unwrap().floor, 0.0);
    assert_eq!(cpu.vote, Vote::Up);
    assert_eq!(rule, Rule::Iqr);
    assert_eq!(decision, Decision::ScaleUp);
}

#[test]
fn guards_block_without_hiding_decision() {
    let state = ScaleState {
        level: 2,
        last_action_at: Some(now() - TimeDelta::seconds(60)),
        last_evaluated_sample: None,
    };
    let evaluation = evaluate(
        &Policy::default(),
        &sustained_window((95.0, 50.0, 0.0, 0.0)),
        now(),
        &state,
    );
    assert_eq!(evaluation.decision, Decision::ScaleUp);
    let until = now() + TimeDelta::seconds(240);
    assert_eq!(
        evaluation.outcome,
        Outcome::Blocked(Block::Cooldown { until })
    );
}

#[test]
fn fences_stay_finite_near_f64_max() {
    let baseline: Vec<Values> = (0..8)
        .map(|i| {
            let network_in = if i % 2 == 0 { 1e307 } else { f64::MAX };
            (CPU[i], MEMORY[i], network_in, NETWORK_OUT[i])
        })
        .collect();
    let evaluation = evaluate_default(&window(&baseline, (52.0, 36.0, f64::MAX, 2300.0)));
    let network = signal(&evaluation, Signal::NetworkIn);
    let network_fences = fences(&network);
    assert_eq!(network_fences.upper, f64::MAX);
    assert_eq!(network_fences.lower, f64::MIN);
    assert_eq!(network.vote, Vote::Within);

    // JSON has no infinity, so an infinite fence would be written as null and not read back.
    let json = serde_json::to_string(&evaluation.evidence).expect("evidence serializes");
    let read_back: autoscaler_core::Evidence =
        serde_json::from_str(&json).expect("evidence reads back");
    let read_back_network = read_back.iqr.expect("IQR evidence").signals[2];
    assert_eq!(read_back_network.signal, Signal::NetworkIn);
    let read_back_fences = fences(&read_back_network);
    assert_eq!(read_back_fences.upper, f64::MAX);
    assert_eq!(read_back_fences.lower, f64::MIN);
}
