//! The one error type of the engine. Every variant names what it concerns (the parameter, the
//! topic, the partition, the broker list) so the front ends can show it as is.

use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// A `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the engine.
///
/// Display texts are written for someone at a SQL prompt: they say what was expected, what was
/// found and where, and never contain a credential.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A parameter has a value that can't be used. `parameter` is the name the user wrote
    /// (`brokers`, `timeout`, `topic`, …); `reason` says what was expected and what was found.
    #[error("invalid {parameter}: {reason}")]
    InvalidParameter {
        /// The parameter's name as the user spells it.
        parameter: String,
        /// What was expected, and what was found.
        reason: String,
    },

    /// A librdkafka property in `config` is refused because it would give kafkars a side
    /// effect on the cluster (committing offsets, creating topics).
    #[error("config property '{key}' is not allowed: {reason}")]
    ForbiddenConfig {
        /// The property name.
        key: String,
        /// Why it is refused and what to do instead.
        reason: String,
    },

    /// librdkafka refused the client configuration (an unknown property or a bad value).
    #[error("invalid Kafka client configuration: {message}")]
    ClientCreation {
        /// librdkafka's explanation, with any secret values removed.
        message: String,
    },

    /// No broker of the bootstrap list answered a metadata request within the timeout.
    #[error(
        "could not reach Kafka brokers {brokers} within {}: {reason} \
         (check the 'brokers' parameter and that the brokers are running)",
        format_duration(*.timeout)
    )]
    BrokersUnreachable {
        /// The bootstrap list that was tried.
        brokers: String,
        /// How long the request waited.
        timeout: Duration,
        /// librdkafka's reason.
        reason: String,
    },

    /// The brokers refused the client's SASL credentials. Returned as soon as librdkafka
    /// reports it, not after the timeout: waiting does not mend a wrong password.
    #[error(
        "authentication{} with Kafka brokers {brokers} failed: the brokers refused the \
         credentials (check config 'sasl.mechanism', 'sasl.username' and 'sasl.password')",
        describe_login(mechanism.as_deref(), user.as_deref())
    )]
    Authentication {
        /// The bootstrap list that was tried.
        brokers: String,
        /// `sasl.mechanism` as configured, if it was.
        mechanism: Option<String>,
        /// `sasl.username` as configured, if it was (a user name is no secret).
        user: Option<String>,
    },

    /// The TLS handshake with the brokers failed, most often because their certificate could
    /// not be verified against the trusted CAs. Returned as soon as librdkafka reports it.
    #[error(
        "TLS (SSL) handshake with Kafka brokers {brokers} failed: the brokers' certificate could \
         not be verified or the handshake was refused (certificate verification is on: set \
         config 'ssl.ca.location' to the CA certificate that signed the brokers' certificates)"
    )]
    Tls {
        /// The bootstrap list that was tried.
        brokers: String,
    },

    /// The topic does not exist on the cluster.
    #[error("topic '{topic}' does not exist on Kafka brokers {brokers}")]
    UnknownTopic {
        /// The topic as the user wrote it.
        topic: String,
        /// The bootstrap list that was asked.
        brokers: String,
    },

    /// A topic disappeared from the cluster while a scan was reading it.
    #[error("topic '{topic}' was deleted from Kafka brokers {brokers} while it was being read")]
    TopicDeleted {
        /// The topic.
        topic: String,
        /// The bootstrap list.
        brokers: String,
    },

    /// The cluster returned an error for a topic's metadata (not authorized, leader not
    /// available, …).
    #[error("metadata request for topic '{topic}' on Kafka brokers {brokers} failed: {code}")]
    TopicMetadata {
        /// The topic concerned.
        topic: String,
        /// The bootstrap list that was asked.
        brokers: String,
        /// The broker's error code.
        code: RDKafkaErrorCode,
    },

    /// A metadata request failed for a reason other than unreachable brokers (authentication,
    /// authorization, …).
    #[error("metadata request{} to Kafka brokers {brokers} failed: {reason}", for_topic(topic.as_deref()))]
    MetadataFetch {
        /// The topic asked about, when the request concerned one.
        topic: Option<String>,
        /// The bootstrap list that was asked.
        brokers: String,
        /// What went wrong.
        reason: String,
    },

    /// Reading messages failed for a reason librdkafka does not recover from (offset out of
    /// range, topic deleted, not authorized, …).
    #[error("reading {} from Kafka brokers {brokers} failed: {reason}", describe_partition(topic, *.partition))]
    Fetch {
        /// The topic concerned (empty when the error concerns the whole consumer).
        topic: String,
        /// The partition concerned, when the failure is specific to one.
        partition: Option<i32>,
        /// The bootstrap list.
        brokers: String,
        /// What went wrong.
        reason: String,
    },

    /// A partition that still had messages to deliver sent nothing for the whole timeout.
    #[error(
        "no progress reading {} from Kafka brokers {brokers} for {}: offsets up to {stop} remain \
         unread ({}; raise 'timeout' for slow clusters)",
        describe_partition(topic, Some(*.partition)),
        format_duration(*.timeout),
        last_problem.as_deref().map_or_else(
            || "are the brokers up?".to_owned(),
            |problem| format!("last problem reported: {problem}")
        )
    )]
    Stalled {
        /// The topic waited for.
        topic: String,
        /// The partition waited for.
        partition: i32,
        /// Its stop offset.
        stop: i64,
        /// The bootstrap list.
        brokers: String,
        /// How long the scan waited.
        timeout: Duration,
        /// The last error librdkafka reported while waiting (and retried), if any.
        last_problem: Option<String>,
    },

    /// Looking up offsets (watermarks, timestamps) failed for a topic or one of its partitions.
    #[error("offset lookup for {} on Kafka brokers {brokers} failed: {reason}", describe_partition(topic, *.partition))]
    OffsetFetch {
        /// The topic concerned.
        topic: String,
        /// The partition concerned, when the failure is specific to one.
        partition: Option<i32>,
        /// The bootstrap list that was asked.
        brokers: String,
        /// What went wrong.
        reason: String,
    },

    /// A payload could not be decoded and `on_error` is `'fail'`.
    #[error(
        "could not decode the {side} of topic '{topic}' partition {partition} offset {offset}{}: \
         {reason} (on_error := 'null' keeps the row with a NULL {side} and the reason in \
         decode_error)",
        schema_id.map(|id| format!(" (schema id {id})")).unwrap_or_default()
    )]
    Decode {
        /// `key` or `value`.
        side: &'static str,
        /// The topic of the record.
        topic: String,
        /// Its partition.
        partition: i32,
        /// Its offset.
        offset: i64,
        /// The registry schema id in the record's framing, when it had one.
        schema_id: Option<u32>,
        /// What was wrong.
        reason: String,
    },

    /// A schema (from the registry or given inline) can't be used: it does not parse, or it
    /// has a type that has no column type (a recursive record, …).
    #[error("{what}: {reason}")]
    Schema {
        /// Which schema: `value_schema`, `subject 'orders-value' version 3`, `schema id 7`, ….
        what: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The Schema Registry could not be reached or answered with an error. `url` never
    /// carries credentials.
    #[error("Schema Registry {url}: {reason}")]
    Registry {
        /// The URL requested, without user info.
        url: String,
        /// What went wrong (HTTP status and the registry's message, or the transport error).
        reason: String,
    },
}

impl Error {
    /// The librdkafka error code behind this error, when there is one.
    pub fn kafka_code(&self) -> Option<RDKafkaErrorCode> {
        match self {
            Error::TopicMetadata { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// Describe the reason carried by a librdkafka error in a few words.
pub(crate) fn kafka_reason(error: &KafkaError) -> String {
    match error.rdkafka_error_code() {
        Some(code) => code.to_string(),
        None => error.to_string(),
    }
}

fn for_topic(topic: Option<&str>) -> String {
    topic
        .map(|topic| format!(" for topic '{topic}'"))
        .unwrap_or_default()
}

fn describe_login(mechanism: Option<&str>, user: Option<&str>) -> String {
    match (user, mechanism) {
        (Some(user), Some(mechanism)) => format!(" as '{user}' ({mechanism})"),
        (Some(user), None) => format!(" as '{user}'"),
        (None, Some(mechanism)) => format!(" ({mechanism})"),
        (None, None) => String::new(),
    }
}

fn describe_partition(topic: &str, partition: Option<i32>) -> String {
    match (topic, partition) {
        ("", _) => "messages".to_owned(),
        (_, Some(partition)) => format!("topic '{topic}' partition {partition}"),
        (_, None) => format!("topic '{topic}'"),
    }
}

/// Format a duration the way users write it: `3s`, `1.5s`, `250ms`.
pub(crate) fn format_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis % 1000 == 0 {
        format!("{}s", millis / 1000)
    } else if millis >= 1000 {
        format!("{}s", duration.as_secs_f64())
    } else {
        format!("{millis}ms")
    }
}

/// Format ms since the epoch as UTC ISO 8601, e.g. `2024-01-01T00:00:05.250Z`, the way a
/// TIMESTAMPTZ is written at the SQL prompt.
pub(crate) fn format_timestamp_ms(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    // Civil date from days since 1970-01-01 (proleptic Gregorian calendar).
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    let (hours, minutes, seconds, millis) = (
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000,
    );
    let fraction = if millis == 0 {
        String::new()
    } else {
        format!(".{millis:03}")
    };
    format!("{year:04}-{month:02}-{day:02}T{hours:02}:{minutes:02}:{seconds:02}{fraction}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_format_timestamp_ms() {
        assert_eq!(format_timestamp_ms(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            format_timestamp_ms(1_704_067_205_250),
            "2024-01-01T00:00:05.250Z"
        );
        assert_eq!(format_timestamp_ms(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(format_timestamp_ms(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn test_format_duration_units() {
        assert_eq!(format_duration(Duration::from_secs(3)), "3s");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
    }

    #[test]
    fn test_error_display_names_what_and_where() {
        let error = Error::BrokersUnreachable {
            brokers: "127.0.0.1:1".into(),
            timeout: Duration::from_secs(3),
            reason: "Local: Broker transport failure".into(),
        };
        let text = error.to_string();
        assert!(text.contains("127.0.0.1:1"), "{text}");
        assert!(text.contains("within 3s"), "{text}");

        let error = Error::OffsetFetch {
            topic: "events".into(),
            partition: Some(4),
            brokers: "b:9092".into(),
            reason: "leader not available".into(),
        };
        assert_eq!(
            error.to_string(),
            "offset lookup for topic 'events' partition 4 on Kafka brokers b:9092 failed: leader not available"
        );
    }

    #[test]
    fn test_error_display_authentication_and_tls() {
        let error = Error::Authentication {
            brokers: "b:9094".into(),
            mechanism: Some("SCRAM-SHA-512".into()),
            user: Some("alice".into()),
        };
        assert_eq!(
            error.to_string(),
            "authentication as 'alice' (SCRAM-SHA-512) with Kafka brokers b:9094 failed: the \
             brokers refused the credentials (check config 'sasl.mechanism', 'sasl.username' and \
             'sasl.password')"
        );
        let error = Error::Authentication {
            brokers: "b:9094".into(),
            mechanism: None,
            user: None,
        };
        assert!(error
            .to_string()
            .starts_with("authentication with Kafka brokers b:9094 failed"));
        let text = Error::Tls {
            brokers: "b:9094".into(),
        }
        .to_string();
        assert!(
            text.contains("b:9094") && text.contains("'ssl.ca.location'"),
            "{text}"
        );
    }
}
