//! The core of an instance autoscaler: the metric model, the decision engine, scale levels and
//! capacity, the storage and metric-source traits, and the scheduler that ties them together.
//!
//! The engine is a pure function. Given a [`Policy`], the samples of a window, the evaluation
//! time and the instance's [`ScaleState`], [`evaluate`] returns the decision, the rule that
//! fired, the evidence behind it and whether the guards let it apply.
//!
//! ```
//! use autoscaler_core::{evaluate, Decision, Policy, Rule, Sample, ScaleState, WindowSample};
//! use chrono::{TimeDelta, Utc};
//!
//! let now = Utc::now();
//! // Ten samples, 30 s apart, all at 95 % CPU: the sustained-high rule fires.
//! let window: Vec<WindowSample> = (0..10)
//!     .map(|i| {
//!         let at = now - TimeDelta::seconds(30 * i);
//!         Sample::new(at, 95.0, Some(50.0), 1e6, 5e5).map(WindowSample::from)
//!     })
//!     .collect::<Result<_, _>>()?;
//!
//! let evaluation = evaluate(&Policy::default(), &window, now, &ScaleState::initial());
//! assert_eq!(evaluation.decision, Decision::ScaleUp);
//! assert_eq!(evaluation.rule, Rule::SustainedHigh);
//! assert!(evaluation.outcome.is_applied());
//! assert_eq!(
//!     evaluation.reason(),
//!     "Sustained scale up: CPU > 90% for 100.0% of last 5 minutes (Current: 95.00%)"
//! );
//! # Ok::<(), autoscaler_core::InvalidSample>(())
//! ```
//!
//! # Rules
//!
//! See [`engine`] for the rules and their numbers; every number is a field of [`Policy`].
//! Applying a decision moves the scale level by one; capacity is `100 % * 1.5^(level - 1)`
//! ([`capacity_percent`]). Levels stay within 1..=10 and a 5-minute cooldown follows every
//! applied action ([`apply`]).
//!
//! # Features
//!
//! | feature | what it adds |
//! |---|---|
//! | `conformance` | `conformance`: checks that any [`Store`] implementation must pass |
//! | `cloudwatch` | `cloudwatch`: a collector that reads EC2 metrics from Amazon CloudWatch |

#![warn(missing_docs)]

pub mod capacity;
pub mod clock;
#[cfg(feature = "cloudwatch")]
pub mod cloudwatch;
pub mod collector;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod engine;
pub mod model;
pub mod policy;
mod reason;
pub mod scheduler;
pub mod store;

pub use capacity::{Block, Outcome, ScaleState, apply, capacity_percent};
pub use clock::{Clock, ManualClock, SystemClock};
pub use collector::{CollectError, Collected, Collector, MockCollector, RoutingCollector};
pub use engine::{Evaluation, Evidence, Rule, Vote, WindowSample, evaluate};
pub use model::{Decision, InvalidSample, PerSignal, Sample, Signal};
pub use policy::{InvalidPolicy, MaterialityFloor, Policy};
pub use scheduler::{Scheduler, SchedulerConfig, TickReport};
pub use store::Store;
