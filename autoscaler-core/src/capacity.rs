//! Scale levels, capacity and the guards that decide whether a decision is applied.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::model::Decision;
use crate::policy::Policy;

/// Returns the capacity in percent at `level`: `100 * step_factor^(level - 1)`.
///
/// Computing from the level keeps the documented progression exact (100, 150, 225, then 150
/// after a step down) where multiplying by 1.5 and then by 0.67 would drift to 150.75.
pub fn capacity_percent(level: u32, step_factor: f64) -> f64 {
    let exponent = i32::try_from(level.saturating_sub(1)).unwrap_or(i32::MAX);
    100.0 * step_factor.powi(exponent)
}

/// The scaling state of one instance, as the engine needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScaleState {
    /// Current scale level.
    pub level: u32,
    /// When the last scaling action was applied, if ever.
    pub last_action_at: Option<DateTime<Utc>>,
    /// Timestamp of the newest sample the last evaluation used, if any.
    pub last_evaluated_sample: Option<DateTime<Utc>>,
}

impl ScaleState {
    /// Returns the state of a newly registered instance: level 1, never scaled, never evaluated.
    pub fn initial() -> ScaleState {
        ScaleState {
            level: 1,
            last_action_at: None,
            last_evaluated_sample: None,
        }
    }

    /// Returns whether a sample taken at `newest_sample` has not been evaluated yet.
    ///
    /// The decision tick evaluates an instance only when this holds, so unchanged data is not
    /// decided twice.
    pub fn has_new_data(&self, newest_sample: DateTime<Utc>) -> bool {
        self.last_evaluated_sample
            .is_none_or(|evaluated| newest_sample > evaluated)
    }

    /// Returns the state after an evaluation of the sample at `sample` with `outcome` at `now`.
    pub fn after(
        &self,
        outcome: &Outcome,
        sample: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> ScaleState {
        let evaluated = Some(
            self.last_evaluated_sample
                .map_or(sample, |last| last.max(sample)),
        );
        match *outcome {
            Outcome::Applied { to_level, .. } => ScaleState {
                level: to_level,
                last_action_at: Some(now),
                last_evaluated_sample: evaluated,
            },
            Outcome::Unchanged | Outcome::Blocked(_) => ScaleState {
                last_evaluated_sample: evaluated,
                ..*self
            },
        }
    }
}

impl Default for ScaleState {
    fn default() -> ScaleState {
        ScaleState::initial()
    }
}

/// The effect of applying a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Outcome {
    /// The decision was `no_action`; nothing to apply.
    Unchanged,
    /// The scale level moved.
    Applied {
        /// Level before the action.
        from_level: u32,
        /// Level after the action.
        to_level: u32,
    },
    /// The decision was a scaling action that a guard stopped.
    Blocked(Block),
}

impl Outcome {
    /// Returns whether the scale level changed.
    pub fn is_applied(&self) -> bool {
        matches!(self, Outcome::Applied { .. })
    }

    /// Returns the guard that stopped the action, if one did.
    pub fn block(&self) -> Option<Block> {
        match self {
            Outcome::Blocked(block) => Some(*block),
            Outcome::Unchanged | Outcome::Applied { .. } => None,
        }
    }
}

/// A guard that stops a scaling action without hiding the engine's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "reason")]
pub enum Block {
    /// An action was applied less than the cooldown ago.
    Cooldown {
        /// First moment another action may be applied.
        until: DateTime<Utc>,
    },
    /// Scale-up at the highest level.
    MaxLevel {
        /// The current (highest) level.
        level: u32,
    },
    /// Scale-down at the lowest level.
    MinLevel {
        /// The current (lowest) level.
        level: u32,
    },
    /// The policy records decisions without applying them.
    RecommendOnly,
}

impl Block {
    /// Returns a short wire name: `cooldown`, `max_level`, `min_level` or `recommend_only`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Block::Cooldown { .. } => "cooldown",
            Block::MaxLevel { .. } => "max_level",
            Block::MinLevel { .. } => "min_level",
            Block::RecommendOnly => "recommend_only",
        }
    }
}

/// Decides whether `decision` is applied to an instance in `state` at `now`.
///
/// Guards are checked in this order: recommend-only mode, cooldown (an action at `t` blocks
/// further actions while `now < t + cooldown`), then the level bounds.
pub fn apply(
    policy: &Policy,
    state: &ScaleState,
    decision: Decision,
    now: DateTime<Utc>,
) -> Outcome {
    let to_level = match decision {
        Decision::NoAction => return Outcome::Unchanged,
        Decision::ScaleUp => state.level.saturating_add(1),
        Decision::ScaleDown => state.level.saturating_sub(1),
    };
    if policy.recommend_only {
        return Outcome::Blocked(Block::RecommendOnly);
    }
    if let Some(last) = state.last_action_at {
        // A cooldown beyond the last representable time never ends.
        let until = TimeDelta::from_std(policy.cooldown)
            .ok()
            .and_then(|cooldown| last.checked_add_signed(cooldown))
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        if now < until {
            return Outcome::Blocked(Block::Cooldown { until });
        }
    }
    if to_level > policy.max_level {
        return Outcome::Blocked(Block::MaxLevel { level: state.level });
    }
    if to_level < policy.min_level {
        return Outcome::Blocked(Block::MinLevel { level: state.level });
    }
    Outcome::Applied {
        from_level: state.level,
        to_level,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::UNIX_EPOCH + TimeDelta::seconds(seconds)
    }

    fn step(
        policy: &Policy,
        state: ScaleState,
        decision: Decision,
        now: DateTime<Utc>,
    ) -> ScaleState {
        let outcome = apply(policy, &state, decision, now);
        state.after(&outcome, now, now)
    }

    #[test]
    fn capacity_progression_is_exact() {
        let policy = Policy {
            cooldown: Duration::ZERO,
            ..Policy::default()
        };
        let mut state = ScaleState::initial();
        assert_eq!(capacity_percent(state.level, policy.step_factor), 100.0);
        state = step(&policy, state, Decision::ScaleUp, at(1));
        assert_eq!(capacity_percent(state.level, policy.step_factor), 150.0);
        state = step(&policy, state, Decision::ScaleUp, at(2));
        assert_eq!(capacity_percent(state.level, policy.step_factor), 225.0);
        state = step(&policy, state, Decision::ScaleDown, at(3));
        assert_eq!(state.level, 2);
        assert_eq!(capacity_percent(state.level, policy.step_factor), 150.0);
    }

    #[test]
    fn level_bounds_block() {
        let policy = Policy {
            cooldown: Duration::ZERO,
            max_level: 3,
            ..Policy::default()
        };
        let bottom = ScaleState::initial();
        assert_eq!(
            apply(&policy, &bottom, Decision::ScaleDown, at(0)),
            Outcome::Blocked(Block::MinLevel { level: 1 })
        );
        let top = ScaleState {
            level: 3,
            ..ScaleState::initial()
        };
        assert_eq!(
            apply(&policy, &top, Decision::ScaleUp, at(0)),
            Outcome::Blocked(Block::MaxLevel { level: 3 })
        );
        assert_eq!(
            apply(&policy, &top, Decision::ScaleDown, at(0)),
            Outcome::Applied {
                from_level: 3,
                to_level: 2
            }
        );
    }

    #[test]
    fn cooldown_starts_and_ends() {
        let policy = Policy::default();
        let state = step(&policy, ScaleState::initial(), Decision::ScaleUp, at(1000));
        assert_eq!(state.level, 2);
        assert_eq!(state.last_action_at, Some(at(1000)));
        assert_eq!(
            apply(&policy, &state, Decision::ScaleUp, at(1000)),
            Outcome::Blocked(Block::Cooldown { until: at(1300) })
        );
        assert_eq!(
            apply(&policy, &state, Decision::ScaleDown, at(1299)),
            Outcome::Blocked(Block::Cooldown { until: at(1300) })
        );
        assert_eq!(
            apply(&policy, &state, Decision::ScaleUp, at(1300)),
            Outcome::Applied {
                from_level: 2,
                to_level: 3
            }
        );
    }

    #[test]
    fn endless_cooldown_blocks_without_overflow() {
        let policy = Policy {
            cooldown: Duration::from_secs(u64::MAX),
            ..Policy::default()
        };
        let state = step(&policy, ScaleState::initial(), Decision::ScaleUp, at(1000));
        assert_eq!(state.level, 2);

        let outcome = apply(&policy, &state, Decision::ScaleUp, at(2000));
        let Outcome::Blocked(Block::Cooldown { until }) = outcome else {
            panic!("expected a cooldown block, got {outcome:?}");
        };
        assert!(until > at(2000), "{until}");
        // Decision records keep the outcome as JSON, so it must read back.
        let json = serde_json::to_string(&outcome).expect("outcome serializes");
        let read_back: Outcome = serde_json::from_str(&json).expect("outcome reads back");
        assert_eq!(read_back, outcome);
    }

    #[test]
    fn no_action_is_never_blocked() {
        let policy = Policy {
            recommend_only: true,
            ..Policy::default()
        };
        let state = ScaleState {
            last_action_at: Some(at(0)),
            ..ScaleState::initial()
        };
        assert_eq!(
            apply(&policy, &state, Decision::NoAction, at(1)),
            Outcome::Unchanged
        );
    }

    #[test]
    fn recommend_only_blocks_actions() {
        let policy = Policy {
            recommend_only: true,
            ..Policy::default()
        };
        let outcome = apply(&policy, &ScaleState::initial(), Decision::ScaleUp, at(0));
        assert_eq!(outcome, Outcome::Blocked(Block::RecommendOnly));
        assert!(!outcome.is_applied());
    }

    #[test]
    fn blocked_outcome_keeps_level_but_marks_sample() {
        let state = ScaleState {
            level: 4,
            ..ScaleState::initial()
        };
        let next = state.after(&Outcome::Blocked(Block::RecommendOnly), at(50), at(60));
        assert_eq!(next.level, 4);
        assert_eq!(next.last_action_at, None);
        assert_eq!(next.last_evaluated_sample, Some(at(50)));
    }

    #[test]
    fn new_data_only_after_last_evaluated() {
        let state = ScaleState {
            last_evaluated_sample: Some(at(100)),
            ..ScaleState::initial()
        };
        assert!(!state.has_new_data(at(99)));
        assert!(!state.has_new_data(at(100)));
        assert!(state.has_new_data(at(101)));
        assert!(ScaleState::initial().has_new_data(at(0)));
    }
}
