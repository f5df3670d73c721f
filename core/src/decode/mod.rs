//! Payload decoding: keys and values in Avro, Protobuf or JSON turned into typed Arrow columns.
//!
//! Kafka carries keys and values as bytes. Most production topics frame them the Confluent
//! way (byte 0, a 4-byte big-endian schema id, then the body; Protobuf adds a list of message
//! indexes) with the schema kept in a Schema Registry, or carry plain JSON. A scan asked for a
//! format resolves, before its first row, one **reader schema** per column and so one Arrow
//! type; every record is then decoded into that type, whatever **writer schema** it was written
//! with (the Avro resolution rules; Protobuf by field number).
//!
//! | format | reader schema | decoded by |
//! |---|---|---|
//! | `avro` | latest of `<topic>-value` (`-key`), a subject, a schema id, or inline Avro JSON | `arrow-avro` |
//! | `protobuf` | the same, or inline `.proto` text with a message name | `prost-reflect` (+ `protox`) |
//! | `json` | a registry JSON Schema, an inline JSON Schema, or inferred from a sample | `arrow-json` |
//!
//! Records that can't be decoded fail the scan (naming topic, partition, offset and schema id)
//! or, with [`OnError::Null`], become NULL with the reason in the `decode_error` column.
//! A NULL payload (a null key, a tombstone) is a NULL row, never an error.
//!
//! Schemas are fetched once per id per scan ([`registry::SchemaRegistry`] caches them), never
//! once per record.

mod avro;
mod framing;
mod json;
mod protobuf;
pub mod registry;

use std::sync::Arc;
use std::time::Instant;

use arrow_array::builder::StringBuilder;
use arrow_array::{new_null_array, ArrayRef, StringArray};
use arrow_data::ArrayData;
use arrow_schema::DataType;

use crate::error::{Error, Result};
use crate::record::{Fields, Record};
use crate::resolve::PartitionRange;
use crate::scan::{Scan, ScanOptions};
use crate::selection::ScanSelection;
use crate::settings::ClientSettings;

pub use registry::{RegistrySettings, SchemaRegistry};

/// How a key or value is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PayloadFormat {
    /// Raw bytes, as stored (BLOB / binary).
    #[default]
    Bytes,
    /// Apache Avro.
    Avro,
    /// Protocol Buffers.
    Protobuf,
    /// JSON text.
    Json,
}

impl PayloadFormat {
    /// The names users write, in the order error messages list them.
    pub const NAMES: [&'static str; 4] = ["bytes", "avro", "protobuf", "json"];

    /// Parse a format name (case-insensitive).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] naming `parameter` and listing the accepted names.
    pub fn parse(parameter: &str, name: &str) -> Result<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "bytes" => Ok(Self::Bytes),
            "avro" => Ok(Self::Avro),
            "protobuf" => Ok(Self::Protobuf),
            "json" => Ok(Self::Json),
            _ => Err(invalid(
                parameter,
                format!(
                    "expected one of {}, found '{name}'",
                    quoted_list(&Self::NAMES)
                ),
            )),
        }
    }

    /// The name users write.
    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

/// Which part of a message a decoder reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The message key.
    Key,
    /// The message value.
    Value,
}

impl Side {
    /// `key` or `value`: the column name and the parameter prefix.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Key => "key",
            Side::Value => "value",
        }
    }

    /// The name of this side's variant of a parameter: `value_schema`, `key_format`, ….
    pub fn parameter(self, name: &str) -> String {
        format!("{}_{name}", self.as_str())
    }

    /// The subject of `topic` under Confluent's default `TopicNameStrategy`:
    /// `<topic>-key` or `<topic>-value`.
    pub fn subject(self, topic: &str) -> String {
        format!("{topic}-{}", self.as_str())
    }
}

/// What a record that can't be decoded does to the scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnError {
    /// The scan fails, naming topic, partition, offset, schema id and the reason.
    #[default]
    Fail,
    /// The column is NULL and the `decode_error` column says why.
    Null,
}

impl OnError {
    /// The names users write.
    pub const NAMES: [&'static str; 2] = ["fail", "null"];

    /// Parse `on_error`.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] naming `on_error`.
    pub fn parse(name: &str) -> Result<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "fail" => Ok(Self::Fail),
            "null" => Ok(Self::Null),
            _ => Err(invalid(
                "on_error",
                format!(
                    "expected one of {}, found '{name}'",
                    quoted_list(&Self::NAMES)
                ),
            )),
        }
    }
}

/// How one side (key or value) is to be decoded, as the user asked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PayloadSpec {
    /// The format.
    pub format: PayloadFormat,
    /// A schema given inline: Avro JSON, `.proto` text or a JSON Schema.
    pub schema: Option<String>,
    /// Protobuf: the fully qualified name of the message (`value_message`); by default the
    /// first message of the file.
    pub message: Option<String>,
    /// The registry subject of the reader schema, instead of `<topic>-<side>`.
    pub subject: Option<String>,
    /// The registry id of the reader schema, instead of the subject's latest version.
    pub schema_id: Option<u32>,
}

/// Default number of messages sampled to infer a JSON type.
pub const DEFAULT_JSON_SAMPLE_SIZE: usize = 1000;

/// How a scan decodes keys and values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeSpec {
    /// Keys.
    pub key: PayloadSpec,
    /// Values.
    pub value: PayloadSpec,
    /// The Schema Registry, if one is used.
    pub registry: Option<RegistrySettings>,
    /// What an undecodable record does.
    pub on_error: OnError,
    /// JSON without a schema: how many messages to infer the type from.
    pub json_sample_size: usize,
}

impl Default for DecodeSpec {
    fn default() -> Self {
        Self {
            key: PayloadSpec::default(),
            value: PayloadSpec::default(),
            registry: None,
            on_error: OnError::Fail,
            json_sample_size: DEFAULT_JSON_SAMPLE_SIZE,
        }
    }
}

impl DecodeSpec {
    /// The payload spec of `side`.
    pub fn side(&self, side: Side) -> &PayloadSpec {
        match side {
            Side::Key => &self.key,
            Side::Value => &self.value,
        }
    }

    /// Check that the parameters fit together, without touching the network.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] naming the parameter: a schema for `bytes`, both an inline
    /// schema and a registry, a subject or schema id without a registry, a message name for a
    /// format other than Protobuf, Avro or Protobuf with neither a registry nor a schema, a
    /// zero `json_sample_size`.
    pub fn validate(&self) -> Result<()> {
        for side in [Side::Key, Side::Value] {
            let spec = self.side(side);
            let format_parameter = side.parameter("format");
            if spec.format == PayloadFormat::Bytes {
                for (given, name) in [
                    (spec.schema.is_some(), "schema"),
                    (spec.message.is_some(), "message"),
                    (spec.subject.is_some(), "subject"),
                    (spec.schema_id.is_some(), "schema_id"),
                ] {
                    if given {
                        return Err(invalid(
                            &side.parameter(name),
                            format!(
                                "{format_parameter} is 'bytes', which takes no schema; set \
                                 {format_parameter} to 'avro', 'protobuf' or 'json'"
                            ),
                        ));
                    }
                }
                continue;
            }
            if spec.schema.is_some() && self.registry.is_some() {
                return Err(invalid(
                    &side.parameter("schema"),
                    "give either an inline schema or schema_registry, not both".into(),
                ));
            }
            if self.registry.is_none() {
                for (given, name) in [
                    (spec.subject.is_some(), "subject"),
                    (spec.schema_id.is_some(), "schema_id"),
                ] {
                    if given {
                        return Err(invalid(
                            &side.parameter(name),
                            "it names a registry schema: give schema_registry too".into(),
                        ));
                    }
                }
            }
            if spec.subject.is_some() && spec.schema_id.is_some() {
                return Err(invalid(
                    &side.parameter("schema_id"),
                    format!(
                        "give either {} or {}, not both",
                        side.parameter("subject"),
                        side.parameter("schema_id")
                    ),
                ));
            }
            if spec.message.is_some() && spec.format != PayloadFormat::Protobuf {
                return Err(invalid(
                    &side.parameter("message"),
                    format!(
                        "it names a Protobuf message, but {format_parameter} is '{}'",
                        spec.format.as_str()
                    ),
                ));
            }
            if matches!(spec.format, PayloadFormat::Avro | PayloadFormat::Protobuf)
                && self.registry.is_none()
                && spec.schema.is_none()
            {
                return Err(invalid(
                    &format_parameter,
                    format!(
                        "'{}' needs a schema: give schema_registry or {}",
                        spec.format.as_str(),
                        side.parameter("schema")
                    ),
                ));
            }
        }
        if self.json_sample_size == 0 {
            return Err(invalid(
                "json_sample_size",
                "expected at least 1 message, found 0".into(),
            ));
        }
        Ok(())
    }
}

/// The decoding parameters as both front ends take them (`kafka_scan`'s named parameters,
/// `ConsumerManager`'s keyword arguments), before they are checked.
#[derive(Debug, Clone, Default)]
pub struct DecodeParameters {
    /// `value_format`: `bytes` (default), `avro`, `protobuf` or `json`.
    pub value_format: Option<String>,
    /// `key_format`, likewise.
    pub key_format: Option<String>,
    /// `schema_registry`: the registry's base URL.
    pub schema_registry: Option<String>,
    /// `schema_registry_config`: client properties (see [`registry`]).
    pub schema_registry_config: Vec<(String, String)>,
    /// `value_schema` / `key_schema`: inline schemas.
    pub value_schema: Option<String>,
    /// See `value_schema`.
    pub key_schema: Option<String>,
    /// `value_message` / `key_message`: Protobuf message names.
    pub value_message: Option<String>,
    /// See `value_message`.
    pub key_message: Option<String>,
    /// `value_subject` / `key_subject`: registry subjects of the reader schemas.
    pub value_subject: Option<String>,
    /// See `value_subject`.
    pub key_subject: Option<String>,
    /// `value_schema_id` / `key_schema_id`: registry ids of the reader schemas.
    pub value_schema_id: Option<i64>,
    /// See `value_schema_id`.
    pub key_schema_id: Option<i64>,
    /// `on_error`: `fail` (default) or `null`.
    pub on_error: Option<String>,
    /// `json_sample_size`: messages sampled to infer a JSON type (default 1000).
    pub json_sample_size: Option<i64>,
}

impl DecodeParameters {
    /// Check the parameters and build the spec; `timeout` is the client timeout, which also
    /// bounds each registry request unless `schema_registry_config` sets `timeout.ms`.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] naming the parameter (see [`DecodeSpec::validate`]).
    pub fn into_spec(self, timeout: Option<std::time::Duration>) -> Result<DecodeSpec> {
        let format = |parameter: &str, value: Option<String>| {
            value.map_or(Ok(PayloadFormat::Bytes), |name| {
                PayloadFormat::parse(parameter, &name)
            })
        };
        let schema_id = |parameter: &str, id: Option<i64>| -> Result<Option<u32>> {
            id.map(|id| {
                u32::try_from(id).map_err(|_| {
                    invalid(
                        parameter,
                        format!(
                            "expected a registry schema id from 0 to {}, found {id}",
                            u32::MAX
                        ),
                    )
                })
            })
            .transpose()
        };
        let registry = match self.schema_registry {
            Some(url) => Some(RegistrySettings::new(
                &url,
                &self.schema_registry_config,
                timeout,
            )?),
            None if !self.schema_registry_config.is_empty() => {
                return Err(invalid(
                    "schema_registry_config",
                    "it configures the registry client: give schema_registry too".into(),
                ))
            }
            None => None,
        };
        let json_sample_size = match self.json_sample_size {
            None => DEFAULT_JSON_SAMPLE_SIZE,
            Some(size) => usize::try_from(size)
                .ok()
                .filter(|size| *size > 0)
                .ok_or_else(|| {
                    invalid(
                        "json_sample_size",
                        format!("expected a positive number of messages, found {size}"),
                    )
                })?,
        };
        let spec = DecodeSpec {
            key: PayloadSpec {
                format: format("key_format", self.key_format)?,
                schema: self.key_schema,
                message: self.key_message,
                subject: self.key_subject,
                schema_id: schema_id("key_schema_id", self.key_schema_id)?,
            },
            value: PayloadSpec {
                format: format("value_format", self.value_format)?,
                schema: self.value_schema,
                message: self.value_message,
                subject: self.value_subject,
                schema_id: schema_id("value_schema_id", self.value_schema_id)?,
            },
            registry,
            on_error: self
                .on_error
                .map_or(Ok(OnError::Fail), |name| OnError::parse(&name))?,
            json_sample_size,
        };
        spec.validate()?;
        Ok(spec)
    }
}

/// One record that could not be decoded, as a format decoder reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    /// The row in the decoded batch.
    pub row: usize,
    /// The registry schema id in the record's framing, when it had one.
    pub schema_id: Option<u32>,
    /// What was wrong.
    pub reason: String,
}

/// A decoded batch of payloads: one array row per payload; failed rows are NULL in `array`.
pub(crate) struct Decoded {
    pub array: ArrayRef,
    pub failures: Vec<Failure>,
}

impl Decoded {
    /// Every row failed (or there was none): a NULL array of `data_type`.
    pub fn all_null(data_type: &DataType, failures: Vec<Failure>, rows: usize) -> Self {
        Self {
            array: new_null_array(data_type, rows),
            failures,
        }
    }
}

/// What every format's decoder does: turn a batch of payloads into one Arrow array of its
/// reader type.
pub(crate) trait FormatDecoder: Send {
    /// The Arrow type of every array [`FormatDecoder::decode`] returns.
    fn data_type(&self) -> &DataType;

    /// Decode `payloads` into an array with one row per payload: NULL for a `None` payload
    /// and for each record listed in the returned failures.
    ///
    /// # Errors
    /// Only for failures that concern the whole scan (the registry unreachable); a record that
    /// can't be decoded is a [`Failure`], not an error.
    fn decode(&mut self, payloads: &[Option<&[u8]>]) -> Result<Decoded>;

    /// A fresh decoder with the same resolved reader schema (and the same registry client and
    /// its cache), for another thread of the same scan. Resolves nothing again, so every
    /// thread decodes into exactly the type bind announced.
    fn fork(&self) -> Box<dyn FormatDecoder>;
}

/// The decoder of one side, with its reader type resolved.
pub struct PayloadDecoder {
    side: Side,
    inner: Box<dyn FormatDecoder>,
}

impl std::fmt::Debug for PayloadDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PayloadDecoder")
            .field("side", &self.side)
            .field("data_type", self.inner.data_type())
            .finish()
    }
}

impl PayloadDecoder {
    /// The Arrow type of the decoded column.
    pub fn data_type(&self) -> &DataType {
        self.inner.data_type()
    }
}

/// The decoders of a scan: what its `key` and `value` columns become.
///
/// Resolved once per scan ([`PayloadDecoders::for_scan`]); [`PayloadDecoders::fork`] gives
/// each reading thread its own decoders of the same types.
#[derive(Debug)]
pub struct PayloadDecoders {
    key: Option<PayloadDecoder>,
    value: Option<PayloadDecoder>,
    on_error: OnError,
}

/// The decoded columns of a batch of records.
#[derive(Debug, Default)]
pub struct DecodedColumns {
    /// The decoded keys, when keys are decoded and were asked for.
    pub key: Option<ArrayRef>,
    /// The decoded values, likewise.
    pub value: Option<ArrayRef>,
    /// With `on_error := 'null'`: per row, why a key or value is NULL, or NULL.
    pub decode_error: Option<StringArray>,
}

impl PayloadDecoders {
    /// Resolve the reader schemas of `spec` for the scan over `topics` (the registry's latest
    /// versions, inline schemas compiled, JSON types inferred from `sample`).
    ///
    /// `sample(side, n)` returns up to `n` payloads of that side from the start of the scan,
    /// for JSON inference; it is called only when a JSON side has no schema.
    ///
    /// # Errors
    /// Invalid parameters, schemas that don't parse or have no column type, a registry that
    /// is unreachable or lacks the subject, topics whose reader schemas differ.
    pub fn resolve(
        spec: &DecodeSpec,
        topics: &[String],
        sample: &mut dyn FnMut(Side, usize) -> Result<Vec<Option<Vec<u8>>>>,
    ) -> Result<Self> {
        spec.validate()?;
        let registry = spec
            .registry
            .as_ref()
            .map(|settings| SchemaRegistry::connect(settings.clone()).map(Arc::new))
            .transpose()?;
        let mut resolve_side = |side: Side| -> Result<Option<PayloadDecoder>> {
            let payload = spec.side(side);
            let context = ResolveContext {
                side,
                spec: payload,
                topics,
                registry: registry.clone(),
                json_sample_size: spec.json_sample_size,
            };
            let inner: Box<dyn FormatDecoder> = match payload.format {
                PayloadFormat::Bytes => return Ok(None),
                PayloadFormat::Avro => Box::new(avro::AvroDecoder::resolve(&context)?),
                PayloadFormat::Protobuf => {
                    Box::new(protobuf::ProtobufDecoder::resolve(&context, sample)?)
                }
                PayloadFormat::Json => Box::new(json::JsonDecoder::resolve(&context, sample)?),
            };
            Ok(Some(PayloadDecoder { side, inner }))
        };
        let key = resolve_side(Side::Key)?;
        let value = resolve_side(Side::Value)?;
        Ok(Self {
            key,
            value,
            on_error: spec.on_error,
        })
    }

    /// Resolve `spec` for a scan of `selection`: the topics' reader schemas, and, for JSON
    /// without a schema, the type inferred from the first `json_sample_size` messages the
    /// scan would return (read now, in the scan's order, within the client timeout).
    ///
    /// # Errors
    /// As [`PayloadDecoders::resolve`], and errors of reading the sample.
    pub fn for_scan(
        spec: &DecodeSpec,
        settings: &ClientSettings,
        selection: &ScanSelection,
    ) -> Result<Self> {
        let topics: Vec<String> = selection.topics.iter().map(|t| t.topic.clone()).collect();
        let mut sample =
            |side: Side, count: usize| sample_payloads(settings, selection, side, count);
        Self::resolve(spec, &topics, &mut sample)
    }

    /// Decoders of the same resolved types for another thread of the same scan.
    pub fn fork(&self) -> Self {
        let fork = |decoder: &Option<PayloadDecoder>| {
            decoder.as_ref().map(|decoder| PayloadDecoder {
                side: decoder.side,
                inner: decoder.inner.fork(),
            })
        };
        Self {
            key: fork(&self.key),
            value: fork(&self.value),
            on_error: self.on_error,
        }
    }

    /// Whether neither keys nor values are decoded.
    pub fn is_raw(&self) -> bool {
        self.key.is_none() && self.value.is_none()
    }

    /// The decoder of `side`, if that side is decoded.
    pub fn side(&self, side: Side) -> Option<&PayloadDecoder> {
        match side {
            Side::Key => self.key.as_ref(),
            Side::Value => self.value.as_ref(),
        }
    }

    /// Whether the output has a `decode_error` column.
    pub fn has_error_column(&self) -> bool {
        self.on_error == OnError::Null && (self.key.is_some() || self.value.is_some())
    }

    /// Decode the keys (when `key`) and values (when `value`) of `records`, whose `source`
    /// indexes `ranges`. Sides that are not decoded, or not asked for, are `None`.
    ///
    /// # Errors
    /// [`Error::Decode`] naming topic, partition, offset and schema id for the first record
    /// that can't be decoded, with `on_error := 'fail'`; registry failures always.
    pub fn decode(
        &mut self,
        ranges: &[PartitionRange],
        records: &[Record],
        key: bool,
        value: bool,
    ) -> Result<DecodedColumns> {
        let mut errors: Vec<Option<String>> = Vec::new();
        let on_error = self.on_error;
        let decode_side = |decoder: &mut Option<PayloadDecoder>,
                           wanted: bool,
                           errors: &mut Vec<Option<String>>|
         -> Result<Option<ArrayRef>> {
            let Some(decoder) = decoder.as_mut().filter(|_| wanted) else {
                return Ok(None);
            };
            let side = decoder.side;
            let payloads: Vec<Option<&[u8]>> = records
                .iter()
                .map(|record| match side {
                    Side::Key => record.key(),
                    Side::Value => record.value(),
                })
                .collect();
            let decoded = decoder.inner.decode(&payloads)?;
            debug_assert_eq!(decoded.array.len(), records.len());
            if let Some(failure) = decoded.failures.first() {
                if on_error == OnError::Fail {
                    let record = &records[failure.row];
                    let range = &ranges[record.source as usize];
                    return Err(Error::Decode {
                        side: side.as_str(),
                        topic: range.topic.clone(),
                        partition: range.partition,
                        offset: record.offset,
                        schema_id: failure.schema_id,
                        reason: failure.reason.clone(),
                    });
                }
                if errors.is_empty() {
                    errors.resize(records.len(), None);
                }
                for failure in decoded.failures {
                    let text = format!(
                        "{}{}: {}",
                        side.as_str(),
                        failure
                            .schema_id
                            .map(|id| format!(" (schema id {id})"))
                            .unwrap_or_default(),
                        failure.reason
                    );
                    let slot = &mut errors[failure.row];
                    *slot = Some(match slot.take() {
                        Some(earlier) => format!("{earlier}; {text}"),
                        None => text,
                    });
                }
            }
            Ok(Some(decoded.array))
        };
        let key = decode_side(&mut self.key, key, &mut errors)?;
        let value = decode_side(&mut self.value, value, &mut errors)?;
        let decode_error = (on_error == OnError::Null).then(|| {
            if errors.is_empty() {
                StringArray::new_null(records.len())
            } else {
                let mut builder = StringBuilder::with_capacity(records.len(), 64);
                for error in &errors {
                    builder.append_option(error.as_deref());
                }
                builder.finish()
            }
        });
        Ok(DecodedColumns {
            key,
            value,
            decode_error,
        })
    }
}

/// Up to `count` payloads of `side` from the start of a bounded scan of `selection`, in the
/// scan's order: the sample JSON types are inferred from.
fn sample_payloads(
    settings: &ClientSettings,
    selection: &ScanSelection,
    side: Side,
    count: usize,
) -> Result<Vec<Option<Vec<u8>>>> {
    let options = ScanOptions {
        fields: Fields {
            key: side == Side::Key,
            value: side == Side::Value,
            headers: false,
        },
        ..ScanOptions::default()
    };
    let mut scan = Scan::open(settings, selection, options)?;
    let deadline = Instant::now() + settings.timeout();
    let mut sample = Vec::with_capacity(count.min(4096));
    let mut records = Vec::new();
    while sample.len() < count && !scan.is_done() && Instant::now() < deadline {
        records.clear();
        scan.next_records(count - sample.len(), &mut records, Some(deadline))?;
        sample.extend(records.iter().map(|record| {
            match side {
                Side::Key => record.key(),
                Side::Value => record.value(),
            }
            .map(<[u8]>::to_vec)
        }));
    }
    Ok(sample)
}

/// What a format decoder needs to resolve its reader schema.
pub(crate) struct ResolveContext<'a> {
    pub side: Side,
    pub spec: &'a PayloadSpec,
    /// The topics of the scan, in order.
    pub topics: &'a [String],
    pub registry: Option<Arc<SchemaRegistry>>,
    pub json_sample_size: usize,
}

impl ResolveContext<'_> {
    /// The parameter that gives this side's inline schema, for error messages.
    pub fn schema_parameter(&self) -> String {
        self.side.parameter("schema")
    }

    /// With a registry: the reader schema of this side. An explicit schema id wins, then an
    /// explicit subject's latest version, then each topic's `<topic>-<side>` subject; all
    /// topics must agree on one schema.
    ///
    /// # Errors
    /// Registry errors; [`Error::InvalidParameter`] naming `topics` when topics' latest
    /// schemas differ (suggesting one scan per topic and `UNION ALL BY NAME`).
    pub fn registry_reader_schema(
        &self,
        registry: &SchemaRegistry,
    ) -> Result<Arc<registry::RegisteredSchema>> {
        if let Some(id) = self.spec.schema_id {
            return registry.schema_by_id(id);
        }
        if let Some(subject) = &self.spec.subject {
            return registry.latest(subject);
        }
        let mut chosen: Option<(String, Arc<registry::RegisteredSchema>)> = None;
        for topic in self.topics {
            let subject = self.side.subject(topic);
            let schema = registry.latest(&subject)?;
            match &chosen {
                None => chosen = Some((subject, schema)),
                Some((first_subject, first)) => {
                    if first.id != schema.id && first.schema != schema.schema {
                        return Err(invalid(
                            "topics",
                            format!(
                                "the {side} schemas of the topics differ (subject \
                                 '{first_subject}' has schema id {}, subject '{subject}' has \
                                 schema id {}): a {side} column has one type, so read one topic \
                                 per kafka_scan and combine them with UNION ALL BY NAME, or name \
                                 one reader schema with {}",
                                first.id,
                                schema.id,
                                self.side.parameter("schema_id"),
                                side = self.side.as_str(),
                            ),
                        ));
                    }
                }
            }
        }
        chosen.map(|(_, schema)| schema).ok_or_else(|| {
            invalid(
                "topics",
                "no topic given to look up the reader schema for".into(),
            )
        })
    }
}

/// `array` relabelled with `target`, a type that differs from its own at most in field names
/// and metadata (arrow-avro gives arrays resolved from another writer schema the reader's
/// types without the reader's field metadata). `None` when the layouts differ.
pub(crate) fn conform(array: ArrayRef, target: &DataType) -> Option<ArrayRef> {
    if array.data_type() == target {
        return Some(array);
    }
    if !array.data_type().equals_datatype(target) {
        return None;
    }
    Some(arrow_array::make_array(relabel(array.to_data(), target)))
}

fn relabel(data: ArrayData, target: &DataType) -> ArrayData {
    let child_types: Vec<DataType> = match target {
        DataType::Struct(fields) => fields.iter().map(|f| f.data_type().clone()).collect(),
        DataType::List(field)
        | DataType::LargeList(field)
        | DataType::FixedSizeList(field, _)
        | DataType::Map(field, _) => vec![field.data_type().clone()],
        DataType::Union(fields, _) => fields.iter().map(|(_, f)| f.data_type().clone()).collect(),
        DataType::Dictionary(_, values) => vec![values.as_ref().clone()],
        _ => Vec::new(),
    };
    let children: Vec<ArrayData> = data
        .child_data()
        .iter()
        .zip(child_types.iter())
        .map(|(child, child_type)| relabel(child.clone(), child_type))
        .collect();
    let builder = data.into_builder().data_type(target.clone());
    let builder = if children.is_empty() {
        builder
    } else {
        builder.child_data(children)
    };
    // SAFETY: `target` equals the array's type but for field names and metadata
    // (`equals_datatype`, checked by the caller for the root; children follow from it), so
    // buffers, offsets and lengths stay valid for it.
    unsafe { builder.build_unchecked() }
}

pub(crate) fn invalid(parameter: &str, reason: String) -> Error {
    Error::InvalidParameter {
        parameter: parameter.to_owned(),
        reason,
    }
}

fn quoted_list(names: &[&str]) -> String {
    names
        .iter()
        .map(|name| format!("'{name}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_format_parse_names_parameter() {
        assert_eq!(
            PayloadFormat::parse("value_format", " AVRO ").unwrap(),
            PayloadFormat::Avro
        );
        let error = PayloadFormat::parse("key_format", "xml")
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "invalid key_format: expected one of 'bytes', 'avro', 'protobuf', 'json', found 'xml'"
        );
    }

    #[test]
    fn test_spec_validate_combinations() {
        let registry = RegistrySettings::new("http://127.0.0.1:1", &[], None).unwrap();
        let mut spec = DecodeSpec::default();
        assert!(spec.validate().is_ok());
        spec.value.format = PayloadFormat::Avro;
        let error = spec.validate().unwrap_err().to_string();
        assert!(
            error.starts_with("invalid value_format: 'avro' needs a schema"),
            "{error}"
        );
        spec.value.schema = Some("\"string\"".into());
        spec.registry = Some(registry);
        let error = spec.validate().unwrap_err().to_string();
        assert!(
            error.starts_with("invalid value_schema: give either"),
            "{error}"
        );
        spec.registry = None;
        spec.value.message = Some("x.Y".into());
        let error = spec.validate().unwrap_err().to_string();
        assert!(error.starts_with("invalid value_message:"), "{error}");
        spec.value.message = None;
        spec.key.schema = Some("{}".into());
        let error = spec.validate().unwrap_err().to_string();
        assert!(
            error.starts_with("invalid key_schema: key_format is 'bytes'"),
            "{error}"
        );
        spec.key.schema = None;
        spec.value.subject = Some("s".into());
        let error = spec.validate().unwrap_err().to_string();
        assert!(error.starts_with("invalid value_subject:"), "{error}");
    }
}
