//! Every number the decision rules and the capacity steps use.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::PerSignal;

/// The smallest spread the IQR fences use for one signal.
///
/// The fences sit at `Q1 - k * max(IQR, floor)` and `Q3 + k * max(IQR, floor)`. Without a floor,
/// a near-constant baseline (an idle instance at 0.1 % CPU with noise of a few hundredths) has an
/// IQR close to zero, so any blip lands outside the fences and votes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum MaterialityFloor {
    /// A fixed spread in the signal's unit (percentage points for CPU and memory).
    Absolute(f64),
    /// A share of the baseline median, for example `0.1` for 10 %.
    FractionOfMedian(f64),
}

impl MaterialityFloor {
    /// Returns the floor for a baseline whose median is `median`.
    pub fn resolve(self, median: f64) -> f64 {
        match self {
            MaterialityFloor::Absolute(points) => points,
            MaterialityFloor::FractionOfMedian(fraction) => fraction * median.abs(),
        }
    }

    fn is_valid(self) -> bool {
        let value = match self {
            MaterialityFloor::Absolute(value) | MaterialityFloor::FractionOfMedian(value) => value,
        };
        value.is_finite() && value >= 0.0
    }
}

/// The rules' parameters.
///
/// [`Policy::default`] reproduces the original service (5-minute window, CPU < 10 % and memory
/// < 20 % for scale-down, CPU or memory > 90 % for scale-up, 80 % share, 3 and 4 minimum
/// samples, fences at 1.5 IQR, weights 2/2/1/1, 2 votes, steps of 1.5) and adds three guards:
/// materiality floors of 5 points for CPU and memory and 10 % of the median for network, scale
/// levels bounded to 1..=10, and a 5-minute cooldown after every applied action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    /// Length of the window: samples with timestamps in `(now - window, now]` are considered.
    pub window: Duration,
    /// Scale-down needs CPU strictly below this many percent.
    pub low_cpu_below: f64,
    /// Scale-down also needs memory strictly below this many percent.
    pub low_memory_below: f64,
    /// Scale-up fires on CPU strictly above this many percent.
    pub high_cpu_above: f64,
    /// Scale-up fires on memory strictly above this many percent.
    pub high_memory_above: f64,
    /// Share of window samples (0 to 1) that must match a sustained rule for it to fire.
    pub sustained_share: f64,
    /// Minimum samples in the window for a sustained rule to be checked.
    pub min_sustained_samples: usize,
    /// Minimum baseline samples for the IQR rule to run.
    pub min_baseline_samples: usize,
    /// Multiplier of the spread that places the fences (1.5 in Tukey's rule).
    pub iqr_multiplier: f64,
    /// Smallest spread per signal; see [`MaterialityFloor`].
    pub floors: PerSignal<MaterialityFloor>,
    /// Votes a signal casts when its latest value is outside the fences.
    pub weights: PerSignal<u32>,
    /// Votes needed for an IQR decision.
    pub vote_threshold: u32,
    /// Capacity factor between adjacent scale levels.
    pub step_factor: f64,
    /// Lowest scale level.
    pub min_level: u32,
    /// Highest scale level.
    pub max_level: u32,
    /// Time after an applied action during which no other action is applied.
    pub cooldown: Duration,
    /// Record decisions without changing scale levels.
    pub recommend_only: bool,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            window: Duration::from_secs(5 * 60),
            low_cpu_below: 10.0,
            low_memory_below: 20.0,
            high_cpu_above: 90.0,
            high_memory_above: 90.0,
            sustained_share: 0.8,
            min_sustained_samples: 3,
            min_baseline_samples: 4,
            iqr_multiplier: 1.5,
            floors: PerSignal {
                cpu: MaterialityFloor::Absolute(5.0),
                memory: MaterialityFloor::Absolute(5.0),
                network_in: MaterialityFloor::FractionOfMedian(0.1),
                network_out: MaterialityFloor::FractionOfMedian(0.1),
            },
            weights: PerSignal {
                cpu: 2,
                memory: 2,
                network_in: 1,
                network_out: 1,
            },
            vote_threshold: 2,
            step_factor: 1.5,
            min_level: 1,
            max_level: 10,
            cooldown: Duration::from_secs(5 * 60),
            recommend_only: false,
        }
    }
}

/// A policy field whose value the rules cannot use.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid policy {field}: {message}")]
pub struct InvalidPolicy {
    /// Name of the field.
    pub field: &'static str,
    /// What is wrong with it.
    pub message: String,
}

impl Policy {
    /// Returns the policy of the original service: no materiality floors, so the IQR rule runs
    /// exactly as first written. Level bounds and cooldown stay at their defaults.
    pub fn without_floors() -> Policy {
        let none = MaterialityFloor::Absolute(0.0);
        Policy {
            floors: PerSignal {
                cpu: none,
                memory: none,
                network_in: none,
                network_out: none,
            },
            ..Policy::default()
        }
    }

    /// Checks that every field is in range.
    ///
    /// # Errors
    ///
    /// Returns the first field that is out of range, with the value and the accepted range.
    pub fn validate(&self) -> Result<(), InvalidPolicy> {
        let invalid = |field, message: String| Err(InvalidPolicy { field, message });
        if self.window.is_zero() {
            return invalid("window", "must be longer than zero".into());
        }
        let percents = [
            ("low_cpu_below", self.low_cpu_below),
            ("low_memory_below", self.low_memory_below),
            ("high_cpu_above", self.high_cpu_above),
            ("high_memory_above", self.high_memory_above),
        ];
        for (field, value) in percents {
            if !(0.0..=100.0).contains(&value) {
                return invalid(field, format!("{value} is outside 0..=100"));
            }
        }
        if !(self.sustained_share > 0.0 && self.sustained_share <= 1.0) {
            return invalid(
                "sustained_share",
                format!("{} is outside (0, 1]", self.sustained_share),
            );
        }
        if self.min_sustained_samples == 0 {
            return invalid("min_sustained_samples", "must be at least 1".into());
        }
        if self.min_baseline_samples == 0 {
            return invalid("min_baseline_samples", "must be at least 1".into());
        }
        if !(self.iqr_multiplier.is_finite() && self.iqr_multiplier >= 0.0) {
            return invalid(
                "iqr_multiplier",
                format!("{} is not a finite number >= 0", self.iqr_multiplier),
            );
        }
        let floors = [
            self.floors.cpu,
            self.floors.memory,
            self.floors.network_in,
            self.floors.network_out,
        ];
        if !floors.iter().all(|floor| floor.is_valid()) {
            return invalid("floors", "every floor must be a finite number >= 0".into());
        }
        if self.vote_threshold == 0 {
            return invalid("vote_threshold", "must be at least 1".into());
        }
        if !(self.step_factor.is_finite() && self.step_factor > 1.0) {
            return invalid(
                "step_factor",
                format!("{} is not a finite number > 1", self.step_factor),
            );
        }
        if self.min_level == 0 || self.min_level > self.max_level {
            let range = format!("{}..={}", self.min_level, self.max_level);
            return invalid(
                "min_level",
                format!("level range {range} must start at 1 or above and not be empty"),
            );
        }
        let top = crate::capacity::capacity_percent(self.max_level, self.step_factor);
        if !top.is_finite() {
            return invalid(
                "max_level",
                format!(
                    "capacity at level {} overflows with step factor {}",
                    self.max_level, self.step_factor
                ),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy_is_valid() {
        assert_eq!(Policy::default().validate(), Ok(()));
        assert_eq!(Policy::without_floors().validate(), Ok(()));
    }

    #[test]
    fn validate_names_field() {
        let policy = Policy {
            sustained_share: 1.5,
            ..Policy::default()
        };
        assert_eq!(policy.validate().unwrap_err().field, "sustained_share");
        let policy = Policy {
            min_level: 4,
            max_level: 3,
            ..Policy::default()
        };
        assert_eq!(policy.validate().unwrap_err().field, "min_level");
        let policy = Policy {
            max_level: 5000,
            ..Policy::default()
        };
        assert_eq!(policy.validate().unwrap_err().field, "max_level");
        let policy = Policy {
            window: Duration::ZERO,
            ..Policy::default()
        };
        assert_eq!(policy.validate().unwrap_err().field, "window");
    }

    #[test]
    fn floor_of_median_scales() {
        assert_eq!(
            MaterialityFloor::FractionOfMedian(0.1).resolve(5800.0),
            580.0
        );
        assert_eq!(MaterialityFloor::Absolute(5.0).resolve(5800.0), 5.0);
    }
}
