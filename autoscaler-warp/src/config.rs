//! Settings of `autoscaler-server`, from command-line flags, the environment and `.env`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use autoscaler_core::cloudwatch::CloudWatchConfig;
use autoscaler_core::{InvalidPolicy, Policy, SchedulerConfig};
use clap::Parser;

/// File name of the embedded database inside the data directory.
pub const DATABASE_FILE: &str = "autoscaler.redb";

/// File name of the generated JWT secret inside the data directory.
pub const JWT_SECRET_FILE: &str = "jwt_secret";

/// Every setting of the server. Each flag also reads the environment variable named in
/// `--help`; a flag on the command line wins over the environment.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "autoscaler-server",
    version,
    about = "HTTP API of the autoscaler: monitors instances, decides scaling and records why",
    long_about = None,
    after_help = "Variables in a .env file in the working directory are read as environment \
                  variables; variables already set win. RUST_LOG sets the log level (default info)."
)]
pub struct Config {
    /// Address and port the HTTP server listens on; port 0 picks a free port.
    #[arg(long = "bind", env = "BIND_ADDRESS", default_value = "0.0.0.0:5000")]
    pub bind: SocketAddr,

    /// Directory of the embedded database and the generated JWT secret; created if missing.
    /// Unused with DATABASE_URL.
    #[arg(long, env = "DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,

    /// Directory of the daily log files; created if missing.
    #[arg(long, env = "LOG_DIR", default_value = "logs")]
    pub log_dir: PathBuf,

    /// PostgreSQL connection URL. Without it the server keeps its data in an embedded
    /// database file in the data directory.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Secret that signs login tokens (HS256). Without it, embedded mode generates one and
    /// keeps it in the file jwt_secret in the data directory; with DATABASE_URL it is
    /// required. Prefer the environment variable, because other users can read command lines.
    #[arg(long, env = "JWT_SECRET_KEY", hide_env_values = true)]
    pub jwt_secret_key: Option<String>,

    /// Seconds between metric collections of monitored instances.
    #[arg(long, env = "COLLECT_INTERVAL_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub collect_interval_secs: u64,

    /// Seconds between scaling decisions for monitored instances.
    #[arg(long, env = "DECIDE_INTERVAL_SECS", default_value_t = 15,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub decide_interval_secs: u64,

    /// Length of the decision window in seconds: each decision reads the samples of this
    /// last stretch of time. Use at least 3 sample periods (3600 for 5-minute CloudWatch data).
    #[arg(long, env = "WINDOW_SECS", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub window_secs: u64,

    /// Seconds after an applied scaling action during which no other action is applied.
    #[arg(long, env = "COOLDOWN_SECS", default_value_t = 300)]
    pub cooldown_secs: u64,

    /// Lowest scale level an instance can be scaled down to.
    #[arg(long, env = "MIN_LEVEL", default_value_t = 1)]
    pub min_level: u32,

    /// Highest scale level an instance can be scaled up to.
    #[arg(long, env = "MAX_LEVEL", default_value_t = 10)]
    pub max_level: u32,

    /// Record decisions without changing scale levels or capacity. The variable takes true,
    /// false, yes, no, on, off, 1 or 0.
    #[arg(long, env = "RECOMMEND_ONLY",
          value_parser = clap::builder::BoolishValueParser::new())]
    pub recommend_only: bool,

    /// Length of one CloudWatch datapoint of EC2 instances in seconds, a multiple of 60: 60 for
    /// detailed monitoring, 300 for basic monitoring (which needs a window of about 3600).
    #[arg(long, env = "CLOUDWATCH_PERIOD_SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(60..))]
    pub cloudwatch_period_secs: u64,

    /// Seconds to wait after a CloudWatch period ends before collecting it. CloudWatch publishes
    /// EC2 metrics a few minutes late, and a signal that arrives after its period was collected
    /// stays absent.
    #[arg(long, env = "CLOUDWATCH_SETTLE_SECS", default_value_t = 0)]
    pub cloudwatch_settle_secs: u64,

    /// Days that samples and scaling decisions are kept; older ones are deleted by a
    /// background job. 0 keeps everything.
    #[arg(long, env = "RETENTION_DAYS", default_value_t = 7)]
    pub retention_days: u32,

    /// Seconds between runs of the retention job; the first run is at start-up.
    #[arg(long, env = "PURGE_INTERVAL_SECS", default_value_t = 3600,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub purge_interval_secs: u64,

    /// Maximum samples, and maximum decisions, the retention job deletes per batch. It repeats
    /// batches until nothing old is left, so smaller batches hold locks for less time.
    #[arg(long, env = "PURGE_BATCH_SIZE", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub purge_batch_size: u64,

    /// Largest request body accepted, in bytes.
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 1024 * 1024,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_body_bytes: u64,

    /// Maximum number of samples one prolonged simulation may create.
    #[arg(long, env = "MAX_SIMULATED_SAMPLES", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_simulated_samples: u64,

    /// Maximum number of samples one push request may carry.
    #[arg(long, env = "MAX_PUSHED_SAMPLES", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_pushed_samples: u64,

    /// Seconds a replica's claim on a monitored instance lasts. Replicas renew their claims at
    /// every tick; when a replica stops without releasing them, the others take its instances
    /// once the claims end. At least twice the shorter tick period. Default: three times the
    /// shorter tick period (45 with the default intervals).
    #[arg(long, env = "LEASE_SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub lease_secs: Option<u64>,
}

/// A `LEASE_SECS` so short that claims could end between two ticks of a live replica.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "LEASE_SECS is {lease_secs} but must be at least {minimum_secs}: twice the shorter of \
     COLLECT_INTERVAL_SECS and DECIDE_INTERVAL_SECS, so that claims outlive one slow tick"
)]
pub struct LeaseTooShort {
    /// The configured lease in seconds.
    pub lease_secs: u64,
    /// The shortest accepted lease in seconds.
    pub minimum_secs: u64,
}

impl Config {
    /// Builds the decision policy: the defaults of [`Policy`] with the window, cooldown, level
    /// bounds and recommend-only mode of this configuration.
    ///
    /// # Errors
    ///
    /// Returns the first policy field that is out of range, for example a minimum level above
    /// the maximum.
    pub fn policy(&self) -> Result<Policy, InvalidPolicy> {
        let policy = Policy {
            window: Duration::from_secs(self.window_secs),
            cooldown: Duration::from_secs(self.cooldown_secs),
            min_level: self.min_level,
            max_level: self.max_level,
            recommend_only: self.recommend_only,
            ..Policy::default()
        };
        policy.validate()?;
        Ok(policy)
    }

    /// Builds the tick periods of the scheduler.
    pub fn scheduler(&self) -> SchedulerConfig {
        let collect_every = Duration::from_secs(self.collect_interval_secs);
        SchedulerConfig {
            collect_every,
            decide_every: Duration::from_secs(self.decide_interval_secs),
            lease: Duration::from_secs(self.lease_secs()),
            retention: self.retention(),
            purge_every: Duration::from_secs(self.purge_interval_secs),
            purge_batch: usize::try_from(self.purge_batch_size).unwrap_or(usize::MAX),
            ..SchedulerConfig::default()
        }
    }

    /// Returns how long a claim on an instance lasts, in seconds: `--lease-secs`, or three
    /// times the shorter tick period.
    pub fn lease_secs(&self) -> u64 {
        let shorter_tick = self.collect_interval_secs.min(self.decide_interval_secs);
        self.lease_secs
            .unwrap_or_else(|| shorter_tick.saturating_mul(3))
    }

    /// Checks that a claim outlives two ticks, so that a live replica renews it in time even
    /// when one tick runs late.
    ///
    /// # Errors
    ///
    /// Returns [`LeaseTooShort`] when the lease is below twice the shorter tick period.
    pub fn validate_lease(&self) -> Result<(), LeaseTooShort> {
        let shorter_tick = self.collect_interval_secs.min(self.decide_interval_secs);
        let minimum_secs = shorter_tick.saturating_mul(2);
        let lease_secs = self.lease_secs();
        if lease_secs < minimum_secs {
            return Err(LeaseTooShort {
                lease_secs,
                minimum_secs,
            });
        }
        Ok(())
    }

    /// Returns how long samples and decisions are kept, or `None` to keep them forever.
    pub fn retention(&self) -> Option<Duration> {
        const DAY: Duration = Duration::from_secs(24 * 60 * 60);
        (self.retention_days > 0).then(|| DAY.saturating_mul(self.retention_days))
    }

    /// Builds the CloudWatch collector's settings: this configuration's period and settle
    /// time, and a lookback that covers the decision window `window` after both.
    pub fn cloudwatch(&self, window: Duration) -> CloudWatchConfig {
        let period = Duration::from_secs(self.cloudwatch_period_secs);
        let settle = Duration::from_secs(self.cloudwatch_settle_secs);
        CloudWatchConfig {
            period,
            settle,
            lookback: window.saturating_add(period).saturating_add(settle),
            ..CloudWatchConfig::for_window(window)
        }
    }

    /// Returns the path of the embedded database file.
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join(DATABASE_FILE)
    }

    /// Returns the path of the generated JWT secret.
    pub fn jwt_secret_path(&self) -> PathBuf {
        self.data_dir.join(JWT_SECRET_FILE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Config {
        let mut argv = vec!["autoscaler-server"];
        argv.extend_from_slice(args);
        Config::try_parse_from(argv).expect("arguments parse")
    }

    #[test]
    fn defaults_match_original_service() {
        let config = parse(&[]);
        assert_eq!(config.bind, "0.0.0.0:5000".parse().expect("address"));
        assert_eq!(config.collect_interval_secs, 30);
        assert_eq!(config.decide_interval_secs, 15);
        let policy = config.policy().expect("default policy is valid");
        assert_eq!(policy, Policy::default());
    }

    #[test]
    fn flags_set_policy() {
        let config = parse(&[
            "--window-secs",
            "3600",
            "--cooldown-secs",
            "0",
            "--max-level",
            "4",
            "--recommend-only",
        ]);
        let policy = config.policy().expect("valid policy");
        assert_eq!(policy.window, Duration::from_secs(3600));
        assert_eq!(policy.cooldown, Duration::ZERO);
        assert_eq!(policy.max_level, 4);
        assert!(policy.recommend_only);
    }

    #[test]
    fn cloudwatch_lookback_covers_window() {
        let config = parse(&[
            "--cloudwatch-period-secs",
            "300",
            "--cloudwatch-settle-secs",
            "120",
        ]);
        let window = Duration::from_secs(3600);
        let cloudwatch = config.cloudwatch(window);
        assert_eq!(cloudwatch.period, Duration::from_secs(300));
        assert_eq!(cloudwatch.lookback, Duration::from_secs(3600 + 300 + 120));
        assert_eq!(cloudwatch.validate(window), Ok(()));

        let uneven = parse(&["--cloudwatch-period-secs", "90"]).cloudwatch(window);
        assert_eq!(
            uneven
                .validate(window)
                .expect_err("not whole minutes")
                .field,
            "period"
        );
    }

    #[test]
    fn retention_defaults_to_seven_days() {
        let scheduler = parse(&[]).scheduler();
        assert_eq!(scheduler.retention, Some(Duration::from_secs(7 * 86_400)));
        assert_eq!(scheduler.purge_every, Duration::from_secs(3600));
        assert_eq!(scheduler.purge_batch, 10_000);
    }

    #[test]
    fn retention_flags_set_scheduler() {
        let scheduler = parse(&[
            "--retention-days",
            "30",
            "--purge-interval-secs",
            "60",
            "--purge-batch-size",
            "500",
        ])
        .scheduler();
        assert_eq!(scheduler.retention, Some(Duration::from_secs(30 * 86_400)));
        assert_eq!(scheduler.purge_every, Duration::from_secs(60));
        assert_eq!(scheduler.purge_batch, 500);
    }

    #[test]
    fn zero_retention_keeps_everything() {
        let config = parse(&["--retention-days", "0"]);
        assert_eq!(config.scheduler().retention, None);
    }

    #[test]
    fn zero_purge_batch_rejected() {
        let argv = ["autoscaler-server", "--purge-batch-size", "0"];
        assert!(Config::try_parse_from(argv).is_err());
    }

    #[test]
    fn inverted_levels_rejected() {
        let config = parse(&["--min-level", "5", "--max-level", "3"]);
        let error = config.policy().expect_err("min above max");
        assert_eq!(error.field, "min_level");
    }

    #[test]
    fn lease_defaults_to_three_ticks() {
        let config = parse(&[]);
        assert_eq!(config.scheduler().lease, Duration::from_secs(45));
        assert_eq!(config.validate_lease(), Ok(()));

        let slow_decisions = parse(&["--decide-interval-secs", "60"]);
        assert_eq!(slow_decisions.scheduler().lease, Duration::from_secs(90));
    }

    #[test]
    fn lease_flag_sets_scheduler() {
        let config = parse(&["--lease-secs", "120"]);
        assert_eq!(config.scheduler().lease, Duration::from_secs(120));
        assert_eq!(config.validate_lease(), Ok(()));
    }

    #[test]
    fn short_lease_rejected() {
        let config = parse(&["--lease-secs", "29"]);
        let error = config
            .validate_lease()
            .expect_err("below two decision periods");
        assert_eq!(error.minimum_secs, 30);
        assert!(error.to_string().contains("LEASE_SECS is 29"), "{error}");

        let argv = ["autoscaler-server", "--lease-secs", "0"];
        assert!(Config::try_parse_from(argv).is_err());
    }

    #[test]
    fn zero_interval_rejected() {
        let argv = ["autoscaler-server", "--decide-interval-secs", "0"];
        assert!(Config::try_parse_from(argv).is_err());
    }
}
