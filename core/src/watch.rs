//! Follow mode's watch for partitions to come: a topic that gains partitions, or a new topic
//! that matches a `topic_pattern`, while a followed scan runs.
//!
//! A Kafka client learns of new partitions only by asking for metadata again. Subscribed
//! consumers have librdkafka do that every `topic.metadata.refresh.interval.ms` (5 minutes
//! by default); a scan
//! assigns its partitions itself (it never subscribes, so that it never joins a group), so it
//! asks itself, every [`ScanOptions::metadata_refresh`](crate::ScanOptions::metadata_refresh),
//! and reads what it finds from the partition's log start: everything in a partition created
//! after the scan resolved its offsets is new to it.

use std::collections::HashSet;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;

use crate::pattern::TopicPattern;
use crate::resolve::PartitionRange;
use crate::selection::ScanSelection;

/// Which topics a followed scan watches for partitions it does not read yet.
///
/// ```
/// use kafkars_core::{TopicPattern, Watch};
///
/// let watch = Watch::new(
///     vec!["orders".into()],
///     vec![TopicPattern::new("topic_pattern", "^events-")?],
/// );
/// assert!(watch.watches("orders"));
/// assert!(watch.watches("events-eu"));
/// assert!(!watch.watches("metrics"));
/// assert!(Watch::default().is_empty());
/// # Ok::<(), kafkars_core::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Watch {
    topics: Vec<String>,
    patterns: Vec<TopicPattern>,
}

impl Watch {
    /// Watch every partition of `topics`, and every partition of any topic whose name matches
    /// one of `patterns` (topics created later included).
    pub fn new(topics: Vec<String>, patterns: Vec<TopicPattern>) -> Self {
        Self { topics, patterns }
    }

    /// What a followed scan of `selection` watches: all partitions of its topics, and topics
    /// that match its `topic_patterns`. Nothing when the selection names the partitions it
    /// reads (`partitions`, or an explicit plan in `ranges`): the user chose them, and a
    /// partition added later is not among them.
    pub fn for_selection(selection: &ScanSelection) -> Self {
        if selection.partitions.is_some() || selection.ranges.is_some() {
            return Self::default();
        }
        Self {
            topics: selection.topics.iter().map(|t| t.topic.clone()).collect(),
            patterns: selection.topic_patterns.clone(),
        }
    }

    /// Whether nothing is watched.
    pub fn is_empty(&self) -> bool {
        self.topics.is_empty() && self.patterns.is_empty()
    }

    /// Whether the partitions of topic `name` are watched.
    pub fn watches(&self, name: &str) -> bool {
        self.topics.iter().any(|topic| topic == name)
            || self.patterns.iter().any(|pattern| pattern.matches(name))
    }

    /// The watched partitions that `reading` does not hold, sorted by (topic, partition), from
    /// one metadata request that may take up to `timeout`. Partitions without a leader yet
    /// (a partition being created) are left for the next call: their offsets cannot be asked
    /// for.
    ///
    /// # Errors
    /// The metadata request's, when it fails or times out.
    pub(crate) fn new_partitions<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
        reading: &[PartitionRange],
        timeout: Duration,
    ) -> Result<Vec<(String, i32)>, KafkaError> {
        if self.is_empty() {
            return Ok(Vec::new());
        }
        // One topic's metadata is a small answer; patterns need every topic's names.
        let only = match self.topics.as_slice() {
            [topic] if self.patterns.is_empty() => Some(topic.as_str()),
            _ => None,
        };
        let metadata = consumer.fetch_metadata(only, timeout)?;
        let known: HashSet<(&str, i32)> = reading
            .iter()
            .map(|range| (range.topic.as_str(), range.partition))
            .collect();
        let mut found: Vec<(String, i32)> = Vec::new();
        for topic in metadata.topics() {
            // A topic with an error (unknown, deleted) has nothing to read; deletion of a
            // topic being read is the scan's own check.
            if topic.error().is_some() || !self.watches(topic.name()) {
                continue;
            }
            for partition in topic.partitions() {
                if partition.leader() < 0
                    || partition.error().is_some()
                    || known.contains(&(topic.name(), partition.id()))
                {
                    continue;
                }
                found.push((topic.name().to_owned(), partition.id()));
            }
        }
        found.sort_unstable();
        found.dedup();
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::selection::{StartPolicy, TopicSelection};

    fn selection(partitions: Option<Vec<i32>>) -> ScanSelection {
        let mut selection = ScanSelection::new(
            vec![
                TopicSelection::new("orders", StartPolicy::Earliest),
                TopicSelection::new("events-eu", StartPolicy::Latest),
            ],
            partitions,
            None,
        )
        .unwrap();
        selection.topic_patterns = vec![TopicPattern::new("topic_pattern", "^events-").unwrap()];
        selection
    }

    #[test]
    fn test_watch_for_selection_topics_and_patterns() {
        let watch = Watch::for_selection(&selection(None));
        assert!(watch.watches("orders"));
        assert!(watch.watches("events-eu"));
        // A topic created later that matches the pattern.
        assert!(watch.watches("events-us"));
        assert!(!watch.watches("orders-archive"));
        assert!(!watch.watches("__consumer_offsets"));
    }

    // The pattern path end to end on librdkafka's mock cluster (front ends cannot give a
    // pattern yet): a followed scan of `pat-a` watching `^pat-` reads `pat-b`, created while
    // it is live, from its first message, and lists it after `pat-a`. A supplement to the
    // real-broker tests of added partitions (python/tests/test_follow_partitions.py).
    #[test]
    fn test_watch_follow_reads_pattern_topic_created_later_mock_cluster() {
        use std::time::Instant;

        use rdkafka::mocking::MockCluster;
        use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
        use rdkafka::ClientConfig;

        use crate::record::Record;
        use crate::scan::{Scan, ScanOptions};
        use crate::settings::ClientSettings;

        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic("pat-a", 1, 1).unwrap();
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", cluster.bootstrap_servers())
            .create()
            .unwrap();
        let produce = |topic: &str, key: &str| {
            producer
                .send(BaseRecord::to(topic).partition(0).key(key).payload("v"))
                .unwrap();
            producer.flush(Duration::from_secs(10)).unwrap();
        };
        produce("pat-a", "a0");

        let settings = ClientSettings::builder()
            .brokers(cluster.bootstrap_servers())
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let mut selection = ScanSelection::new(
            vec![TopicSelection::new("pat-a", StartPolicy::Earliest)],
            None,
            None,
        )
        .unwrap();
        selection.topic_patterns = vec![TopicPattern::new("topic_pattern", "^pat-").unwrap()];
        let options = ScanOptions {
            follow: true,
            metadata_refresh: Duration::from_millis(100),
            ..ScanOptions::default()
        };
        let mut scan = Scan::open(&settings, &selection, options).unwrap();
        let mut out: Vec<Record> = Vec::new();
        let read = |scan: &mut Scan, out: &mut Vec<Record>, count: usize| {
            let deadline = Instant::now() + Duration::from_secs(20);
            while out.len() < count && Instant::now() < deadline {
                scan.next_records(
                    count - out.len(),
                    out,
                    Some(Instant::now() + Duration::from_millis(100)),
                )
                .unwrap();
            }
        };
        read(&mut scan, &mut out, 1);
        assert!(scan.is_live());

        cluster.create_topic("pat-b", 1, 1).unwrap();
        cluster.create_topic("other", 1, 1).unwrap();
        produce("pat-b", "b0");
        produce("pat-b", "b1");
        produce("other", "o0");
        read(&mut scan, &mut out, 3);
        let rows: Vec<(String, i32, i64, Option<&[u8]>)> = out
            .iter()
            .map(|r| {
                let range = &scan.ranges()[r.source as usize];
                (range.topic.clone(), range.partition, r.offset, r.key())
            })
            .collect();
        assert_eq!(
            rows,
            vec![
                ("pat-a".to_owned(), 0, 0, Some(&b"a0"[..])),
                ("pat-b".to_owned(), 0, 0, Some(&b"b0"[..])),
                ("pat-b".to_owned(), 0, 1, Some(&b"b1"[..])),
            ]
        );
        let listed: Vec<(&str, i32, i64, i64)> = scan
            .ranges()
            .iter()
            .map(|r| (r.topic.as_str(), r.partition, r.start, r.stop))
            .collect();
        assert_eq!(listed, vec![("pat-a", 0, 0, 1), ("pat-b", 0, 0, 0)]);
    }

    #[test]
    fn test_watch_for_selection_with_chosen_partitions_is_empty() {
        assert!(Watch::for_selection(&selection(Some(vec![0]))).is_empty());
        let mut planned = selection(None);
        planned.ranges = Some(vec![PartitionRange {
            topic: "orders".into(),
            partition: 0,
            start: 0,
            stop: 10,
        }]);
        let watch = Watch::for_selection(&planned);
        assert!(watch.is_empty());
        assert!(!watch.watches("orders"));
        assert!(!watch.watches("events-us"));
    }
}
