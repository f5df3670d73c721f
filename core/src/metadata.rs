//! Cluster metadata: which topics exist, and per partition its leader, replicas and watermarks.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::metadata::Metadata;
use rdkafka::{Offset, TopicPartitionList};

use crate::error::{kafka_reason, Error, Result};
use crate::settings::ClientSettings;

/// Topics Kafka itself keeps. Listed by [`MetadataClient::topics`] with `internal = true`.
const INTERNAL_TOPICS: [&str; 4] = [
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
    /// [`Error::BrokersUnreachable`] when no broker answers within the timeout.
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
    /// when a partition has no leader to ask.
    pub fn partitions(&self, topic: &str) -> Result<Vec<PartitionInfo>> {
        crate::validate_topic_name("topic", topic)?;
        let deadline = Instant::now() + self.settings.timeout();
        let metadata = self.fetch_metadata(Some(topic), self.settings.timeout())?;
        let Some(entry) = metadata.topics().iter().find(|t| t.name() == topic) else {
            return Err(self.unknown_topic(topic));
        };
        if let Some(error) = entry.error() {
            let code = RDKafkaErrorCode::from(error);
            return Err(match code {
                RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic => {
                    self.unknown_topic(topic)
                }
                code => Error::TopicMetadata {
                    topic: topic.to_owned(),
                    brokers: self.settings.brokers().to_owned(),
                    code,
                },
            });
        }

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

        let ids: Vec<i32> = partitions.iter().map(|p| p.partition).collect();
        let low = self.list_offsets(topic, &ids, Offset::Beginning, deadline)?;
        let high = self.list_offsets(topic, &ids, Offset::End, deadline)?;
        for ((partition, low), high) in partitions.iter_mut().zip(low).zip(high) {
            partition.low_watermark = low;
            partition.high_watermark = high;
        }
        Ok(partitions)
    }

    /// Ask the partition leaders for one offset per partition, in one batched request per
    /// leader. `at` is [`Offset::Beginning`] (log start) or [`Offset::End`] (log end); the
    /// answer is in the order of `partitions`.
    fn list_offsets(
        &self,
        topic: &str,
        partitions: &[i32],
        at: Offset,
        deadline: Instant,
    ) -> Result<Vec<i64>> {
        let fetch_error = |partition: Option<i32>, reason: String| Error::OffsetFetch {
            topic: topic.to_owned(),
            partition,
            brokers: self.settings.brokers().to_owned(),
            reason,
        };
        let mut request = TopicPartitionList::with_capacity(partitions.len());
        for &partition in partitions {
            request
                .add_partition_offset(topic, partition, at)
                .map_err(|error| fetch_error(Some(partition), kafka_reason(&error)))?;
        }
        let remaining = self.remaining(deadline)?;
        let answer = self
            .consumer
            .offsets_for_times(request, remaining)
            .map_err(|error| self.classify(error, remaining, |reason| fetch_error(None, reason)))?;

        partitions
            .iter()
            .map(|&partition| {
                let element = answer.find_partition(topic, partition).ok_or_else(|| {
                    fetch_error(Some(partition), "missing from the answer".into())
                })?;
                element
                    .error()
                    .map_err(|error| fetch_error(Some(partition), kafka_reason(&error)))?;
                // A partition whose leader was unknown comes back with the requested logical
                // offset unchanged instead of an error.
                match element.offset() {
                    Offset::Offset(offset) if offset >= 0 => Ok(offset),
                    _ => Err(fetch_error(
                        Some(partition),
                        "no leader answered for this partition".into(),
                    )),
                }
            })
            .collect()
    }

    fn fetch_metadata(&self, topic: Option<&str>, timeout: Duration) -> Result<Metadata> {
        self.consumer
            .fetch_metadata(topic, timeout)
            .map_err(|error| {
                self.classify(error, timeout, |reason| Error::MetadataFetch {
                    topic: topic.map(str::to_owned),
                    brokers: self.settings.brokers().to_owned(),
                    reason,
                })
            })
    }

    /// Turn a librdkafka error into ours: transport failures and timeouts mean the brokers
    /// could not be reached; anything else is left to `other`.
    fn classify(
        &self,
        error: KafkaError,
        timeout: Duration,
        other: impl FnOnce(String) -> Error,
    ) -> Error {
        let reason = self.settings.redact(&kafka_reason(&error));
        match error.rdkafka_error_code() {
            Some(
                RDKafkaErrorCode::OperationTimedOut
                | RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::RequestTimedOut
                | RDKafkaErrorCode::BrokerNotAvailable,
            ) => Error::BrokersUnreachable {
                brokers: self.settings.brokers().to_owned(),
                timeout,
                reason,
            },
            _ => other(reason),
        }
    }

    fn remaining(&self, deadline: Instant) -> Result<Duration> {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(Error::BrokersUnreachable {
                brokers: self.settings.brokers().to_owned(),
                timeout: self.settings.timeout(),
                reason: "the brokers did not answer in time".into(),
            });
        }
        Ok(remaining)
    }

    fn unknown_topic(&self, topic: &str) -> Error {
        Error::UnknownTopic {
            topic: topic.to_owned(),
            brokers: self.settings.brokers().to_owned(),
        }
    }
}
