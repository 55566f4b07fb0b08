//! Metric samples, signals and scaling decisions.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One of the four signals a sample carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// CPU utilization in percent.
    Cpu,
    /// Memory usage in percent.
    Memory,
    /// Bytes received over the sample's period.
    NetworkIn,
    /// Bytes sent over the sample's period.
    NetworkOut,
}

impl Signal {
    /// All signals, in the order the engine reports them.
    pub const ALL: [Signal; 4] = [
        Signal::Cpu,
        Signal::Memory,
        Signal::NetworkIn,
        Signal::NetworkOut,
    ];

    /// Returns the name used in reasons: `CPU`, `Memory`, `Network In`, `Network Out`.
    pub fn label(self) -> &'static str {
        match self {
            Signal::Cpu => "CPU",
            Signal::Memory => "Memory",
            Signal::NetworkIn => "Network In",
            Signal::NetworkOut => "Network Out",
        }
    }

    /// Returns whether the signal is a percentage (CPU and memory) rather than a byte count.
    pub fn is_percent(self) -> bool {
        matches!(self, Signal::Cpu | Signal::Memory)
    }
}

/// Four values, one per [`Signal`]; used for per-signal weights and floors.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PerSignal<T> {
    /// Value for [`Signal::Cpu`].
    pub cpu: T,
    /// Value for [`Signal::Memory`].
    pub memory: T,
    /// Value for [`Signal::NetworkIn`].
    pub network_in: T,
    /// Value for [`Signal::NetworkOut`].
    pub network_out: T,
}

impl<T: Copy> PerSignal<T> {
    /// Returns the value for `signal`.
    pub fn get(&self, signal: Signal) -> T {
        match signal {
            Signal::Cpu => self.cpu,
            Signal::Memory => self.memory,
            Signal::NetworkIn => self.network_in,
            Signal::NetworkOut => self.network_out,
        }
    }
}

/// The engine's decision for one evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Raise the scale level by one.
    ScaleUp,
    /// Lower the scale level by one.
    ScaleDown,
    /// Keep the scale level.
    NoAction,
}

impl Decision {
    /// Returns the wire name: `scale_up`, `scale_down` or `no_action`.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::ScaleUp => "scale_up",
            Decision::ScaleDown => "scale_down",
            Decision::NoAction => "no_action",
        }
    }

    /// Parses a wire name produced by [`Decision::as_str`].
    pub fn parse(name: &str) -> Option<Decision> {
        match name {
            "scale_up" => Some(Decision::ScaleUp),
            "scale_down" => Some(Decision::ScaleDown),
            "no_action" => Some(Decision::NoAction),
            _ => None,
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A field of a sample that failed validation, with the value and the rule it broke.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid {field}: {value} ({rule})")]
pub struct InvalidSample {
    /// Wire name of the field, for example `cpu_utilization`.
    pub field: &'static str,
    /// The rejected value.
    pub value: f64,
    /// The rule the value broke.
    pub rule: &'static str,
}

/// One observation of an instance: CPU and memory in percent, network in bytes.
///
/// Construction validates every value, so a `Sample` never holds NaN, an infinity, a negative
/// number or a percentage above 100. Memory and network are optional: EC2 reports memory only
/// when the CloudWatch agent runs, and a client may push CPU alone. An absent value is never
/// read as zero.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawSample", into = "RawSample")]
pub struct Sample {
    timestamp: DateTime<Utc>,
    cpu_utilization: f64,
    memory_usage: Option<f64>,
    network_in: Option<f64>,
    network_out: Option<f64>,
}

impl Sample {
    /// Builds a validated sample.
    ///
    /// # Errors
    ///
    /// Returns [`InvalidSample`] naming the first field that is not finite, is negative, or
    /// (for CPU and memory) exceeds 100.
    pub fn new(
        timestamp: DateTime<Utc>,
        cpu_utilization: f64,
        memory_usage: Option<f64>,
        network_in: f64,
        network_out: f64,
    ) -> Result<Sample, InvalidSample> {
        Sample::partial(
            timestamp,
            cpu_utilization,
            memory_usage,
            Some(network_in),
            Some(network_out),
        )
    }

    /// Builds a validated sample in which memory and network may be absent.
    ///
    /// # Errors
    ///
    /// As [`Sample::new`].
    pub fn partial(
        timestamp: DateTime<Utc>,
        cpu_utilization: f64,
        memory_usage: Option<f64>,
        network_in: Option<f64>,
        network_out: Option<f64>,
    ) -> Result<Sample, InvalidSample> {
        check_percent("cpu_utilization", cpu_utilization)?;
        if let Some(memory) = memory_usage {
            check_percent("memory_usage", memory)?;
        }
        if let Some(bytes) = network_in {
            check_bytes("network_in", bytes)?;
        }
        if let Some(bytes) = network_out {
            check_bytes("network_out", bytes)?;
        }
        // Adding 0.0 turns -0.0 into 0.0, so a negative zero is never stored or echoed.
        let cpu_utilization = cpu_utilization + 0.0;
        let memory_usage = memory_usage.map(|value| value + 0.0);
        let network_in = network_in.map(|value| value + 0.0);
        let network_out = network_out.map(|value| value + 0.0);
        Ok(Sample {
            timestamp,
            cpu_utilization,
            memory_usage,
            network_in,
            network_out,
        })
    }

    /// Time the sample was taken.
    pub fn timestamp(&self) -> DateTime<Utc> {
        self.timestamp
    }

    /// CPU utilization in percent.
    pub fn cpu_utilization(&self) -> f64 {
        self.cpu_utilization
    }

    /// Memory usage in percent, if the source reports it.
    pub fn memory_usage(&self) -> Option<f64> {
        self.memory_usage
    }

    /// Bytes received, if the source reports it.
    pub fn network_in(&self) -> Option<f64> {
        self.network_in
    }

    /// Bytes sent, if the source reports it.
    pub fn network_out(&self) -> Option<f64> {
        self.network_out
    }

    /// Returns the value of `signal`, or `None` when the sample lacks it.
    pub fn value(&self, signal: Signal) -> Option<f64> {
        match signal {
            Signal::Cpu => Some(self.cpu_utilization),
            Signal::Memory => self.memory_usage,
            Signal::NetworkIn => self.network_in,
            Signal::NetworkOut => self.network_out,
        }
    }

    /// Returns a copy taken at `timestamp`, with the same values.
    pub fn at(&self, timestamp: DateTime<Utc>) -> Sample {
        Sample { timestamp, ..*self }
    }
}

fn check_percent(field: &'static str, value: f64) -> Result<(), InvalidSample> {
    check_bytes(field, value)?;
    if value > 100.0 {
        return Err(InvalidSample {
            field,
            value,
            rule: "must not exceed 100",
        });
    }
    Ok(())
}

fn check_bytes(field: &'static str, value: f64) -> Result<(), InvalidSample> {
    if !value.is_finite() {
        return Err(InvalidSample {
            field,
            value,
            rule: "must be a finite number",
        });
    }
    if value < 0.0 {
        return Err(InvalidSample {
            field,
            value,
            rule: "must not be negative",
        });
    }
    Ok(())
}

/// Serialized form of [`Sample`]; deserializing goes through [`Sample::new`].
#[derive(Serialize, Deserialize)]
struct RawSample {
    timestamp: DateTime<Utc>,
    cpu_utilization: f64,
    memory_usage: Option<f64>,
    network_in: Option<f64>,
    network_out: Option<f64>,
}

impl TryFrom<RawSample> for Sample {
    type Error = InvalidSample;

    fn try_from(raw: RawSample) -> Result<Sample, InvalidSample> {
        Sample::partial(
            raw.timestamp,
            raw.cpu_utilization,
            raw.memory_usage,
            raw.network_in,
            raw.network_out,
        )
    }
}

impl From<Sample> for RawSample {
    fn from(sample: Sample) -> RawSample {
        RawSample {
            timestamp: sample.timestamp,
            cpu_utilization: sample.cpu_utilization,
            memory_usage: sample.memory_usage,
            network_in: sample.network_in,
            network_out: sample.network_out,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at_zero() -> DateTime<Utc> {
        DateTime::UNIX_EPOCH
    }

    #[test]
    fn sample_accepts_bounds() {
        assert!(Sample::new(at_zero(), 0.0, Some(100.0), 0.0, 0.0).is_ok());
        assert!(Sample::new(at_zero(), 100.0, None, 1e12, 1e12).is_ok());
    }

    #[test]
    fn sample_rejects_bad_values_naming_field() {
        let cases = [
            (
                f64::NAN,
                Some(1.0),
                1.0,
                1.0,
                "cpu_utilization",
                "must be a finite number",
            ),
            (
                100.5,
                Some(1.0),
                1.0,
                1.0,
                "cpu_utilization",
                "must not exceed 100",
            ),
            (
                1.0,
                Some(-0.1),
                1.0,
                1.0,
                "memory_usage",
                "must not be negative",
            ),
            (
                1.0,
                Some(101.0),
                1.0,
                1.0,
                "memory_usage",
                "must not exceed 100",
            ),
            (
                1.0,
                None,
                f64::INFINITY,
                1.0,
                "network_in",
                "must be a finite number",
            ),
            (1.0, None, 1.0, -5.0, "network_out", "must not be negative"),
        ];
        for (cpu, memory, network_in, network_out, field, rule) in cases {
            let error = Sample::new(at_zero(), cpu, memory, network_in, network_out).unwrap_err();
            assert_eq!(error.field, field);
            assert_eq!(error.rule, rule);
        }
    }

    #[test]
    fn sample_stores_negative_zero_as_zero() {
        let sample = Sample::new(at_zero(), -0.0, Some(-0.0), -0.0, -0.0).unwrap();
        for signal in Signal::ALL {
            let value = sample.value(signal).unwrap();
            assert!(value.is_sign_positive(), "{signal:?} is {value}");
        }
    }

    #[test]
    fn sample_error_message_names_field_and_value() {
        let error = Sample::new(at_zero(), 120.0, None, 0.0, 0.0).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid cpu_utilization: 120 (must not exceed 100)"
        );
    }

    #[test]
    fn sample_deserialize_validates() {
        let json = r#"{"timestamp":"2026-01-01T00:00:00Z","cpu_utilization":-1,
            "memory_usage":null,"network_in":0,"network_out":0}"#;
        let error = serde_json::from_str::<Sample>(json).unwrap_err();
        assert!(error.to_string().contains("cpu_utilization"), "{error}");
    }

    #[test]
    fn decision_names_round_trip() {
        for decision in [Decision::ScaleUp, Decision::ScaleDown, Decision::NoAction] {
            assert_eq!(Decision::parse(decision.as_str()), Some(decision));
        }
        assert_eq!(Decision::parse("scale_sideways"), None);
    }
}
