//! JSON payloads, decoded by `arrow-json` into one Arrow type per column.
//!
//! The type comes from, in order:
//!
//! 1. the registry (`schema_registry`): the reader schema of the subject, which must be a JSON
//!    Schema; payloads must then be Confluent-framed (byte 0, the 4-byte schema id, the JSON
//!    text; JSON has no message indexes);
//! 2. an inline JSON Schema (`value_schema`);
//! 3. inference from the first `json_sample_size` payloads of the scan, as DuckDB's
//!    `read_json` does.
//!
//! With an inline schema or an inferred type, payloads may be bare JSON text or framed (JSON
//! text never starts with byte 0, so the two can't be confused).
//!
//! # JSON Schema to Arrow
//!
//! | JSON Schema | Arrow |
//! |---|---|
//! | `object` with `properties` | Struct, properties in the order written; a field is nullable unless `required` (and even then if its own schema admits `null`) |
//! | `object` with no `properties` and an `additionalProperties` schema | Map(Utf8, that schema's type) |
//! | `array` with `items` | List (elements nullable); without `items`: List of JSON text |
//! | `string` | Utf8; `format: date-time` Timestamp(µs, UTC); `format: date` Date32; `format: time` stays Utf8 (an RFC 3339 time carries an offset a Time64 can't hold) |
//! | `integer` / `number` / `boolean` | Int64 / Float64 / Boolean |
//! | `[T, "null"]`, `oneOf`/`anyOf` of T and `{"type": "null"}`, `nullable: true` | T, nullable |
//! | `integer` together with `number` | Float64 |
//! | `enum` / `const` of strings (integers, numbers, booleans) | Utf8 (Int64, Float64, Boolean) |
//! | `allOf` of objects (with the schema's own `properties`) | Struct of all their properties |
//! | `$ref` to `#/definitions/…`, `#/$defs/…` (any local JSON pointer; registry references by name) | the type it points to; a recursive reference is an error naming the field |
//! | `{}`, `true`, a union of different types, an object without properties (or only `patternProperties`), tuples of different types, `null` alone | Utf8 holding the value's JSON text (field metadata: Arrow's canonical `arrow.json` extension type) |
//!
//! Properties not in the schema are ignored unless the object says
//! `additionalProperties: false`; then a record with one is a failure.
//!
//! # Inference
//!
//! Objects become Structs of the union of their keys (in order of first appearance), arrays
//! Lists of the union of their elements; integers Int64, other numbers Float64 (both in one
//! field: Float64), strings Utf8, booleans Boolean. A field seen only as `null`, only as `{}`
//! or with conflicting kinds (a string here, an object there) becomes JSON text, as do values
//! nested deeper than [`MAX_INFERRED_DEPTH`]. Payloads that are not JSON are skipped (they fail
//! later, when decoded). Records after the sample must fit the inferred type exactly: an
//! unknown field or a value of another kind is a failure naming the reason.
//!
//! # Decoding
//!
//! A batch is decoded in one pass through one `arrow-json` decoder (NULL payloads are fed as
//! `null`). Only when that fails are the failing records isolated, by decoding halves of the
//! batch until each failure is pinned to one record; they become NULL rows and [`Failure`]s,
//! and the other records decode as they would have.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arrow_array::builder::StringBuilder;
use arrow_array::cast::AsArray;
use arrow_array::types::TimestampMicrosecondType;
use arrow_array::{new_null_array, Array, ArrayRef, NullArray};
use arrow_json::reader::{
    ArrayDecoder, Decoder, DecoderContext, DecoderFactory, Tape, TapeElement,
};
use arrow_json::ReaderBuilder;
use arrow_schema::extension::{EXTENSION_TYPE_METADATA_KEY, EXTENSION_TYPE_NAME_KEY};
use arrow_schema::{ArrowError, DataType, Field, FieldRef, Fields, TimeUnit};

use super::framing;
use super::registry::{RegisteredSchema, SchemaRegistry, SchemaType};
use super::{Decoded, Failure, FormatDecoder, ResolveContext, Side};
use crate::error::{Error, Result};

/// Arrow's canonical extension type for a Utf8 column holding JSON text.
const JSON_EXTENSION: &str = "arrow.json";

/// How deeply a JSON Schema document may nest.
const MAX_SCHEMA_DEPTH: usize = 128;

/// Decodes one side's JSON payloads into its resolved Arrow type.
pub(crate) struct JsonDecoder {
    data_type: DataType,
    feeder: Feeder,
    /// Whether payloads must be Confluent-framed (registry mode).
    framed_only: bool,
    /// What a record that does not fit the type does not match, for failure reasons:
    /// `does not match schema id 7`, `does not fit the type inferred from …`.
    mismatch: String,
    /// Appended to type failures: what the user can do.
    hint: String,
}

impl JsonDecoder {
    /// Resolve the column type: the registry's JSON Schema, the inline one, or inferred from
    /// `sample`.
    ///
    /// # Errors
    /// Registry errors; [`Error::Schema`] for a registry subject that holds another format, a
    /// schema that does not parse or has no column type (a recursive `$ref`), or a sample
    /// without a single JSON payload.
    pub fn resolve(
        context: &ResolveContext<'_>,
        sample: &mut dyn FnMut(Side, usize) -> Result<Vec<Option<Vec<u8>>>>,
    ) -> Result<Self> {
        if let Some(registry) = context.registry.clone() {
            return Self::from_registry(context, &registry);
        }
        if let Some(text) = &context.spec.schema {
            let what = context.schema_parameter();
            let root =
                parse_document(text.as_bytes()).map_err(|reason| schema_error(&what, reason))?;
            let documents = HashMap::from([(String::new(), root)]);
            return Self::from_documents(context.side, &documents, what, false);
        }
        Self::infer(context, sample)
    }

    /// The reader schema from the registry, with the schemas it references (by the name
    /// its `$ref`s use).
    fn from_registry(context: &ResolveContext<'_>, registry: &SchemaRegistry) -> Result<Self> {
        let schema = context.registry_reader_schema(registry)?;
        let what = format!("schema id {}", schema.id);
        let root = registry_document(context, &schema, &what)?;
        let mut documents = HashMap::from([(String::new(), root)]);
        load_references(context, registry, &schema, &mut documents)?;
        Self::from_documents(context.side, &documents, what, true)
    }

    /// The type of the first `json_sample_size` payloads of the scan, as DuckDB's `read_json`
    /// infers it; later records must fit it exactly.
    fn infer(
        context: &ResolveContext<'_>,
        sample: &mut dyn FnMut(Side, usize) -> Result<Vec<Option<Vec<u8>>>>,
    ) -> Result<Self> {
        let side = context.side;
        let what = format!("{} 'json'", side.parameter("format"));
        let payloads = sample(side, context.json_sample_size)?;
        let bodies: Vec<Body<'_>> = payloads
            .iter()
            .map(|payload| payload.as_deref().map_or(Body::NULL, Body::bare_or_framed))
            .collect();
        let nulls = bodies.iter().filter(|body| body.text.is_none()).count();
        let shape = Arc::new(Mutex::new(Shape::Null));
        let mut feeder = Feeder::new(
            Arc::new(Field::new(side.as_str(), DataType::Null, true)),
            false,
            Arc::new(ShapeFactory {
                shape: shape.clone(),
            }),
        );
        let rejected = if bodies.is_empty() {
            Vec::new()
        } else {
            feeder
                .decode(&bodies)
                .map_err(|reason| schema_error(&what, reason))?
                .1
        };
        if bodies.len() == nulls + rejected.len() {
            return Err(schema_error(
                &what,
                no_json_reason(side, bodies.len(), nulls, &rejected, &bodies),
            ));
        }
        let shape = std::mem::replace(
            &mut *shape
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
            Shape::Null,
        );
        let field = Arc::new(shape.column().field(side.as_str(), true));
        let feeder = Feeder::new(field, true, Arc::new(JsonFactory::default()));
        feeder
            .build(1)
            .map_err(|reason| schema_error(&what, reason))?;
        Ok(Self {
            data_type: feeder.field.data_type().clone(),
            feeder,
            framed_only: false,
            mismatch: format!(
                "does not fit the type inferred from the first {} messages",
                payloads.len()
            ),
            hint: format!(
                " (raise json_sample_size, or give {} for a fixed type)",
                side.parameter("schema")
            ),
        })
    }

    /// The decoder for the JSON Schema `documents[""]` (other entries: the documents it
    /// references by name), named `what` in errors.
    fn from_documents(
        side: Side,
        documents: &HashMap<String, Json>,
        what: String,
        framed_only: bool,
    ) -> Result<Self> {
        let mut mapper = SchemaMapper {
            documents,
            expanding: Vec::new(),
            closed: Vec::new(),
        };
        let column = mapper
            .column("", &documents[""], "", 0)
            .map_err(|reason| schema_error(&what, reason))?;
        let factory = Arc::new(JsonFactory {
            closed: mapper.closed,
        });
        let field = Arc::new(column.field(side.as_str(), true));
        let feeder = Feeder::new(field, false, factory);
        // Refuse a type arrow-json can't decode now, not at the first batch.
        feeder
            .build(1)
            .map_err(|reason| schema_error(&what, reason))?;
        Ok(Self {
            data_type: feeder.field.data_type().clone(),
            feeder,
            framed_only,
            mismatch: format!("does not match {what}"),
            hint: String::new(),
        })
    }

    /// The reason a record failed, for the user.
    fn reason(&self, rejection: Rejection, body: &[u8]) -> String {
        match rejection {
            Rejection::Syntax(message) => format!(
                "not valid JSON: {message} (the payload starts {})",
                framing::hex_prefix(body)
            ),
            Rejection::Type(message) => format!("{}: {message}{}", self.mismatch, self.hint),
        }
    }

    /// A decoder of the same resolved type for another thread of the scan: shares the
    /// immutable parts, resolves nothing again, starts with no arrow-json decoder of its own.
    /// (Main's `FormatDecoder::fork` is `Box::new(self.fork())`.)
    pub fn fork(&self) -> Self {
        Self {
            data_type: self.data_type.clone(),
            feeder: Feeder::new(
                self.feeder.field.clone(),
                self.feeder.strict,
                self.feeder.factory.clone(),
            ),
            framed_only: self.framed_only,
            mismatch: self.mismatch.clone(),
            hint: self.hint.clone(),
        }
    }

    /// A batch that could not be decoded at all: no arrow-json decoder for the type, or the
    /// decoded pieces would not join (neither depends on the records).
    fn internal_error(&self, reason: String) -> Error {
        Error::Schema {
            what: format!("the {} JSON type", self.feeder.field.name()),
            reason,
        }
    }
}

impl FormatDecoder for JsonDecoder {
    fn data_type(&self) -> &DataType {
        &self.data_type
    }

    fn fork(&self) -> Box<dyn FormatDecoder> {
        Box::new(JsonDecoder::fork(self))
    }

    fn decode(&mut self, payloads: &[Option<&[u8]>]) -> Result<Decoded> {
        let mut failures = Vec::new();
        let mut bodies = Vec::with_capacity(payloads.len());
        for (row, payload) in payloads.iter().enumerate() {
            let body = match payload {
                None => Body::NULL,
                Some(payload) if self.framed_only => match framing::split(payload) {
                    Ok(framed) => Body {
                        text: Some(framed.body),
                        schema_id: Some(framed.schema_id),
                    },
                    Err(reason) => {
                        failures.push(Failure {
                            row,
                            schema_id: None,
                            reason,
                        });
                        Body::NULL
                    }
                },
                Some(payload) => Body::bare_or_framed(payload),
            };
            bodies.push(body);
        }
        if bodies.is_empty() {
            return Ok(Decoded::all_null(&self.data_type, failures, 0));
        }
        let (array, rejected) = self
            .feeder
            .decode(&bodies)
            .map_err(|reason| self.internal_error(reason))?;
        for (row, rejection) in rejected {
            let body = &bodies[row];
            let reason = self.reason(rejection, body.text.unwrap_or_default());
            failures.push(Failure {
                row,
                schema_id: body.schema_id,
                reason,
            });
        }
        failures.sort_by_key(|failure| failure.row);
        Ok(Decoded { array, failures })
    }
}

/// Why nothing could be inferred from a sample without JSON.
fn no_json_reason(
    side: Side,
    sampled: usize,
    nulls: usize,
    rejected: &[(usize, Rejection)],
    bodies: &[Body<'_>],
) -> String {
    let found = if sampled == 0 {
        "the scan has no messages at its start".to_owned()
    } else {
        let example = rejected
            .first()
            .map(|(row, rejection)| {
                let text = bodies[*row].text.unwrap_or_default();
                let reason = match rejection {
                    Rejection::Syntax(message) | Rejection::Type(message) => message,
                };
                format!(
                    "; the first: {reason} (the payload starts {})",
                    framing::hex_prefix(text)
                )
            })
            .unwrap_or_default();
        format!(
            "of the first {sampled} messages, {nulls} are NULL and {} are not JSON{example}",
            rejected.len()
        )
    };
    format!(
        "no JSON messages were found to infer the {} type from ({found}): give {} (a JSON \
         Schema) or schema_registry",
        side.as_str(),
        side.parameter("schema")
    )
}

/// The parsed text of a registry schema, which must be a JSON Schema.
fn registry_document(
    context: &ResolveContext<'_>,
    schema: &RegisteredSchema,
    what: &str,
) -> Result<Json> {
    if schema.schema_type != SchemaType::Json {
        let format = context.side.parameter("format");
        return Err(schema_error(
            what,
            format!(
                "{format} is 'json', but the registry holds a{} {} schema there: set {format} \
                 to '{}'",
                if schema.schema_type == SchemaType::Avro {
                    "n"
                } else {
                    ""
                },
                match schema.schema_type {
                    SchemaType::Avro => "Avro",
                    SchemaType::Protobuf => "Protobuf",
                    SchemaType::Json => "JSON",
                },
                schema.schema_type.format_name()
            ),
        ));
    }
    parse_document(schema.schema.as_bytes()).map_err(|reason| schema_error(what, reason))
}

/// Fetch the schemas `schema` references (and theirs), keyed by reference name.
fn load_references(
    context: &ResolveContext<'_>,
    registry: &SchemaRegistry,
    schema: &RegisteredSchema,
    documents: &mut HashMap<String, Json>,
) -> Result<()> {
    for reference in &schema.references {
        if documents.contains_key(&reference.name) {
            continue;
        }
        let version = if reference.version < 0 {
            "latest".to_owned()
        } else {
            reference.version.to_string()
        };
        let referenced = registry.version(&reference.subject, &version)?;
        let what = format!("subject '{}' version {version}", reference.subject);
        let document = registry_document(context, &referenced, &what)?;
        documents.insert(reference.name.clone(), document);
        load_references(context, registry, &referenced, documents)?;
    }
    Ok(())
}

fn schema_error(what: &str, reason: String) -> Error {
    Error::Schema {
        what: what.to_owned(),
        reason,
    }
}

// ---------------------------------------------------------------------------------------------
// Feeding payloads through arrow-json
// ---------------------------------------------------------------------------------------------

/// One payload's JSON text (None: a NULL row) and the schema id of its framing.
#[derive(Debug, Clone, Copy)]
struct Body<'a> {
    text: Option<&'a [u8]>,
    schema_id: Option<u32>,
}

impl<'a> Body<'a> {
    const NULL: Self = Self {
        text: None,
        schema_id: None,
    };

    /// Bare JSON text, or JSON text behind a Confluent header.
    fn bare_or_framed(payload: &'a [u8]) -> Self {
        match framing::looks_framed(payload)
            .then(|| framing::split(payload).ok())
            .flatten()
        {
            Some(framed) => Self {
                text: Some(framed.body),
                schema_id: Some(framed.schema_id),
            },
            None => Self {
                text: Some(payload),
                schema_id: None,
            },
        }
    }
}

/// Why one record (or a batch holding it) could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Rejection {
    /// The text is not one JSON value.
    Syntax(String),
    /// The value does not fit the Arrow type.
    Type(String),
}

/// Turns JSON texts into arrays of one Arrow type through `arrow-json` decoders, isolating
/// the records that fail.
struct Feeder {
    /// The root field: the column type, always nullable (NULL payloads are fed as `null`).
    field: FieldRef,
    strict: bool,
    factory: Arc<dyn DecoderFactory>,
    /// A decoder left clean by a successful flush, and the batch size it was built for.
    spare: Option<(usize, Decoder)>,
}

impl Feeder {
    fn new(field: FieldRef, strict: bool, factory: Arc<dyn DecoderFactory>) -> Self {
        Self {
            field,
            strict,
            factory,
            spare: None,
        }
    }

    fn build(&self, batch_size: usize) -> Result<Decoder, String> {
        ReaderBuilder::new_with_field(self.field.clone())
            .with_batch_size(batch_size.max(1))
            .with_strict_mode(self.strict)
            .with_decoder_factory(self.factory.clone())
            .build_decoder()
            .map_err(|error| format!("arrow-json can't decode it: {}", arrow_message(error)))
    }

    /// Decode `bodies` into one array of the same length: NULL rows for `None` bodies and for
    /// the rejected ones, listed by index.
    ///
    /// # Errors
    /// Only when no decoder can be built or the pieces can't be joined (a bug, not a record).
    fn decode(
        &mut self,
        bodies: &[Body<'_>],
    ) -> Result<(ArrayRef, Vec<(usize, Rejection)>), String> {
        let capacity = bodies.len();
        match self.bulk(bodies, capacity)? {
            Ok(array) => Ok((array, Vec::new())),
            Err(rejection) => {
                let mut rejected = Vec::new();
                let mut pieces = Vec::new();
                self.narrow(bodies, 0, capacity, rejection, &mut rejected, &mut pieces)?;
                let array = if pieces.len() == 1 {
                    pieces.pop().expect("one piece")
                } else {
                    let refs: Vec<&dyn Array> = pieces.iter().map(|piece| piece.as_ref()).collect();
                    arrow_select::concat::concat(&refs)
                        .map_err(|error| format!("joining decoded pieces: {error}"))?
                };
                Ok((array, rejected))
            }
        }
    }

    /// Decode `bodies` (starting at row `start`), narrowing down failures.
    fn isolate(
        &mut self,
        bodies: &[Body<'_>],
        start: usize,
        capacity: usize,
        rejected: &mut Vec<(usize, Rejection)>,
        pieces: &mut Vec<ArrayRef>,
    ) -> Result<(), String> {
        match self.bulk(bodies, capacity)? {
            Ok(array) => pieces.push(array),
            Err(rejection) => self.narrow(bodies, start, capacity, rejection, rejected, pieces)?,
        }
        Ok(())
    }

    /// `bodies` failed together with `rejection`: split them until every failure is one
    /// record (a NULL row), decoding the rest.
    fn narrow(
        &mut self,
        bodies: &[Body<'_>],
        start: usize,
        capacity: usize,
        rejection: Rejection,
        rejected: &mut Vec<(usize, Rejection)>,
        pieces: &mut Vec<ArrayRef>,
    ) -> Result<(), String> {
        if bodies.len() == 1 {
            rejected.push((start, rejection));
            pieces.push(new_null_array(self.field.data_type(), 1));
            return Ok(());
        }
        let middle = bodies.len() / 2;
        self.isolate(&bodies[..middle], start, capacity, rejected, pieces)?;
        self.isolate(
            &bodies[middle..],
            start + middle,
            capacity,
            rejected,
            pieces,
        )
    }

    /// Decode all of `bodies` in one go. The outer error: no decoder could be built.
    fn bulk(
        &mut self,
        bodies: &[Body<'_>],
        capacity: usize,
    ) -> Result<Result<ArrayRef, Rejection>, String> {
        let mut decoder = match self.spare.take() {
            Some((size, decoder)) if size >= bodies.len() => decoder,
            _ => self.build(capacity.max(bodies.len()))?,
        };
        for (index, body) in bodies.iter().enumerate() {
            // A failed decoder is dropped: its state is mid-record.
            if let Err(rejection) = feed(&mut decoder, body.text.unwrap_or(b"null"), index + 1) {
                return Ok(Err(rejection));
            }
        }
        let array = match decoder.flush() {
            Ok(Some(batch)) => batch.column(0).clone(),
            Ok(None) => new_null_array(self.field.data_type(), 0),
            Err(error) => return Ok(Err(flush_rejection(error))),
        };
        self.spare = Some((capacity.max(bodies.len()), decoder));
        Ok(Ok(array))
    }
}

/// Feed one JSON text; `rows` is how many rows the decoder must hold after it.
fn feed(decoder: &mut Decoder, text: &[u8], rows: usize) -> Result<(), Rejection> {
    if text.iter().all(u8::is_ascii_whitespace) {
        return Err(Rejection::Syntax("the payload is empty".into()));
    }
    let syntax = |error: ArrowError| Rejection::Syntax(arrow_message(error));
    let read = decoder.decode(text).map_err(syntax)?;
    // A newline ends a trailing number and keeps the next text from continuing this one.
    decoder.decode(b"\n").map_err(syntax)?;
    if read < text.len() || decoder.len() > rows {
        return Err(Rejection::Syntax(
            "the payload holds more than one JSON value".into(),
        ));
    }
    if decoder.has_partial_record() {
        return Err(Rejection::Syntax(
            "the text ends in the middle of a value".into(),
        ));
    }
    Ok(())
}

/// A failed flush: the text was broken (bad UTF-8), or a value does not fit the type.
fn flush_rejection(error: ArrowError) -> Rejection {
    let message = arrow_message(error);
    if message.contains("UTF-8") || message.starts_with("Truncated record") {
        Rejection::Syntax(message)
    } else {
        Rejection::Type(message)
    }
}

/// An arrow error's text without the `Json error: ` prefix.
fn arrow_message(error: ArrowError) -> String {
    match error {
        ArrowError::JsonError(message) => message,
        other => other.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Custom arrow-json decoders
// ---------------------------------------------------------------------------------------------

/// The field metadata marking a Utf8 field as JSON text.
fn json_metadata() -> HashMap<String, String> {
    HashMap::from([
        (
            EXTENSION_TYPE_NAME_KEY.to_owned(),
            JSON_EXTENSION.to_owned(),
        ),
        (EXTENSION_TYPE_METADATA_KEY.to_owned(), String::new()),
    ])
}

fn is_json_text(field: &Field) -> bool {
    field.data_type() == &DataType::Utf8
        && field
            .metadata()
            .get(EXTENSION_TYPE_NAME_KEY)
            .map(String::as_str)
            == Some(JSON_EXTENSION)
}

/// Chooses our decoders where arrow-json's own don't do what a JSON column needs.
#[derive(Debug, Default)]
struct JsonFactory {
    /// Structs whose object forbids properties outside the schema (`additionalProperties:
    /// false`), recognised by identity: the same fields may be open elsewhere.
    closed: Vec<Fields>,
}

impl DecoderFactory for JsonFactory {
    fn make_default_decoder(
        &self,
        ctx: &DecoderContext,
        field: &FieldRef,
        is_nullable: bool,
    ) -> Result<Option<Box<dyn ArrayDecoder>>, ArrowError> {
        if is_json_text(field) {
            return Ok(Some(Box::new(JsonTextDecoder)));
        }
        match field.data_type() {
            DataType::Int64 => Ok(Some(Box::new(IntegerDecoder(
                ctx.make_builtin_decoder(field, is_nullable)?,
            )))),
            DataType::Timestamp(TimeUnit::Microsecond, Some(zone)) if zone.as_ref() == "UTC" => {
                // arrow-json knows zone names only with chrono-tz: decode at offset +00:00,
                // then label the array UTC (the same instants).
                let offset = Field::new(
                    field.name(),
                    DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
                    field.is_nullable(),
                );
                Ok(Some(Box::new(UtcTimestampDecoder(
                    ctx.make_builtin_decoder(&Arc::new(offset), is_nullable)?,
                ))))
            }
            DataType::Struct(fields)
                if self
                    .closed
                    .iter()
                    .any(|closed| std::ptr::eq(closed.as_ptr(), fields.as_ptr())) =>
            {
                Ok(Some(Box::new(ClosedStructDecoder {
                    fields: fields.clone(),
                    inner: ctx.make_builtin_decoder(field, is_nullable)?,
                })))
            }
            _ => Ok(None),
        }
    }
}

/// Any JSON value as its compact JSON text; `null` as NULL.
struct JsonTextDecoder;

impl ArrayDecoder for JsonTextDecoder {
    fn decode(&mut self, tape: &Tape<'_>, pos: &[u32]) -> Result<ArrayRef, ArrowError> {
        let mut builder = StringBuilder::with_capacity(pos.len(), pos.len() * 16);
        let mut text = String::new();
        for &p in pos {
            if tape.get(p) == TapeElement::Null {
                builder.append_null();
                continue;
            }
            text.clear();
            write_json(tape, p, &mut text)?;
            builder.append_value(&text);
        }
        Ok(Arc::new(builder.finish()))
    }
}

/// Write the value at `start` as compact JSON, without recursion (payload nesting is not
/// bounded).
fn write_json(tape: &Tape<'_>, start: u32, out: &mut String) -> Result<(), ArrowError> {
    use std::fmt::Write;
    let end = tape.next(start, "a JSON value")?;
    // Per open container: whether it is an object, and how many elements it has so far.
    let mut open: Vec<(bool, usize)> = Vec::new();
    let mut index = start;
    while index < end {
        let element = tape.get(index);
        let closes = matches!(element, TapeElement::EndObject(_) | TapeElement::EndList(_));
        if let Some((object, count)) = open.last_mut().filter(|_| !closes) {
            if *count > 0 {
                out.push(if *object && *count % 2 == 1 { ':' } else { ',' });
            }
            *count += 1;
        }
        index += 1;
        match element {
            TapeElement::StartObject(_) => {
                out.push('{');
                open.push((true, 0));
            }
            TapeElement::StartList(_) => {
                out.push('[');
                open.push((false, 0));
            }
            TapeElement::EndObject(_) => {
                out.push('}');
                open.pop();
            }
            TapeElement::EndList(_) => {
                out.push(']');
                open.pop();
            }
            TapeElement::String(s) => write_escaped(tape.get_string(s), out),
            TapeElement::Number(s) => out.push_str(tape.get_string(s)),
            TapeElement::True => out.push_str("true"),
            TapeElement::False => out.push_str("false"),
            TapeElement::Null => out.push_str("null"),
            TapeElement::I32(value) => {
                let _ = write!(out, "{value}");
            }
            TapeElement::F32(bits) => {
                let _ = write!(out, "{}", f32::from_bits(bits));
            }
            TapeElement::I64(high) => {
                if let TapeElement::I32(low) = tape.get(index) {
                    let _ = write!(out, "{}", (i64::from(high) << 32) | i64::from(low as u32));
                }
                index += 1;
            }
            TapeElement::F64(high) => {
                if let TapeElement::F32(low) = tape.get(index) {
                    let bits = (u64::from(high) << 32) | u64::from(low);
                    let _ = write!(out, "{}", f64::from_bits(bits));
                }
                index += 1;
            }
            _ => return Err(tape.error(index - 1, "a JSON value")),
        }
    }
    Ok(())
}

/// A JSON string literal for `text`.
fn write_escaped(text: &str, out: &mut String) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Int64 that refuses numbers with a fraction: arrow-json would truncate 1.5 to 1.
struct IntegerDecoder(Box<dyn ArrayDecoder>);

impl ArrayDecoder for IntegerDecoder {
    fn decode(&mut self, tape: &Tape<'_>, pos: &[u32]) -> Result<ArrayRef, ArrowError> {
        for &p in pos {
            if let TapeElement::Number(s) = tape.get(p) {
                let text = tape.get_string(s);
                if is_integer_text(text) {
                    continue;
                }
                let value = text.parse::<f64>().unwrap_or(f64::NAN);
                if value.fract() != 0.0 || value.is_nan() {
                    return Err(ArrowError::JsonError(format!(
                        "expected an integer, found {text}"
                    )));
                }
                if value.abs() >= 9.2e18 {
                    return Err(ArrowError::JsonError(format!(
                        "{text} is outside the 64-bit integer range"
                    )));
                }
            }
        }
        self.0.decode(tape, pos)
    }
}

/// Timestamps at offset +00:00 relabelled as zone `UTC`.
struct UtcTimestampDecoder(Box<dyn ArrayDecoder>);

impl ArrayDecoder for UtcTimestampDecoder {
    fn decode(&mut self, tape: &Tape<'_>, pos: &[u32]) -> Result<ArrayRef, ArrowError> {
        let array = self.0.decode(tape, pos)?;
        Ok(Arc::new(
            array
                .as_primitive::<TimestampMicrosecondType>()
                .clone()
                .with_timezone("UTC"),
        ))
    }
}

/// Whether a JSON number is an integer that fits Int64.
fn is_integer_text(text: &str) -> bool {
    !text.contains(['.', 'e', 'E']) && text.parse::<i64>().is_ok()
}

/// A Struct from objects that may hold no other properties.
struct ClosedStructDecoder {
    fields: Fields,
    inner: Box<dyn ArrayDecoder>,
}

impl ArrayDecoder for ClosedStructDecoder {
    fn decode(&mut self, tape: &Tape<'_>, pos: &[u32]) -> Result<ArrayRef, ArrowError> {
        for &p in pos {
            let TapeElement::StartObject(end) = tape.get(p) else {
                continue;
            };
            let mut index = p + 1;
            while index < end {
                if let TapeElement::String(s) = tape.get(index) {
                    let name = tape.get_string(s);
                    if self.fields.find(name).is_none() {
                        return Err(ArrowError::JsonError(format!(
                            "property '{name}' is not in the schema, whose object forbids \
                             other properties (additionalProperties: false)"
                        )));
                    }
                }
                index = tape.next(index + 1, "field value")?;
            }
        }
        self.inner.decode(tape, pos)
    }
}

// ---------------------------------------------------------------------------------------------
// JSON documents with their key order (serde_json's map sorts keys)
// ---------------------------------------------------------------------------------------------

/// A parsed JSON document that keeps the order of object keys.
#[derive(Debug, Clone, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    /// The number as written.
    Number(String),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    /// The value of `key` in an object.
    fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(entries) => entries
                .iter()
                .find(|(name, _)| name == key)
                .map(|(_, value)| value),
            _ => None,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "a boolean",
            Json::Number(_) => "a number",
            Json::String(_) => "a string",
            Json::Array(_) => "an array",
            Json::Object(_) => "an object",
        }
    }
}

/// Parse one JSON document (a schema) with arrow-json's parser, keeping key order.
fn parse_document(text: &[u8]) -> Result<Json, String> {
    let captured = Arc::new(Mutex::new(None));
    let factory = Arc::new(CaptureFactory {
        captured: captured.clone(),
    });
    let field = Arc::new(Field::new("document", DataType::Null, true));
    let mut feeder = Feeder::new(field, false, factory);
    let body = Body {
        text: Some(text),
        schema_id: None,
    };
    match feeder.bulk(&[body], 1)? {
        Ok(_) => {}
        Err(Rejection::Syntax(message)) => return Err(format!("not valid JSON: {message}")),
        Err(Rejection::Type(message)) => return Err(message),
    }
    let document = captured
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .take();
    document.ok_or_else(|| "not valid JSON: no value".to_owned())
}

/// Hands the root value of each row to a [`TreeDecoder`].
#[derive(Debug)]
struct CaptureFactory {
    captured: Arc<Mutex<Option<Json>>>,
}

impl DecoderFactory for CaptureFactory {
    fn make_default_decoder(
        &self,
        _ctx: &DecoderContext,
        _field: &FieldRef,
        _is_nullable: bool,
    ) -> Result<Option<Box<dyn ArrayDecoder>>, ArrowError> {
        Ok(Some(Box::new(TreeDecoder {
            captured: self.captured.clone(),
        })))
    }
}

/// Builds the [`Json`] tree of the last row; returns a Null array.
struct TreeDecoder {
    captured: Arc<Mutex<Option<Json>>>,
}

impl ArrayDecoder for TreeDecoder {
    fn decode(&mut self, tape: &Tape<'_>, pos: &[u32]) -> Result<ArrayRef, ArrowError> {
        for &p in pos {
            let (tree, _) = tree(tape, p, 0)?;
            *self
                .captured
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(tree);
        }
        Ok(Arc::new(NullArray::new(pos.len())))
    }
}

/// The tree of the value at `index`, and the index after it.
fn tree(tape: &Tape<'_>, index: u32, depth: usize) -> Result<(Json, u32), ArrowError> {
    if depth > MAX_SCHEMA_DEPTH {
        return Err(ArrowError::JsonError(format!(
            "the document nests more than {MAX_SCHEMA_DEPTH} levels deep"
        )));
    }
    let next = tape.next(index, "a JSON value")?;
    let value = match tape.get(index) {
        TapeElement::Null => Json::Null,
        TapeElement::True => Json::Bool(true),
        TapeElement::False => Json::Bool(false),
        TapeElement::String(s) => Json::String(tape.get_string(s).to_owned()),
        TapeElement::Number(s) => Json::Number(tape.get_string(s).to_owned()),
        TapeElement::StartList(end) => {
            let mut items = Vec::new();
            let mut cursor = index + 1;
            while cursor < end {
                let (item, after) = tree(tape, cursor, depth + 1)?;
                items.push(item);
                cursor = after;
            }
            Json::Array(items)
        }
        TapeElement::StartObject(end) => {
            let mut entries = Vec::new();
            let mut cursor = index + 1;
            while cursor < end {
                let TapeElement::String(s) = tape.get(cursor) else {
                    return Err(tape.error(cursor, "a property name"));
                };
                let (value, after) = tree(tape, cursor + 1, depth + 1)?;
                entries.push((tape.get_string(s).to_owned(), value));
                cursor = after;
            }
            Json::Object(entries)
        }
        _ => return Err(tape.error(index, "a JSON value")),
    };
    Ok((value, next))
}

// ---------------------------------------------------------------------------------------------
// Column types
// ---------------------------------------------------------------------------------------------

/// A column type being worked out: an Arrow type, whether it holds JSON text, whether the
/// schema admits `null`. `DataType::Null` stands for "only null".
#[derive(Debug, Clone, PartialEq)]
struct Column {
    data_type: DataType,
    json_text: bool,
    nullable: bool,
}

impl Column {
    fn of(data_type: DataType) -> Self {
        Self {
            data_type,
            json_text: false,
            nullable: false,
        }
    }

    fn json_text() -> Self {
        Self {
            data_type: DataType::Utf8,
            json_text: true,
            nullable: true,
        }
    }

    fn null() -> Self {
        Self {
            data_type: DataType::Null,
            json_text: false,
            nullable: true,
        }
    }

    fn nullable(self) -> Self {
        Self {
            nullable: true,
            ..self
        }
    }

    /// "Only null" has no column type of its own: JSON text (always NULL, or whatever comes).
    fn finished(self) -> Self {
        if self.data_type == DataType::Null {
            Self::json_text()
        } else {
            self
        }
    }

    fn same_type(&self, other: &Self) -> bool {
        self.data_type == other.data_type && self.json_text == other.json_text
    }

    fn field(&self, name: &str, nullable: bool) -> Field {
        let column = self.clone().finished();
        let field = Field::new(name, column.data_type, nullable || column.nullable);
        if column.json_text {
            field.with_metadata(json_metadata())
        } else {
            field
        }
    }

    fn list(item: Column) -> Self {
        Self::of(DataType::List(Arc::new(item.field("item", true))))
    }

    fn map(value: Column) -> Self {
        Self::of(DataType::Map(
            Arc::new(Field::new(
                "entries",
                DataType::Struct(Fields::from(vec![
                    Field::new("key", DataType::Utf8, false),
                    value.field("value", true),
                ])),
                false,
            )),
            false,
        ))
    }

    /// The type of a value that is one of `columns` (`oneOf`, `anyOf`, a list of types).
    fn union(columns: Vec<Column>) -> Self {
        let nullable = columns.iter().any(|column| column.nullable);
        let mut typed: Vec<Column> = columns
            .into_iter()
            .filter(|column| column.data_type != DataType::Null)
            .collect();
        let Some(first) = typed.first() else {
            return Self::null();
        };
        let column = if typed.iter().all(|column| column.same_type(first)) {
            typed.swap_remove(0)
        } else if typed.iter().all(|column| {
            !column.json_text && matches!(column.data_type, DataType::Int64 | DataType::Float64)
        }) {
            Self::of(DataType::Float64)
        } else {
            Self::json_text()
        };
        Self {
            nullable: column.nullable || nullable,
            ..column
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Inference
// ---------------------------------------------------------------------------------------------

/// How deep inference follows nested objects and arrays; deeper values become JSON text.
pub(crate) const MAX_INFERRED_DEPTH: usize = 32;

/// The inferred kind of the values seen at one place.
#[derive(Debug, Clone, PartialEq)]
enum Shape {
    /// Nothing but `null` (or nothing) seen yet.
    Null,
    Bool,
    Int,
    Float,
    Str,
    List(Box<Shape>),
    Object(ObjectShape),
    /// Kinds that don't merge: JSON text.
    Any,
}

/// An object's keys in order of first appearance, with the shape of each.
#[derive(Debug, Clone, Default, PartialEq)]
struct ObjectShape {
    fields: Vec<(String, Shape)>,
    index: HashMap<String, usize>,
}

impl ObjectShape {
    fn merge_field(&mut self, name: &str, shape: Shape) {
        match self.index.get(name) {
            Some(&at) => self.fields[at].1.merge(shape),
            None => {
                self.index.insert(name.to_owned(), self.fields.len());
                self.fields.push((name.to_owned(), shape));
            }
        }
    }
}

impl Shape {
    /// Widen to also hold `other`: int and float make float, objects take the union of
    /// their keys, lists merge their elements, anything else that differs is JSON text.
    fn merge(&mut self, other: Shape) {
        let merged = match (std::mem::replace(self, Shape::Null), other) {
            (Shape::Null, shape) | (shape, Shape::Null) => shape,
            (Shape::Any, _) | (_, Shape::Any) => Shape::Any,
            (Shape::Int, Shape::Float) | (Shape::Float, Shape::Int) => Shape::Float,
            (Shape::List(mut items), Shape::List(more)) => {
                items.merge(*more);
                Shape::List(items)
            }
            (Shape::Object(mut object), Shape::Object(more)) => {
                for (name, shape) in more.fields {
                    object.merge_field(&name, shape);
                }
                Shape::Object(object)
            }
            (shape, same) if shape == same => shape,
            _ => Shape::Any,
        };
        *self = merged;
    }

    fn column(&self) -> Column {
        match self {
            Shape::Null | Shape::Any => Column::json_text(),
            Shape::Bool => Column::of(DataType::Boolean),
            Shape::Int => Column::of(DataType::Int64),
            Shape::Float => Column::of(DataType::Float64),
            Shape::Str => Column::of(DataType::Utf8),
            Shape::List(items) => Column::list(items.column()),
            // An empty struct has no column type (DuckDB refuses one): `{}` is JSON text.
            Shape::Object(object) if object.fields.is_empty() => Column::json_text(),
            Shape::Object(object) => Column::of(DataType::Struct(
                object
                    .fields
                    .iter()
                    .map(|(name, shape)| shape.column().field(name, true))
                    .collect(),
            )),
        }
    }
}

/// The shape of the value at `index`, and the index after it.
fn shape_of(tape: &Tape<'_>, index: u32, depth: usize) -> Result<(Shape, u32), ArrowError> {
    let next = tape.next(index, "a JSON value")?;
    let shape = match tape.get(index) {
        TapeElement::Null => Shape::Null,
        TapeElement::True | TapeElement::False => Shape::Bool,
        TapeElement::String(_) => Shape::Str,
        TapeElement::Number(s) if is_integer_text(tape.get_string(s)) => Shape::Int,
        TapeElement::Number(_) | TapeElement::F32(_) | TapeElement::F64(_) => Shape::Float,
        TapeElement::I32(_) | TapeElement::I64(_) => Shape::Int,
        TapeElement::StartList(_) | TapeElement::StartObject(_) if depth >= MAX_INFERRED_DEPTH => {
            Shape::Any
        }
        TapeElement::StartList(end) => {
            let mut items = Shape::Null;
            let mut cursor = index + 1;
            while cursor < end {
                let (item, after) = shape_of(tape, cursor, depth + 1)?;
                items.merge(item);
                cursor = after;
            }
            Shape::List(Box::new(items))
        }
        TapeElement::StartObject(end) => {
            let mut object = ObjectShape::default();
            let mut cursor = index + 1;
            while cursor < end {
                let TapeElement::String(s) = tape.get(cursor) else {
                    return Err(tape.error(cursor, "a property name"));
                };
                let (value, after) = shape_of(tape, cursor + 1, depth + 1)?;
                object.merge_field(tape.get_string(s), value);
                cursor = after;
            }
            Shape::Object(object)
        }
        _ => return Err(tape.error(index, "a JSON value")),
    };
    Ok((shape, next))
}

/// Hands every sampled value to a [`ShapeDecoder`].
#[derive(Debug)]
struct ShapeFactory {
    shape: Arc<Mutex<Shape>>,
}

impl DecoderFactory for ShapeFactory {
    fn make_default_decoder(
        &self,
        _ctx: &DecoderContext,
        _field: &FieldRef,
        _is_nullable: bool,
    ) -> Result<Option<Box<dyn ArrayDecoder>>, ArrowError> {
        Ok(Some(Box::new(ShapeDecoder {
            shape: self.shape.clone(),
        })))
    }
}

/// Merges the shape of each row into the sample's; returns a Null array.
struct ShapeDecoder {
    shape: Arc<Mutex<Shape>>,
}

impl ArrayDecoder for ShapeDecoder {
    fn decode(&mut self, tape: &Tape<'_>, pos: &[u32]) -> Result<ArrayRef, ArrowError> {
        let mut merged = Shape::Null;
        for &p in pos {
            merged.merge(shape_of(tape, p, 0)?.0);
        }
        self.shape
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .merge(merged);
        Ok(Arc::new(NullArray::new(pos.len())))
    }
}

// ---------------------------------------------------------------------------------------------
// JSON Schema to Arrow
// ---------------------------------------------------------------------------------------------

struct SchemaMapper<'a> {
    /// The schema (`""`) and the documents it references, by reference name.
    documents: &'a HashMap<String, Json>,
    /// The `$ref`s being expanded (`document#pointer`), to refuse recursion.
    expanding: Vec<String>,
    /// Structs from objects with `additionalProperties: false`.
    closed: Vec<Fields>,
}

/// Where a schema error is: the field path.
fn at(path: &str) -> String {
    if path.is_empty() {
        "at the top level".to_owned()
    } else {
        format!("at field '{path}'")
    }
}

fn child_path(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

impl SchemaMapper<'_> {
    /// The column type of `schema`, found in `document`, at field `path`.
    fn column(
        &mut self,
        document: &str,
        schema: &Json,
        path: &str,
        depth: usize,
    ) -> Result<Column, String> {
        if depth > MAX_SCHEMA_DEPTH {
            return Err(format!(
                "{}: the schema nests more than {MAX_SCHEMA_DEPTH} levels deep",
                at(path)
            ));
        }
        let depth = depth + 1;
        let entries = match schema {
            // `true` admits anything; `false` nothing (no value will come).
            Json::Bool(_) => return Ok(Column::json_text()),
            Json::Object(entries) => entries,
            other => {
                return Err(format!(
                    "{}: expected a schema (a JSON object or boolean), found {}",
                    at(path),
                    other.kind()
                ))
            }
        };
        let nullable = schema.get("nullable") == Some(&Json::Bool(true));
        let column = if let Some(reference) = schema.get("$ref") {
            self.reference(document, reference, path, depth)?
        } else if let Some(branches) = schema.get("allOf") {
            // Before `type`: `{"type": "object", "allOf": [base], "properties": …}` extends base.
            self.all_of(document, entries, branches, path, depth)?
        } else if let Some(values) = schema.get("enum") {
            let Json::Array(values) = values else {
                return Err(format!(
                    "{}: 'enum' must be an array, found {}",
                    at(path),
                    values.kind()
                ));
            };
            Column::union(values.iter().map(value_column).collect())
        } else if let Some(value) = schema.get("const") {
            value_column(value)
        } else if let Some(kind) = schema.get("type") {
            match kind {
                Json::String(kind) => self.typed(document, schema, kind, path, depth)?,
                Json::Array(kinds) => {
                    let mut columns = Vec::with_capacity(kinds.len());
                    for kind in kinds {
                        let Json::String(kind) = kind else {
                            return Err(format!(
                                "{}: 'type' lists {}, expected type names",
                                at(path),
                                kind.kind()
                            ));
                        };
                        columns.push(self.typed(document, schema, kind, path, depth)?);
                    }
                    Column::union(columns)
                }
                other => {
                    return Err(format!(
                        "{}: 'type' must be a type name or a list of them, found {}",
                        at(path),
                        other.kind()
                    ))
                }
            }
        } else if let Some(branches) = schema.get("oneOf").or_else(|| schema.get("anyOf")) {
            let Json::Array(branches) = branches else {
                return Err(format!(
                    "{}: 'oneOf'/'anyOf' must be an array, found {}",
                    at(path),
                    branches.kind()
                ));
            };
            let mut columns = Vec::with_capacity(branches.len());
            for branch in branches {
                columns.push(self.column(document, branch, path, depth)?);
            }
            Column::union(columns)
        } else if ["properties", "additionalProperties", "required"]
            .iter()
            .any(|key| schema.get(key).is_some())
        {
            self.typed(document, schema, "object", path, depth)?
        } else if schema.get("items").is_some() {
            self.typed(document, schema, "array", path, depth)?
        } else {
            Column::json_text()
        };
        Ok(if nullable { column.nullable() } else { column })
    }

    /// The column for `schema` taken as having JSON type `kind`.
    fn typed(
        &mut self,
        document: &str,
        schema: &Json,
        kind: &str,
        path: &str,
        depth: usize,
    ) -> Result<Column, String> {
        Ok(match kind {
            "null" => Column::null(),
            "boolean" => Column::of(DataType::Boolean),
            "integer" => Column::of(DataType::Int64),
            "number" => Column::of(DataType::Float64),
            "string" => match schema.get("format") {
                Some(Json::String(format)) if format == "date-time" => Column::of(
                    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                ),
                Some(Json::String(format)) if format == "date" => Column::of(DataType::Date32),
                _ => Column::of(DataType::Utf8),
            },
            "array" => match schema.get("prefixItems").or_else(|| schema.get("items")) {
                None | Some(Json::Bool(true)) => Column::list(Column::json_text()),
                Some(Json::Array(tuple)) => {
                    let mut columns = Vec::with_capacity(tuple.len());
                    for item in tuple {
                        columns.push(self.column(document, item, &format!("{path}[]"), depth)?);
                    }
                    match columns.first() {
                        Some(first) if columns.iter().all(|column| column.same_type(first)) => {
                            Column::list(Column::union(columns))
                        }
                        _ => Column::json_text(),
                    }
                }
                Some(items) => {
                    Column::list(self.column(document, items, &format!("{path}[]"), depth)?)
                }
            },
            "object" => self.object(document, schema, path, depth)?,
            other => {
                return Err(format!(
                    "{}: unknown type '{other}' (expected one of 'object', 'array', 'string', \
                     'integer', 'number', 'boolean', 'null')",
                    at(path)
                ))
            }
        })
    }

    fn object(
        &mut self,
        document: &str,
        schema: &Json,
        path: &str,
        depth: usize,
    ) -> Result<Column, String> {
        let required: Vec<&str> = match schema.get("required") {
            None => Vec::new(),
            Some(Json::Array(names)) => names
                .iter()
                .map(|name| match name {
                    Json::String(name) => Ok(name.as_str()),
                    other => Err(format!(
                        "{}: 'required' lists {}, expected property names",
                        at(path),
                        other.kind()
                    )),
                })
                .collect::<Result<_, _>>()?,
            // Draft 3 put `required: true` on the property itself.
            Some(Json::Bool(_)) => Vec::new(),
            Some(other) => {
                return Err(format!(
                    "{}: 'required' must be an array of property names, found {}",
                    at(path),
                    other.kind()
                ))
            }
        };
        let properties = match schema.get("properties") {
            None => &[][..],
            Some(Json::Object(properties)) => properties.as_slice(),
            Some(other) => {
                return Err(format!(
                    "{}: 'properties' must be an object, found {}",
                    at(path),
                    other.kind()
                ))
            }
        };
        let additional = schema.get("additionalProperties");
        if properties.is_empty() {
            return Ok(match additional {
                Some(values @ Json::Object(_)) => {
                    Column::map(self.column(document, values, &format!("{path}{{}}"), depth)?)
                }
                _ => Column::json_text(),
            });
        }
        let mut fields = Vec::with_capacity(properties.len());
        for (name, property) in properties {
            let column = self.column(document, property, &child_path(path, name), depth)?;
            let optional = !required.contains(&name.as_str())
                && property.get("required") != Some(&Json::Bool(true));
            fields.push(column.field(name, optional));
        }
        let fields = Fields::from(fields);
        if additional == Some(&Json::Bool(false)) {
            self.closed.push(fields.clone());
        }
        Ok(Column::of(DataType::Struct(fields)))
    }

    /// `allOf`: the properties of all the objects (with the schema's own, if any).
    fn all_of(
        &mut self,
        document: &str,
        entries: &[(String, Json)],
        branches: &Json,
        path: &str,
        depth: usize,
    ) -> Result<Column, String> {
        let Json::Array(branches) = branches else {
            return Err(format!(
                "{}: 'allOf' must be an array, found {}",
                at(path),
                branches.kind()
            ));
        };
        let mut columns = Vec::with_capacity(branches.len() + 1);
        let own: Vec<(String, Json)> = entries
            .iter()
            .filter(|(key, _)| key != "allOf")
            .cloned()
            .collect();
        columns.push(self.column(document, &Json::Object(own), path, depth)?);
        for branch in branches {
            columns.push(self.column(document, branch, path, depth)?);
        }
        // Branches that constrain nothing we map (`{}`, `{"required": […]}`) don't count.
        let columns: Vec<Column> = columns
            .into_iter()
            .filter(|column| !column.json_text)
            .collect();
        let Some(first) = columns.first() else {
            return Ok(Column::json_text());
        };
        let nullable = columns.iter().all(|column| column.nullable);
        if columns.iter().all(|column| column.same_type(first)) {
            return Ok(Column {
                nullable,
                ..first.clone()
            });
        }
        let mut merged: Vec<FieldRef> = Vec::new();
        for column in &columns {
            let DataType::Struct(fields) = &column.data_type else {
                return Ok(Column::json_text());
            };
            for field in fields {
                if !merged.iter().any(|known| known.name() == field.name()) {
                    merged.push(field.clone());
                }
            }
        }
        Ok(Column {
            nullable,
            ..Column::of(DataType::Struct(Fields::from(merged)))
        })
    }

    /// Follow a `$ref`.
    fn reference(
        &mut self,
        document: &str,
        reference: &Json,
        path: &str,
        depth: usize,
    ) -> Result<Column, String> {
        let Json::String(reference) = reference else {
            return Err(format!(
                "{}: '$ref' must be a string, found {}",
                at(path),
                reference.kind()
            ));
        };
        let (name, fragment) = reference.split_once('#').unwrap_or((reference, ""));
        let target_document = if name.is_empty() {
            document
        } else {
            // A document may also be named by its `$id`.
            self.documents
                .iter()
                .find(|(key, root)| {
                    key.as_str() == name
                        || matches!(root.get("$id"), Some(Json::String(id)) if id == name)
                })
                .map_or(name, |(key, _)| key.as_str())
        };
        let Some(root) = self.documents.get(target_document) else {
            return Err(format!(
                "{}: '$ref' '{reference}' refers to another document, and only references \
                 within the schema{} can be resolved",
                at(path),
                if self.documents.len() > 1 {
                    " or to the registry references it declares"
                } else {
                    " (#/definitions/…, #/$defs/…)"
                }
            ));
        };
        let target = resolve_pointer(root, fragment).ok_or_else(|| {
            format!(
                "{}: '$ref' '{reference}' points to nothing in the schema",
                at(path)
            )
        })?;
        let key = format!("{target_document}#{fragment}");
        if self.expanding.contains(&key) {
            return Err(format!(
                "{}: '$ref' '{reference}' is recursive (the type contains itself), and a \
                 column type must be finite; give an inline schema where the recursive part \
                 is {{}} to read it as JSON text",
                at(path)
            ));
        }
        self.expanding.push(key);
        let column = self.column(target_document, target, path, depth);
        self.expanding.pop();
        column
    }
}

/// The value a JSON pointer fragment (`/definitions/a`) designates in `root`.
fn resolve_pointer<'j>(root: &'j Json, fragment: &str) -> Option<&'j Json> {
    if fragment.is_empty() {
        return Some(root);
    }
    let pointer = fragment.strip_prefix('/')?;
    let mut value = root;
    for token in pointer.split('/') {
        let token = percent_decode(token).replace("~1", "/").replace("~0", "~");
        value = match value {
            Json::Object(_) => value.get(&token)?,
            Json::Array(items) => items.get(token.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(value)
}

/// `%xx` escapes of a URI fragment decoded.
fn percent_decode(text: &str) -> String {
    if !text.contains('%') {
        return text.to_owned();
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(byte) = u8::from_str_radix(hex, 16) {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The column of an `enum`/`const` value.
fn value_column(value: &Json) -> Column {
    match value {
        Json::Null => Column::null(),
        Json::Bool(_) => Column::of(DataType::Boolean),
        Json::Number(text) if is_integer_text(text) => Column::of(DataType::Int64),
        Json::Number(_) => Column::of(DataType::Float64),
        Json::String(_) => Column::of(DataType::Utf8),
        Json::Array(_) | Json::Object(_) => Column::json_text(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{PayloadFormat, PayloadSpec};
    use arrow_array::RecordBatch;
    use arrow_schema::Schema;

    fn spec(schema: Option<&str>) -> PayloadSpec {
        PayloadSpec {
            format: PayloadFormat::Json,
            schema: schema.map(str::to_owned),
            ..PayloadSpec::default()
        }
    }

    /// The decoder for an inline `value_schema`.
    fn with_schema(schema: &str) -> Result<JsonDecoder> {
        let spec = spec(Some(schema));
        let context = ResolveContext {
            side: Side::Value,
            spec: &spec,
            topics: &[],
            registry: None,
            json_sample_size: 100,
        };
        JsonDecoder::resolve(&context, &mut |_, _| panic!("a schema needs no sample"))
    }

    fn decode(decoder: &mut JsonDecoder, payloads: &[Option<&[u8]>]) -> Decoded {
        let decoded = decoder.decode(payloads).unwrap();
        assert_eq!(decoded.array.len(), payloads.len());
        assert_eq!(decoded.array.data_type(), decoder.data_type());
        decoded
    }

    fn decode_texts(decoder: &mut JsonDecoder, texts: &[Option<&str>]) -> Decoded {
        let payloads: Vec<Option<&[u8]>> = texts.iter().map(|t| t.map(str::as_bytes)).collect();
        decode(decoder, &payloads)
    }

    /// Each row of `array` as JSON (`null` for NULL), written by arrow-json's writer.
    fn rows(array: &ArrayRef) -> Vec<String> {
        let schema = Schema::new(vec![Field::new("v", array.data_type().clone(), true)]);
        let batch = RecordBatch::try_new(Arc::new(schema), vec![array.clone()]).unwrap();
        let mut writer = arrow_json::WriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, arrow_json::writer::LineDelimited>(Vec::new());
        writer.write(&batch).unwrap();
        writer.finish().unwrap();
        String::from_utf8(writer.into_inner())
            .unwrap()
            .lines()
            .map(|line| line["{\"v\":".len()..line.len() - 1].to_owned())
            .collect()
    }

    fn reasons(decoded: &Decoded) -> Vec<(usize, String)> {
        decoded
            .failures
            .iter()
            .map(|failure| (failure.row, failure.reason.clone()))
            .collect()
    }

    fn struct_fields(data_type: &DataType) -> &Fields {
        match data_type {
            DataType::Struct(fields) => fields,
            other => panic!("expected a struct, found {other}"),
        }
    }

    /// A Schema Registry on a local port answering GETs from `answers` (path, JSON body);
    /// anything else is a 404.
    fn fake_registry(answers: Vec<(String, serde_json::Value)>) -> Arc<SchemaRegistry> {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request = String::new();
                let _ = reader.read_line(&mut request);
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                        break;
                    }
                }
                let path = request.split_whitespace().nth(1).unwrap_or_default();
                let (status, body) = match answers.iter().find(|(known, _)| known == path) {
                    Some((_, body)) => ("200 OK", body.to_string()),
                    None => ("404 Not Found", r#"{"error_code": 40401}"#.to_owned()),
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: \
                     {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        let settings = super::super::RegistrySettings::new(
            &url,
            &[],
            Some(std::time::Duration::from_secs(10)),
        )
        .unwrap();
        Arc::new(SchemaRegistry::connect(settings).unwrap())
    }

    fn with_registry(registry: Arc<SchemaRegistry>) -> Result<JsonDecoder> {
        let spec = spec(None);
        let topics = ["orders".to_owned()];
        let context = ResolveContext {
            side: Side::Value,
            spec: &spec,
            topics: &topics,
            registry: Some(registry),
            json_sample_size: 100,
        };
        JsonDecoder::resolve(&context, &mut |_, _| panic!("a registry needs no sample"))
    }

    #[test]
    fn test_json_registry_schema_with_references_and_framing() {
        // Text, not json!: serde_json's maps would sort the properties.
        let order = r#"{"type": "object", "properties": {
            "id": {"type": "integer"},
            "ship_to": {"$ref": "address.json"},
            "bill_to": {"$ref": "address.json#/definitions/short"}
        }, "required": ["id"]}"#;
        let address = r#"{"type": "object", "properties": {"city": {"type": "string"}},
            "definitions": {"short": {"type": "string"}}}"#;
        let registry = fake_registry(vec![
            (
                "/subjects/orders-value/versions/latest".into(),
                serde_json::json!({
                    "subject": "orders-value", "version": 2, "id": 7, "schemaType": "JSON",
                    "schema": order,
                    "references": [{"name": "address.json", "subject": "address", "version": 1}]
                }),
            ),
            (
                "/subjects/address/versions/1".into(),
                serde_json::json!({
                    "subject": "address", "version": 1, "id": 3, "schemaType": "JSON",
                    "schema": address
                }),
            ),
        ]);
        let mut decoder = with_registry(registry).unwrap();
        let fields = struct_fields(decoder.data_type());
        assert_eq!(fields.len(), 3);
        assert!(!fields[0].is_nullable());
        assert_eq!(
            fields[1].data_type(),
            &DataType::Struct(Fields::from(vec![Field::new("city", DataType::Utf8, true)]))
        );
        assert_eq!(fields[2].data_type(), &DataType::Utf8);

        let framed = |id: u8, json: &str| [&[0, 0, 0, 0, id][..], json.as_bytes()].concat();
        let first = framed(
            7,
            r#"{"id": 1, "ship_to": {"city": "Oslo"}, "bill_to": "x"}"#,
        );
        // Another writer schema id: JSON needs no writer schema, the reader type decides.
        let second = framed(8, r#"{"id": 2}"#);
        let wrong = framed(7, r#"{"ship_to": 1}"#);
        let decoded = decode(
            &mut decoder,
            &[
                Some(&first),
                Some(&second),
                None,
                Some(br#"{"id": 4}"#),
                Some(&wrong),
            ],
        );
        assert_eq!(
            rows(&decoded.array),
            vec![
                r#"{"id":1,"ship_to":{"city":"Oslo"},"bill_to":"x"}"#,
                r#"{"id":2,"ship_to":null,"bill_to":null}"#,
                "null",
                "null",
                "null",
            ]
        );
        assert_eq!(decoded.failures.len(), 2);
        assert_eq!(decoded.failures[0].row, 3);
        assert_eq!(decoded.failures[0].schema_id, None);
        assert!(
            decoded.failures[0]
                .reason
                .contains("not in the Confluent wire format"),
            "{:?}",
            decoded.failures
        );
        assert_eq!(decoded.failures[1].row, 4);
        assert_eq!(decoded.failures[1].schema_id, Some(7));
        assert!(
            decoded.failures[1]
                .reason
                .starts_with("does not match schema id 7: "),
            "{:?}",
            decoded.failures
        );
    }

    #[test]
    fn test_json_registry_subject_holds_another_format() {
        let registry = fake_registry(vec![(
            "/subjects/orders-value/versions/latest".into(),
            serde_json::json!({"subject": "orders-value", "version": 1, "id": 4,
                               "schema": "\"string\""}),
        )]);
        let error = with_registry(registry).err().unwrap();
        assert!(matches!(error, Error::Schema { .. }), "{error:?}");
        assert_eq!(
            error.to_string(),
            "schema id 4: value_format is 'json', but the registry holds an Avro schema there: \
             set value_format to 'avro'"
        );
    }

    /// The decoder inferred from `sample` (the value side's first payloads).
    fn inferred(sample: &[Option<&[u8]>]) -> Result<JsonDecoder> {
        let spec = spec(None);
        let context = ResolveContext {
            side: Side::Value,
            spec: &spec,
            topics: &[],
            registry: None,
            json_sample_size: 100,
        };
        let mut calls = 0;
        let decoder = JsonDecoder::resolve(&context, &mut |side, n| {
            calls += 1;
            assert_eq!((side, n), (Side::Value, 100));
            Ok(sample.iter().map(|p| p.map(<[u8]>::to_vec)).collect())
        });
        assert_eq!(calls, 1);
        decoder
    }

    fn inferred_texts(sample: &[Option<&str>]) -> Result<JsonDecoder> {
        let sample: Vec<Option<&[u8]>> = sample.iter().map(|t| t.map(str::as_bytes)).collect();
        inferred(&sample)
    }

    fn json_text_field(name: &str) -> Field {
        Field::new(name, DataType::Utf8, true).with_metadata(json_metadata())
    }

    fn list_of(item: DataType) -> DataType {
        DataType::List(Arc::new(Field::new("item", item, true)))
    }

    #[test]
    fn test_json_infer_nested_objects_arrays_nulls_and_numbers() {
        let decoder = inferred_texts(&[
            Some(r#"{"id": 1, "user": {"name": "a"}, "scores": [1, 2], "price": 3}"#),
            None,
            Some("not json"),
            Some(r#"{"id": 2, "price": 2.5, "note": null, "scores": []}"#),
            Some(r#"{"user": {"admin": true}, "items": [{"sku": "x"}, {"qty": 2}]}"#),
            Some(r#"{"empty": {}, "blank": []}"#),
        ])
        .unwrap();
        let expected = DataType::Struct(Fields::from(vec![
            Field::new("id", DataType::Int64, true),
            Field::new(
                "user",
                DataType::Struct(Fields::from(vec![
                    Field::new("name", DataType::Utf8, true),
                    Field::new("admin", DataType::Boolean, true),
                ])),
                true,
            ),
            Field::new("scores", list_of(DataType::Int64), true),
            Field::new("price", DataType::Float64, true),
            json_text_field("note"),
            Field::new(
                "items",
                list_of(DataType::Struct(Fields::from(vec![
                    Field::new("sku", DataType::Utf8, true),
                    Field::new("qty", DataType::Int64, true),
                ]))),
                true,
            ),
            json_text_field("empty"),
            Field::new(
                "blank",
                DataType::List(Arc::new(json_text_field("item"))),
                true,
            ),
        ]));
        assert_eq!(decoder.data_type(), &expected);
    }

    #[test]
    fn test_json_infer_conflicts_become_json_text() {
        let mut decoder = inferred_texts(&[
            Some(r#"{"x": 1, "y": [1]}"#),
            Some(r#"{"x": "one", "y": 2}"#),
            Some(r#"{"x": {"n": 1}, "y": [true]}"#),
        ])
        .unwrap();
        assert_eq!(
            decoder.data_type(),
            &DataType::Struct(Fields::from(vec![
                json_text_field("x"),
                json_text_field("y")
            ]))
        );
        let decoded = decode_texts(
            &mut decoder,
            &[Some(r#"{"x": [1, {"a": "b"}], "y": null}"#)],
        );
        assert_eq!(
            rows(&decoded.array),
            vec![r#"{"x":"[1,{\"a\":\"b\"}]","y":null}"#]
        );
    }

    #[test]
    fn test_json_infer_record_that_does_not_fit() {
        let mut decoder =
            inferred_texts(&[Some(r#"{"a": 1, "b": {"c": "x"}}"#), Some(r#"{"a": 2}"#)]).unwrap();
        let decoded = decode_texts(
            &mut decoder,
            &[
                Some(r#"{"a": 3, "b": {"c": "y"}}"#),
                Some(r#"{"a": "three"}"#),
                Some(r#"{"a": 4, "z": true}"#),
                Some(r#"{"b": {"c": "y", "d": 1}}"#),
                Some(r#"{"a": 5.5}"#),
                Some("7"),
                Some(r#"{"a": 6}"#),
            ],
        );
        let reasons = reasons(&decoded);
        let failed: Vec<usize> = reasons.iter().map(|(row, _)| *row).collect();
        assert_eq!(failed, vec![1, 2, 3, 4, 5], "{reasons:?}");
        for (_, reason) in &reasons {
            assert!(
                reason.starts_with("does not fit the type inferred from the first 2 messages: "),
                "{reason}"
            );
            assert!(
                reason.ends_with("(raise json_sample_size, or give value_schema for a fixed type)"),
                "{reason}"
            );
        }
        assert!(reasons[1].1.contains("'z'"), "{reasons:?}");
        assert!(reasons[2].1.contains("'d'"), "{reasons:?}");
        assert_eq!(
            rows(&decoded.array),
            vec![
                r#"{"a":3,"b":{"c":"y"}}"#,
                "null",
                "null",
                "null",
                "null",
                "null",
                r#"{"a":6,"b":null}"#,
            ]
        );
    }

    #[test]
    fn test_json_infer_top_level_scalars_and_arrays() {
        let decoder = inferred_texts(&[Some("1"), Some("2.5"), Some("null")]).unwrap();
        assert_eq!(decoder.data_type(), &DataType::Float64);
        let mut decoder = inferred_texts(&[Some("[1]"), Some("[2, 3]")]).unwrap();
        assert_eq!(decoder.data_type(), &list_of(DataType::Int64));
        let decoded = decode_texts(&mut decoder, &[Some("[4]"), Some("[\"x\"]")]);
        assert_eq!(rows(&decoded.array), vec!["[4]", "null"]);
        let mut decoder = inferred_texts(&[Some("\"s\""), Some("1")]).unwrap();
        assert_eq!(decoder.data_type(), &DataType::Utf8);
        let decoded = decode_texts(&mut decoder, &[Some("{\"a\":1}"), Some("true")]);
        assert_eq!(rows(&decoded.array), vec![r#""{\"a\":1}""#, r#""true""#]);
        let decoder = inferred_texts(&[Some("\"s\"")]).unwrap();
        assert_eq!(decoder.data_type(), &DataType::Utf8);
    }

    #[test]
    fn test_json_infer_framed_sample() {
        let framed = [&[0u8, 0, 0, 0, 5][..], br#"{"a": true}"#].concat();
        let mut decoder = inferred(&[Some(&framed), Some(br#"{"a": false}"#)]).unwrap();
        assert_eq!(
            decoder.data_type(),
            &DataType::Struct(Fields::from(vec![Field::new("a", DataType::Boolean, true)]))
        );
        let decoded = decode(&mut decoder, &[Some(&framed)]);
        assert_eq!(rows(&decoded.array), vec![r#"{"a":true}"#]);
    }

    #[test]
    fn test_json_infer_empty_sample_error() {
        let error = inferred(&[]).err().unwrap();
        assert!(matches!(error, Error::Schema { .. }), "{error:?}");
        assert_eq!(
            error.to_string(),
            "value_format 'json': no JSON messages were found to infer the value type from (the \
             scan has no messages at its start): give value_schema (a JSON Schema) or \
             schema_registry"
        );
        let error = inferred(&[None, Some(b"abc"), Some(b"{")])
            .err()
            .unwrap()
            .to_string();
        assert!(
            error.starts_with(
                "value_format 'json': no JSON messages were found to infer the value type from \
                 (of the first 3 messages, 1 are NULL and 2 are not JSON; the first: "
            ),
            "{error}"
        );
        assert!(error.contains("(the payload starts 0x61 62 63)"), "{error}");
    }

    #[test]
    fn test_json_infer_deep_nesting_stops_at_json_text() {
        let depth = 5000;
        let deep = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
        let mut decoder = inferred_texts(&[Some(&deep)]).unwrap();
        let mut data_type = decoder.data_type().clone();
        let mut lists = 0;
        while let DataType::List(item) = data_type {
            lists += 1;
            data_type = item.data_type().clone();
        }
        assert_eq!(lists, MAX_INFERRED_DEPTH);
        assert_eq!(data_type, DataType::Utf8);
        let decoded = decode_texts(&mut decoder, &[Some(&deep)]);
        assert!(decoded.failures.is_empty(), "{:?}", decoded.failures);
    }

    #[test]
    fn test_json_decode_isolates_failures_in_a_large_batch() {
        let mut decoder =
            with_schema(r#"{"type": "object", "properties": {"n": {"type": "integer"}}}"#).unwrap();
        let texts: Vec<String> = (0..1000)
            .map(|n| match n % 97 {
                5 => "oops".to_owned(),
                7 => format!(r#"{{"n": "{n}x"}}"#),
                _ => format!(r#"{{"n": {n}}}"#),
            })
            .collect();
        let payloads: Vec<Option<&[u8]>> = texts
            .iter()
            .enumerate()
            .map(|(n, text)| (n % 10 != 3).then_some(text.as_bytes()))
            .collect();
        let decoded = decode(&mut decoder, &payloads);
        let failed: Vec<usize> = decoded.failures.iter().map(|f| f.row).collect();
        let expected: Vec<usize> = (0..1000)
            .filter(|n| matches!(n % 97, 5 | 7) && n % 10 != 3)
            .collect();
        assert_eq!(failed, expected);
        let values = decoded
            .array
            .as_struct()
            .column(0)
            .as_primitive::<arrow_array::types::Int64Type>()
            .clone();
        for n in 0..1000 {
            let good = n % 10 != 3 && !matches!(n % 97, 5 | 7);
            assert_eq!(decoded.array.is_valid(n), good, "row {n}");
            if good {
                assert_eq!(values.value(n), n as i64);
            }
        }
    }

    #[test]
    fn test_json_schema_struct_required_and_nullable() {
        let decoder = with_schema(
            r#"{
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "name": {"type": "string"},
                    "nick": {"type": ["string", "null"]},
                    "score": {"type": "number"},
                    "ok": {"type": "boolean"},
                    "at": {"type": "string", "format": "date-time"},
                    "day": {"type": "string", "format": "date"},
                    "time": {"type": "string", "format": "time"},
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "kind": {"enum": ["a", "b"]},
                    "level": {"oneOf": [{"type": "null", "title": "Not included"}, {"type": "integer"}]},
                    "amount": {"type": ["integer", "number"]}
                },
                "required": ["id", "nick", "level"]
            }"#,
        )
        .unwrap();
        let fields = struct_fields(decoder.data_type());
        let summary: Vec<(&str, &DataType, bool)> = fields
            .iter()
            .map(|f| (f.name().as_str(), f.data_type(), f.is_nullable()))
            .collect();
        let utc = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        let strings = DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)));
        assert_eq!(
            summary,
            vec![
                ("id", &DataType::Int64, false),
                ("name", &DataType::Utf8, true),
                ("nick", &DataType::Utf8, true),
                ("score", &DataType::Float64, true),
                ("ok", &DataType::Boolean, true),
                ("at", &utc, true),
                ("day", &DataType::Date32, true),
                ("time", &DataType::Utf8, true),
                ("tags", &strings, true),
                ("kind", &DataType::Utf8, true),
                ("level", &DataType::Int64, true),
                ("amount", &DataType::Float64, true),
            ]
        );
    }

    #[test]
    fn test_json_schema_decodes_records() {
        let mut decoder = with_schema(
            r#"{"type": "object", "properties": {
                "id": {"type": "integer"},
                "day": {"type": "string", "format": "date"},
                "tags": {"type": "array", "items": {"type": "string"}}
            }, "required": ["id"]}"#,
        )
        .unwrap();
        let decoded = decode_texts(
            &mut decoder,
            &[
                Some(r#"{"id": 1, "day": "2024-05-06", "tags": ["x"], "other": 1}"#),
                None,
                Some(r#"{"id": 2}"#),
                Some("null"),
            ],
        );
        assert_eq!(reasons(&decoded), vec![]);
        assert_eq!(
            rows(&decoded.array),
            vec![
                r#"{"id":1,"day":"2024-05-06","tags":["x"]}"#,
                "null",
                r#"{"id":2,"day":null,"tags":null}"#,
                "null",
            ]
        );
    }

    #[test]
    fn test_json_schema_date_time_is_utc_instant() {
        let mut decoder = with_schema(r#"{"type": "string", "format": "date-time"}"#).unwrap();
        let decoded = decode_texts(
            &mut decoder,
            &[
                Some(r#""1970-01-01T00:00:01.5+01:00""#),
                Some(r#""1970-01-01T00:00:02Z""#),
                Some(r#""yesterday""#),
            ],
        );
        let times = decoded.array.as_primitive::<TimestampMicrosecondType>();
        assert_eq!(times.timezone(), Some("UTC"));
        assert_eq!(times.value(0), -3_598_500_000);
        assert_eq!(times.value(1), 2_000_000);
        assert!(times.is_null(2));
        assert_eq!(decoded.failures.len(), 1);
        assert!(
            decoded.failures[0].reason.contains("yesterday"),
            "{:?}",
            decoded.failures
        );
    }

    #[test]
    fn test_json_schema_all_of_extends_a_base() {
        let mut decoder = with_schema(
            r##"{"type": "object",
                 "allOf": [{"$ref": "#/definitions/base"}, {"required": ["id"]}],
                 "properties": {"extra": {"type": "boolean"}},
                 "definitions": {"base": {"type": "object", "properties": {
                     "id": {"type": "integer"},
                     "at": {"type": "string", "format": "date-time"}}}}}"##,
        )
        .unwrap();
        let names: Vec<&str> = struct_fields(decoder.data_type())
            .iter()
            .map(|field| field.name().as_str())
            .collect();
        assert_eq!(names, vec!["extra", "id", "at"]);
        // A UTC timestamp inside a struct decodes to the field's exact type.
        let decoded = decode_texts(
            &mut decoder,
            &[Some(
                r#"{"id": 1, "at": "2024-01-01T00:00:00Z", "extra": true}"#,
            )],
        );
        assert!(decoded.failures.is_empty(), "{:?}", decoded.failures);
        let at = decoded.array.as_struct().column(2);
        assert_eq!(
            at.as_primitive::<TimestampMicrosecondType>().value(0),
            1_704_067_200_000_000
        );
    }

    #[test]
    fn test_json_schema_record_that_does_not_match() {
        let mut decoder = with_schema(
            r#"{"type": "object", "properties": {"id": {"type": "integer"}, "name": {"type": "string"}},
                "required": ["id"]}"#,
        )
        .unwrap();
        let decoded = decode_texts(
            &mut decoder,
            &[
                Some(r#"{"id": 1, "name": "a"}"#),
                Some(r#"{"id": "x"}"#),
                Some(r#"{"id": 3, "name": 5}"#),
                Some(r#"{"name": "no id"}"#),
                Some(r#"{"id": 1.5}"#),
                Some(r#"{"id": 6.0}"#),
                Some(r#"[1, 2]"#),
                Some(r#"{"id": 10000000000000000000}"#),
            ],
        );
        let failed: Vec<usize> = decoded.failures.iter().map(|f| f.row).collect();
        assert_eq!(failed, vec![1, 2, 3, 4, 6, 7]);
        let reasons = reasons(&decoded);
        assert!(
            reasons[5].1.contains("outside the 64-bit integer range"),
            "{reasons:?}"
        );
        assert!(
            reasons[0].1.starts_with("does not match value_schema: "),
            "{reasons:?}"
        );
        assert!(reasons[0].1.contains("\"x\""), "{reasons:?}");
        assert!(reasons[1].1.contains("field 'name'"), "{reasons:?}");
        assert!(
            reasons[3].1.contains("expected an integer, found 1.5"),
            "{reasons:?}"
        );
        assert_eq!(
            rows(&decoded.array),
            vec![
                r#"{"id":1,"name":"a"}"#,
                "null",
                "null",
                "null",
                "null",
                r#"{"id":6,"name":null}"#,
                "null",
                "null",
            ]
        );
    }

    #[test]
    fn test_json_schema_additional_properties_false() {
        let mut decoder = with_schema(
            r##"{"type": "object", "additionalProperties": false, "properties": {
                "a": {"type": "integer"},
                "inner": {"$ref": "#/definitions/open"},
                "closed": {"type": "array", "items": {"type": "object", "additionalProperties": false,
                           "properties": {"a": {"type": "integer"}}}}
            }, "definitions": {"open": {"type": "object", "properties": {"a": {"type": "integer"}}}}}"##,
        )
        .unwrap();
        let decoded = decode_texts(
            &mut decoder,
            &[
                Some(r#"{"a": 1, "inner": {"a": 2, "extra": true}}"#),
                Some(r#"{"a": 1, "b": 2}"#),
                Some(r#"{"closed": [{"a": 1}, {"a": 2, "c": 3}]}"#),
                Some(r#"{"closed": [{"a": 1}]}"#),
            ],
        );
        let reasons = reasons(&decoded);
        assert_eq!(reasons.len(), 2, "{reasons:?}");
        assert_eq!(reasons[0].0, 1);
        assert!(
            reasons[0].1.contains("property 'b' is not in the schema"),
            "{reasons:?}"
        );
        assert_eq!(reasons[1].0, 2);
        assert!(reasons[1].1.contains("property 'c'"), "{reasons:?}");
        assert_eq!(
            rows(&decoded.array),
            vec![
                r#"{"a":1,"inner":{"a":2},"closed":null}"#,
                "null",
                "null",
                r#"{"a":null,"inner":null,"closed":[{"a":1}]}"#,
            ]
        );
    }

    #[test]
    fn test_json_schema_ref_definitions_and_defs() {
        let decoder = with_schema(
            r##"{"type": "object", "properties": {
                "home": {"$ref": "#/definitions/address"},
                "work": {"$ref": "#/$defs/address%20v2"},
                "both": {"type": "array", "items": {"$ref": "#/definitions/address"}}
            }, "definitions": {"address": {"type": "object", "properties": {"city": {"type": "string"}}}},
               "$defs": {"address v2": {"type": "object", "properties": {"zip": {"type": "integer"}}}}}"##,
        )
        .unwrap();
        let fields = struct_fields(decoder.data_type());
        let city = Fields::from(vec![Field::new("city", DataType::Utf8, true)]);
        let zip = Fields::from(vec![Field::new("zip", DataType::Int64, true)]);
        assert_eq!(fields[0].data_type(), &DataType::Struct(city.clone()));
        assert_eq!(fields[1].data_type(), &DataType::Struct(zip));
        assert_eq!(
            fields[2].data_type(),
            &DataType::List(Arc::new(Field::new("item", DataType::Struct(city), true)))
        );
    }

    #[test]
    fn test_json_schema_recursive_ref_names_field() {
        let error = with_schema(
            r##"{"type": "object", "properties": {"root": {"$ref": "#/definitions/node"}},
                "definitions": {"node": {"type": "object", "properties": {
                    "name": {"type": "string"},
                    "children": {"type": "array", "items": {"$ref": "#/definitions/node"}}}}}}"##,
        )
        .err()
        .unwrap();
        assert!(matches!(error, Error::Schema { .. }), "{error:?}");
        let text = error.to_string();
        assert!(
            text.starts_with(
                "value_schema: at field 'root.children[]': '$ref' '#/definitions/node' is recursive"
            ),
            "{text}"
        );
    }

    #[test]
    fn test_json_schema_additional_properties_map() {
        let mut decoder = with_schema(
            r#"{"type": "object", "properties": {
                "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
                "any": {"type": "object"}
            }}"#,
        )
        .unwrap();
        let fields = struct_fields(decoder.data_type());
        assert!(matches!(fields[0].data_type(), DataType::Map(_, false)));
        assert!(is_json_text(&fields[1]));
        let decoded = decode_texts(
            &mut decoder,
            &[Some(
                r#"{"counts": {"a": 1, "b": 2}, "any": {"x": [1, "two", {"y": null}]}}"#,
            )],
        );
        assert_eq!(reasons(&decoded), vec![]);
        assert_eq!(
            rows(&decoded.array),
            vec![r#"{"counts":{"a":1,"b":2},"any":"{\"x\":[1,\"two\",{\"y\":null}]}"}"#]
        );
    }

    #[test]
    fn test_json_schema_unmappable_is_json_text() {
        let mut decoder = with_schema(
            r#"{"type": "object", "properties": {
                "either": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
                "anything": {},
                "pair": {"type": "array", "items": [{"type": "string"}, {"type": "integer"}]}
            }}"#,
        )
        .unwrap();
        let fields = struct_fields(decoder.data_type());
        assert!(fields.iter().all(|field| is_json_text(field)), "{fields:?}");
        let decoded = decode_texts(
            &mut decoder,
            &[Some(
                r#"{"either": "a \"quoted\"\n line", "anything": 1.50, "pair": ["a", 1]}"#,
            )],
        );
        assert_eq!(reasons(&decoded), vec![]);
        assert_eq!(
            rows(&decoded.array),
            vec![
                r#"{"either":"\"a \\\"quoted\\\"\\n line\"","anything":"1.50","pair":"[\"a\",1]"}"#
            ]
        );
    }

    #[test]
    fn test_json_schema_malformed() {
        for (schema, expected) in [
            ("{\"type\": ", "value_schema: not valid JSON"),
            (
                "{\"type\": \"strng\"}",
                "value_schema: at the top level: unknown type 'strng'",
            ),
            (
                r#"{"properties": {"a": {"type": 3}}}"#,
                "value_schema: at field 'a': 'type' must be",
            ),
            (
                r#"{"properties": []}"#,
                "value_schema: at the top level: 'properties' must be",
            ),
            (
                r##"{"properties": {"a": {"$ref": "#/definitions/missing"}}}"##,
                "value_schema: at field 'a': '$ref' '#/definitions/missing' points to nothing",
            ),
            (
                r#"{"properties": {"a": {"$ref": "other.json#/a"}}}"#,
                "value_schema: at field 'a': '$ref' 'other.json#/a' refers to another document",
            ),
            ("1 2", "value_schema: not valid JSON"),
            ("[1]", "value_schema: at the top level: expected a schema"),
            (
                r##"{"$id": "https://x/a.json", "properties": {
                    "me": {"$ref": "https://x/a.json#/properties/me"}}}"##,
                "value_schema: at field 'me': '$ref' 'https://x/a.json#/properties/me' is \
                 recursive",
            ),
        ] {
            let error = with_schema(schema).err().unwrap();
            assert!(matches!(error, Error::Schema { .. }), "{error:?}");
            let text = error.to_string();
            assert!(text.starts_with(expected), "{schema}: {text}");
        }
    }

    #[test]
    fn test_json_top_level_scalar_type() {
        let mut decoder = with_schema(r#"{"type": "integer"}"#).unwrap();
        assert_eq!(decoder.data_type(), &DataType::Int64);
        let decoded = decode_texts(
            &mut decoder,
            &[
                Some("1"),
                Some("22"),
                None,
                Some("null"),
                Some("\"x\""),
                Some("3"),
            ],
        );
        assert_eq!(
            rows(&decoded.array),
            vec!["1", "22", "null", "null", "null", "3"]
        );
        assert_eq!(decoded.failures.len(), 1);
        assert_eq!(decoded.failures[0].row, 4);

        let mut decoder = with_schema(r#"{"type": "array", "items": {"type": "number"}}"#).unwrap();
        let decoded = decode_texts(&mut decoder, &[Some("[1, 2.5]"), Some("[]")]);
        assert_eq!(rows(&decoded.array), vec!["[1.0,2.5]", "[]"]);

        let mut decoder = with_schema("{}").unwrap();
        assert_eq!(decoder.data_type(), &DataType::Utf8);
        let decoded = decode_texts(&mut decoder, &[Some(" {\"a\" : [ 1 ] } "), Some("\"s\"")]);
        assert_eq!(rows(&decoded.array), vec![r#""{\"a\":[1]}""#, r#""\"s\"""#]);
    }

    #[test]
    fn test_json_fork_decodes_into_the_same_type() {
        let decoder = with_schema(
            r#"{"type": "object", "additionalProperties": false,
                "properties": {"a": {"type": "integer"}}}"#,
        )
        .unwrap();
        let mut fork = decoder.fork();
        assert_eq!(fork.data_type(), decoder.data_type());
        let decoded = decode_texts(&mut fork, &[Some(r#"{"a": 1}"#), Some(r#"{"b": 1}"#)]);
        assert_eq!(rows(&decoded.array), vec![r#"{"a":1}"#, "null"]);
        assert!(decoded.failures[0].reason.contains("property 'b'"));
    }

    #[test]
    fn test_json_null_payloads() {
        let mut decoder = with_schema(
            r#"{"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}"#,
        )
        .unwrap();
        let decoded = decode(&mut decoder, &[None, None]);
        assert!(decoded.failures.is_empty());
        assert_eq!(decoded.array.null_count(), 2);
        let decoded = decode(&mut decoder, &[]);
        assert_eq!(decoded.array.len(), 0);
    }

    #[test]
    fn test_json_framed_and_bare_payloads() {
        let mut decoder =
            with_schema(r#"{"type": "object", "properties": {"a": {"type": "integer"}}}"#).unwrap();
        let framed = [&[0u8, 0, 0, 0, 9][..], br#"{"a": 2}"#].concat();
        let bad_framed = [&[0u8, 0, 0, 0, 9][..], br#"{"a": "x"}"#].concat();
        let decoded = decode(
            &mut decoder,
            &[Some(br#"{"a": 1}"#), Some(&framed), Some(&bad_framed)],
        );
        assert_eq!(
            rows(&decoded.array),
            vec![r#"{"a":1}"#, r#"{"a":2}"#, "null"]
        );
        assert_eq!(decoded.failures.len(), 1);
        assert_eq!(decoded.failures[0].row, 2);
        assert_eq!(decoded.failures[0].schema_id, Some(9));
    }

    #[test]
    fn test_json_not_json_payloads() {
        let mut decoder =
            with_schema(r#"{"type": "object", "properties": {"a": {"type": "integer"}}}"#).unwrap();
        let payloads: Vec<Option<&[u8]>> = vec![
            Some(br#"{"a": 1}"#),
            Some(b"abc"),
            Some(br#"{"a": 2"#),
            Some(b""),
            Some(br#"{"a": 3} {"a": 4}"#),
            Some(b"{\"a\": 5, \"s\": \"\xff\xfe\"}"),
            Some(br#"{"a": 6}"#),
            Some(&[0, 0, 0, 0, 1, 0x02, 0x8c]),
            Some(b"12"),
        ];
        let decoded = decode(&mut decoder, &payloads);
        let reasons = reasons(&decoded);
        let failed: Vec<usize> = reasons.iter().map(|(row, _)| *row).collect();
        assert_eq!(failed, vec![1, 2, 3, 4, 5, 7, 8], "{reasons:?}");
        for (_, reason) in &reasons[..6] {
            assert!(reason.starts_with("not valid JSON: "), "{reasons:?}");
        }
        assert!(
            reasons[0].1.contains("(the payload starts 0x61 62 63)"),
            "{reasons:?}"
        );
        assert!(reasons[1].1.contains("ends in the middle"), "{reasons:?}");
        assert!(reasons[2].1.contains("empty"), "{reasons:?}");
        assert!(
            reasons[3].1.contains("more than one JSON value"),
            "{reasons:?}"
        );
        assert!(reasons[4].1.contains("UTF-8"), "{reasons:?}");
        assert!(
            reasons[6].1.starts_with("does not match value_schema"),
            "{reasons:?}"
        );
        assert_eq!(
            rows(&decoded.array),
            vec![
                r#"{"a":1}"#,
                "null",
                "null",
                "null",
                "null",
                "null",
                r#"{"a":6}"#,
                "null",
                "null"
            ]
        );
    }
}
