//! Renders an evaluation's evidence as the human-readable `reason` of a decision record.

use std::fmt::Write;

use crate::engine::{Evaluation, IqrEvidence, Rule, SustainedEvidence, Vote};
use crate::model::{Sample, Signal};

/// Renders the reason for `evaluation`, for example
/// `Sustained scale up: CPU > 90% for 85.0% of last 5 minutes (Current: 92.50%)`.
pub(crate) fn render(evaluation: &Evaluation) -> String {
    let evidence = &evaluation.evidence;
    let window = window_text(evidence.window_seconds);
    let latest = evidence.latest.as_ref();
    match (evaluation.rule, latest) {
        (Rule::SustainedLow, Some(latest)) => match evidence.sustained_low {
            Some(low) => sustained_low(&low, &window, latest),
            None => format!("Sustained scale down over last {window}"),
        },
        (Rule::SustainedHigh, Some(latest)) => match evidence.sustained_high {
            Some(high) => sustained_high(&high, &window, latest),
            None => format!("Sustained scale up over last {window}"),
        },
        (Rule::InsufficientData, _) => format!(
            "Insufficient data for IQR analysis: {} baseline samples in last {window}, need {}",
            evidence.baseline_samples.unwrap_or(0),
            evidence.min_baseline_samples
        ),
        (Rule::Iqr, _) => match &evidence.iqr {
            Some(iqr) => iqr_text(iqr, evaluation.decision.as_str(), &window),
            None => format!(
                "IQR {} over last {window}",
                decision_words(evaluation.decision.as_str())
            ),
        },
        (Rule::NoData, _) | (Rule::SustainedLow | Rule::SustainedHigh, None) => {
            format!("No recent data: no sample in last {window}")
        }
    }
}

fn sustained_low(low: &SustainedEvidence, window: &str, latest: &Sample) -> String {
    format!(
        "Sustained scale down: CPU < {}% and Memory < {}% for {:.1}% of last {window} \
         (Current: CPU {}, Memory {})",
        low.cpu_threshold,
        low.memory_threshold,
        low.share * 100.0,
        percent(Some(latest.cpu_utilization())),
        percent(latest.memory_usage()),
    )
}

fn sustained_high(high: &SustainedEvidence, window: &str, latest: &Sample) -> String {
    let share = high.share * 100.0;
    let cpu = format!("CPU > {}%", high.cpu_threshold);
    let memory = format!("Memory > {}%", high.memory_threshold);
    if high.cpu_matching == high.matching {
        let current = percent(Some(latest.cpu_utilization()));
        format!("Sustained scale up: {cpu} for {share:.1}% of last {window} (Current: {current})")
    } else if high.memory_matching == high.matching {
        let current = percent(latest.memory_usage());
        format!(
            "Sustained scale up: {memory} for {share:.1}% of last {window} (Current: {current})"
        )
    } else {
        format!(
            "Sustained scale up: {cpu} or {memory} for {share:.1}% of last {window} \
             (Current: CPU {}, Memory {})",
            percent(Some(latest.cpu_utilization())),
            percent(latest.memory_usage()),
        )
    }
}

fn iqr_text(iqr: &IqrEvidence, decision: &str, window: &str) -> String {
    let mut text = format!(
        "IQR {}: {} up {}, {} down {} against {} baseline samples of last {window}",
        decision_words(decision),
        iqr.up_votes,
        plural(iqr.up_votes, "vote"),
        iqr.down_votes,
        plural(iqr.down_votes, "vote"),
        iqr.baseline_samples,
    );
    let mut outside = Vec::new();
    for signal in &iqr.signals {
        let (Some(fences), Some(value)) = (signal.fences, signal.value) else {
            continue;
        };
        let (side, fence) = match signal.vote {
            Vote::Up => ("above upper fence", fences.upper),
            Vote::Down => ("below lower fence", fences.lower),
            Vote::Within | Vote::Absent => continue,
        };
        outside.push(format!(
            "{} {} {side} {}",
            signal.signal.label(),
            signal_value(signal.signal, value),
            signal_value(signal.signal, fence)
        ));
    }
    if outside.is_empty() {
        text.push_str(" (all signals within fences)");
    } else {
        let _ = write!(text, " ({})", outside.join("; "));
    }
    text
}

fn decision_words(decision: &str) -> &'static str {
    match decision {
        "scale_up" => "scale up",
        "scale_down" => "scale down",
        _ => "no action",
    }
}

fn plural(count: u32, noun: &str) -> String {
    if count == 1 {
        noun.to_owned()
    } else {
        format!("{noun}s")
    }
}

fn percent(value: Option<f64>) -> String {
    value.map_or_else(|| "n/a".to_owned(), |value| format!("{value:.2}%"))
}

fn signal_value(signal: Signal, value: f64) -> String {
    if signal.is_percent() {
        format!("{value:.2}%")
    } else {
        format!("{value:.0}")
    }
}

/// Returns `5 minutes`, `1 minute`, `60 minutes` or `90 seconds`.
fn window_text(seconds: u64) -> String {
    match (seconds % 60, seconds / 60) {
        (0, 1) => "1 minute".to_owned(),
        (0, minutes) => format!("{minutes} minutes"),
        _ => format!("{seconds} seconds"),
    }
}

#[cfg(test)]
mod tests {
    use super::window_text;

    #[test]
    fn window_text_units() {
        assert_eq!(window_text(300), "5 minutes");
        assert_eq!(window_text(60), "1 minute");
        assert_eq!(window_text(3600), "60 minutes");
        assert_eq!(window_text(90), "90 seconds");
    }
}
