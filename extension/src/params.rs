//! Reading SQL arguments into the engine's types. SQL-only rules live here (NULL handling,
//! INTERVAL arithmetic); everything about Kafka is checked by `kafkars_core`.

use std::time::Duration;

use kafkars_core::{
    duration_from_micros, ClientSettings, DecodeParameters, DecodeSpec, ScanSelection, StartPolicy,
};

use crate::capi::{BindInput, LogicalType, Value};

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
    ]
}

/// The selection of `kafka_scan(topics, policy, start, lookback, cutoff, partitions)`.
pub fn scan_selection(input: &BindInput) -> Result<ScanSelection, kafkars_core::Error> {
    let topics = required_text(input, 0, "topics")?;
    let policy = text(input, "policy")?;
    let start = timestamp_ms(input, "start")?;
    let lookback = interval(input, "lookback")?;
    let start = StartPolicy::from_parameters(policy.as_deref(), start, lookback)?;
    let cutoff = timestamp_ms(input, "cutoff")?;
    ScanSelection::for_topic_list(&topics, start, partitions(input)?, cutoff)
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
    let Some(value) = not_null(input.named(parameter), parameter)? else {
        return Ok(None);
    };
    let (months, days, micros) = value.to_interval();
    const MICROS_PER_DAY: i64 = 86_400_000_000;
    let total = (i64::from(months) * 30 + i64::from(days))
        .checked_mul(MICROS_PER_DAY)
        .and_then(|day_micros| day_micros.checked_add(micros))
        .ok_or_else(|| invalid(parameter, "the interval is too large".into()))?;
    duration_from_micros(parameter, total).map(Some)
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
