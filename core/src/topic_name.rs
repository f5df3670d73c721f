//! Topic names as users write them: one name, or a comma-separated list (`'events,metrics'`),
//! checked against Kafka's own naming rule before any request leaves the process.

use crate::error::{Error, Result};

/// Kafka's limit on topic name length.
const MAX_TOPIC_NAME_LENGTH: usize = 249;

/// Check one topic name against Kafka's rule: 1–249 characters from `[a-zA-Z0-9._-]`, and not
/// `.` or `..`.
///
/// # Errors
/// [`Error::InvalidParameter`] naming `parameter` and the offending name.
pub fn validate_topic_name(parameter: &str, name: &str) -> Result<()> {
    let invalid = |reason: String| Error::InvalidParameter {
        parameter: parameter.to_owned(),
        reason,
    };
    if name.is_empty() {
        return Err(invalid(
            "expected a topic name, found an empty string".into(),
        ));
    }
    if name == "." || name == ".." {
        return Err(invalid(format!("'{name}' is not a legal topic name")));
    }
    if name.len() > MAX_TOPIC_NAME_LENGTH {
        return Err(invalid(format!(
            "a topic name has at most {MAX_TOPIC_NAME_LENGTH} characters, found {} in '{name}'",
            name.len()
        )));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(invalid(format!(
            "topic name '{name}' contains the character {bad:?}; \
             legal characters are ASCII letters, digits, '.', '_' and '-'"
        )));
    }
    Ok(())
}

/// Split a comma-separated topic list, trimming spaces around each name and checking each.
///
/// # Errors
/// [`Error::InvalidParameter`] for an empty list, an empty entry, an illegal name, or a topic
/// named twice.
pub fn parse_topic_list(parameter: &str, list: &str) -> Result<Vec<String>> {
    let mut topics: Vec<String> = Vec::new();
    for name in list.split(',').map(str::trim) {
        validate_topic_name(parameter, name)?;
        if topics.iter().any(|known| known == name) {
            return Err(Error::InvalidParameter {
                parameter: parameter.to_owned(),
                reason: format!("topic '{name}' is listed twice"),
            });
        }
        topics.push(name.to_owned());
    }
    Ok(topics)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn test_topic_name_legal_and_illegal() {
        for good in ["events", "a.b_c-D9", "x", &"t".repeat(249)] {
            validate_topic_name("topic", good).unwrap();
        }
        for (bad, needle) in [
            ("", "empty string"),
            (".", "not a legal topic name"),
            ("..", "not a legal topic name"),
            ("a b", "' '"),
            ("caf\u{e9}", "'\u{e9}'"),
            ("a/b", "'/'"),
        ] {
            let text = validate_topic_name("topic", bad).unwrap_err().to_string();
            assert!(text.starts_with("invalid topic:"), "{text}");
            assert!(text.contains(needle), "{bad:?}: {text}");
        }
        let long = "t".repeat(250);
        assert!(validate_topic_name("topic", &long).is_err());
    }

    #[test]
    fn test_topic_list_split_and_checked() {
        assert_eq!(
            parse_topic_list("topics", "events, metrics").unwrap(),
            vec!["events", "metrics"]
        );
        assert!(parse_topic_list("topics", "a,,b").is_err());
        let twice = parse_topic_list("topics", "a,b,a").unwrap_err().to_string();
        assert_eq!(twice, "invalid topics: topic 'a' is listed twice");
    }

    proptest! {
        #[test]
        fn test_topic_list_roundtrip(names in proptest::collection::btree_set("[a-zA-Z0-9._-]{1,20}", 1..8)) {
            let names: Vec<String> = names.into_iter().filter(|n| n != "." && n != "..").collect();
            prop_assume!(!names.is_empty());
            let joined = names.join(" , ");
            prop_assert_eq!(parse_topic_list("topics", &joined).unwrap(), names);
        }
    }
}
