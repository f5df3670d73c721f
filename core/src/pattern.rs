//! `topic_pattern`: topics chosen by a regular expression over the cluster's topic names.

use regex::Regex;

use crate::error::{Error, Result};
use crate::metadata::{MetadataClient, INTERNAL_TOPICS};
use crate::settings::ClientSettings;

/// A regular expression over topic names (the `regex` crate's syntax, which is close to
/// Python's `re` and DuckDB's RE2). It matches anywhere in the name unless anchored, as
/// DuckDB's `regexp_matches` does: write `'^events-.*'` for names that start with `events-`.
///
/// Kafka's own topics (`__consumer_offsets`, `__transaction_state`, …) match only a pattern
/// that names them literally, as Kafka's Java client excludes internal topics from pattern
/// subscriptions unless asked (`exclude.internal.topics`).
#[derive(Debug, Clone)]
pub struct TopicPattern {
    regex: Regex,
}

impl TopicPattern {
    /// Compile `text`.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] naming `parameter` for an empty or malformed expression.
    pub fn new(parameter: &str, text: &str) -> Result<Self> {
        let invalid = |reason: String| Error::InvalidParameter {
            parameter: parameter.to_owned(),
            reason,
        };
        if text.trim().is_empty() {
            return Err(invalid(
                "expected a regular expression over topic names, found an empty string".into(),
            ));
        }
        let regex = Regex::new(text).map_err(|error| {
            invalid(format!(
                "'{text}' is not a valid regular expression: {}",
                // The regex crate's message spans several lines with a caret diagram.
                error.to_string().replace('\n', " ")
            ))
        })?;
        Ok(Self { regex })
    }

    /// The expression as written.
    pub fn as_str(&self) -> &str {
        self.regex.as_str()
    }

    /// Whether the topic `name` is selected.
    pub fn matches(&self, name: &str) -> bool {
        if INTERNAL_TOPICS.contains(&name) && !self.as_str().contains(name) {
            return false;
        }
        self.regex.is_match(name)
    }

    /// The selected names among `names`, sorted and unique.
    pub fn select<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
        let mut selected: Vec<String> = names
            .into_iter()
            .filter(|name| self.matches(name))
            .map(str::to_owned)
            .collect();
        selected.sort_unstable();
        selected.dedup();
        selected
    }
}

/// The topics of the cluster that `pattern` selects, sorted.
///
/// # Errors
/// [`Error::InvalidParameter`] naming `topic_pattern` and the pattern when no topic matches;
/// the errors of a metadata request.
pub fn resolve_topic_pattern(
    settings: &ClientSettings,
    pattern: &TopicPattern,
) -> Result<Vec<String>> {
    let topics = MetadataClient::connect(settings)?.topics()?;
    let selected = pattern.select(topics.iter().map(|topic| topic.name.as_str()));
    if selected.is_empty() {
        return Err(Error::InvalidParameter {
            parameter: "topic_pattern".into(),
            reason: format!(
                "no topic of the cluster at {} matches '{}'",
                settings.brokers(),
                pattern.as_str()
            ),
        });
    }
    Ok(selected)
}

impl PartialEq for TopicPattern {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for TopicPattern {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_pattern_matches_unanchored_and_skips_internal_topics() {
        let pattern = TopicPattern::new("topic_pattern", "^events-").unwrap();
        let names = ["events-a", "old-events-b", "events-b", "__consumer_offsets"];
        assert_eq!(pattern.select(names), vec!["events-a", "events-b"]);
        let anywhere = TopicPattern::new("topic_pattern", "events").unwrap();
        assert_eq!(
            anywhere.select(names),
            vec!["events-a", "events-b", "old-events-b"]
        );
        // Everything but Kafka's own topics...
        let all = TopicPattern::new("topic_pattern", ".*").unwrap();
        assert!(!all.matches("__consumer_offsets"));
        // ...unless named.
        let named = TopicPattern::new("topic_pattern", "^__consumer_offsets$").unwrap();
        assert!(named.matches("__consumer_offsets"));
    }

    #[test]
    fn test_pattern_errors_name_the_parameter() {
        assert_eq!(
            TopicPattern::new("topic_pattern", " ")
                .unwrap_err()
                .to_string(),
            "invalid topic_pattern: expected a regular expression over topic names, found an \
             empty string"
        );
        let error = TopicPattern::new("topic_pattern", "events-(")
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with(
                "invalid topic_pattern: 'events-(' is not a valid regular expression: "
            ),
            "{error}"
        );
        assert!(!error.contains('\n'));
    }
}
