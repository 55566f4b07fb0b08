//! Checks of request values, each failing with a message that names the field and the value.

use autoscaler_core::store::NewInstance;
use autoscaler_core::{InvalidSample, Sample};
use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use email_address::{EmailAddress, Options};
use uuid::Uuid;

use crate::errors::messages;
use crate::models::{PushSample, RegisterInstanceRequest, SimulateRequest};

/// Minimum length of a password in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Maximum length of a password in characters; longer ones only cost hashing time.
pub const MAX_PASSWORD_CHARS: usize = 1024;
/// Maximum length of an e-mail address in characters (the path limit of RFC 5321).
pub const MAX_EMAIL_CHARS: usize = 254;
/// Maximum length of an instance id in characters.
pub const MAX_INSTANCE_ID_CHARS: usize = 64;
/// Maximum length of an instance type or a region in characters.
pub const MAX_LABEL_CHARS: usize = 64;
/// Maximum length of a prolonged simulation in minutes (30 days).
pub const MAX_SIMULATION_MINUTES: i64 = 30 * 24 * 60;
/// Seconds between simulated samples when the request gives a duration but no interval,
/// the period of the mock collector.
pub const DEFAULT_SIMULATION_INTERVAL_SECONDS: i64 = 30;
/// How far in the future a pushed timestamp may lie, for clock skew between client and server.
pub const MAX_FUTURE_SKEW: TimeDelta = TimeDelta::minutes(5);

/// Returns the e-mail and password of a registration or login, the e-mail trimmed and
/// lowercased, or the contract's message when either is missing or empty.
pub fn credentials(
    email: Option<String>,
    password: Option<String>,
) -> Result<(String, String), String> {
    let email = email.map(|email| email.trim().to_lowercase());
    match (email, password) {
        (Some(email), Some(password)) if !email.is_empty() && !password.is_empty() => {
            Ok((email, password))
        }
        _ => Err(messages::CREDENTIALS_REQUIRED.to_owned()),
    }
}

/// Checks the syntax of a registration e-mail (which must have a top-level domain).
pub fn email(email: &str) -> Result<(), String> {
    if email.chars().count() > MAX_EMAIL_CHARS {
        return Err(format!(
            "Invalid email: longer than {MAX_EMAIL_CHARS} characters"
        ));
    }
    let options = Options::default()
        .with_required_tld()
        .without_domain_literal()
        .without_display_text();
    EmailAddress::parse_with_options(email, options)
        .map(|_| ())
        .map_err(|cause| format!("Invalid email '{email}': {cause}"))
}

/// Checks the length of a registration password.
pub fn password(password: &str) -> Result<(), String> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(format!(
            "Password must be at least {MIN_PASSWORD_CHARS} characters (got {chars})"
        ));
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(format!(
            "Password must be at most {MAX_PASSWORD_CHARS} characters (got {chars})"
        ));
    }
    Ok(())
}

/// Checks an instance registration and returns the instance to create for `owner`.
///
/// Real instances need an EC2 id and an AWS region name, because the collector looks them up
/// in CloudWatch. Mock ids may be any short run of letters, digits, `-`, `_` and `.`, since
/// they appear in URL paths.
pub fn new_instance(owner: Uuid, request: RegisterInstanceRequest) -> Result<NewInstance, String> {
    let required = |value: Option<String>| value.map(|v| v.trim().to_owned());
    let (Some(instance_id), Some(instance_type), Some(region)) = (
        required(request.instance_id),
        required(request.instance_type),
        required(request.region),
    ) else {
        return Err(messages::INSTANCE_FIELDS_REQUIRED.to_owned());
    };
    if instance_id.is_empty() || instance_type.is_empty() || region.is_empty() {
        return Err(messages::INSTANCE_FIELDS_REQUIRED.to_owned());
    }
    let is_mock = request.is_mock.unwrap_or(false);

    label("instance_type", &instance_type)?;
    label("region", &region)?;
    if is_mock {
        mock_instance_id(&instance_id)?;
    } else {
        ec2_instance_id(&instance_id)?;
        aws_region(&region)?;
    }
    Ok(NewInstance {
        owner_id: owner,
        instance_id,
        instance_type,
        region,
        is_mock,
    })
}

fn label(field: &str, value: &str) -> Result<(), String> {
    if value.chars().count() > MAX_LABEL_CHARS {
        return Err(format!(
            "Invalid {field}: longer than {MAX_LABEL_CHARS} characters"
        ));
    }
    if value.chars().any(|c| c.is_control()) {
        return Err(format!("Invalid {field}: contains control characters"));
    }
    Ok(())
}

fn mock_instance_id(id: &str) -> Result<(), String> {
    if id.len() > MAX_INSTANCE_ID_CHARS {
        return Err(format!(
            "Invalid instance_id: longer than {MAX_INSTANCE_ID_CHARS} characters"
        ));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if !id.chars().all(allowed) || id == "." || id == ".." {
        return Err(format!(
            "Invalid instance_id '{id}': a mock instance id may contain only letters, digits, \
             '-', '_' and '.'"
        ));
    }
    Ok(())
}

/// Accepts `i-` followed by 8 (older instances) or 17 lowercase hexadecimal digits.
fn ec2_instance_id(id: &str) -> Result<(), String> {
    let hex = id.strip_prefix("i-").unwrap_or("");
    let hex_ok = hex
        .chars()
        .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c));
    if (hex.len() == 8 || hex.len() == 17) && hex_ok {
        return Ok(());
    }
    let truncated_id: String = id.chars().take(MAX_INSTANCE_ID_CHARS).collect();
    Err(format!(
        "Invalid instance_id '{truncated_id}': an EC2 instance id is 'i-' followed by 8 or 17 \
         lowercase hex digits; register with \"is_mock\": true for a mock instance"
    ))
}

/// Accepts AWS region names: two letters, an optional `-gov`, a lowercase word and a digit,
/// for example `us-east-1`, `ap-southeast-2` or `us-gov-west-1`.
fn aws_region(region: &str) -> Result<(), String> {
    let parts: Vec<&str> = region.split('-').collect();
    let lower_word = |part: &str| !part.is_empty() && part.chars().all(|c| c.is_ascii_lowercase());
    let shape_ok = match parts.as_slice() {
        [area, word, number] => {
            area.len() == 2 && lower_word(area) && lower_word(word) && {
                number.len() == 1 && number.chars().all(|c| c.is_ascii_digit())
            }
        }
        [area, "gov", word, number] => {
            area.len() == 2 && lower_word(area) && lower_word(word) && {
                number.len() == 1 && number.chars().all(|c| c.is_ascii_digit())
            }
        }
        _ => false,
    };
    if shape_ok {
        Ok(())
    } else {
        Err(format!(
            "Invalid region '{region}': expected an AWS region name such as 'us-east-1'; \
             register with \"is_mock\": true for a mock instance"
        ))
    }
}

/// Parses a `limit` query parameter: absent gives `default`, else an integer in 1..=`max`.
pub fn limit(raw: Option<&String>, default: usize, max: usize) -> Result<usize, String> {
    let Some(raw) = raw else {
        return Ok(default);
    };
    match raw.trim().parse::<usize>() {
        Ok(value) if (1..=max).contains(&value) => Ok(value),
        _ => Err(format!(
            "Invalid limit '{raw}': must be an integer from 1 to {max}"
        )),
    }
}

/// A checked simulation request.
#[derive(Debug, Clone, PartialEq)]
pub enum Simulation {
    /// One sample at receive time.
    Instant {
        /// The instance id.
        instance_id: String,
        /// The values, timestamped at receive time.
        sample: Sample,
    },
    /// `count` samples `interval` apart, the last one at receive time.
    Prolonged {
        /// The instance id.
        instance_id: String,
        /// The samples, oldest first.
        samples: Vec<Sample>,
        /// The requested duration.
        duration_minutes: i64,
        /// The interval used.
        interval_seconds: i64,
    },
}

/// Checks a simulation request against `now` and the sample cap, and builds its samples.
pub fn simulation(
    request: SimulateRequest,
    now: DateTime<Utc>,
    max_samples: u64,
) -> Result<Simulation, String> {
    let (Some(instance_id), Some(cpu)) = (request.instance_id, request.cpu_utilization) else {
        return Err("instance_id and cpu_utilization are required".to_owned());
    };
    let sample = Sample::partial(
        now,
        cpu,
        request.memory_usage,
        request.network_in,
        request.network_out,
    )
    .map_err(|invalid| sample_message("", &invalid))?;

    let (duration_minutes, interval_seconds) =
        match (request.duration_minutes, request.interval_seconds) {
            (None, None) => {
                return Ok(Simulation::Instant {
                    instance_id,
                    sample,
                });
            }
            (None, Some(_)) => {
                return Err("interval_seconds needs duration_minutes".to_owned());
            }
            (Some(duration), interval) => (
                duration,
                interval.unwrap_or(DEFAULT_SIMULATION_INTERVAL_SECONDS),
            ),
        };
    let count = simulation_count(duration_minutes, interval_seconds, max_samples)?;
    let samples = (0..count)
        .rev()
        .map(|steps_back| sample.at(now - TimeDelta::seconds(steps_back * interval_seconds)))
        .collect();
    Ok(Simulation::Prolonged {
        instance_id,
        samples,
        duration_minutes,
        interval_seconds,
    })
}

/// Returns `duration_minutes * 60 / interval_seconds` after checking both values and the cap.
fn simulation_count(duration_minutes: i64, interval_seconds: i64, max: u64) -> Result<i64, String> {
    if !(1..=MAX_SIMULATION_MINUTES).contains(&duration_minutes) {
        return Err(format!(
            "Invalid duration_minutes {duration_minutes}: must be an integer from 1 to \
             {MAX_SIMULATION_MINUTES}"
        ));
    }
    let duration_seconds = duration_minutes * 60;
    if !(1..=duration_seconds).contains(&interval_seconds) {
        return Err(format!(
            "Invalid interval_seconds {interval_seconds}: must be an integer from 1 to \
             duration_minutes * 60 ({duration_seconds})"
        ));
    }
    let count = duration_seconds / interval_seconds;
    if u64::try_from(count).map_or(true, |count| count > max) {
        return Err(format!(
            "Simulation would create {count} samples (duration_minutes * 60 / \
             interval_seconds); at most {max} per request: raise interval_seconds or \
             lower duration_minutes"
        ));
    }
    Ok(count)
}

/// Formats a sample value error as `{prefix}{field}: {rule} (got {value})`.
fn sample_message(prefix: &str, invalid: &InvalidSample) -> String {
    format!(
        "{prefix}{}: {} (got {})",
        invalid.field, invalid.rule, invalid.value
    )
}

/// Checks a pushed batch against `now` and the cap, and returns its samples with their
/// timestamps truncated to microseconds.
pub fn pushed_samples(
    samples: Option<Vec<PushSample>>,
    now: DateTime<Utc>,
    max_samples: u64,
) -> Result<Vec<Sample>, String> {
    let samples = samples.unwrap_or_default();
    if samples.is_empty() {
        return Err("samples is required and must contain at least one sample".to_owned());
    }
    if u64::try_from(samples.len()).map_or(true, |len| len > max_samples) {
        return Err(format!(
            "samples contains {} items; at most {max_samples} per request: split the batch",
            samples.len()
        ));
    }
    let single = samples.len() == 1;
    let mut checked = Vec::with_capacity(samples.len());
    let mut seen = std::collections::HashMap::with_capacity(samples.len());
    for (index, pushed) in samples.into_iter().enumerate() {
        let sample = pushed_sample(index, pushed, now, single)?;
        if let Some(first) = seen.insert(sample.timestamp(), index) {
            return Err(format!(
                "samples[{index}].timestamp: same as samples[{first}] ({}); timestamps in a \
                 batch must be distinct",
                sample.timestamp().to_rfc3339()
            ));
        }
        checked.push(sample);
    }
    Ok(checked)
}

fn pushed_sample(
    index: usize,
    pushed: PushSample,
    now: DateTime<Utc>,
    single: bool,
) -> Result<Sample, String> {
    let prefix = format!("samples[{index}].");
    let timestamp = match pushed.timestamp.as_deref() {
        Some(text) => parse_timestamp(text).map_err(|message| format!("{prefix}{message}"))?,
        None if single => now,
        None => {
            return Err(format!(
                "{prefix}timestamp: missing; only a batch of one sample may omit timestamps"
            ));
        }
    };
    if timestamp > now + MAX_FUTURE_SKEW {
        return Err(format!(
            "{prefix}timestamp: {} is more than 5 minutes in the future (server time {})",
            timestamp.to_rfc3339(),
            now.to_rfc3339()
        ));
    }
    let Some(cpu) = pushed.cpu_utilization else {
        return Err(format!("{prefix}cpu_utilization: missing"));
    };
    Sample::partial(
        truncate_to_micros(timestamp),
        cpu,
        pushed.memory_usage,
        pushed.network_in,
        pushed.network_out,
    )
    .map_err(|invalid| sample_message(&prefix, &invalid))
}

/// Parses RFC 3339 with any offset, or a time without offset (`T` or space separated,
/// optional fraction) read as UTC.
pub fn parse_timestamp(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(text, format) {
            return Ok(naive.and_utc());
        }
    }
    Err(format!(
        "timestamp: invalid value '{text}'; use RFC 3339 such as 2026-01-22T05:16:25Z, or \
         2026-01-22T05:16:25.123456 read as UTC"
    ))
}

/// Drops sub-microsecond digits, the precision the API reports and stores compare on.
pub fn truncate_to_micros(at: DateTime<Utc>) -> DateTime<Utc> {
    let extra = at.timestamp_subsec_nanos() % 1_000;
    at - TimeDelta::nanoseconds(i64::from(extra))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        parse_timestamp("2026-01-22T05:16:25Z").expect("valid")
    }

    fn register(id: &str, region: &str, is_mock: bool) -> Result<NewInstance, String> {
        let request = RegisterInstanceRequest {
            instance_id: Some(id.into()),
            instance_type: Some("t2.micro".into()),
            region: Some(region.into()),
            is_mock: Some(is_mock),
        };
        new_instance(Uuid::nil(), request)
    }

    #[test]
    fn credentials_lowercase_and_require_both() {
        let (email, _) =
            credentials(Some(" User@Example.COM ".into()), Some("x".into())).expect("both given");
        assert_eq!(email, "user@example.com");
        let missing = credentials(Some("a@b.co".into()), None).expect_err("no password");
        assert_eq!(missing, messages::CREDENTIALS_REQUIRED);
        let empty = credentials(Some("".into()), Some("password".into())).expect_err("empty");
        assert_eq!(empty, messages::CREDENTIALS_REQUIRED);
    }

    #[test]
    fn email_syntax() {
        assert!(email("user@example.com").is_ok());
        for bad in [
            "no-at-sign",
            "user@",
            "@example.com",
            "user@localhost",
            "a b@c.com",
        ] {
            assert!(email(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn password_length() {
        assert!(password("12345678").is_ok());
        let error = password("1234567").expect_err("too short");
        assert_eq!(error, "Password must be at least 8 characters (got 7)");
    }

    #[test]
    fn ec2_ids_and_regions() {
        assert!(register("i-1234567890abcdef0", "us-east-1", false).is_ok());
        assert!(register("i-12345678", "us-gov-west-1", false).is_ok());
        assert!(register("i-1234567890ABCDEF0", "us-east-1", false).is_err());
        assert!(register("i-123", "us-east-1", false).is_err());
        assert!(register("mock-1", "us-east-1", false).is_err());
        assert!(register("i-12345678", "mock", false).is_err());
        assert!(register("i-12345678", "US-EAST-1", false).is_err());
        assert!(register("i-12345678", "us-east-12", false).is_err());
    }

    #[test]
    fn mock_ids_free_form_but_path_safe() {
        assert!(register("mock-test-1", "mock", true).is_ok());
        assert!(register("My_Mock.2", "anywhere", true).is_ok());
        assert!(register("a/b", "mock", true).is_err());
        assert!(register("..", "mock", true).is_err());
        assert!(register(&"m".repeat(65), "mock", true).is_err());
    }

    #[test]
    fn missing_instance_field() {
        let request = RegisterInstanceRequest {
            instance_id: Some("mock-1".into()),
            instance_type: None,
            region: Some("mock".into()),
            is_mock: Some(true),
        };
        let error = new_instance(Uuid::nil(), request).expect_err("missing type");
        assert_eq!(error, messages::INSTANCE_FIELDS_REQUIRED);
    }

    #[test]
    fn limit_bounds() {
        assert_eq!(limit(None, 100, 1000), Ok(100));
        assert_eq!(limit(Some(&"7".to_owned()), 100, 1000), Ok(7));
        assert!(limit(Some(&"0".to_owned()), 100, 1000).is_err());
        assert!(limit(Some(&"1001".to_owned()), 100, 1000).is_err());
        assert!(limit(Some(&"ten".to_owned()), 100, 1000).is_err());
    }

    fn simulate(duration: Option<i64>, interval: Option<i64>) -> SimulateRequest {
        SimulateRequest {
            instance_id: Some("mock-1".into()),
            cpu_utilization: Some(95.0),
            memory_usage: Some(50.0),
            duration_minutes: duration,
            interval_seconds: interval,
            ..SimulateRequest::default()
        }
    }

    #[test]
    fn prolonged_simulation_backdates_to_now() {
        let Ok(Simulation::Prolonged { samples, .. }) =
            simulation(simulate(Some(10), Some(30)), now(), 10_000)
        else {
            panic!("expected a prolonged simulation");
        };
        assert_eq!(samples.len(), 20);
        assert_eq!(samples[19].timestamp(), now());
        assert_eq!(samples[0].timestamp(), now() - TimeDelta::seconds(570));
        assert_eq!(samples[0].network_in(), None);
    }

    #[test]
    fn simulation_limits() {
        let cases = [
            (Some(0), Some(30)),
            (Some(-5), Some(30)),
            (Some(1), Some(61)),
            (Some(10), Some(0)),
            (None, Some(30)),
            (Some(MAX_SIMULATION_MINUTES + 1), Some(60)),
        ];
        for (duration, interval) in cases {
            let result = simulation(simulate(duration, interval), now(), 10_000);
            assert!(result.is_err(), "{duration:?} {interval:?} accepted");
        }
        // 100 minutes at 1 s is 6000 samples.
        let within = simulation(simulate(Some(100), Some(1)), now(), 6_000);
        assert!(within.is_ok());
        let over = simulation(simulate(Some(100), Some(1)), now(), 5_999).err();
        let message = over.expect("6000 samples exceed the cap of 5999");
        assert!(message.contains("at most 5999"), "{message}");
    }

    #[test]
    fn push_names_item_and_field() {
        let batch = vec![
            PushSample {
                timestamp: Some("2026-01-22T05:00:00Z".into()),
                cpu_utilization: Some(10.0),
                ..PushSample::default()
            },
            PushSample {
                timestamp: Some("2026-01-22T05:05:00Z".into()),
                cpu_utilization: Some(120.0),
                ..PushSample::default()
            },
        ];
        let error = pushed_samples(Some(batch), now(), 100).expect_err("cpu above 100");
        assert_eq!(
            error,
            "samples[1].cpu_utilization: must not exceed 100 (got 120)"
        );
    }

    #[test]
    fn push_rejects_future_duplicate_and_missing_timestamps() {
        let at = |text: &str| PushSample {
            timestamp: Some(text.into()),
            cpu_utilization: Some(1.0),
            ..PushSample::default()
        };
        let future = pushed_samples(Some(vec![at("2026-01-22T05:22:00Z")]), now(), 10);
        assert!(
            future
                .expect_err("future")
                .starts_with("samples[0].timestamp")
        );
        let near = pushed_samples(Some(vec![at("2026-01-22T05:20:00Z")]), now(), 10);
        assert!(near.is_ok());

        let twice = vec![at("2026-01-22T05:00:00Z"), at("2026-01-22 05:00:00")];
        let error = pushed_samples(Some(twice), now(), 10).expect_err("duplicate");
        assert!(
            error.starts_with("samples[1].timestamp: same as samples[0]"),
            "{error}"
        );

        let untimed = PushSample {
            cpu_utilization: Some(1.0),
            ..PushSample::default()
        };
        let single = pushed_samples(Some(vec![untimed.clone()]), now(), 10).expect("single");
        assert_eq!(single[0].timestamp(), now());
        let two = pushed_samples(Some(vec![at("2026-01-22T05:00:00Z"), untimed]), now(), 10);
        assert!(
            two.expect_err("untimed")
                .starts_with("samples[1].timestamp: missing")
        );
    }

    #[test]
    fn push_rejects_empty_and_oversized_batches() {
        assert!(pushed_samples(None, now(), 10).is_err());
        assert!(pushed_samples(Some(Vec::new()), now(), 10).is_err());
        let many = vec![PushSample::default(); 11];
        let error = pushed_samples(Some(many), now(), 10).expect_err("11 > 10");
        assert!(error.contains("at most 10"), "{error}");
    }

    #[test]
    fn timestamp_formats() {
        let utc = parse_timestamp("2026-01-22T05:16:25Z").expect("rfc 3339");
        let offset = parse_timestamp("2026-01-22T07:16:25+02:00").expect("offset");
        let naive = parse_timestamp("2026-01-22T05:16:25.000000").expect("naive");
        let spaced = parse_timestamp("2026-01-22 05:16:25").expect("space");
        assert_eq!(utc, offset);
        assert_eq!(utc, naive);
        assert_eq!(utc, spaced);
        assert!(parse_timestamp("yesterday").is_err());
    }

    #[test]
    fn truncation_keeps_micros() {
        let at = now() + TimeDelta::nanoseconds(123_456_789);
        let truncated = truncate_to_micros(at);
        assert_eq!(truncated.timestamp_subsec_nanos(), 123_456_000);
    }
}
