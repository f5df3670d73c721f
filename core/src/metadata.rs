//! Cluster metadata: which topics exist, and per partition its leader, replicas and watermarks.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::metadata::{Metadata, MetadataTopic};
use rdkafka::{Offset, TopicPartitionList};

use crate::error::{kafka_reason, Error, Result};
use crate::settings::ClientSettings;

/// Topics Kafka itself keeps. Listed by [`MetadataClient::topics`] with `internal = true`.
pub(crate) const INTERNAL_TOPICS: [&str; 4] = [
    "__consumer_offsets",
    "__transaction_state",
    "__share_group_state",
    "__cluster_metadata",
];

/// One topic of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    /// The topic's name.
    pub name: String,
    /// How many partitions it has.
    pub partitions: i32,
    /// How many replicas each partition has (the largest, should they differ).
    pub replication_factor: i32,
    /// Whether Kafka itself keeps this topic (`__consumer_offsets`, …).
    pub internal: bool,
}

/// One partition of a topic, as the cluster sees it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    /// The topic's name.
    pub topic: String,
    /// The partition id.
    pub partition: i32,
    /// The broker id of the partition's leader; `None` while no leader is elected.
    pub leader: Option<i32>,
    /// Broker ids holding a replica.
    pub replicas: Vec<i32>,
    /// Broker ids of the in-sync replicas.
    pub in_sync_replicas: Vec<i32>,
    /// The log start offset: the first offset still stored.
    pub low_watermark: i64,
    /// The log end offset: the offset the next message will get. The difference to
    /// `low_watermark` bounds the message count from above (transaction markers and compacted
    /// records take offsets too).
    pub high_watermark: i64,
}

/// A client for metadata questions. It creates a consumer that is never assigned a partition,
/// so it fetches no messages, joins no group and commits nothing.
pub struct MetadataClient {
    consumer: BaseConsumer,
    settings: ClientSettings,
}

impl MetadataClient {
    /// Create the client. No network traffic happens until the first question.
    ///
    /// # Errors
    /// [`Error::ClientCreation`] when librdkafka refuses the configuration.
    pub fn connect(settings: &ClientSettings) -> Result<Self> {
        let mut config = settings.client_config();
        // Watermarks shown to users are the log end, not the last stable offset.
        config.set("isolation.level", "read_uncommitted");
        let consumer: BaseConsumer = config.create().map_err(|error| Error::ClientCreation {
            message: settings.redact(&kafka_reason(&error)),
        })?;
        Ok(Self {
            consumer,
            settings: settings.clone(),
        })
    }

    /// Every topic of the cluster, sorted by name.
    ///
    /// # Errors
    /// [`Error::BrokersUnreachable`] when no broker answers within the timeout,
    /// [`Error::Authentication`] or [`Error::Tls`] as soon as the brokers refuse the login or
    /// the TLS handshake.
    pub fn topics(&self) -> Result<Vec<TopicInfo>> {
        let metadata = self.fetch_metadata(None, self.settings.timeout())?;
        let mut topics: Vec<TopicInfo> = metadata
            .topics()
            .iter()
            .map(|topic| TopicInfo {
                name: topic.name().to_owned(),
                partitions: i32::try_from(topic.partitions().len()).unwrap_or(i32::MAX),
                replication_factor: topic
                    .partitions()
                    .iter()
                    .map(|p| i32::try_from(p.replicas().len()).unwrap_or(i32::MAX))
                    .max()
                    .unwrap_or(0),
                internal: INTERNAL_TOPICS.contains(&topic.name()),
            })
            .collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(topics)
    }

    /// The partitions of `topic` in partition order, with leaders, replicas and watermarks.
    /// The watermarks of all partitions come from two batched `ListOffsets` requests (one for
    /// the low, one for the high watermarks), each sent once per leader broker.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for an illegal topic name, [`Error::UnknownTopic`] when the
    /// topic does not exist, [`Error::BrokersUnreachable`] on timeout, [`Error::OffsetFetch`]
    /// when a partition has no leader to ask, [`Error::Authentication`] or [`Error::Tls`] when
    /// the brokers refuse the login or the TLS handshake.
    pub fn partitions(&self, topic: &str) -> Result<Vec<PartitionInfo>> {
        crate::validate_topic_name("topic", topic)?;
        let deadline = Instant::now() + self.settings.timeout();
        let metadata = self.fetch_metadata(Some(topic), self.settings.timeout())?;
        let entry = checked_topic(&metadata, &self.settings, topic)?;

        let mut partitions: Vec<PartitionInfo> = entry
            .partitions()
            .iter()
            .map(|p| PartitionInfo {
                topic: topic.to_owned(),
                partition: p.id(),
                leader: (p.leader() >= 0).then_some(p.leader()),
                replicas: p.replicas().to_vec(),
                in_sync_replicas: p.isr().to_vec(),
                low_watermark: 0,
                high_watermark: 0,
            })
            .collect();
        partitions.sort_by_key(|p| p.partition);

        let low = list_offsets(
            &self.consumer,
            &self.settings,
            partitions
                .iter()
                .map(|p| (topic, p.partition, Offset::Beginning)),
            deadline,
        )?;
        let high = list_offsets(
            &self.consumer,
            &self.settings,
            partitions.iter().map(|p| (topic, p.partition, Offset::End)),
            deadline,
        )?;
        for ((partition, low), high) in partitions.iter_mut().zip(low).zip(high) {
            // Logical lookups always answer with an offset.
            partition.low_watermark = low.unwrap_or(0);
            partition.high_watermark = high.unwrap_or(0);
        }
        Ok(partitions)
    }

    fn fetch_metadata(&self, topic: Option<&str>, timeout: Duration) -> Result<Metadata> {
        fetch_metadata(&self.consumer, &self.settings, topic, timeout)
    }
}

/// The partition ids of `topic` in ascending order, from a metadata request.
///
/// # Errors
/// [`Error::UnknownTopic`], [`Error::TopicMetadata`], [`Error::OffsetFetch`] when a partition
/// has no leader to ask for offsets, or the errors of a metadata request.
pub(crate) fn topic_partition_ids<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    settings: &ClientSettings,
    topic: &str,
    deadline: Instant,
) -> Result<Vec<i32>> {
    loop {
        let timeout = remaining(settings, deadline)?;
        let metadata = fetch_metadata(consumer, settings, Some(topic), timeout)?;
        let entry = checked_topic(&metadata, settings, topic)?;
        let Some(leaderless) = entry.partitions().iter().find(|p| p.leader() < 0) else {
            let mut ids: Vec<i32> = entry.partitions().iter().map(|p| p.id()).collect();
            ids.sort_unstable();
            return Ok(ids);
        };
        // A new topic or a failover: leaders are elected within moments.
        if deadline.saturating_duration_since(Instant::now()) < LOOKUP_RETRY_BACKOFF {
            return Err(Error::OffsetFetch {
                topic: topic.to_owned(),
                partition: Some(leaderless.id()),
                brokers: settings.brokers().to_owned(),
                reason: "the partition has no leader".into(),
            });
        }
        std::thread::sleep(LOOKUP_RETRY_BACKOFF);
    }
}

/// The metadata of `topic` out of an answer, or the error the cluster reported for it.
fn checked_topic<'m>(
    metadata: &'m Metadata,
    settings: &ClientSettings,
    topic: &str,
) -> Result<&'m MetadataTopic> {
    let unknown = || Error::UnknownTopic {
        topic: topic.to_owned(),
        brokers: settings.brokers().to_owned(),
    };
    let entry = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .ok_or_else(unknown)?;
    match entry.error().map(RDKafkaErrorCode::from) {
        None => Ok(entry),
        Some(RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic) => {
            Err(unknown())
        }
        Some(code) => Err(Error::TopicMetadata {
            topic: topic.to_owned(),
            brokers: settings.brokers().to_owned(),
            code,
        }),
    }
}

/// Ask for metadata within `timeout`. The request is made in attempts of growing length
/// ([`FIRST_METADATA_ATTEMPT`] doubling up to [`LONGEST_METADATA_ATTEMPT`]) so that between
/// them a refused login or a failed TLS handshake (see [`connection_failure`]) ends the wait
/// at once, instead of after the whole timeout.
fn fetch_metadata<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    settings: &ClientSettings,
    topic: Option<&str>,
    timeout: Duration,
) -> Result<Metadata> {
    let deadline = Instant::now() + timeout;
    let mut attempt = FIRST_METADATA_ATTEMPT;
    loop {
        let started = Instant::now();
        let wait = attempt.min(deadline.saturating_duration_since(started));
        let error = match consumer.fetch_metadata(topic, wait) {
            Ok(metadata) => return Ok(metadata),
            Err(error) => error,
        };
        if let Some(failure) = connection_failure(consumer, settings) {
            return Err(failure);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || !is_unreachable(error.rdkafka_error_code()) {
            return Err(classify(settings, error, |reason| Error::MetadataFetch {
                topic: topic.map(str::to_owned),
                brokers: settings.brokers().to_owned(),
                reason,
            }));
        }
        // librdkafka may give up before the attempt's time is over (no broker up yet): don't
        // spin.
        let early = wait.saturating_sub(started.elapsed());
        std::thread::sleep(early.min(METADATA_RETRY_PAUSE).min(left));
        attempt = (attempt * 2).min(LONGEST_METADATA_ATTEMPT);
    }
}

/// The first metadata attempt's length: enough for a TLS handshake and a SASL login.
const FIRST_METADATA_ATTEMPT: Duration = Duration::from_millis(500);
/// The longest metadata attempt.
const LONGEST_METADATA_ATTEMPT: Duration = Duration::from_secs(4);
/// The longest pause after an attempt that librdkafka ended early.
const METADATA_RETRY_PAUSE: Duration = Duration::from_millis(100);

/// How many times [`connection_failure`] polls the client's queue, at most.
const MAX_DRAINED_EVENTS: usize = 1000;
/// After how many polls in a row that return nothing [`connection_failure`] stops.
const EMPTY_POLLS_TO_STOP: usize = 32;

/// The failure that keeps a client from reaching the brokers, when librdkafka reported one
/// that waiting will not cure: the brokers refused the SASL credentials
/// ([`Error::Authentication`]), or the TLS handshake failed ([`Error::Tls`], e.g. an unknown
/// CA). librdkafka keeps retrying such connections and lets requests run into their timeout;
/// it reports the cause only as error events on the client's queue, which this reads.
///
/// Only a consumer with no partition assigned is looked at: its queue holds nothing but such
/// events, so nothing of value is consumed (all callers resolve offsets or metadata before any
/// assignment).
fn connection_failure<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    settings: &ClientSettings,
) -> Option<Error> {
    // A consumer without a group.id has no assignment to ask about, and cannot be assigned.
    if consumer
        .assignment()
        .is_ok_and(|assigned| assigned.count() > 0)
    {
        return None;
    }
    let mut failure = None;
    let mut empty_polls = 0;
    for _ in 0..MAX_DRAINED_EVENTS {
        match consumer.poll(Duration::ZERO) {
            // An empty queue, or a log event the context took: the two look alike, and log
            // events come between the error events, so only a run of them ends the search.
            None => {
                empty_polls += 1;
                if empty_polls == EMPTY_POLLS_TO_STOP {
                    break;
                }
                continue;
            }
            Some(Err(
                KafkaError::MessageConsumption(code) | KafkaError::MessageConsumptionFatal(code),
            )) => {
                if let Some(error) = refused_connection(settings, code) {
                    failure = Some(error);
                }
            }
            Some(_) => {}
        }
        empty_polls = 0;
    }
    failure
}

/// The error for a code that says the brokers refused the client's credentials or TLS
/// handshake, if `code` says so.
fn refused_connection(settings: &ClientSettings, code: RDKafkaErrorCode) -> Option<Error> {
    let property = |key: &str| settings.properties().get(key).cloned();
    match code {
        RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SaslAuthenticationFailed => {
            Some(Error::Authentication {
                brokers: settings.brokers().to_owned(),
                mechanism: property("sasl.mechanism").or_else(|| property("sasl.mechanisms")),
                user: property("sasl.username"),
            })
        }
        RDKafkaErrorCode::SSL => Some(Error::Tls {
            brokers: settings.brokers().to_owned(),
        }),
        _ => None,
    }
}

/// Whether a request failed for want of a reachable broker (and may succeed later).
fn is_unreachable(code: Option<RDKafkaErrorCode>) -> bool {
    matches!(
        code,
        Some(
            RDKafkaErrorCode::OperationTimedOut
                | RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::RequestTimedOut
                | RDKafkaErrorCode::BrokerNotAvailable
        )
    )
}

/// Ask the partition leaders for one offset per requested partition, in one batched
/// `ListOffsets` request per leader broker. Each request names a topic, a partition and what
/// to look up: [`Offset::Beginning`] (log start), [`Offset::End`] (log end, or the last stable
/// offset under `read_committed`) or [`Offset::Offset`]`(timestamp)` (the first offset whose
/// timestamp is at least that many ms since the epoch).
///
/// The answer is in request order. A timestamp lookup that finds no such message answers
/// `None`; every other answer is `Some(offset)`.
///
/// # Errors
/// [`Error::OffsetFetch`] naming the partition when its lookup failed or no leader answered,
/// [`Error::BrokersUnreachable`] when the deadline passed.
pub(crate) fn list_offsets<'t, C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    settings: &ClientSettings,
    requests: impl IntoIterator<Item = (&'t str, i32, Offset)>,
    deadline: Instant,
) -> Result<Vec<Option<i64>>> {
    let requests: Vec<(&str, i32, Offset)> = requests.into_iter().collect();
    if requests.is_empty() {
        return Ok(Vec::new());
    }
    // Leadership moves (a new topic, a broker restart) answer with errors that go away within
    // moments: ask again until the deadline.
    loop {
        match list_offsets_once(consumer, settings, &requests, deadline) {
            Err(Lookup::Retriable(error)) => {
                if deadline.saturating_duration_since(Instant::now()) < LOOKUP_RETRY_BACKOFF {
                    return Err(error);
                }
                std::thread::sleep(LOOKUP_RETRY_BACKOFF);
            }
            Err(Lookup::Fatal(error)) => return Err(error),
            Ok(offsets) => return Ok(offsets),
        }
    }
}

/// How long to wait before asking again after a retriable lookup error.
const LOOKUP_RETRY_BACKOFF: Duration = Duration::from_millis(200);

/// A failed lookup, and whether asking again may help.
enum Lookup {
    Retriable(Error),
    Fatal(Error),
}

/// Errors of a partition lookup that leadership changes cause and time cures.
fn is_retriable(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::NotLeaderForPartition
            | RDKafkaErrorCode::LeaderNotAvailable
            | RDKafkaErrorCode::FencedLeaderEpoch
            | RDKafkaErrorCode::UnknownLeaderEpoch
            | RDKafkaErrorCode::OffsetNotAvailable
            | RDKafkaErrorCode::RequestTimedOut
            | RDKafkaErrorCode::BrokerNotAvailable
    )
}

fn list_offsets_once<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    settings: &ClientSettings,
    requests: &[(&str, i32, Offset)],
    deadline: Instant,
) -> std::result::Result<Vec<Option<i64>>, Lookup> {
    let fetch_error = |topic: &str, partition: Option<i32>, reason: String| Error::OffsetFetch {
        topic: topic.to_owned(),
        partition,
        brokers: settings.brokers().to_owned(),
        reason,
    };
    let classify_code = |code: Option<RDKafkaErrorCode>, error: Error| match code {
        Some(code) if is_retriable(code) => Lookup::Retriable(error),
        _ => Lookup::Fatal(error),
    };
    let first_topic = requests[0].0;
    let mut list = TopicPartitionList::with_capacity(requests.len());
    for &(topic, partition, at) in requests {
        list.add_partition_offset(topic, partition, at)
            .map_err(|error| {
                Lookup::Fatal(fetch_error(topic, Some(partition), kafka_reason(&error)))
            })?;
    }
    let timeout = remaining(settings, deadline).map_err(Lookup::Fatal)?;
    let answer = consumer.offsets_for_times(list, timeout).map_err(|error| {
        if let Some(failure) = connection_failure(consumer, settings) {
            return Lookup::Fatal(failure);
        }
        let code = error.rdkafka_error_code();
        classify_code(
            code,
            classify(settings, error, |reason| {
                fetch_error(first_topic, None, reason)
            }),
        )
    })?;

    requests
        .iter()
        .map(|&(topic, partition, at)| {
            let element = answer.find_partition(topic, partition).ok_or_else(|| {
                Lookup::Fatal(fetch_error(
                    topic,
                    Some(partition),
                    "missing from the answer".into(),
                ))
            })?;
            element.error().map_err(|error| {
                classify_code(
                    error.rdkafka_error_code(),
                    fetch_error(topic, Some(partition), kafka_reason(&error)),
                )
            })?;
            // A partition whose leader was unknown comes back with the request unchanged: for
            // logical requests that is caught here; callers make sure partitions asked by
            // timestamp had a leader (see `topic_partition_ids`).
            match (at, element.offset()) {
                (_, Offset::Offset(offset)) if offset >= 0 => Ok(Some(offset)),
                // No message at or after the timestamp.
                (Offset::Offset(_), Offset::End) => Ok(None),
                _ => Err(Lookup::Retriable(fetch_error(
                    topic,
                    Some(partition),
                    "no leader answered for this partition".into(),
                ))),
            }
        })
        .collect()
}

/// Turn a librdkafka error into ours: transport failures and timeouts mean the brokers could
/// not be reached; anything else is left to `other`.
///
/// "Unreachable" names the configured timeout, which the whole operation had, not what was
/// left of it for the request that failed.
pub(crate) fn classify(
    settings: &ClientSettings,
    error: KafkaError,
    other: impl FnOnce(String) -> Error,
) -> Error {
    let reason = settings.redact(&kafka_reason(&error));
    let code = error.rdkafka_error_code();
    if let Some(refused) = code.and_then(|code| refused_connection(settings, code)) {
        return refused;
    }
    if is_unreachable(code) {
        Error::BrokersUnreachable {
            brokers: settings.brokers().to_owned(),
            timeout: settings.timeout(),
            reason,
        }
    } else {
        other(reason)
    }
}

/// Time left until `deadline`, or the error for having run out of it.
pub(crate) fn remaining(settings: &ClientSettings, deadline: Instant) -> Result<Duration> {
    let remaining = deadline.saturating_duration_since(Instant::now());
    if remaining.is_zero() {
        return Err(Error::BrokersUnreachable {
            brokers: settings.brokers().to_owned(),
            timeout: settings.timeout(),
            reason: "the brokers did not answer in time".into(),
        });
    }
    Ok(remaining)
}
