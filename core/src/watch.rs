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
