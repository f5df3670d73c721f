//! The Python topic list (`SourceTopic`s) as the engine's [`ScanSelection`]: one conversion for
//! every entry point that takes topics.

use std::time::Duration;

use kafkars_core::{
    resolve_topic_pattern, ClientSettings, ScanSelection, StartPolicy, TopicPattern, TopicSelection,
};

/// One `SourceTopic` as Python hands it over: `(name, policy, argument_ms, offsets,
/// is_pattern)`, where `name` is a regex when `is_pattern`, `policy` is `earliest`,
/// `latest`, `timestamp` (argument: ms since the epoch) or `relative` (argument: ms before
/// now), and `offsets` are explicit `(partition, start offset)` pairs.
pub type SourceTopicArgs = (String, String, Option<i64>, Option<Vec<(i32, i64)>>, bool);

/// Build the selection of `topics`, resolving patterns against the cluster now (a bounded
/// read takes the topics that match at this moment).
///
/// # Errors
/// [`kafkars_core::Error::InvalidParameter`] for an unknown policy, a bad offset, a malformed
/// pattern or one that matches no topic, a topic given twice; metadata request errors.
pub fn scan_selection(
    settings: &ClientSettings,
    topics: Vec<SourceTopicArgs>,
    cutoff_ms: Option<i64>,
) -> Result<ScanSelection, kafkars_core::Error> {
    let mut selected = Vec::new();
    let mut patterns = Vec::new();
    for (name, policy, argument, offsets, is_pattern) in topics {
        let start = start_policy(&policy, argument)?;
        if is_pattern {
            let pattern = TopicPattern::new("topic_pattern", &name)?;
            for topic in resolve_topic_pattern(settings, &pattern)? {
                selected.push(TopicSelection::new(topic, start));
            }
            patterns.push(pattern);
            continue;
        }
        let topic = TopicSelection::new(name, start);
        selected.push(match offsets {
            Some(offsets) => topic.with_start_offsets("offsets", offsets)?,
            None => topic,
        });
    }
    Ok(ScanSelection::new(selected, None, cutoff_ms)?.with_topic_patterns(patterns))
}

fn start_policy(policy: &str, argument: Option<i64>) -> Result<StartPolicy, kafkars_core::Error> {
    match (policy, argument) {
        ("timestamp", Some(ms)) => StartPolicy::from_parameters(Some("timestamp"), Some(ms), None),
        ("relative", Some(ms)) => u64::try_from(ms)
            .map(|ms| StartPolicy::Relative(Duration::from_millis(ms)))
            .map_err(|_| kafkars_core::Error::InvalidParameter {
                parameter: "relative time".into(),
                reason: format!("expected a non-negative number of ms, found {ms}"),
            }),
        (name, _) => StartPolicy::from_parameters(Some(name), None, None),
    }
}
