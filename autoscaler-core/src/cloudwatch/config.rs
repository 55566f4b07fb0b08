//! Settings of the CloudWatch collector.

use std::time::Duration;

use chrono::TimeDelta;

/// Settings of [`CloudWatchCollector`](super::CloudWatchCollector).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudWatchConfig {
    /// Length of one datapoint, a multiple of 60 s. Use 60 s for instances with detailed
    /// monitoring and 300 s for basic monitoring, which publishes one datapoint per 5 minutes.
    pub period: Duration,
    /// How far back each request reaches; it must cover the decision window. Datapoints older
    /// than the newest one already returned for an instance are not requested again.
    pub lookback: Duration,
    /// How long after a period ends before it is requested. CloudWatch publishes EC2 metrics a
    /// few minutes late, and the store keeps the first sample of each timestamp. So a signal
    /// that arrives after its period was collected stays absent, and a longer settle time
    /// trades decision latency for complete samples.
    pub settle: Duration,
    /// CloudWatch endpoint for every region, for example `http://127.0.0.1:5000`. `None` uses
    /// the endpoint of the SDK configuration, which honours `AWS_ENDPOINT_URL`.
    pub endpoint_url: Option<String>,
    /// Attempts per request, the first included, in the SDK's standard retry mode: throttling
    /// and transient errors are retried with exponential backoff and jitter.
    pub max_attempts: u32,
    /// Time limit of one attempt.
    pub attempt_timeout: Duration,
    /// Time limit of one request, all attempts and backoff included.
    pub operation_timeout: Duration,
}

impl CloudWatchConfig {
    /// Returns the defaults with a lookback of `window` plus one period, so that the whole
    /// window is requested even after the start is rounded down to a period boundary.
    pub fn for_window(window: Duration) -> CloudWatchConfig {
        let period = Duration::from_secs(60);
        CloudWatchConfig {
            period,
            lookback: window.saturating_add(period),
            settle: Duration::ZERO,
            endpoint_url: None,
            max_attempts: 3,
            attempt_timeout: Duration::from_secs(10),
            operation_timeout: Duration::from_secs(30),
        }
    }

    /// Checks every field, and that the lookback covers the decision window `window`.
    ///
    /// # Errors
    ///
    /// Returns the first field that is out of range, with the value and the accepted range.
    pub fn validate(&self, window: Duration) -> Result<(), InvalidCloudWatchConfig> {
        let invalid = |field, message: String| Err(InvalidCloudWatchConfig { field, message });
        let period = self.period.as_secs();
        let whole_minutes = Duration::from_secs(period / 60 * 60);
        if period == 0 || self.period != whole_minutes {
            return invalid(
                "period",
                format!(
                    "{:?} is not a whole multiple of 60 s, as EC2 metrics require",
                    self.period
                ),
            );
        }
        if i32::try_from(period).is_err() {
            return invalid("period", format!("{period} s is too long"));
        }
        if self.lookback < self.period || self.lookback < window {
            return invalid(
                "lookback",
                format!(
                    "{:?} must be at least the period ({:?}) and the decision window ({window:?})",
                    self.lookback, self.period
                ),
            );
        }
        for (field, value) in [("lookback", self.lookback), ("settle", self.settle)] {
            if TimeDelta::from_std(value).is_err() {
                return invalid(field, format!("{value:?} is too long"));
            }
        }
        if self.lookback < self.settle.saturating_add(self.period) {
            return invalid(
                "lookback",
                format!(
                    "{:?} must be at least the settle time ({:?}) plus one period ({:?})",
                    self.lookback, self.settle, self.period
                ),
            );
        }
        if self.max_attempts == 0 {
            return invalid("max_attempts", "must be at least 1".into());
        }
        for (field, value) in [
            ("attempt_timeout", self.attempt_timeout),
            ("operation_timeout", self.operation_timeout),
        ] {
            if value.is_zero() {
                return invalid(field, "must be longer than zero".into());
            }
        }
        Ok(())
    }
}

impl Default for CloudWatchConfig {
    /// Returns the settings for the default 5-minute decision window.
    fn default() -> CloudWatchConfig {
        CloudWatchConfig::for_window(Duration::from_secs(5 * 60))
    }
}

/// A collector setting whose value cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid CloudWatch setting {field}: {message}")]
pub struct InvalidCloudWatchConfig {
    /// Name of the field.
    pub field: &'static str,
    /// The problem with the value.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(300);

    fn field_at_fault(config: CloudWatchConfig, window: Duration) -> &'static str {
        config.validate(window).unwrap_err().field
    }

    #[test]
    fn defaults_are_valid_and_cover_window() {
        let config = CloudWatchConfig::default();
        assert_eq!(config.validate(WINDOW), Ok(()));
        assert_eq!(config.period, Duration::from_secs(60));
        assert_eq!(config.lookback, Duration::from_secs(360));

        let hour = Duration::from_secs(3600);
        assert_eq!(CloudWatchConfig::for_window(hour).validate(hour), Ok(()));
    }

    #[test]
    fn period_must_be_whole_minutes() {
        for seconds in [0, 30, 90] {
            let config = CloudWatchConfig {
                period: Duration::from_secs(seconds),
                ..CloudWatchConfig::default()
            };
            assert_eq!(field_at_fault(config, WINDOW), "period", "{seconds} s");
        }
        let config = CloudWatchConfig {
            period: Duration::from_millis(60_500),
            ..CloudWatchConfig::default()
        };
        assert_eq!(field_at_fault(config, WINDOW), "period");
    }

    #[test]
    fn lookback_must_cover_window() {
        let config = CloudWatchConfig::default();
        let error = config.validate(Duration::from_secs(3600)).unwrap_err();
        assert_eq!(error.field, "lookback");
        assert!(error.message.contains("decision window"), "{error}");

        let config = CloudWatchConfig {
            period: Duration::from_secs(600),
            ..CloudWatchConfig::default()
        };
        assert_eq!(field_at_fault(config, WINDOW), "lookback");
    }

    #[test]
    fn attempts_and_timeouts_must_be_positive() {
        let config = CloudWatchConfig {
            max_attempts: 0,
            ..CloudWatchConfig::default()
        };
        assert_eq!(field_at_fault(config, WINDOW), "max_attempts");
        let config = CloudWatchConfig {
            operation_timeout: Duration::ZERO,
            ..CloudWatchConfig::default()
        };
        assert_eq!(field_at_fault(config, WINDOW), "operation_timeout");
    }

    #[test]
    fn huge_settle_is_rejected() {
        let config = CloudWatchConfig {
            settle: Duration::MAX,
            ..CloudWatchConfig::default()
        };
        assert_eq!(field_at_fault(config, WINDOW), "settle");

        let config = CloudWatchConfig {
            settle: Duration::from_secs(360),
            ..CloudWatchConfig::default()
        };
        assert_eq!(field_at_fault(config, WINDOW), "lookback");
    }
}
