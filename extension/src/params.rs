//! Reading SQL arguments into the engine's types. SQL-only rules live here (NULL handling,
//! INTERVAL arithmetic); everything about Kafka is checked by `kafkars_core`.

use std::time::Duration;

use kafkars_core::{
    duration_from_micros, parse_topic_list, positive_duration_from_micros, resolve_topic_pattern,
    ClientSettings, DecodeParameters, DecodeSpec, OnMissing, PartitionRange, ScanSelection,
    StartPolicy, TopicPattern, TopicSelection,
};

use crate::capi::{BindInput, Kind, LogicalType, Value};

/// The named parameters every kafkars function takes to reach the cluster.
pub fn client_parameters() -> Vec<(&'static str, LogicalType)> {
    vec![
        ("brokers", LogicalType::varchar()),
        ("timeout", LogicalType::interval()),
        (
            "config",
            LogicalType::map(&LogicalType::varchar(), &LogicalType::varchar()),
        ),
    ]
}

/// Build client settings from `brokers`, `timeout` and `config`.
pub fn client_settings(input: &BindInput) -> Result<ClientSettings, kafkars_core::Error> {
    let mut builder = ClientSettings::builder();
    if let Some(brokers) = text(input, "brokers")? {
        builder = builder.brokers(brokers);
    }
    if let Some(timeout) = interval(input, "timeout")? {
        builder = builder.timeout(timeout);
    }
    if let Some(properties) = properties(input, "config")? {
        builder = builder.properties(properties);
    }
    builder.build()
}

/// A `MAP(VARCHAR, VARCHAR)` named argument as (key, value) pairs; NULL keys and values are
/// errors naming the parameter.
fn properties(
    input: &BindInput,
    parameter: &str,
) -> Result<Option<Vec<(String, String)>>, kafkars_core::Error> {
    let Some(map) = not_null(input.named(parameter), parameter)? else {
        return Ok(None);
    };
    let mut properties = Vec::new();
    for (key, value) in map.map_entries() {
        if key.is_null() {
            return Err(invalid(parameter, "a property name is NULL".into()));
        }
        let key = key.to_text();
        if value.is_null() {
            return Err(invalid(
                parameter,
                format!("property '{key}' is NULL; give it a value or leave it out"),
            ));
        }
        properties.push((key, value.to_text()));
    }
    Ok(Some(properties))
}

/// The named parameters that decode keys and values (kafka_scan only).
pub fn decode_parameters() -> Vec<(&'static str, LogicalType)> {
    let mut named = Vec::new();
    for name in [
        "value_format",
        "key_format",
        "schema_registry",
        "value_schema",
        "key_schema",
        "value_message",
        "key_message",
        "value_subject",
        "key_subject",
        "on_error",
    ] {
        named.push((name, LogicalType::varchar()));
    }
    named.push((
        "schema_registry_config",
        LogicalType::map(&LogicalType::varchar(), &LogicalType::varchar()),
    ));
    named.push(("value_schema_id", LogicalType::bigint()));
    named.push(("key_schema_id", LogicalType::bigint()));
    named.push(("json_sample_size", LogicalType::bigint()));
    named
}

/// How kafka_scan decodes keys and values; `timeout` also bounds registry requests.
pub fn decode_spec(
    input: &BindInput,
    timeout: Duration,
) -> Result<DecodeSpec, kafkars_core::Error> {
    DecodeParameters {
        value_format: text(input, "value_format")?,
        key_format: text(input, "key_format")?,
        schema_registry: text(input, "schema_registry")?,
        schema_registry_config: properties(input, "schema_registry_config")?.unwrap_or_default(),
        value_schema: text(input, "value_schema")?,
        key_schema: text(input, "key_schema")?,
        value_message: text(input, "value_message")?,
        key_message: text(input, "key_message")?,
        value_subject: text(input, "value_subject")?,
        key_subject: text(input, "key_subject")?,
        value_schema_id: integer(input, "value_schema_id")?,
        key_schema_id: integer(input, "key_schema_id")?,
        on_error: text(input, "on_error")?,
        json_sample_size: integer(input, "json_sample_size")?,
    }
    .into_spec(Some(timeout))
}

/// The named parameters that choose what a scan reads.
pub fn selection_parameters() -> Vec<(&'static str, LogicalType)> {
    vec![
        ("policy", LogicalType::varchar()),
        ("start", LogicalType::timestamp_tz()),
        ("lookback", LogicalType::interval()),
        ("cutoff", LogicalType::timestamp_tz()),
        ("partitions", LogicalType::list(&LogicalType::integer())),
        ("topic_pattern", LogicalType::varchar()),
        // MAP(INTEGER, BIGINT) for one topic or LIST(STRUCT(topic, partition, "offset")):
        // typed by bind, which names what it expected.
        ("start_offsets", LogicalType::any()),
        ("stop_offsets", LogicalType::any()),
        ("ranges", LogicalType::any()),
        ("on_missing", LogicalType::varchar()),
    ]
}

/// The parameters an explicit plan (`ranges`) replaces.
const REPLACED_BY_RANGES: [&str; 7] = [
    "policy",
    "start",
    "lookback",
    "cutoff",
    "partitions",
    "start_offsets",
    "stop_offsets",
];

/// The selection of `kafka_scan(topics | NULL, policy, start, lookback, cutoff, partitions,
/// topic_pattern, start_offsets, stop_offsets, ranges, on_missing)`. A `topic_pattern` is
/// resolved here, at bind, against the cluster's topics (`settings`).
pub fn scan_selection(
    input: &BindInput,
    settings: &ClientSettings,
) -> Result<ScanSelection, kafkars_core::Error> {
    // NULL: no list, the topics come from `topic_pattern` or `ranges`. (DuckDB's C API keeps
    // one signature per table function name, so the positional argument cannot be left out.)
    let listed = input
        .positional(0)
        .filter(|value| !value.is_null())
        .map(|value| value.to_text());
    let pattern = text(input, "topic_pattern")?;
    let on_missing = text(input, "on_missing")?
        .map(|text| OnMissing::parse(&text))
        .transpose()?
        .unwrap_or_default();

    if let Some(ranges) = not_null(input.named("ranges"), "ranges")? {
        if let Some(other) = REPLACED_BY_RANGES
            .into_iter()
            .chain(["topic_pattern"])
            .find(|name| input.named(name).is_some())
        {
            return Err(invalid(
                "ranges",
                format!("ranges is a complete plan: leave out {other}"),
            ));
        }
        let selection = ScanSelection::from_ranges("ranges", plan_ranges(&ranges)?)?;
        if let Some(listed) = listed {
            let listed = parse_topic_list("topics", &listed)?;
            for topic in &selection.topics {
                if !listed.contains(&topic.topic) {
                    return Err(invalid(
                        "ranges",
                        format!(
                            "a range reads topic '{}', which topics ('{}') does not list",
                            topic.topic,
                            listed.join(",")
                        ),
                    ));
                }
            }
            if let Some(missing) = listed
                .iter()
                .find(|name| !selection.topics.iter().any(|t| &t.topic == *name))
            {
                return Err(invalid(
                    "ranges",
                    format!("no range reads topic '{missing}', which topics lists"),
                ));
            }
        }
        return Ok(selection.with_on_missing(on_missing));
    }

    let (topics, patterns) = match (listed, pattern) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "topic_pattern",
                "give topics or topic_pattern, not both".into(),
            ))
        }
        (None, None) => {
            return Err(invalid(
                "topics",
                "expected a topic list; with topic_pattern := '<regex>' or ranges := <plan>, \
                 give NULL"
                    .into(),
            ))
        }
        (Some(listed), None) => (parse_topic_list("topics", &listed)?, Vec::new()),
        (None, Some(pattern)) => {
            let pattern = TopicPattern::new("topic_pattern", &pattern)?;
            (resolve_topic_pattern(settings, &pattern)?, vec![pattern])
        }
    };
    let policy = text(input, "policy")?;
    let start = timestamp_ms(input, "start")?;
    let lookback = interval(input, "lookback")?;
    let start = StartPolicy::from_parameters(policy.as_deref(), start, lookback)?;
    let cutoff = timestamp_ms(input, "cutoff")?;
    let start_offsets = partition_offsets(input, "start_offsets", &topics)?;
    let stop_offsets = partition_offsets(input, "stop_offsets", &topics)?;
    let topics = topics
        .into_iter()
        .map(|topic| {
            let of = |offsets: &[(String, i32, i64)]| -> Vec<(i32, i64)> {
                offsets
                    .iter()
                    .filter(|(t, _, _)| *t == topic)
                    .map(|&(_, partition, offset)| (partition, offset))
                    .collect()
            };
            let starts = of(&start_offsets);
            let stops = of(&stop_offsets);
            TopicSelection::new(topic, start)
                .with_start_offsets("start_offsets", starts)?
                .with_stop_offsets("stop_offsets", stops)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ScanSelection::new(topics, partitions(input)?, cutoff)?
        .with_on_missing(on_missing)
        .with_topic_patterns(patterns))
}

/// `start_offsets` / `stop_offsets`: a `MAP(INTEGER, BIGINT)` of partition → offset when the
/// scan reads one topic, or a `LIST(STRUCT(topic VARCHAR, partition INTEGER, "offset"
/// BIGINT))` naming topics, as (topic, partition, offset) triples.
fn partition_offsets(
    input: &BindInput,
    parameter: &str,
    topics: &[String],
) -> Result<Vec<(String, i32, i64)>, kafkars_core::Error> {
    let Some(value) = not_null(input.named(parameter), parameter)? else {
        return Ok(Vec::new());
    };
    let expected = "a MAP(INTEGER, BIGINT) of partition to offset (one topic) or a \
                    LIST(STRUCT(topic VARCHAR, partition INTEGER, \"offset\" BIGINT))";
    match value.kind() {
        Kind::Map => {
            let [topic] = topics else {
                return Err(invalid(
                    parameter,
                    format!(
                        "a MAP names partitions of one topic, and the scan reads {}; give a \
                         LIST(STRUCT(topic, partition, \"offset\")) instead",
                        topics.len()
                    ),
                ));
            };
            value
                .map_entries()
                .iter()
                .map(|(key, offset)| {
                    let partition = partition_number(parameter, key)?;
                    let offset = offset_number(parameter, "offset", offset)?;
                    Ok((topic.clone(), partition, offset))
                })
                .collect()
        }
        Kind::List => value
            .list_elements()
            .iter()
            .map(|element| {
                let fields = struct_fields(parameter, element, &["topic", "partition", "offset"])?;
                let topic = fields[0].to_text();
                if !topics.contains(&topic) {
                    return Err(invalid(
                        parameter,
                        format!("it names topic '{topic}', which the scan does not read"),
                    ));
                }
                Ok((
                    topic,
                    partition_number(parameter, &fields[1])?,
                    offset_number(parameter, "offset", &fields[2])?,
                ))
            })
            .collect(),
        _ => Err(invalid(parameter, format!("expected {expected}"))),
    }
}

/// `ranges`: a LIST of STRUCTs with (at least) topic, partition, start_offset and
/// stop_offset — the rows of kafka_offsets, so `list(o)` over them is a plan.
fn plan_ranges(value: &Value) -> Result<Vec<PartitionRange>, kafkars_core::Error> {
    if value.kind() != Kind::List {
        return Err(invalid(
            "ranges",
            "expected a LIST(STRUCT(topic VARCHAR, partition INTEGER, start_offset BIGINT, \
             stop_offset BIGINT)), e.g. (SELECT list(o) FROM kafka_offsets(...) o)"
                .into(),
        ));
    }
    value
        .list_elements()
        .iter()
        .map(|element| {
            let fields = struct_fields(
                "ranges",
                element,
                &["topic", "partition", "start_offset", "stop_offset"],
            )?;
            Ok(PartitionRange {
                topic: fields[0].to_text(),
                partition: partition_number("ranges", &fields[1])?,
                start: offset_number("ranges", "start_offset", &fields[2])?,
                stop: offset_number("ranges", "stop_offset", &fields[3])?,
            })
        })
        .collect()
}

/// The named fields of a STRUCT element, in the order of `names`; others are ignored.
fn struct_fields(
    parameter: &str,
    element: &Value,
    names: &[&str],
) -> Result<Vec<Value>, kafkars_core::Error> {
    let shape = names.join(", ");
    if element.is_null() {
        return Err(invalid(parameter, "an element is NULL".into()));
    }
    if element.kind() != Kind::Struct {
        return Err(invalid(
            parameter,
            format!("expected a list of STRUCT({shape}), found a list of other values"),
        ));
    }
    let mut fields = element.struct_fields();
    names
        .iter()
        .map(|name| {
            let index = fields
                .iter()
                .position(|(field, _)| field.eq_ignore_ascii_case(name))
                .ok_or_else(|| {
                    invalid(
                        parameter,
                        format!("expected STRUCT({shape}): the field '{name}' is missing"),
                    )
                })?;
            let (_, value) = fields.swap_remove(index);
            if value.is_null() {
                return Err(invalid(parameter, format!("a {name} is NULL")));
            }
            Ok(value)
        })
        .collect()
}

fn partition_number(parameter: &str, value: &Value) -> Result<i32, kafkars_core::Error> {
    if value.is_null() {
        return Err(invalid(parameter, "a partition is NULL".into()));
    }
    if value.kind() != Kind::Integer {
        return Err(invalid(
            parameter,
            format!("expected an integer partition, found '{}'", value.to_text()),
        ));
    }
    i32::try_from(value.to_i64()).map_err(|_| {
        invalid(
            parameter,
            format!("partition {} is out of range", value.to_i64()),
        )
    })
}

fn offset_number(parameter: &str, name: &str, value: &Value) -> Result<i64, kafkars_core::Error> {
    if value.is_null() {
        return Err(invalid(parameter, format!("an {name} is NULL")));
    }
    if value.kind() != Kind::Integer {
        return Err(invalid(
            parameter,
            format!("expected an integer {name}, found '{}'", value.to_text()),
        ));
    }
    Ok(value.to_i64())
}

/// An optional TIMESTAMPTZ named argument in whole milliseconds, rounded up: Kafka timestamps
/// are milliseconds, and "at or after T" must hold for T's microseconds too.
pub fn timestamp_ms(
    input: &BindInput,
    parameter: &str,
) -> Result<Option<i64>, kafkars_core::Error> {
    Ok(not_null(input.named(parameter), parameter)?.map(|value| {
        value.to_timestamp_micros().div_euclid(1000)
            + i64::from(value.to_timestamp_micros().rem_euclid(1000) != 0)
    }))
}

/// An optional BOOLEAN named argument.
pub fn boolean(input: &BindInput, parameter: &str) -> Result<Option<bool>, kafkars_core::Error> {
    Ok(not_null(input.named(parameter), parameter)?.map(|value| value.to_bool()))
}

/// An optional BIGINT named argument.
pub fn integer(input: &BindInput, parameter: &str) -> Result<Option<i64>, kafkars_core::Error> {
    Ok(not_null(input.named(parameter), parameter)?.map(|value| value.to_i64()))
}

/// `partitions := [..]`, an INTEGER list without NULLs.
fn partitions(input: &BindInput) -> Result<Option<Vec<i32>>, kafkars_core::Error> {
    let Some(list) = not_null(input.named("partitions"), "partitions")? else {
        return Ok(None);
    };
    list.list_elements()
        .iter()
        .map(|element| {
            if element.is_null() {
                return Err(invalid("partitions", "a partition is NULL".into()));
            }
            i32::try_from(element.to_i64()).map_err(|_| {
                invalid(
                    "partitions",
                    format!("partition {} is out of range", element.to_i64()),
                )
            })
        })
        .collect::<Result<Vec<i32>, _>>()
        .map(Some)
}

/// A required VARCHAR positional argument.
pub fn required_text(
    input: &BindInput,
    index: usize,
    parameter: &str,
) -> Result<String, kafkars_core::Error> {
    match not_null(input.positional(index), parameter)? {
        Some(value) => Ok(value.to_text()),
        None => Err(invalid(parameter, "the argument is missing".into())),
    }
}

/// An optional VARCHAR named argument; NULL is an error, not "absent".
pub fn text(input: &BindInput, parameter: &str) -> Result<Option<String>, kafkars_core::Error> {
    Ok(not_null(input.named(parameter), parameter)?.map(|value| value.to_text()))
}

/// An optional INTERVAL named argument as a duration. Months count as 30 days, as in DuckDB's
/// own `epoch(INTERVAL)`.
pub fn interval(
    input: &BindInput,
    parameter: &str,
) -> Result<Option<Duration>, kafkars_core::Error> {
    interval_micros(input, parameter)?
        .map(|micros| duration_from_micros(parameter, micros))
        .transpose()
}

/// As [`interval`], for an interval that must be more than zero.
pub fn positive_interval(
    input: &BindInput,
    parameter: &str,
) -> Result<Option<Duration>, kafkars_core::Error> {
    interval_micros(input, parameter)?
        .map(|micros| positive_duration_from_micros(parameter, micros))
        .transpose()
}

/// An optional INTERVAL named argument in microseconds, months counted as 30 days.
fn interval_micros(input: &BindInput, parameter: &str) -> Result<Option<i64>, kafkars_core::Error> {
    let Some(value) = not_null(input.named(parameter), parameter)? else {
        return Ok(None);
    };
    let (months, days, micros) = value.to_interval();
    const MICROS_PER_DAY: i64 = 86_400_000_000;
    let total = (i64::from(months) * 30 + i64::from(days))
        .checked_mul(MICROS_PER_DAY)
        .and_then(|day_micros| day_micros.checked_add(micros))
        .ok_or_else(|| invalid(parameter, "the interval is too large".into()))?;
    Ok(Some(total))
}

fn not_null(value: Option<Value>, parameter: &str) -> Result<Option<Value>, kafkars_core::Error> {
    match value {
        Some(value) if value.is_null() => {
            Err(invalid(parameter, "expected a value, found NULL".into()))
        }
        value => Ok(value),
    }
}

fn invalid(parameter: &str, reason: String) -> kafkars_core::Error {
    kafkars_core::Error::InvalidParameter {
        parameter: parameter.to_owned(),
        reason,
    }
}
