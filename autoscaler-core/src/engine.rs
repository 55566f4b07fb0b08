//! The decision engine: a pure function from a window of samples to a decision and its evidence.
//!
//! # Rules
//!
//! With the defaults of [`Policy`]:
//!
//! 1. **Window.** Samples with timestamps in `(now - 5 min, now]`. The latest sample is the
//!    newest one in the window. An empty window gives `no_action` ("no recent data"); missing
//!    data is never read as zero.
//! 2. **Sustained low** (priority 1). At least 3 samples in the window, and at least 80 % of
//!    them have CPU < 10 % and memory < 20 %: `scale_down`.
//! 3. **Sustained high** (priority 2). At least 3 samples, and at least 80 % of them have
//!    CPU > 90 % or memory > 90 %: `scale_up`.
//! 4. A sustained decision flags the latest sample as an outlier of that decision's type.
//! 5. **IQR votes** (priority 3). The baseline is the window without flagged samples and without
//!    the latest one; with fewer than 4 baseline samples the result is `no_action`. Per signal,
//!    on the sorted baseline `v`: `Q1 = v[n / 4]`, `Q3 = v[3n / 4]` (0-based, integer division),
//!    spread `s = max(Q3 - Q1, floor)`, fences `Q1 - 1.5 s` and `Q3 + 1.5 s`. A latest value
//!    strictly above the upper fence votes up and strictly below the lower fence votes down,
//!    with weights CPU 2, memory 2, network in 1, network out 1. At least 2 up votes give
//!    `scale_up`, else at least 2 down votes give `scale_down`, else `no_action`.
//! 6. A signal a sample lacks (memory without the CloudWatch agent, network a client did not
//!    send) is absent: it matches no rule that needs it and casts no vote.
//!
//! The floors default to 5 percentage points for CPU and memory and 10 % of the baseline median
//! (`v[n / 2]`) for network, so that noise on an idle instance does not vote.

use std::cmp::Ordering;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::capacity::{self, Outcome, ScaleState};
use crate::model::{Decision, Sample, Signal};
use crate::policy::Policy;
use crate::reason;

/// A sample as the engine reads it: the values and whether an earlier evaluation flagged it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowSample {
    /// The observation.
    pub sample: Sample,
    /// Whether a sustained rule flagged it as an outlier; flagged samples leave the IQR baseline.
    pub is_outlier: bool,
}

impl From<Sample> for WindowSample {
    fn from(sample: Sample) -> WindowSample {
        WindowSample {
            sample,
            is_outlier: false,
        }
    }
}

/// The rule that produced a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// No sample in the window.
    NoData,
    /// Priority 1: sustained low CPU and memory.
    SustainedLow,
    /// Priority 2: sustained high CPU or memory.
    SustainedHigh,
    /// Too few baseline samples for the IQR rule.
    InsufficientData,
    /// Priority 3: IQR votes.
    Iqr,
}

impl Rule {
    /// Returns the wire name, for example `sustained_high`.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::NoData => "no_data",
            Rule::SustainedLow => "sustained_low",
            Rule::SustainedHigh => "sustained_high",
            Rule::InsufficientData => "insufficient_data",
            Rule::Iqr => "iqr",
        }
    }
}

/// The count behind a sustained rule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SustainedEvidence {
    /// Samples in the window that match the rule.
    pub matching: usize,
    /// Samples in the window.
    pub total: usize,
    /// `matching / total`.
    pub share: f64,
    /// Samples whose CPU alone meets the rule's CPU condition.
    pub cpu_matching: usize,
    /// Samples whose memory alone meets the rule's memory condition.
    pub memory_matching: usize,
    /// The CPU threshold in percent.
    pub cpu_threshold: f64,
    /// The memory threshold in percent.
    pub memory_threshold: f64,
    /// Whether the share reached the policy's required share.
    pub fired: bool,
}

/// Quartiles and fences of one signal's baseline.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Fences {
    /// `v[n / 4]` of the sorted baseline.
    pub q1: f64,
    /// `v[n / 2]` of the sorted baseline; the network floors are a share of it.
    pub median: f64,
    /// `v[3n / 4]` of the sorted baseline.
    pub q3: f64,
    /// `Q3 - Q1`.
    pub iqr: f64,
    /// The materiality floor for this baseline.
    pub floor: f64,
    /// `Q1 - k * max(IQR, floor)`, but not below `f64::MIN`.
    pub lower: f64,
    /// `Q3 + k * max(IQR, floor)`, but not above `f64::MAX`.
    pub upper: f64,
}

/// The vote of one signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Vote {
    /// The latest value is above the upper fence.
    Up,
    /// The latest value is below the lower fence.
    Down,
    /// The latest value is within the fences, or exactly on one.
    Within,
    /// The latest sample lacks the signal, or the baseline has too few values of it.
    Absent,
}

/// The IQR analysis of one signal.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SignalEvidence {
    /// The signal.
    pub signal: Signal,
    /// Baseline samples that carry the signal.
    pub baseline_values: usize,
    /// Quartiles and fences, when the baseline has enough values.
    pub fences: Option<Fences>,
    /// The latest sample's value, if it has one.
    pub value: Option<f64>,
    /// The vote cast.
    pub vote: Vote,
    /// Votes this signal is worth.
    pub weight: u32,
}

/// The IQR analysis of the latest sample against the baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IqrEvidence {
    /// Samples in the baseline.
    pub baseline_samples: usize,
    /// Per-signal analysis, in [`Signal::ALL`] order.
    pub signals: Vec<SignalEvidence>,
    /// Weighted up votes.
    pub up_votes: u32,
    /// Weighted down votes.
    pub down_votes: u32,
}

/// Everything the engine looked at, enough to render the reason and to audit the decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// Length of the window in seconds.
    pub window_seconds: u64,
    /// Samples in the window.
    pub window_samples: usize,
    /// Baseline samples needed for the IQR rule.
    pub min_baseline_samples: usize,
    /// The latest sample's values, when the window is not empty.
    pub latest: Option<Sample>,
    /// The sustained-low check, when the window had enough samples for it.
    pub sustained_low: Option<SustainedEvidence>,
    /// The sustained-high check, when it ran.
    pub sustained_high: Option<SustainedEvidence>,
    /// The IQR analysis, when it ran.
    pub iqr: Option<IqrEvidence>,
    /// Baseline samples, when the IQR rule was reached.
    pub baseline_samples: Option<usize>,
}

/// The result of one evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// The decision of the rules.
    pub decision: Decision,
    /// The rule that decided.
    pub rule: Rule,
    /// The evidence the rules looked at.
    pub evidence: Evidence,
    /// Whether the decision was applied, and if not, what blocked it.
    pub outcome: Outcome,
}

impl Evaluation {
    /// Returns the sample the decision is about: the newest one in the window.
    pub fn latest(&self) -> Option<&Sample> {
        self.evidence.latest.as_ref()
    }

    /// Returns whether the latest sample is flagged as an outlier (a sustained rule fired).
    pub fn flags_latest(&self) -> bool {
        matches!(self.rule, Rule::SustainedLow | Rule::SustainedHigh)
    }

    /// Renders the human-readable reason from the evidence.
    pub fn reason(&self) -> String {
        reason::render(self)
    }
}

/// Evaluates `samples` at `now` for an instance in `state`.
///
/// Pure: no I/O, no clock, no randomness. Samples may come in any order and may include
/// samples outside the window, which are ignored. Samples with equal timestamps are ordered by
/// their values, so the result does not depend on input order.
pub fn evaluate(
    policy: &Policy,
    samples: &[WindowSample],
    now: DateTime<Utc>,
    state: &ScaleState,
) -> Evaluation {
    let (decision, rule, evidence) = decide(policy, samples, now);
    let outcome = capacity::apply(policy, state, decision, now);
    Evaluation {
        decision,
        rule,
        evidence,
        outcome,
    }
}

/// Applies the rules without the capacity guards; [`evaluate`] adds those.
pub fn decide(
    policy: &Policy,
    samples: &[WindowSample],
    now: DateTime<Utc>,
) -> (Decision, Rule, Evidence) {
    let window = in_window(samples, now, policy.window);
    let latest_index = window
        .iter()
        .enumerate()
        .max_by(|(_, a), (_, b)| newest_first(a, b))
        .map(|(index, _)| index);
    let mut evidence = Evidence {
        window_seconds: policy.window.as_secs(),
        window_samples: window.len(),
        min_baseline_samples: policy.min_baseline_samples,
        latest: latest_index.map(|index| window[index].sample),
        sustained_low: None,
        sustained_high: None,
        iqr: None,
        baseline_samples: None,
    };
    let Some(latest_index) = latest_index else {
        return (Decision::NoAction, Rule::NoData, evidence);
    };

    if window.len() >= policy.min_sustained_samples {
        let low = sustained_low(policy, &window);
        let high = sustained_high(policy, &window);
        evidence.sustained_low = Some(low);
        evidence.sustained_high = Some(high);
        if low.fired {
            return (Decision::ScaleDown, Rule::SustainedLow, evidence);
        }
        if high.fired {
            return (Decision::ScaleUp, Rule::SustainedHigh, evidence);
        }
    }

    let latest = window[latest_index].sample;
    let baseline: Vec<&Sample> = window
        .iter()
        .enumerate()
        .filter(|(index, item)| *index != latest_index && !item.is_outlier)
        .map(|(_, item)| &item.sample)
        .collect();
    evidence.baseline_samples = Some(baseline.len());
    if baseline.len() < policy.min_baseline_samples {
        return (Decision::NoAction, Rule::InsufficientData, evidence);
    }

    let iqr = iqr_votes(policy, &baseline, &latest);
    let decision = if iqr.up_votes >= policy.vote_threshold {
        Decision::ScaleUp
    } else if iqr.down_votes >= policy.vote_threshold {
        Decision::ScaleDown
    } else {
        Decision::NoAction
    };
    evidence.iqr = Some(iqr);
    (decision, Rule::Iqr, evidence)
}

/// Returns the samples with timestamps in `(now - window, now]`.
fn in_window(samples: &[WindowSample], now: DateTime<Utc>, window: Duration) -> Vec<WindowSample> {
    let start = window_start(now, window);
    samples
        .iter()
        .filter(|item| item.sample.timestamp() > start && item.sample.timestamp() <= now)
        .copied()
        .collect()
}

/// Returns the exclusive start of the window that ends at `now`.
pub fn window_start(now: DateTime<Utc>, window: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(window)
        .ok()
        .and_then(|length| now.checked_sub_signed(length))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Orders samples by timestamp, breaking ties by values so that the choice of "latest" does
/// not depend on input order.
fn newest_first(a: &WindowSample, b: &WindowSample) -> Ordering {
    let key = |item: &WindowSample| {
        // Absent values sort before every valid value, which is never negative.
        Signal::ALL.map(|signal| item.sample.value(signal).unwrap_or(-1.0))
    };
    a.sample
        .timestamp()
        .cmp(&b.sample.timestamp())
        .then_with(|| {
            key(a)
                .iter()
                .zip(key(b).iter())
                .map(|(x, y)| x.total_cmp(y))
                .find(|ordering| ordering.is_ne())
                .unwrap_or(Ordering::Equal)
        })
        .then_with(|| a.is_outlier.cmp(&b.is_outlier))
}

fn sustained_low(policy: &Policy, window: &[WindowSample]) -> SustainedEvidence {
    let cpu_low = |s: &Sample| s.cpu_utilization() < policy.low_cpu_below;
    let memory_low = |s: &Sample| {
        s.memory_usage()
            .is_some_and(|m| m < policy.low_memory_below)
    };
    sustained(
        policy,
        window,
        |s| cpu_low(s) && memory_low(s),
        cpu_low,
        memory_low,
        (policy.low_cpu_below, policy.low_memory_below),
    )
}

fn sustained_high(policy: &Policy, window: &[WindowSample]) -> SustainedEvidence {
    let cpu_high = |s: &Sample| s.cpu_utilization() > policy.high_cpu_above;
    let memory_high = |s: &Sample| {
        s.memory_usage()
            .is_some_and(|m| m > policy.high_memory_above)
    };
    sustained(
        policy,
        window,
        |s| cpu_high(s) || memory_high(s),
        cpu_high,
        memory_high,
        (policy.high_cpu_above, policy.high_memory_above),
    )
}

fn sustained(
    policy: &Policy,
    window: &[WindowSample],
    matches: impl Fn(&Sample) -> bool,
    cpu_matches: impl Fn(&Sample) -> bool,
    memory_matches: impl Fn(&Sample) -> bool,
    (cpu_threshold, memory_threshold): (f64, f64),
) -> SustainedEvidence {
    let count = |rule: &dyn Fn(&Sample) -> bool| window.iter().filter(|i| rule(&i.sample)).count();
    let matching = count(&matches);
    let total = window.len();
    let share = matching as f64 / total as f64;
    SustainedEvidence {
        matching,
        total,
        share,
        cpu_matching: count(&cpu_matches),
        memory_matching: count(&memory_matches),
        cpu_threshold,
        memory_threshold,
        fired: share >= policy.sustained_share,
    }
}

fn iqr_votes(policy: &Policy, baseline: &[&Sample], latest: &Sample) -> IqrEvidence {
    let mut evidence = IqrEvidence {
        baseline_samples: baseline.len(),
        signals: Vec::with_capacity(Signal::ALL.len()),
        up_votes: 0,
        down_votes: 0,
    };
    let mut values = Vec::with_capacity(baseline.len());
    for signal in Signal::ALL {
        values.clear();
        values.extend(baseline.iter().filter_map(|sample| sample.value(signal)));
        let signal_evidence = vote(policy, signal, &mut values, latest.value(signal));
        match signal_evidence.vote {
            Vote::Up => evidence.up_votes += signal_evidence.weight,
            Vote::Down => evidence.down_votes += signal_evidence.weight,
            Vote::Within | Vote::Absent => {}
        }
        evidence.signals.push(signal_evidence);
    }
    evidence
}

fn vote(policy: &Policy, signal: Signal, values: &mut [f64], value: Option<f64>) -> SignalEvidence {
    let weight = policy.weights.get(signal);
    let fences = if values.len() >= policy.min_baseline_samples {
        values.sort_unstable_by(f64::total_cmp);
        fences(values, policy, signal)
    } else {
        None
    };
    let vote = match (fences, value) {
        (Some(fences), Some(value)) if value > fences.upper => Vote::Up,
        (Some(fences), Some(value)) if value < fences.lower => Vote::Down,
        (Some(_), Some(_)) => Vote::Within,
        _ => Vote::Absent,
    };
    SignalEvidence {
        signal,
        baseline_values: values.len(),
        fences,
        value,
        vote,
        weight,
    }
}

/// Returns the quartiles of `sorted` as the contract defines them: `Q1 = v[n / 4]`,
/// `median = v[n / 2]`, `Q3 = v[3n / 4]`, 0-based with integer division.
///
/// Returns `None` for an empty slice. `sorted` must be in ascending order.
pub fn quartiles(sorted: &[f64]) -> Option<(f64, f64, f64)> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    Some((sorted[n / 4], sorted[n / 2], sorted[3 * n / 4]))
}

fn fences(sorted: &[f64], policy: &Policy, signal: Signal) -> Option<Fences> {
    let (q1, median, q3) = quartiles(sorted)?;
    let iqr = q3 - q1;
    let floor = policy.floors.get(signal).resolve(median);
    let spread = iqr.max(floor);
    Some(Fences {
        q1,
        median,
        q3,
        iqr,
        floor,
        // Values near f64::MAX would put a fence at infinity, which JSON cannot hold, so the
        // stored evidence would not read back. A finite extreme fence casts the same votes.
        lower: (q1 - policy.iqr_multiplier * spread).max(f64::MIN),
        upper: (q3 + policy.iqr_multiplier * spread).min(f64::MAX),
    })
}
