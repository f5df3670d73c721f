//! Reading SQL arguments into the engine's types. SQL-only rules live here (NULL handling,
//! INTERVAL arithmetic); everything about Kafka is checked by `kafkars_core`.

use std::time::Duration;

use kafkars_core::{duration_from_micros, ClientSettings};

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
    if let Some(config) = not_null(input.named("config"), "config")? {
        let mut properties = Vec::new();
        for (key, value) in config.map_entries() {
            if key.is_null() {
                return Err(invalid("config", "a property name is NULL".into()));
            }
            let key = key.to_text();
            if value.is_null() {
                return Err(invalid(
                    "config",
                    format!("property '{key}' is NULL; give it a value or leave it out"),
                ));
            }
            properties.push((key, value.to_text()));
        }
        builder = builder.properties(properties);
    }
    builder.build()
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
