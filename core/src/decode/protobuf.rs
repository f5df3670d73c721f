//! Protobuf payloads: `.proto` schemas compiled with `protox`, bodies read into Arrow
//! builders column-wise, with `prost-reflect`'s dynamic messages as the reference.
//!
//! # The reader message
//!
//! [`ProtobufDecoder::resolve`] fixes one **reader message** and so one Arrow type before the
//! first row:
//!
//! - with a registry, the schema [`ResolveContext::registry_reader_schema`] picks, compiled
//!   together with its references (fetched recursively; an import uses the reference's `name`).
//!   The schema text is `.proto` source (Confluent) or a base64 `FileDescriptorProto` (Apicurio);
//!   both are accepted. Well-known imports (`google/protobuf/timestamp.proto`, …) are never
//!   registered and come with the compiler;
//! - without one, the inline `.proto` text of `value_schema` (`key_schema`).
//!
//! The reader message is `value_message` (a fully qualified name) or else the file's first
//! message.
//!
//! # Decoding a record
//!
//! Every body is decoded with the reader message, matching fields by number as Protobuf
//! itself does: a field the writer had and the reader lacks is skipped, a field the reader
//! has and the writer lacked takes its default (or NULL when it has presence).
//!
//! - With a registry every payload must be Confluent-framed (byte 0, the schema id, the
//!   message indexes). The writer schema is fetched by id once per scan and compiled once per
//!   decoder; the indexes name the writer's message, and a record written as another message
//!   than the reader message fails (`written as message X, reader message is Y`). Nested
//!   messages are counted both ways Confluent's serializers count them: without the entry
//!   messages of map fields (Java, and the registry) and with them (Python, Go). A schema id
//!   the registry doesn't know fails that record; a registry that can't be reached fails the
//!   scan.
//! - With an inline schema, framed and bare bodies are both accepted (a Protobuf body never
//!   starts with byte 0, which a frame always does); the frame's id and indexes are not
//!   checked, as there is no registry to look them up in.
//!
//! A NULL payload is a NULL row. A record that can't be decoded is a NULL row and a
//! [`Failure`].
//!
//! Rows are appended column-wise into a tree of Arrow builders made once per decode call.
//! Most bodies are read straight off the wire into them; bodies that prost-reflect would
//! read differently from a plain field-by-field reading (message fields given twice and so
//! merged, groups, extensions, `google.protobuf.Struct` values) or reject go through
//! prost-reflect's dynamic messages, the reference: both paths give the same rows.
//!
//! # Types
//!
//! | Protobuf | Arrow |
//! |---|---|
//! | message | `Struct`, one child per field in declaration order, named as in the `.proto` |
//! | `int32`, `sint32`, `sfixed32` / `int64`, `sint64`, `sfixed64` | `Int32` / `Int64` |
//! | `uint32`, `fixed32` / `uint64`, `fixed64` | `UInt32` / `UInt64` |
//! | `float` / `double` / `bool` | `Float32` / `Float64` / `Boolean` |
//! | `string` / `bytes` | `Utf8` / `Binary` |
//! | enum | `Utf8`: the value's name; a number the reader doesn't know, in decimal |
//! | `repeated T` | `List` of non-null `T` (an absent field is an empty list, never NULL) |
//! | `map<K, V>` | `Map` (entries `key`, `value`, both non-null; keys not flagged sorted, entries in key order) |
//! | `oneof` member | an ordinary nullable child: only the member that is set is non-null |
//! | `google.protobuf.Timestamp` | `Timestamp(Microsecond, "UTC")` |
//! | `google.protobuf.Duration` | `Duration(Microsecond)` |
//! | wrappers (`Int32Value`, `StringValue`, …) | the wrapped scalar |
//! | `google.protobuf.Struct`, `Value`, `ListValue` | `Utf8`: JSON text (keys sorted; integral numbers without a fraction; NaN and ±Infinity as the strings `"NaN"`, `"Infinity"`, `"-Infinity"`) |
//! | `google.protobuf.Any` | `Struct {type_url: Utf8, value: Binary}` (as any message) |
//! | a message without fields (`google.protobuf.Empty`) | `Boolean`: true when present |
//!
//! A field is nullable exactly when it has presence (proto2 singular fields, proto3
//! `optional`, message-typed fields, oneof members): NULL when absent. proto3 fields without
//! presence are non-null and read as their default (0, `""`, the first enum value) when
//! absent, as every Protobuf reader sees them. A recursive message has no fixed column type
//! and is refused at resolve, naming the field path.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, DurationMicrosecondBuilder, Float32Builder, Float64Builder,
    Int32Builder, Int64Builder, NullBufferBuilder, OffsetBufferBuilder, StringBuilder,
    TimestampMicrosecondBuilder, UInt32Builder, UInt64Builder,
};
use arrow_array::{ArrayRef, ListArray, MapArray, StructArray};
use arrow_schema::{DataType, Field, FieldRef, Fields, TimeUnit};
use base64::Engine;
use prost_reflect::prost::Message as _;
use prost_reflect::prost_types::FileDescriptorProto;
use prost_reflect::{
    DynamicMessage, EnumDescriptor, FieldDescriptor, FileDescriptor, Kind, MapKey,
    MessageDescriptor, Value,
};
use protox::file::{ChainFileResolver, File, FileResolver, GoogleFileResolver};

use super::framing;
use super::registry::{RegisteredSchema, SchemaReference, SchemaRegistry, SchemaType};
use super::{Decoded, Failure, FormatDecoder, ResolveContext, Side};
use crate::error::{Error, Result};

/// The time zone of decoded `google.protobuf.Timestamp`s.
const UTC: &str = "UTC";

/// Decodes Protobuf payloads into one Arrow type, that of the reader message.
pub(crate) struct ProtobufDecoder {
    reader: MessageDescriptor,
    shape: Shape,
    data_type: DataType,
    framing: Framing,
    /// Whether bodies the wire reader takes skip prost-reflect (always, but in tests that
    /// compare the two paths).
    wire_reader: bool,
}

/// How payloads are framed, and what the frame is checked against.
#[derive(Clone)]
enum Framing {
    /// An inline schema: bare or Confluent-framed bodies; the frame is not checked.
    Optional,
    /// A registry: every payload framed, its writer message checked against the reader's.
    Registry(WriterSchemas),
}

impl ProtobufDecoder {
    /// Resolve the reader message of `context` (see the module docs).
    ///
    /// # Errors
    /// [`Error::Registry`] when the registry can't be reached or lacks the schema or a
    /// reference; [`Error::Schema`] when the schema is not Protobuf, does not compile or holds
    /// a recursive message; [`Error::InvalidParameter`] naming `value_message` when the file
    /// has no such message.
    ///
    /// With a registry and no `value_message`, a file of several messages is ambiguous: the
    /// reader message is then the one the scan's first framed record was written as (its
    /// message indexes, read from `sample`), as Confluent's deserializer takes each record's
    /// message from its frame; the file's first message when there is no record.
    pub fn resolve(
        context: &ResolveContext<'_>,
        sample: &mut dyn FnMut(Side, usize) -> Result<Vec<Option<Vec<u8>>>>,
    ) -> Result<Self> {
        let message = context.spec.message.as_deref();
        match &context.registry {
            Some(registry) => {
                let schema = context.registry_reader_schema(registry)?;
                let lookup: Arc<dyn SchemaLookup> = registry.clone();
                let mut written = None;
                if message.is_none() && schema.schema_type == SchemaType::Protobuf {
                    written = Self::first_written_message(context, &schema, &lookup, sample)?;
                }
                Self::from_registry(
                    context.side,
                    message.or(written.as_deref()),
                    &schema,
                    lookup,
                )
            }
            None => {
                let parameter = context.schema_parameter();
                let text = context.spec.schema.as_deref().ok_or_else(|| {
                    super::invalid(
                        &context.side.parameter("format"),
                        format!("'protobuf' needs a schema: give schema_registry or {parameter}"),
                    )
                })?;
                Self::from_inline(context.side, &parameter, text, message)
            }
        }
    }

    /// The full name of the message the scan's first framed record was written as, when the
    /// reader schema defines more than one message (see [`ProtobufDecoder::resolve`]).
    fn first_written_message(
        context: &ResolveContext<'_>,
        schema: &RegisteredSchema,
        lookup: &Arc<dyn SchemaLookup>,
        sample: &mut dyn FnMut(Side, usize) -> Result<Vec<Option<Vec<u8>>>>,
    ) -> Result<Option<String>> {
        let Ok(file) = compile_registered(lookup.as_ref(), schema)? else {
            return Ok(None);
        };
        if file
            .parent_pool()
            .all_messages()
            .filter(|m| m.parent_file() == file)
            .count()
            <= 1
        {
            return Ok(None);
        }
        // The first few records: one framed record is enough.
        let payloads = sample(context.side, 16)?;
        let Some((id, indexes)) = payloads.iter().flatten().find_map(|payload| {
            let framed = framing::split(payload).ok()?;
            let (indexes, _) = framing::message_indexes(framed.body).ok()?;
            Some((framed.schema_id, indexes))
        }) else {
            return Ok(None);
        };
        let writers = WriterSchemas {
            lookup: lookup.clone(),
            compiled: HashMap::new(),
        };
        let writer_file = if id == schema.id {
            file.clone()
        } else {
            match writers.compile(id)? {
                Ok(writer_file) => writer_file,
                Err(_) => return Ok(None),
            }
        };
        let written = message_at(&writer_file, &indexes, MapEntries::Skipped)
            .or_else(|| message_at(&writer_file, &indexes, MapEntries::Counted));
        Ok(written
            .map(|message| message.full_name().to_owned())
            .filter(|name| file.parent_pool().get_message_by_name(name).is_some()))
    }

    /// The reader message from inline `.proto` text, the value of `parameter`.
    fn from_inline(side: Side, parameter: &str, text: &str, message: Option<&str>) -> Result<Self> {
        let name = format!("{parameter}.proto");
        let mut files = SchemaFiles::default();
        files.0.insert(name.clone(), text.to_owned());
        let file = compile(&name, files).map_err(|reason| Error::Schema {
            what: parameter.to_owned(),
            reason,
        })?;
        Self::with_reader(side, parameter, &file, message, Framing::Optional)
    }

    /// The reader message from a registry schema; writer schemas come from `lookup`.
    fn from_registry(
        side: Side,
        message: Option<&str>,
        schema: &RegisteredSchema,
        lookup: Arc<dyn SchemaLookup>,
    ) -> Result<Self> {
        let what = format!("schema id {}", schema.id);
        if schema.schema_type != SchemaType::Protobuf {
            return Err(Error::Schema {
                what,
                reason: format!(
                    "the registry holds {}, not a Protobuf one: set {} to '{}'",
                    a_schema(schema.schema_type),
                    side.parameter("format"),
                    schema.schema_type.format_name(),
                ),
            });
        }
        let file =
            compile_registered(lookup.as_ref(), schema)?.map_err(|reason| Error::Schema {
                what: what.clone(),
                reason,
            })?;
        let mut writers = WriterSchemas {
            lookup,
            compiled: HashMap::new(),
        };
        writers.compiled.insert(schema.id, Ok(file.clone()));
        Self::with_reader(side, &what, &file, message, Framing::Registry(writers))
    }

    /// Pick the reader message in `file` and plan its Arrow type.
    fn with_reader(
        side: Side,
        what: &str,
        file: &FileDescriptor,
        message: Option<&str>,
        framing: Framing,
    ) -> Result<Self> {
        let reader = match message {
            Some(name) => {
                let name = name.trim().trim_start_matches('.');
                file.parent_pool()
                    .get_message_by_name(name)
                    .ok_or_else(|| {
                        super::invalid(
                            &side.parameter("message"),
                            format!(
                                "expected a message of {what} ({}), found '{name}'",
                                message_names(file)
                            ),
                        )
                    })?
            }
            None => file.messages().next().ok_or_else(|| Error::Schema {
                what: what.to_owned(),
                reason: "it defines no message".into(),
            })?,
        };
        let mut planner = Planner {
            side,
            ancestors: Vec::new(),
        };
        let shape = planner
            .message(&reader, side.as_str())
            .map_err(|reason| Error::Schema {
                what: what.to_owned(),
                reason,
            })?;
        Ok(Self {
            data_type: shape.data_type(),
            reader,
            shape,
            framing,
            wire_reader: true,
        })
    }

    /// The reader message's fully qualified name.
    #[cfg(test)]
    fn reader_name(&self) -> &str {
        self.reader.full_name()
    }
}

impl FormatDecoder for ProtobufDecoder {
    fn data_type(&self) -> &DataType {
        &self.data_type
    }

    fn decode(&mut self, payloads: &[Option<&[u8]>]) -> Result<Decoded> {
        let Self {
            reader,
            shape,
            framing,
            wire_reader,
            ..
        } = self;
        let mut column = Column::new(shape, payloads.len());
        let mut failures = Vec::new();
        for (row, payload) in payloads.iter().enumerate() {
            let Some(payload) = payload else {
                column.append_null();
                continue;
            };
            match read(framing, reader, shape, payload, *wire_reader)? {
                Ok(Row::Wire(body)) => column.append_wire(Wire::Len(body)),
                Ok(Row::Message(message)) => column.append(&Value::Message(message)),
                Err((schema_id, reason)) => {
                    failures.push(Failure {
                        row,
                        schema_id,
                        reason,
                    });
                    column.append_null();
                }
            }
        }
        let array = column.finish();
        debug_assert_eq!(array.data_type(), &self.data_type);
        Ok(Decoded { array, failures })
    }

    fn fork(&self) -> Box<dyn FormatDecoder> {
        // Descriptors are reference-counted and the writer schemas compiled so far are kept:
        // a fork resolves nothing again.
        Box::new(Self {
            reader: self.reader.clone(),
            shape: self.shape.clone(),
            data_type: self.data_type.clone(),
            framing: self.framing.clone(),
            wire_reader: self.wire_reader,
        })
    }
}

/// Why one record could not be decoded: the schema id of its frame, if any, and the reason.
type Refusal = (Option<u32>, String);

/// A record ready to be appended.
enum Row<'b> {
    /// A body the wire reader takes.
    Wire(&'b [u8]),
    /// A body prost-reflect decoded.
    Message(DynamicMessage),
}

/// Decode one payload with the reader message: its body if the wire reader takes it, else
/// the message prost-reflect decodes.
///
/// # Errors
/// Only when the registry can't be reached; a bad record is the inner `Err`.
fn read<'b>(
    mode: &mut Framing,
    reader: &MessageDescriptor,
    shape: &Shape,
    payload: &'b [u8],
    wire_reader: bool,
) -> Result<std::result::Result<Row<'b>, Refusal>> {
    let (schema_id, body) = match mode {
        Framing::Optional if !framing::looks_framed(payload) => (None, payload),
        Framing::Optional => {
            let framed = match framing::split(payload) {
                Ok(framed) => framed,
                Err(reason) => return Ok(Err((None, reason))),
            };
            match framing::message_indexes(framed.body) {
                Ok((_, body)) => (Some(framed.schema_id), body),
                Err(reason) => return Ok(Err((Some(framed.schema_id), reason))),
            }
        }
        Framing::Registry(writers) => {
            let framed = match framing::split(payload) {
                Ok(framed) => framed,
                Err(reason) => return Ok(Err((None, reason))),
            };
            let id = framed.schema_id;
            let (indexes, body) = match framing::message_indexes(framed.body) {
                Ok(split) => split,
                Err(reason) => return Ok(Err((Some(id), reason))),
            };
            if let Err(reason) = writers.check(id, &indexes, reader.full_name())? {
                return Ok(Err((Some(id), reason)));
            }
            (Some(id), body)
        }
    };
    if wire_reader && shape.fits_message(body, 0) {
        return Ok(Ok(Row::Wire(body)));
    }
    let message = match DynamicMessage::decode(reader.clone(), body) {
        Ok(message) => message,
        Err(error) => {
            return Ok(Err((
                schema_id,
                format!(
                    "the body is not a valid {} message: {error}",
                    reader.full_name()
                ),
            )))
        }
    };
    if let Err(reason) = shape.check_message(&message) {
        return Ok(Err((schema_id, reason)));
    }
    Ok(Ok(Row::Message(message)))
}

// ---------------------------------------------------------------------------------------------
// Schemas: registry lookups and compilation
// ---------------------------------------------------------------------------------------------

/// Where registry schemas come from: the [`SchemaRegistry`], or a map in tests.
trait SchemaLookup: Send + Sync {
    /// The schema with global id `id`.
    fn schema_by_id(&self, id: u32) -> Result<Arc<RegisteredSchema>>;
    /// Version `version` (a number or `latest`) of `subject`.
    fn version(&self, subject: &str, version: &str) -> Result<Arc<RegisteredSchema>>;
}

impl SchemaLookup for SchemaRegistry {
    fn schema_by_id(&self, id: u32) -> Result<Arc<RegisteredSchema>> {
        SchemaRegistry::schema_by_id(self, id)
    }

    fn version(&self, subject: &str, version: &str) -> Result<Arc<RegisteredSchema>> {
        SchemaRegistry::version(self, subject, version)
    }
}

/// Whether a registry error means "no such schema" (HTTP 404) rather than "no registry":
/// the first fails one record, the second the scan.
fn is_not_found(error: &Error) -> bool {
    matches!(error, Error::Registry { reason, .. } if reason.contains("(HTTP 404"))
}

/// The writer schemas seen in frames, compiled once per id.
#[derive(Clone)]
struct WriterSchemas {
    lookup: Arc<dyn SchemaLookup>,
    /// Per schema id: the compiled file, or why records written with it can't be read.
    compiled: HashMap<u32, std::result::Result<FileDescriptor, String>>,
}

impl WriterSchemas {
    /// Check that `indexes` in schema `id` name the message `reader`.
    ///
    /// # Errors
    /// Only when the registry can't be reached; a mismatch is the inner `Err`.
    fn check(
        &mut self,
        id: u32,
        indexes: &[i32],
        reader: &str,
    ) -> Result<std::result::Result<(), String>> {
        if !self.compiled.contains_key(&id) {
            let compiled = self.compile(id)?;
            self.compiled.insert(id, compiled);
        }
        let file = match &self.compiled[&id] {
            Ok(file) => file,
            Err(reason) => return Ok(Err(reason.clone())),
        };
        let skipped = message_at(file, indexes, MapEntries::Skipped);
        let counted = if indexes.len() > 1 {
            message_at(file, indexes, MapEntries::Counted)
        } else {
            None
        };
        if [&skipped, &counted]
            .iter()
            .any(|written| written.as_ref().map(MessageDescriptor::full_name) == Some(reader))
        {
            return Ok(Ok(()));
        }
        Ok(Err(match skipped.or(counted) {
            Some(written) => format!(
                "written as message {}, reader message is {reader}",
                written.full_name()
            ),
            None => format!("the message indexes {indexes:?} name no message of the writer schema"),
        }))
    }

    fn compile(&self, id: u32) -> Result<std::result::Result<FileDescriptor, String>> {
        let schema = match self.lookup.schema_by_id(id) {
            Ok(schema) => schema,
            Err(error) if is_not_found(&error) => return Ok(Err(error.to_string())),
            Err(error) => return Err(error),
        };
        if schema.schema_type != SchemaType::Protobuf {
            return Ok(Err(format!(
                "the writer schema is {}, not a Protobuf one",
                a_schema(schema.schema_type)
            )));
        }
        match compile_registered(self.lookup.as_ref(), &schema) {
            Ok(Ok(file)) => Ok(Ok(file)),
            Ok(Err(reason)) => Ok(Err(format!("the writer schema does not compile: {reason}"))),
            Err(error) if is_not_found(&error) => Ok(Err(format!(
                "a reference of the writer schema is missing: {error}"
            ))),
            Err(error) => Err(error),
        }
    }
}

/// `an Avro schema`, for messages.
fn a_schema(schema_type: SchemaType) -> &'static str {
    match schema_type {
        SchemaType::Avro => "an Avro schema",
        SchemaType::Protobuf => "a Protobuf schema",
        SchemaType::Json => "a JSON Schema",
    }
}

/// Whether nested-message indexes count the entry messages that `map<K, V>` fields
/// synthesize. Confluent's Java serializer and the registry skip them (they index the
/// messages the `.proto` declares); its Python and Go serializers count them (they index the
/// descriptor's nested types). The two agree unless a map field precedes a nested message.
#[derive(Clone, Copy)]
enum MapEntries {
    Skipped,
    Counted,
}

/// The message that Confluent message indexes name in `file`: the first index among the
/// file's top-level messages, each further one among the previous message's nested messages.
fn message_at(
    file: &FileDescriptor,
    indexes: &[i32],
    map_entries: MapEntries,
) -> Option<MessageDescriptor> {
    let (first, nested) = indexes.split_first()?;
    let mut message = file.messages().nth(usize::try_from(*first).ok()?)?;
    for index in nested {
        let child = message
            .child_messages()
            .filter(|child| matches!(map_entries, MapEntries::Counted) || !child.is_map_entry())
            .nth(usize::try_from(*index).ok()?)?;
        message = child;
    }
    Some(message)
}

/// The messages of `file` for error messages: fully qualified names, nested ones included.
fn message_names(file: &FileDescriptor) -> String {
    fn collect(message: MessageDescriptor, names: &mut Vec<String>) {
        if message.is_map_entry() {
            return;
        }
        names.push(message.full_name().to_owned());
        for child in message.child_messages() {
            collect(child, names);
        }
    }
    let mut names = Vec::new();
    for message in file.messages() {
        collect(message, &mut names);
    }
    if names.is_empty() {
        "it defines none".into()
    } else {
        names.join(", ")
    }
}

/// Compile a registry schema with its references.
///
/// # Errors
/// The outer error when fetching a reference fails; the inner one when the files don't
/// compile.
fn compile_registered(
    lookup: &dyn SchemaLookup,
    schema: &RegisteredSchema,
) -> Result<std::result::Result<FileDescriptor, String>> {
    let main = format!("schema_{}.proto", schema.id);
    let mut files = SchemaFiles::default();
    files.0.insert(main.clone(), schema.schema.clone());
    fetch_references(lookup, &schema.references, &mut files)?;
    Ok(compile(&main, files))
}

/// Fetch `references` and theirs, each once, keyed by the name imports use.
fn fetch_references(
    lookup: &dyn SchemaLookup,
    references: &[SchemaReference],
    files: &mut SchemaFiles,
) -> Result<()> {
    for reference in references {
        if files.0.contains_key(&reference.name) {
            continue;
        }
        let version = if reference.version < 0 {
            "latest".to_owned()
        } else {
            reference.version.to_string()
        };
        let schema = lookup.version(&reference.subject, &version)?;
        files
            .0
            .insert(reference.name.clone(), schema.schema.clone());
        fetch_references(lookup, &schema.references, files)?;
    }
    Ok(())
}

/// The files of one schema by the names imports use: `.proto` text or a base64
/// `FileDescriptorProto`. Well-known imports are not among them: the compiler has those.
#[derive(Default)]
struct SchemaFiles(HashMap<String, String>);

impl FileResolver for SchemaFiles {
    fn open_file(&self, name: &str) -> std::result::Result<File, protox::Error> {
        let Some(text) = self.0.get(name) else {
            return Err(protox::Error::file_not_found(name));
        };
        match descriptor_from_base64(text) {
            Some(mut descriptor) => {
                // Imports find a file by the name its importer uses, whatever the name the
                // descriptor was registered with.
                descriptor.name = Some(name.to_owned());
                Ok(File::from_file_descriptor_proto(descriptor))
            }
            None => File::from_source(name, text),
        }
    }
}

/// A `FileDescriptorProto` in base64, as Apicurio returns Protobuf schemas. `.proto` text is
/// never valid base64: it has spaces, braces or semicolons.
fn descriptor_from_base64(text: &str) -> Option<FileDescriptorProto> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()?;
    FileDescriptorProto::decode(bytes.as_slice()).ok()
}

/// Compile `main` and what it imports.
///
/// # Errors
/// The compiler's message.
fn compile(main: &str, files: SchemaFiles) -> std::result::Result<FileDescriptor, String> {
    let mut resolver = ChainFileResolver::new();
    // Well-known imports first: a registry copy of timestamp.proto must not shadow the real one.
    resolver.add(GoogleFileResolver::new());
    resolver.add(files);
    let mut compiler = protox::Compiler::with_file_resolver(resolver);
    compiler
        .open_file(main)
        .map_err(|error| error.to_string())?;
    compiler
        .descriptor_pool()
        .get_file_by_name(main)
        .ok_or_else(|| format!("'{main}' is missing after compilation"))
}

// ---------------------------------------------------------------------------------------------
// Shapes: the Arrow type of each Protobuf value, planned once at resolve
// ---------------------------------------------------------------------------------------------

/// How one Protobuf value becomes an Arrow value.
#[derive(Clone)]
enum Shape {
    /// A scalar field type, read as its Arrow counterpart.
    Scalar(Scalar),
    /// The value's name, or its number in decimal when the reader's enum doesn't have it.
    Enum(EnumDescriptor),
    /// `google.protobuf.Timestamp`: microseconds since the epoch, UTC.
    Timestamp,
    /// `google.protobuf.Duration`: microseconds.
    Duration,
    /// `google.protobuf.Struct`, `Value` or `ListValue`: JSON text.
    Json(JsonKind, MessageDescriptor),
    /// A wrapper (`Int32Value`, …): the `value` field's shape.
    Wrapper(FieldDescriptor, Box<Shape>),
    /// A message without fields: `true`.
    Present,
    /// A message with fields: a struct.
    Message {
        members: Vec<Member>,
        fields: Fields,
        /// Field number → member, for reading the wire.
        lookup: Lookup,
        /// How many oneofs the members belong to.
        oneofs: usize,
        /// Whether some value inside can be out of range (a Timestamp, a Duration).
        fallible: bool,
    },
    /// A repeated field.
    List { item: FieldRef, shape: Box<Shape> },
    /// A map field.
    Map {
        entries: FieldRef,
        key: Scalar,
        value: Box<Shape>,
        /// The value of an entry that has none on the wire.
        value_default: Value,
    },
}

/// One field of a message shape.
#[derive(Clone)]
struct Member {
    field: FieldDescriptor,
    /// Whether the field has presence, so that absent is NULL.
    nullable: bool,
    /// The value of an absent field without presence.
    default: Value,
    /// The oneof the field belongs to, numbered within its message.
    oneof: Option<usize>,
    /// `value.customer.name`, for error messages.
    path: String,
    shape: Shape,
}

#[derive(Clone, Copy)]
enum JsonKind {
    Struct,
    Value,
    List,
}

/// The scalar field types, each with its wire encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scalar {
    Double,
    Float,
    Int32,
    Int64,
    Uint32,
    Uint64,
    Sint32,
    Sint64,
    Fixed32,
    Fixed64,
    Sfixed32,
    Sfixed64,
    Bool,
    String,
    Bytes,
}

impl Scalar {
    fn of(kind: &Kind) -> Option<Self> {
        Some(match kind {
            Kind::Double => Scalar::Double,
            Kind::Float => Scalar::Float,
            Kind::Int32 => Scalar::Int32,
            Kind::Int64 => Scalar::Int64,
            Kind::Uint32 => Scalar::Uint32,
            Kind::Uint64 => Scalar::Uint64,
            Kind::Sint32 => Scalar::Sint32,
            Kind::Sint64 => Scalar::Sint64,
            Kind::Fixed32 => Scalar::Fixed32,
            Kind::Fixed64 => Scalar::Fixed64,
            Kind::Sfixed32 => Scalar::Sfixed32,
            Kind::Sfixed64 => Scalar::Sfixed64,
            Kind::Bool => Scalar::Bool,
            Kind::String => Scalar::String,
            Kind::Bytes => Scalar::Bytes,
            Kind::Message(_) | Kind::Enum(_) => return None,
        })
    }

    fn data_type(self) -> DataType {
        match self {
            Scalar::Double => DataType::Float64,
            Scalar::Float => DataType::Float32,
            Scalar::Int32 | Scalar::Sint32 | Scalar::Sfixed32 => DataType::Int32,
            Scalar::Int64 | Scalar::Sint64 | Scalar::Sfixed64 => DataType::Int64,
            Scalar::Uint32 | Scalar::Fixed32 => DataType::UInt32,
            Scalar::Uint64 | Scalar::Fixed64 => DataType::UInt64,
            Scalar::Bool => DataType::Boolean,
            Scalar::String => DataType::Utf8,
            Scalar::Bytes => DataType::Binary,
        }
    }

    /// How a single value is encoded.
    fn encoding(self) -> Encoding {
        match self {
            Scalar::Int32
            | Scalar::Int64
            | Scalar::Uint32
            | Scalar::Uint64
            | Scalar::Sint32
            | Scalar::Sint64
            | Scalar::Bool => Encoding::Varint,
            Scalar::Double | Scalar::Fixed64 | Scalar::Sfixed64 => Encoding::Fixed64,
            Scalar::Float | Scalar::Fixed32 | Scalar::Sfixed32 => Encoding::Fixed32,
            Scalar::String | Scalar::Bytes => Encoding::Len,
        }
    }
}

/// Field number → member index of a message shape.
#[derive(Clone)]
enum Lookup {
    /// Indexed by field number, when the numbers are small.
    Dense(Vec<Target>),
    /// Sorted by field number.
    Sparse(Vec<(u32, Target)>),
}

/// What a field number of a message is to the wire reader.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    /// Not a field of the reader: skipped.
    Unknown,
    /// The member with this index.
    Member(usize),
    /// A group or an extension: the wire reader leaves records that have one to
    /// prost-reflect, which reads (and checks) them.
    Deferred,
}

impl Lookup {
    /// Field numbers up to this many are looked up in a table.
    const DENSE_LIMIT: u32 = 1024;

    fn new(message: &MessageDescriptor, members: &[Member]) -> Self {
        let mut targets: Vec<(u32, Target)> = members
            .iter()
            .enumerate()
            .map(|(index, member)| {
                let target = if member.field.is_group() {
                    Target::Deferred
                } else {
                    Target::Member(index)
                };
                (member.field.number(), target)
            })
            .chain(
                message
                    .extensions()
                    .map(|extension| (extension.number(), Target::Deferred)),
            )
            .collect();
        targets.sort_unstable_by_key(|(number, _)| *number);
        match targets.last() {
            Some((max, _)) if *max > Self::DENSE_LIMIT => Lookup::Sparse(targets),
            _ => {
                let size = targets.last().map_or(0, |(max, _)| *max as usize + 1);
                let mut table = vec![Target::Unknown; size];
                for (number, target) in targets {
                    table[number as usize] = target;
                }
                Lookup::Dense(table)
            }
        }
    }

    fn get(&self, number: u32) -> Target {
        match self {
            Lookup::Dense(table) => table
                .get(number as usize)
                .copied()
                .unwrap_or(Target::Unknown),
            Lookup::Sparse(targets) => targets
                .binary_search_by_key(&number, |(number, _)| *number)
                .map_or(Target::Unknown, |index| targets[index].1),
        }
    }
}

impl Shape {
    fn data_type(&self) -> DataType {
        match self {
            Shape::Scalar(scalar) => scalar.data_type(),
            Shape::Present => DataType::Boolean,
            Shape::Enum(_) | Shape::Json(..) => DataType::Utf8,
            Shape::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into())),
            Shape::Duration => DataType::Duration(TimeUnit::Microsecond),
            Shape::Wrapper(_, inner) => inner.data_type(),
            Shape::Message { fields, .. } => DataType::Struct(fields.clone()),
            Shape::List { item, .. } => DataType::List(item.clone()),
            Shape::Map { entries, .. } => DataType::Map(entries.clone(), false),
        }
    }

    /// Whether a value of this shape is a message on the wire.
    fn is_message(&self) -> bool {
        matches!(
            self,
            Shape::Message { .. }
                | Shape::Present
                | Shape::Wrapper(..)
                | Shape::Timestamp
                | Shape::Duration
                | Shape::Json(..)
        )
    }

    /// Whether [`Shape::check`] can fail for some value.
    fn fallible(&self) -> bool {
        match self {
            Shape::Timestamp | Shape::Duration => true,
            Shape::Message { fallible, .. } => *fallible,
            Shape::List { shape, .. } => shape.fallible(),
            Shape::Map { value, .. } => value.fallible(),
            _ => false,
        }
    }

    /// Check the values in `message`, of this message shape, that may not fit their Arrow
    /// type (Timestamps and Durations beyond ±292,000 years), before anything is appended.
    fn check_message(&self, message: &DynamicMessage) -> std::result::Result<(), String> {
        let Shape::Message {
            members,
            fallible: true,
            ..
        } = self
        else {
            return Ok(());
        };
        for member in members.iter().filter(|member| member.shape.fallible()) {
            if member.nullable && !message.has_field(&member.field) {
                continue;
            }
            member
                .shape
                .check(&message.get_field(&member.field))
                .map_err(|reason| format!("{}: {reason}", member.path))?;
        }
        Ok(())
    }

    /// [`Shape::check_message`] for a value of this shape.
    fn check(&self, value: &Value) -> std::result::Result<(), String> {
        match (self, value) {
            (Shape::Timestamp, Value::Message(message)) => timestamp_micros(message)
                .map(drop)
                .ok_or_else(|| out_of_range("Timestamp", message)),
            (Shape::Duration, Value::Message(message)) => duration_micros(message)
                .map(drop)
                .ok_or_else(|| out_of_range("Duration", message)),
            (Shape::Message { .. }, Value::Message(message)) => self.check_message(message),
            (Shape::List { shape, .. }, Value::List(items)) => {
                items.iter().try_for_each(|item| shape.check(item))
            }
            (Shape::Map { value: shape, .. }, Value::Map(entries)) => {
                entries.values().try_for_each(|value| shape.check(value))
            }
            _ => Ok(()),
        }
    }
}

fn out_of_range(what: &str, message: &DynamicMessage) -> String {
    let (seconds, nanos) = seconds_nanos(message);
    format!(
        "google.protobuf.{what} {{seconds: {seconds}, nanos: {nanos}}} is beyond the range of \
         microseconds in 64 bits"
    )
}

/// Builds shapes, refusing recursive messages.
struct Planner {
    side: Side,
    /// The messages being expanded, outermost first.
    ancestors: Vec<String>,
}

impl Planner {
    /// The shape of `message` at `path` (`value`, `value.customer`, …).
    ///
    /// # Errors
    /// A recursive message, naming the field path where it contains itself.
    fn message(
        &mut self,
        message: &MessageDescriptor,
        path: &str,
    ) -> std::result::Result<Shape, String> {
        self.ancestors.push(message.full_name().to_owned());
        let mut members = Vec::new();
        let mut oneofs: Vec<String> = Vec::new();
        // Declaration order, as the .proto reads; `fields()` is in number order.
        for declared in &message.descriptor_proto().field {
            let Some(field) = u32::try_from(declared.number())
                .ok()
                .and_then(|number| message.get_field(number))
            else {
                continue;
            };
            let path = format!("{path}.{}", field.name());
            let shape = self.field(&field, &path)?;
            let oneof = field.containing_oneof().map(|oneof| {
                let name = oneof.name();
                oneofs
                    .iter()
                    .position(|known| known == name)
                    .unwrap_or_else(|| {
                        oneofs.push(name.to_owned());
                        oneofs.len() - 1
                    })
            });
            members.push(Member {
                nullable: field.supports_presence() && !field.is_list() && !field.is_map(),
                default: field.default_value(),
                oneof,
                field,
                path,
                shape,
            });
        }
        self.ancestors.pop();
        if members.is_empty() {
            return Ok(Shape::Present);
        }
        let fields: Fields = members
            .iter()
            .map(|member| {
                Field::new(
                    member.field.name(),
                    member.shape.data_type(),
                    member.nullable,
                )
            })
            .collect();
        let fallible = members.iter().any(|member| member.shape.fallible());
        Ok(Shape::Message {
            lookup: Lookup::new(message, &members),
            members,
            fields,
            oneofs: oneofs.len(),
            fallible,
        })
    }

    fn field(&mut self, field: &FieldDescriptor, path: &str) -> std::result::Result<Shape, String> {
        if field.is_map() {
            let Kind::Message(entry) = field.kind() else {
                return Err(format!("{path}: a map field without an entry message"));
            };
            let key_field = entry.map_entry_key_field();
            let value_field = entry.map_entry_value_field();
            let Some(key) = Scalar::of(&key_field.kind()) else {
                return Err(format!("{path}: a map key must be a scalar"));
            };
            let value = self.kind(value_field.kind(), path)?;
            let entries = Field::new(
                "entries",
                DataType::Struct(Fields::from(vec![
                    Field::new("key", key.data_type(), false),
                    Field::new("value", value.data_type(), false),
                ])),
                false,
            );
            return Ok(Shape::Map {
                entries: Arc::new(entries),
                key,
                value: Box::new(value),
                value_default: Value::default_value_for_field(&value_field),
            });
        }
        let shape = self.kind(field.kind(), path)?;
        if field.is_list() {
            return Ok(Shape::List {
                item: Arc::new(Field::new("item", shape.data_type(), false)),
                shape: Box::new(shape),
            });
        }
        Ok(shape)
    }

    fn kind(&mut self, kind: Kind, path: &str) -> std::result::Result<Shape, String> {
        if let Some(scalar) = Scalar::of(&kind) {
            return Ok(Shape::Scalar(scalar));
        }
        Ok(match kind {
            Kind::Enum(descriptor) => Shape::Enum(descriptor),
            Kind::Message(message) => {
                if let Some(shape) = well_known(&message) {
                    return Ok(shape);
                }
                if self
                    .ancestors
                    .iter()
                    .any(|name| name == message.full_name())
                {
                    return Err(format!(
                        "message {name} is recursive: {path} holds a {name} inside a {name}, and \
                         a column needs a type of fixed depth (read this side with {} 'bytes')",
                        self.side.parameter("format"),
                        name = message.full_name(),
                    ));
                }
                self.message(&message, path)?
            }
            _ => unreachable!("scalars are handled above"),
        })
    }
}

/// The shape of a well-known type that does not read as a plain struct.
fn well_known(message: &MessageDescriptor) -> Option<Shape> {
    let scalar = |number: u32, kind: Kind| {
        message
            .get_field(number)
            .filter(|field| !field.is_list() && !field.is_map() && field.kind() == kind)
    };
    let wrapped = |kind: Kind| {
        let shape = Shape::Scalar(Scalar::of(&kind)?);
        scalar(1, kind).map(|field| Shape::Wrapper(field, Box::new(shape)))
    };
    let json = |kind| Some(Shape::Json(kind, message.clone()));
    let seconds_nanos = scalar(1, Kind::Int64).is_some() && scalar(2, Kind::Int32).is_some();
    match message.full_name() {
        "google.protobuf.Timestamp" if seconds_nanos => Some(Shape::Timestamp),
        "google.protobuf.Duration" if seconds_nanos => Some(Shape::Duration),
        "google.protobuf.Struct" => json(JsonKind::Struct),
        "google.protobuf.Value" => json(JsonKind::Value),
        "google.protobuf.ListValue" => json(JsonKind::List),
        "google.protobuf.DoubleValue" => wrapped(Kind::Double),
        "google.protobuf.FloatValue" => wrapped(Kind::Float),
        "google.protobuf.Int64Value" => wrapped(Kind::Int64),
        "google.protobuf.UInt64Value" => wrapped(Kind::Uint64),
        "google.protobuf.Int32Value" => wrapped(Kind::Int32),
        "google.protobuf.UInt32Value" => wrapped(Kind::Uint32),
        "google.protobuf.BoolValue" => wrapped(Kind::Bool),
        "google.protobuf.StringValue" => wrapped(Kind::String),
        "google.protobuf.BytesValue" => wrapped(Kind::Bytes),
        _ => None,
    }
}

fn seconds_nanos(message: &DynamicMessage) -> (i64, i32) {
    let seconds = message
        .get_field_by_number(1)
        .and_then(|value| value.as_i64())
        .unwrap_or(0);
    let nanos = message
        .get_field_by_number(2)
        .and_then(|value| value.as_i32())
        .unwrap_or(0);
    (seconds, nanos)
}

/// A Timestamp in microseconds since the epoch, rounded down; `None` beyond 64 bits.
fn timestamp_micros(message: &DynamicMessage) -> Option<i64> {
    let (seconds, nanos) = seconds_nanos(message);
    micros_since_epoch(seconds, nanos)
}

/// A Duration in microseconds; `None` beyond 64 bits.
fn duration_micros(message: &DynamicMessage) -> Option<i64> {
    let (seconds, nanos) = seconds_nanos(message);
    micros_of_duration(seconds, nanos)
}

/// Seconds and nanoseconds since the epoch in microseconds, rounded down.
fn micros_since_epoch(seconds: i64, nanos: i32) -> Option<i64> {
    seconds
        .checked_mul(1_000_000)?
        .checked_add(i64::from(nanos.div_euclid(1000)))
}

/// Seconds and nanoseconds of a duration in microseconds, rounded toward zero (seconds and
/// nanos share their sign).
fn micros_of_duration(seconds: i64, nanos: i32) -> Option<i64> {
    seconds
        .checked_mul(1_000_000)?
        .checked_add(i64::from(nanos / 1000))
}

// ---------------------------------------------------------------------------------------------
// Columns: the builders of one decode call
// ---------------------------------------------------------------------------------------------

/// A tree of Arrow builders mirroring a [`Shape`], created once per decode call. Rows come in
/// either as prost-reflect [`Value`]s ([`Column::append`]) or straight off the wire
/// ([`Column::append_wire`]); both give the same values.
enum Column<'a> {
    Scalar(Scalar, Leaf),
    Enum(StringBuilder, &'a EnumDescriptor),
    Timestamp(TimestampMicrosecondBuilder),
    Duration(DurationMicrosecondBuilder),
    Json(StringBuilder, JsonKind, &'a MessageDescriptor),
    Wrapper(&'a FieldDescriptor, Box<Column<'a>>),
    Present(BooleanBuilder),
    Struct(StructColumn<'a>),
    List(ListColumn<'a>),
    Map(MapColumn<'a>),
}

/// The builder of a scalar column.
enum Leaf {
    Int32(Int32Builder),
    Int64(Int64Builder),
    UInt32(UInt32Builder),
    UInt64(UInt64Builder),
    Float32(Float32Builder),
    Float64(Float64Builder),
    Boolean(BooleanBuilder),
    Utf8(StringBuilder),
    Binary(BinaryBuilder),
}

struct StructColumn<'a> {
    members: &'a [Member],
    fields: &'a Fields,
    lookup: &'a Lookup,
    columns: Vec<Column<'a>>,
    nulls: NullBufferBuilder,
    /// Numbers the messages read off the wire, so that the scratch below needs no clearing
    /// (clearing it per message cost more than reading small ones): an entry counts only
    /// while its stamp is the current message's.
    stamp: u32,
    /// While one message is read off the wire: what each member has so far.
    last: Vec<(u32, Slot)>,
    /// Likewise: the member of each oneof that was set last.
    oneof_last: Vec<(u32, usize)>,
}

struct ListColumn<'a> {
    item: &'a FieldRef,
    offsets: OffsetBufferBuilder<i32>,
    nulls: NullBufferBuilder,
    items: Box<Column<'a>>,
}

struct MapColumn<'a> {
    entries: &'a FieldRef,
    key: Scalar,
    value_default: &'a Value,
    offsets: OffsetBufferBuilder<i32>,
    nulls: NullBufferBuilder,
    keys: Leaf,
    values: Box<Column<'a>>,
    /// While one message is read off the wire: its entries of this map.
    pending: Vec<(Key, Slot)>,
}

impl<'a> Column<'a> {
    fn new(shape: &'a Shape, capacity: usize) -> Self {
        let strings = || StringBuilder::with_capacity(capacity, capacity * 8);
        match shape {
            Shape::Scalar(scalar) => Column::Scalar(*scalar, Leaf::new(*scalar, capacity)),
            Shape::Enum(descriptor) => Column::Enum(strings(), descriptor),
            Shape::Timestamp => Column::Timestamp(
                TimestampMicrosecondBuilder::with_capacity(capacity).with_timezone(UTC),
            ),
            Shape::Duration => {
                Column::Duration(DurationMicrosecondBuilder::with_capacity(capacity))
            }
            Shape::Json(kind, descriptor) => Column::Json(strings(), *kind, descriptor),
            Shape::Wrapper(field, inner) => {
                Column::Wrapper(field, Box::new(Column::new(inner, capacity)))
            }
            Shape::Present => Column::Present(BooleanBuilder::with_capacity(capacity)),
            Shape::Message {
                members,
                fields,
                lookup,
                oneofs,
                ..
            } => Column::Struct(StructColumn {
                members,
                fields,
                lookup,
                columns: members
                    .iter()
                    .map(|member| Column::new(&member.shape, capacity))
                    .collect(),
                nulls: NullBufferBuilder::new(capacity),
                stamp: 0,
                last: vec![(0, Slot::Empty); members.len()],
                oneof_last: vec![(0, 0); *oneofs],
            }),
            Shape::List { item, shape } => Column::List(ListColumn {
                item,
                offsets: OffsetBufferBuilder::new(capacity),
                nulls: NullBufferBuilder::new(capacity),
                items: Box::new(Column::new(shape, capacity)),
            }),
            Shape::Map {
                entries,
                key,
                value,
                value_default,
            } => Column::Map(MapColumn {
                entries,
                key: *key,
                value_default,
                offsets: OffsetBufferBuilder::new(capacity),
                nulls: NullBufferBuilder::new(capacity),
                keys: Leaf::new(*key, capacity),
                values: Box::new(Column::new(value, capacity)),
                pending: Vec::new(),
            }),
        }
    }

    /// Append a value of this column's Protobuf type, as prost-reflect decoded it.
    fn append(&mut self, value: &Value) {
        let fits = match (&mut *self, value) {
            (Column::Scalar(_, leaf), value) => leaf.append_value(value),
            (Column::Enum(builder, descriptor), Value::EnumNumber(number)) => {
                append_enum(builder, descriptor, *number);
                true
            }
            (Column::Timestamp(builder), Value::Message(message)) => {
                builder.append_option(timestamp_micros(message));
                true
            }
            (Column::Duration(builder), Value::Message(message)) => {
                builder.append_option(duration_micros(message));
                true
            }
            (Column::Json(builder, kind, _), Value::Message(message)) => {
                builder.append_value(json_text(*kind, message));
                true
            }
            (Column::Wrapper(field, inner), Value::Message(message)) => {
                inner.append(&message.get_field(field));
                true
            }
            (Column::Present(builder), Value::Message(_)) => {
                builder.append_value(true);
                true
            }
            (Column::Struct(column), Value::Message(message)) => {
                for (member, child) in column.members.iter().zip(&mut column.columns) {
                    if member.nullable && !message.has_field(&member.field) {
                        child.append_null();
                    } else {
                        child.append(&message.get_field(&member.field));
                    }
                }
                column.nulls.append_non_null();
                true
            }
            (Column::List(list), Value::List(values)) => {
                for value in values {
                    list.items.append(value);
                }
                list.push(values.len());
                true
            }
            (Column::Map(map), Value::Map(entries)) => {
                // A map decodes into a hash map: key order makes the rows reproducible.
                let mut sorted: Vec<(&MapKey, &Value)> = entries.iter().collect();
                sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
                for (key, value) in &sorted {
                    if !map.keys.append_key(key) {
                        debug_assert!(false, "map key {key:?} does not fit its column");
                        map.keys.append_null();
                    }
                    map.values.append(value);
                }
                map.offsets.push_length(sorted.len());
                map.nulls.append_non_null();
                true
            }
            _ => false,
        };
        if !fits {
            // The shape and the message come from the same descriptor: unreachable unless
            // prost-reflect breaks its own typing.
            debug_assert!(false, "value {value:?} does not fit its column");
            self.append_null();
        }
    }

    /// Append a value read off the wire, as [`Shape::fits_value`] accepted it.
    fn append_wire(&mut self, wire: Wire<'_>) {
        let fits = match (&mut *self, wire) {
            (Column::Scalar(scalar, leaf), wire) => leaf.append_wire(*scalar, wire),
            (Column::Enum(builder, descriptor), Wire::Varint(number)) => {
                append_enum(builder, descriptor, number as i32);
                true
            }
            (Column::Timestamp(builder), Wire::Len(body)) => {
                let (seconds, nanos) = wire_seconds_nanos(body);
                builder.append_option(micros_since_epoch(seconds, nanos));
                true
            }
            (Column::Duration(builder), Wire::Len(body)) => {
                let (seconds, nanos) = wire_seconds_nanos(body);
                builder.append_option(micros_of_duration(seconds, nanos));
                true
            }
            (Column::Json(builder, kind, descriptor), Wire::Len(body)) => {
                match DynamicMessage::decode((*descriptor).clone(), body) {
                    Ok(message) => {
                        builder.append_value(json_text(*kind, &message));
                        true
                    }
                    Err(_) => false,
                }
            }
            (Column::Wrapper(field, inner), Wire::Len(body)) => {
                match last_field(body, 1) {
                    Some(value) => inner.append_wire(value),
                    None => inner.append(&field.default_value()),
                }
                true
            }
            (Column::Present(builder), Wire::Len(_)) => {
                builder.append_value(true);
                true
            }
            (Column::Struct(column), Wire::Len(body)) => {
                column.append_wire(body);
                true
            }
            _ => false,
        };
        if !fits {
            debug_assert!(false, "wire value {wire:?} does not fit its column");
            self.append_null();
        }
    }

    /// Append one occurrence of a repeated field off the wire: one item, or packed items.
    /// Returns how many.
    fn append_occurrence(&mut self, wire: Wire<'_>) -> usize {
        let packed = match (&*self, wire) {
            (Column::Scalar(scalar, _), Wire::Len(bytes)) if scalar.encoding() != Encoding::Len => {
                Some((scalar.encoding(), bytes))
            }
            (Column::Enum(..), Wire::Len(bytes)) => Some((Encoding::Varint, bytes)),
            _ => None,
        };
        match packed {
            Some((encoding, bytes)) => {
                let mut count = 0;
                for_each_packed(encoding, bytes, |item| {
                    self.append_wire(item);
                    count += 1;
                });
                count
            }
            None => {
                self.append_wire(wire);
                1
            }
        }
    }

    /// Append NULL. Under a NULL struct, non-nullable children hold NULL too: the parent's
    /// validity masks them, as Arrow allows.
    fn append_null(&mut self) {
        match self {
            Column::Scalar(_, leaf) => leaf.append_null(),
            Column::Enum(builder, _) | Column::Json(builder, ..) => builder.append_null(),
            Column::Timestamp(builder) => builder.append_null(),
            Column::Duration(builder) => builder.append_null(),
            Column::Wrapper(_, inner) => inner.append_null(),
            Column::Present(builder) => builder.append_null(),
            Column::Struct(column) => {
                for child in &mut column.columns {
                    child.append_null();
                }
                column.nulls.append_null();
            }
            Column::List(list) => {
                list.offsets.push_length(0);
                list.nulls.append_null();
            }
            Column::Map(map) => {
                map.offsets.push_length(0);
                map.nulls.append_null();
            }
        }
    }

    fn finish(self) -> ArrayRef {
        match self {
            Column::Scalar(_, leaf) => leaf.finish(),
            Column::Enum(mut builder, _) | Column::Json(mut builder, ..) => {
                Arc::new(builder.finish())
            }
            Column::Timestamp(mut builder) => Arc::new(builder.finish()),
            Column::Duration(mut builder) => Arc::new(builder.finish()),
            Column::Wrapper(_, inner) => inner.finish(),
            Column::Present(mut builder) => Arc::new(builder.finish()),
            Column::Struct(mut column) => Arc::new(StructArray::new(
                column.fields.clone(),
                column.columns.into_iter().map(Column::finish).collect(),
                column.nulls.finish(),
            )),
            Column::List(mut list) => Arc::new(ListArray::new(
                list.item.clone(),
                list.offsets.finish(),
                list.items.finish(),
                list.nulls.finish(),
            )),
            Column::Map(mut map) => {
                let DataType::Struct(key_value) = map.entries.data_type() else {
                    unreachable!("map entries are planned as a struct")
                };
                let entries = StructArray::new(
                    key_value.clone(),
                    vec![map.keys.finish(), map.values.finish()],
                    None,
                );
                Arc::new(MapArray::new(
                    map.entries.clone(),
                    map.offsets.finish(),
                    entries,
                    map.nulls.finish(),
                    false,
                ))
            }
        }
    }
}

fn append_enum(builder: &mut StringBuilder, descriptor: &EnumDescriptor, number: i32) {
    match descriptor.get_value(number) {
        Some(known) => builder.append_value(known.name()),
        None => builder.append_value(number.to_string()),
    }
}

impl StructColumn<'_> {
    /// Append the message in `body`, read off the wire as prost-reflect would read it: the
    /// last value of a singular field wins, repeated fields gather every occurrence (packed
    /// or not), the member of a oneof set last wins, later map entries replace earlier ones
    /// with the same key.
    fn append_wire(&mut self, body: &[u8]) {
        self.stamp = self.stamp.wrapping_add(1);
        if self.stamp == 0 {
            // Wrapped around: stamps of 4 billion messages ago would look current.
            self.last.fill((0, Slot::Empty));
            self.oneof_last.fill((0, 0));
            self.stamp = 1;
        }
        let stamp = self.stamp;
        let mut fields = WireFields::new(body);
        while let Ok(Some((number, wire))) = fields.next_field() {
            let Target::Member(index) = self.lookup.get(number) else {
                continue;
            };
            let last = &mut self.last[index];
            match &mut self.columns[index] {
                Column::List(list) => {
                    let before = match *last {
                        (seen, Slot::Items(count)) if seen == stamp => count,
                        _ => 0,
                    };
                    *last = (
                        stamp,
                        Slot::Items(before + list.items.append_occurrence(wire)),
                    );
                }
                Column::Map(map) => map.collect(body, wire),
                _ => {
                    *last = (stamp, Slot::of(body, wire));
                    if let Some(oneof) = self.members[index].oneof {
                        self.oneof_last[oneof] = (stamp, index);
                    }
                }
            }
        }
        for (index, (member, column)) in self.members.iter().zip(&mut self.columns).enumerate() {
            let last = match self.last[index] {
                (seen, slot) if seen == stamp => slot,
                _ => Slot::Empty,
            };
            match column {
                Column::List(list) => match last {
                    Slot::Items(count) => list.push(count),
                    _ => list.push(0),
                },
                Column::Map(map) => map.flush(body),
                column => {
                    let superseded = member
                        .oneof
                        .is_some_and(|oneof| self.oneof_last[oneof] != (stamp, index));
                    match last.wire(body).filter(|_| !superseded) {
                        Some(wire) => column.append_wire(wire),
                        None if member.nullable => column.append_null(),
                        None => column.append(&member.default),
                    }
                }
            }
        }
        self.nulls.append_non_null();
    }
}

impl ListColumn<'_> {
    /// Close a list of `count` items, appended already.
    fn push(&mut self, count: usize) {
        self.offsets.push_length(count);
        self.nulls.append_non_null();
    }
}

impl MapColumn<'_> {
    /// Take in one entry of this map, a field of the message in `body`.
    fn collect(&mut self, body: &[u8], wire: Wire<'_>) {
        let Wire::Len(entry) = wire else {
            debug_assert!(false, "a map entry is length-delimited");
            return;
        };
        let mut key = Key::default_of(self.key);
        let mut value = Slot::Empty;
        let mut fields = WireFields::new(entry);
        while let Ok(Some((number, wire))) = fields.next_field() {
            match number {
                1 => key = Key::of(self.key, body, wire),
                2 => value = Slot::of(body, wire),
                _ => {}
            }
        }
        self.pending.push((key, value));
    }

    /// Append the entries taken in for the message in `body`: in key order, the last of
    /// each key.
    fn flush(&mut self, body: &[u8]) {
        // Stable: entries with equal keys stay in wire order.
        self.pending.sort_by(|a, b| a.0.compare(&b.0, body));
        let mut count = 0;
        for (index, (key, value)) in self.pending.iter().enumerate() {
            let replaced = self
                .pending
                .get(index + 1)
                .is_some_and(|(next, _)| next.compare(key, body).is_eq());
            if replaced {
                continue;
            }
            if !key.append_to(&mut self.keys, body) {
                debug_assert!(false, "map key does not fit its column");
                self.keys.append_null();
            }
            match value.wire(body) {
                Some(wire) => self.values.append_wire(wire),
                None => self.values.append(self.value_default),
            }
            count += 1;
        }
        self.pending.clear();
        self.offsets.push_length(count);
        self.nulls.append_non_null();
    }
}

impl Leaf {
    fn new(scalar: Scalar, capacity: usize) -> Self {
        match scalar.data_type() {
            DataType::Int32 => Leaf::Int32(Int32Builder::with_capacity(capacity)),
            DataType::Int64 => Leaf::Int64(Int64Builder::with_capacity(capacity)),
            DataType::UInt32 => Leaf::UInt32(UInt32Builder::with_capacity(capacity)),
            DataType::UInt64 => Leaf::UInt64(UInt64Builder::with_capacity(capacity)),
            DataType::Float32 => Leaf::Float32(Float32Builder::with_capacity(capacity)),
            DataType::Float64 => Leaf::Float64(Float64Builder::with_capacity(capacity)),
            DataType::Boolean => Leaf::Boolean(BooleanBuilder::with_capacity(capacity)),
            DataType::Utf8 => Leaf::Utf8(StringBuilder::with_capacity(capacity, capacity * 8)),
            _ => Leaf::Binary(BinaryBuilder::with_capacity(capacity, capacity * 8)),
        }
    }

    /// Append a prost-reflect value; false when it is not of this column's type.
    fn append_value(&mut self, value: &Value) -> bool {
        match (self, value) {
            (Leaf::Int32(builder), Value::I32(v)) => builder.append_value(*v),
            (Leaf::Int64(builder), Value::I64(v)) => builder.append_value(*v),
            (Leaf::UInt32(builder), Value::U32(v)) => builder.append_value(*v),
            (Leaf::UInt64(builder), Value::U64(v)) => builder.append_value(*v),
            (Leaf::Float32(builder), Value::F32(v)) => builder.append_value(*v),
            (Leaf::Float64(builder), Value::F64(v)) => builder.append_value(*v),
            (Leaf::Boolean(builder), Value::Bool(v)) => builder.append_value(*v),
            (Leaf::Utf8(builder), Value::String(v)) => builder.append_value(v),
            (Leaf::Binary(builder), Value::Bytes(v)) => builder.append_value(v),
            _ => return false,
        }
        true
    }

    /// Append a prost-reflect map key; false when it is not of this column's type.
    fn append_key(&mut self, key: &MapKey) -> bool {
        match (self, key) {
            (Leaf::Int32(builder), MapKey::I32(v)) => builder.append_value(*v),
            (Leaf::Int64(builder), MapKey::I64(v)) => builder.append_value(*v),
            (Leaf::UInt32(builder), MapKey::U32(v)) => builder.append_value(*v),
            (Leaf::UInt64(builder), MapKey::U64(v)) => builder.append_value(*v),
            (Leaf::Boolean(builder), MapKey::Bool(v)) => builder.append_value(*v),
            (Leaf::Utf8(builder), MapKey::String(v)) => builder.append_value(v),
            _ => return false,
        }
        true
    }

    /// Append a value of `scalar` off the wire, converted as prost converts it; false when
    /// the wire type is not the scalar's.
    fn append_wire(&mut self, scalar: Scalar, wire: Wire<'_>) -> bool {
        match (self, scalar, wire) {
            (Leaf::Int32(builder), Scalar::Int32, Wire::Varint(v)) => {
                builder.append_value(v as i32)
            }
            (Leaf::Int32(builder), Scalar::Sint32, Wire::Varint(v)) => {
                builder.append_value(zigzag32(v))
            }
            (Leaf::Int32(builder), Scalar::Sfixed32, Wire::Fixed32(v)) => {
                builder.append_value(v as i32)
            }
            (Leaf::Int64(builder), Scalar::Int64, Wire::Varint(v)) => {
                builder.append_value(v as i64)
            }
            (Leaf::Int64(builder), Scalar::Sint64, Wire::Varint(v)) => {
                builder.append_value(zigzag64(v))
            }
            (Leaf::Int64(builder), Scalar::Sfixed64, Wire::Fixed64(v)) => {
                builder.append_value(v as i64)
            }
            (Leaf::UInt32(builder), Scalar::Uint32, Wire::Varint(v)) => {
                builder.append_value(v as u32)
            }
            (Leaf::UInt32(builder), Scalar::Fixed32, Wire::Fixed32(v)) => builder.append_value(v),
            (Leaf::UInt64(builder), Scalar::Uint64, Wire::Varint(v)) => builder.append_value(v),
            (Leaf::UInt64(builder), Scalar::Fixed64, Wire::Fixed64(v)) => builder.append_value(v),
            (Leaf::Float32(builder), _, Wire::Fixed32(v)) => {
                builder.append_value(f32::from_bits(v))
            }
            (Leaf::Float64(builder), _, Wire::Fixed64(v)) => {
                builder.append_value(f64::from_bits(v))
            }
            (Leaf::Boolean(builder), _, Wire::Varint(v)) => builder.append_value(v != 0),
            (Leaf::Utf8(builder), _, Wire::Len(bytes)) => match std::str::from_utf8(bytes) {
                Ok(text) => builder.append_value(text),
                Err(_) => return false,
            },
            (Leaf::Binary(builder), _, Wire::Len(bytes)) => builder.append_value(bytes),
            _ => return false,
        }
        true
    }

    fn append_null(&mut self) {
        match self {
            Leaf::Int32(builder) => builder.append_null(),
            Leaf::Int64(builder) => builder.append_null(),
            Leaf::UInt32(builder) => builder.append_null(),
            Leaf::UInt64(builder) => builder.append_null(),
            Leaf::Float32(builder) => builder.append_null(),
            Leaf::Float64(builder) => builder.append_null(),
            Leaf::Boolean(builder) => builder.append_null(),
            Leaf::Utf8(builder) => builder.append_null(),
            Leaf::Binary(builder) => builder.append_null(),
        }
    }

    fn finish(self) -> ArrayRef {
        match self {
            Leaf::Int32(mut builder) => Arc::new(builder.finish()),
            Leaf::Int64(mut builder) => Arc::new(builder.finish()),
            Leaf::UInt32(mut builder) => Arc::new(builder.finish()),
            Leaf::UInt64(mut builder) => Arc::new(builder.finish()),
            Leaf::Float32(mut builder) => Arc::new(builder.finish()),
            Leaf::Float64(mut builder) => Arc::new(builder.finish()),
            Leaf::Boolean(mut builder) => Arc::new(builder.finish()),
            Leaf::Utf8(mut builder) => Arc::new(builder.finish()),
            Leaf::Binary(mut builder) => Arc::new(builder.finish()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The wire: reading bodies without prost-reflect
// ---------------------------------------------------------------------------------------------
//
// prost-reflect decodes a body into a tree of dynamic values, every field looked up and
// allocated; most of a decode call went there. Rows whose body the wire reader takes are read
// straight into the builders instead, in two passes: `Shape::fits_message` checks that the body
// is one prost-reflect reads without error and without merging (not so: a message field given
// twice, groups, extensions, JSON well-known types, nesting past `WIRE_DEPTH_LIMIT`), then
// `Column::append_wire` appends it. Every other row goes to prost-reflect, which stays the
// reference: both paths give the same values, and only prost-reflect reports errors.

/// Messages nested this deep are left to prost-reflect (whose limit is 100).
const WIRE_DEPTH_LIMIT: usize = 64;

/// One field value on the wire.
#[derive(Clone, Copy, Debug)]
enum Wire<'b> {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    Len(&'b [u8]),
}

/// How a scalar is encoded on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Encoding {
    Varint,
    Fixed64,
    Fixed32,
    Len,
}

/// Bytes the wire reader leaves to prost-reflect.
struct Unfit;

/// The fields of a message body, in wire order.
struct WireFields<'b> {
    rest: &'b [u8],
}

impl<'b> WireFields<'b> {
    fn new(body: &'b [u8]) -> Self {
        Self { rest: body }
    }

    /// The next field number and value; `None` at the end of the body.
    ///
    /// # Errors
    /// [`Unfit`] where prost would fail (a bad key or varint, a length past the end) and for
    /// groups, which the wire reader doesn't read.
    fn next_field(&mut self) -> std::result::Result<Option<(u32, Wire<'b>)>, Unfit> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        let key = read_varint(&mut self.rest)?;
        let key = u32::try_from(key).map_err(|_| Unfit)?;
        let number = key >> 3;
        if number == 0 {
            return Err(Unfit);
        }
        let wire = match key & 7 {
            0 => Wire::Varint(read_varint(&mut self.rest)?),
            1 => Wire::Fixed64(u64::from_le_bytes(read_fixed(&mut self.rest)?)),
            2 => {
                let len = usize::try_from(read_varint(&mut self.rest)?).map_err(|_| Unfit)?;
                if len > self.rest.len() {
                    return Err(Unfit);
                }
                let (value, rest) = self.rest.split_at(len);
                self.rest = rest;
                Wire::Len(value)
            }
            5 => Wire::Fixed32(u32::from_le_bytes(read_fixed(&mut self.rest)?)),
            _ => return Err(Unfit),
        };
        Ok(Some((number, wire)))
    }
}

/// A varint as prost reads it: at most 10 bytes, the tenth below 2.
fn read_varint(rest: &mut &[u8]) -> std::result::Result<u64, Unfit> {
    let mut value = 0u64;
    for (index, &byte) in rest.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * index);
        if byte < 0x80 {
            if index == 9 && byte >= 2 {
                return Err(Unfit);
            }
            *rest = &rest[index + 1..];
            return Ok(value);
        }
    }
    Err(Unfit)
}

fn read_fixed<const N: usize>(rest: &mut &[u8]) -> std::result::Result<[u8; N], Unfit> {
    let (value, tail) = rest.split_first_chunk::<N>().ok_or(Unfit)?;
    *rest = tail;
    Ok(*value)
}

/// Call `each` on the items of a packed repeated field; false (and maybe some calls) when
/// the items don't fill `bytes` exactly.
fn for_each_packed(encoding: Encoding, mut bytes: &[u8], mut each: impl FnMut(Wire<'_>)) -> bool {
    while !bytes.is_empty() {
        let item = match encoding {
            Encoding::Varint => read_varint(&mut bytes).map(Wire::Varint),
            Encoding::Fixed64 => {
                read_fixed(&mut bytes).map(|b| Wire::Fixed64(u64::from_le_bytes(b)))
            }
            Encoding::Fixed32 => {
                read_fixed(&mut bytes).map(|b| Wire::Fixed32(u32::from_le_bytes(b)))
            }
            Encoding::Len => return false,
        };
        match item {
            Ok(item) => each(item),
            Err(Unfit) => return false,
        }
    }
    true
}

/// Whether every field of `body` reads and passes `check(number, value)`.
fn fits_fields(body: &[u8], mut check: impl FnMut(u32, Wire<'_>) -> bool) -> bool {
    let mut fields = WireFields::new(body);
    loop {
        match fields.next_field() {
            Ok(Some((number, wire))) => {
                if !check(number, wire) {
                    return false;
                }
            }
            Ok(None) => return true,
            Err(Unfit) => return false,
        }
    }
}

/// The last value of field `number` in `body`.
fn last_field(body: &[u8], number: u32) -> Option<Wire<'_>> {
    let mut fields = WireFields::new(body);
    let mut last = None;
    while let Ok(Some((field, wire))) = fields.next_field() {
        if field == number {
            last = Some(wire);
        }
    }
    last
}

/// The seconds and nanos of a Timestamp or Duration body.
fn wire_seconds_nanos(body: &[u8]) -> (i64, i32) {
    let mut seconds = 0;
    let mut nanos = 0;
    let mut fields = WireFields::new(body);
    while let Ok(Some((number, wire))) = fields.next_field() {
        match (number, wire) {
            (1, Wire::Varint(v)) => seconds = v as i64,
            (2, Wire::Varint(v)) => nanos = v as i32,
            _ => {}
        }
    }
    (seconds, nanos)
}

fn zigzag32(value: u64) -> i32 {
    let value = value as u32;
    ((value >> 1) as i32) ^ -((value & 1) as i32)
}

fn zigzag64(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

impl Scalar {
    /// Whether prost reads `wire` as a value of this scalar.
    fn fits(self, wire: Wire<'_>) -> bool {
        match (self.encoding(), wire) {
            (Encoding::Varint, Wire::Varint(_))
            | (Encoding::Fixed64, Wire::Fixed64(_))
            | (Encoding::Fixed32, Wire::Fixed32(_)) => true,
            (Encoding::Len, Wire::Len(bytes)) => {
                self != Scalar::String || std::str::from_utf8(bytes).is_ok()
            }
            _ => false,
        }
    }
}

impl Shape {
    /// Whether the wire reader reads `body`, a message of this shape at nesting `depth`, to
    /// what prost-reflect decodes from it, a decode that passes [`Shape::check_message`].
    fn fits_message(&self, body: &[u8], depth: usize) -> bool {
        if depth >= WIRE_DEPTH_LIMIT {
            return false;
        }
        let Shape::Message {
            members, lookup, ..
        } = self
        else {
            // A message the reader knows no field of: every field is skipped.
            return fits_fields(body, |_, _| true);
        };
        // The singular message fields seen so far, by member index.
        let mut seen: u128 = 0;
        fits_fields(body, |number, wire| {
            let index = match lookup.get(number) {
                Target::Unknown => return true,
                Target::Deferred => return false,
                Target::Member(index) => index,
            };
            match &members[index].shape {
                Shape::List { shape: item, .. } => item.fits_occurrence(wire, depth),
                Shape::Map { key, value, .. } => fits_entry(*key, value, wire, depth),
                shape => {
                    if shape.is_message() {
                        // Given twice, a message field is merged: prost-reflect does that.
                        let Some(bit) = u32::try_from(index)
                            .ok()
                            .and_then(|index| 1u128.checked_shl(index))
                        else {
                            return false;
                        };
                        if seen & bit != 0 {
                            return false;
                        }
                        seen |= bit;
                    }
                    shape.fits_value(wire, depth)
                }
            }
        })
    }

    /// Whether the wire reader reads `wire` as a (singular) value of this shape.
    fn fits_value(&self, wire: Wire<'_>, depth: usize) -> bool {
        match (self, wire) {
            (Shape::Scalar(scalar), wire) => scalar.fits(wire),
            (Shape::Enum(_), Wire::Varint(_)) => true,
            (Shape::Message { .. } | Shape::Present, Wire::Len(body)) => {
                self.fits_message(body, depth + 1)
            }
            (Shape::Wrapper(_, inner), Wire::Len(body)) => {
                depth + 1 < WIRE_DEPTH_LIMIT
                    && fits_fields(body, |number, wire| {
                        number != 1 || inner.fits_value(wire, depth + 1)
                    })
            }
            (Shape::Timestamp, Wire::Len(body)) => {
                depth + 1 < WIRE_DEPTH_LIMIT && fits_seconds_nanos(body, micros_since_epoch)
            }
            (Shape::Duration, Wire::Len(body)) => {
                depth + 1 < WIRE_DEPTH_LIMIT && fits_seconds_nanos(body, micros_of_duration)
            }
            // JSON well-known types nest without bound: prost-reflect reads them.
            _ => false,
        }
    }

    /// Whether the wire reader reads `wire` as one occurrence of a repeated field of items
    /// of this shape: one item, or packed items.
    fn fits_occurrence(&self, wire: Wire<'_>, depth: usize) -> bool {
        match (self, wire) {
            (Shape::Scalar(scalar), Wire::Len(packed)) if scalar.encoding() != Encoding::Len => {
                for_each_packed(scalar.encoding(), packed, |_| {})
            }
            (Shape::Enum(_), Wire::Len(packed)) => {
                for_each_packed(Encoding::Varint, packed, |_| {})
            }
            _ => self.fits_value(wire, depth),
        }
    }
}

/// Whether the wire reader reads `wire` as one entry of a map.
fn fits_entry(key: Scalar, value: &Shape, wire: Wire<'_>, depth: usize) -> bool {
    let Wire::Len(entry) = wire else {
        return false;
    };
    if depth + 1 >= WIRE_DEPTH_LIMIT {
        return false;
    }
    let mut value_seen = false;
    fits_fields(entry, |number, wire| match number {
        1 => key.fits(wire),
        2 => {
            if value.is_message() {
                if value_seen {
                    return false;
                }
                value_seen = true;
            }
            value.fits_value(wire, depth + 1)
        }
        _ => true,
    })
}

/// Whether a Timestamp or Duration body reads, and `micros` takes its last seconds and nanos.
fn fits_seconds_nanos(body: &[u8], micros: fn(i64, i32) -> Option<i64>) -> bool {
    let mut seconds = 0;
    let mut nanos = 0;
    fits_fields(body, |number, wire| match (number, wire) {
        (1, Wire::Varint(v)) => {
            seconds = v as i64;
            true
        }
        (2, Wire::Varint(v)) => {
            nanos = v as i32;
            true
        }
        (1 | 2, _) => false,
        _ => true,
    }) && micros(seconds, nanos).is_some()
}

/// What a member of a message read off the wire has so far: a singular member its last
/// value (a length-delimited one by its place in the body), a repeated member its number of
/// items.
#[derive(Clone, Copy)]
enum Slot {
    Empty,
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    Len { start: usize, end: usize },
    Items(usize),
}

impl Slot {
    fn of(body: &[u8], wire: Wire<'_>) -> Self {
        match wire {
            Wire::Varint(v) => Slot::Varint(v),
            Wire::Fixed64(v) => Slot::Fixed64(v),
            Wire::Fixed32(v) => Slot::Fixed32(v),
            Wire::Len(bytes) => {
                let start = offset_in(body, bytes);
                Slot::Len {
                    start,
                    end: start + bytes.len(),
                }
            }
        }
    }

    fn wire(self, body: &[u8]) -> Option<Wire<'_>> {
        match self {
            Slot::Empty | Slot::Items(_) => None,
            Slot::Varint(v) => Some(Wire::Varint(v)),
            Slot::Fixed64(v) => Some(Wire::Fixed64(v)),
            Slot::Fixed32(v) => Some(Wire::Fixed32(v)),
            Slot::Len { start, end } => body.get(start..end).map(Wire::Len),
        }
    }
}

/// Where `inner`, a part of `outer`, starts in it.
fn offset_in(outer: &[u8], inner: &[u8]) -> usize {
    let offset = (inner.as_ptr() as usize).wrapping_sub(outer.as_ptr() as usize);
    debug_assert!(
        offset + inner.len() <= outer.len(),
        "not a part of the body"
    );
    offset
}

/// A map key off the wire, comparable the way prost-reflect's [`MapKey`]s are.
#[derive(Clone, Copy)]
enum Key {
    Signed(i64),
    Unsigned(u64),
    Bool(bool),
    /// A string key: where it is in the message body.
    Text {
        start: usize,
        end: usize,
    },
}

impl Key {
    /// The key of an entry that has none on the wire.
    fn default_of(scalar: Scalar) -> Self {
        match scalar {
            Scalar::Uint32 | Scalar::Uint64 | Scalar::Fixed32 | Scalar::Fixed64 => Key::Unsigned(0),
            Scalar::Bool => Key::Bool(false),
            Scalar::String | Scalar::Bytes => Key::Text { start: 0, end: 0 },
            _ => Key::Signed(0),
        }
    }

    fn of(scalar: Scalar, body: &[u8], wire: Wire<'_>) -> Self {
        match (scalar, wire) {
            (Scalar::Int32, Wire::Varint(v)) => Key::Signed(i64::from(v as i32)),
            (Scalar::Sint32, Wire::Varint(v)) => Key::Signed(i64::from(zigzag32(v))),
            (Scalar::Sfixed32, Wire::Fixed32(v)) => Key::Signed(i64::from(v as i32)),
            (Scalar::Int64, Wire::Varint(v)) => Key::Signed(v as i64),
            (Scalar::Sint64, Wire::Varint(v)) => Key::Signed(zigzag64(v)),
            (Scalar::Sfixed64, Wire::Fixed64(v)) => Key::Signed(v as i64),
            (Scalar::Uint32, Wire::Varint(v)) => Key::Unsigned(u64::from(v as u32)),
            (Scalar::Fixed32, Wire::Fixed32(v)) => Key::Unsigned(u64::from(v)),
            (Scalar::Uint64, Wire::Varint(v)) | (Scalar::Fixed64, Wire::Fixed64(v)) => {
                Key::Unsigned(v)
            }
            (Scalar::Bool, Wire::Varint(v)) => Key::Bool(v != 0),
            (Scalar::String, Wire::Len(bytes)) => {
                let start = offset_in(body, bytes);
                Key::Text {
                    start,
                    end: start + bytes.len(),
                }
            }
            _ => {
                debug_assert!(false, "map key {wire:?} does not fit {scalar:?}");
                Key::default_of(scalar)
            }
        }
    }

    fn compare(&self, other: &Key, body: &[u8]) -> std::cmp::Ordering {
        match (self, other) {
            (Key::Signed(a), Key::Signed(b)) => a.cmp(b),
            (Key::Unsigned(a), Key::Unsigned(b)) => a.cmp(b),
            (Key::Bool(a), Key::Bool(b)) => a.cmp(b),
            (Key::Text { start, end }, Key::Text { start: s, end: e }) => {
                body.get(*start..*end).cmp(&body.get(*s..*e))
            }
            _ => std::cmp::Ordering::Equal,
        }
    }

    /// Append to the key column; false when the key is not of its type.
    fn append_to(&self, keys: &mut Leaf, body: &[u8]) -> bool {
        match (keys, self) {
            (Leaf::Int32(builder), Key::Signed(v)) => builder.append_value(*v as i32),
            (Leaf::Int64(builder), Key::Signed(v)) => builder.append_value(*v),
            (Leaf::UInt32(builder), Key::Unsigned(v)) => builder.append_value(*v as u32),
            (Leaf::UInt64(builder), Key::Unsigned(v)) => builder.append_value(*v),
            (Leaf::Boolean(builder), Key::Bool(v)) => builder.append_value(*v),
            (Leaf::Utf8(builder), Key::Text { start, end }) => {
                match body.get(*start..*end).map(std::str::from_utf8) {
                    Some(Ok(text)) => builder.append_value(text),
                    _ => return false,
                }
            }
            _ => return false,
        }
        true
    }
}

// ---------------------------------------------------------------------------------------------
// google.protobuf.Struct, Value and ListValue as JSON text
// ---------------------------------------------------------------------------------------------

fn json_text(kind: JsonKind, message: &DynamicMessage) -> String {
    let json = match kind {
        JsonKind::Struct => json_struct(message),
        JsonKind::Value => json_value(message),
        JsonKind::List => json_list(message),
    };
    json.to_string()
}

/// A `google.protobuf.Struct`: an object, keys in order.
fn json_struct(message: &DynamicMessage) -> serde_json::Value {
    let mut object = serde_json::Map::new();
    if let Some(fields) = message.get_field_by_number(1) {
        if let Some(entries) = fields.as_map() {
            for (key, value) in entries {
                if let (MapKey::String(key), Value::Message(value)) = (key, value) {
                    object.insert(key.clone(), json_value(value));
                }
            }
        }
    }
    serde_json::Value::Object(object)
}

/// A `google.protobuf.ListValue`: an array.
fn json_list(message: &DynamicMessage) -> serde_json::Value {
    let values = message
        .get_field_by_number(1)
        .and_then(|values| {
            values.as_list().map(|values| {
                values
                    .iter()
                    .filter_map(Value::as_message)
                    .map(json_value)
                    .collect()
            })
        })
        .unwrap_or_default();
    serde_json::Value::Array(values)
}

/// A `google.protobuf.Value`: whichever member of its `kind` oneof is set.
fn json_value(message: &DynamicMessage) -> serde_json::Value {
    // null_value 1, number_value 2, string_value 3, bool_value 4, struct_value 5,
    // list_value 6.
    for number in 2..=6 {
        if !message.has_field_by_number(number) {
            continue;
        }
        let Some(value) = message.get_field_by_number(number) else {
            continue;
        };
        return match (number, value.as_ref()) {
            (2, Value::F64(number)) => json_number(*number),
            (3, Value::String(text)) => serde_json::Value::String(text.clone()),
            (4, Value::Bool(flag)) => serde_json::Value::Bool(*flag),
            (5, Value::Message(object)) => json_struct(object),
            (6, Value::Message(list)) => json_list(list),
            _ => serde_json::Value::Null,
        };
    }
    serde_json::Value::Null
}

/// A number as JSON writes it: integral values without a fraction (as they were most likely
/// written), NaN and infinities as the strings Protobuf's JSON mapping uses.
fn json_number(number: f64) -> serde_json::Value {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if number.is_nan() {
        "NaN".into()
    } else if number.is_infinite() {
        if number > 0.0 {
            "Infinity"
        } else {
            "-Infinity"
        }
        .into()
    } else if number.fract() == 0.0 && number.abs() < EXACT {
        (number as i64).into()
    } else {
        number.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{PayloadFormat, PayloadSpec};
    use arrow_array::cast::AsArray;
    use arrow_array::types::{
        DurationMicrosecondType, Int32Type, Int64Type, TimestampMicrosecondType, UInt32Type,
    };
    use arrow_array::{Array, StructArray};
    use prost_reflect::DescriptorPool;

    /// A shop: `Order` first (index [0]), with `Order.Line` nested ([0, 0]); `Refund`
    /// second ([1]).
    const SHOP: &str = r#"
        syntax = "proto3";
        package shop;

        import "google/protobuf/any.proto";
        import "google/protobuf/duration.proto";
        import "google/protobuf/empty.proto";
        import "google/protobuf/struct.proto";
        import "google/protobuf/timestamp.proto";
        import "google/protobuf/wrappers.proto";

        enum Status {
          STATUS_NEW = 0;
          STATUS_PAID = 1;
        }

        message Order {
          string id = 1;
          int64 quantity = 2;
          Customer customer = 3;
          repeated string tags = 4;
          repeated Line lines = 5;
          map<string, int64> counts = 6;
          map<string, Line> by_sku = 7;
          oneof payment {
            string card = 8;
            int32 voucher = 9;
          }
          Status status = 10;
          google.protobuf.Timestamp created = 11;
          google.protobuf.Int32Value priority = 12;
          google.protobuf.StringValue note = 13;
          optional int32 discount = 14;
          google.protobuf.Duration ttl = 15;
          google.protobuf.Empty marker = 16;
          google.protobuf.Struct attributes = 17;
          google.protobuf.Any extra = 18;
          bytes blob = 19;
          double price = 20;
          float weight = 21;
          bool gift = 22;
          uint32 small = 23;
          fixed64 big = 24;
          sint32 delta = 25;

          message Line {
            string sku = 1;
            uint32 qty = 2;
          }
        }

        message Refund {
          string order_id = 1;
          int64 amount = 2;
        }

        message Customer {
          string name = 1;
          Address address = 2;
        }

        message Address {
          string city = 1;
        }
    "#;

    fn inline(schema: &str, message: Option<&str>) -> Result<ProtobufDecoder> {
        let spec = PayloadSpec {
            format: PayloadFormat::Protobuf,
            schema: Some(schema.to_owned()),
            message: message.map(str::to_owned),
            ..PayloadSpec::default()
        };
        let context = ResolveContext {
            side: Side::Value,
            spec: &spec,
            topics: &[],
            registry: None,
            json_sample_size: 1,
        };
        ProtobufDecoder::resolve(&context, &mut |_, _| Ok(Vec::new()))
    }

    fn shop(message: Option<&str>) -> ProtobufDecoder {
        inline(SHOP, message).unwrap()
    }

    fn pool(decoder: &ProtobufDecoder) -> DescriptorPool {
        decoder.reader.parent_pool().clone()
    }

    /// A message of type `name` with `fields` set.
    fn build(pool: &DescriptorPool, name: &str, fields: Vec<(&str, Value)>) -> DynamicMessage {
        let descriptor = pool
            .get_message_by_name(name)
            .unwrap_or_else(|| panic!("no message {name}"));
        let mut message = DynamicMessage::new(descriptor);
        for (field, value) in fields {
            message.set_field_by_name(field, value);
        }
        message
    }

    fn string(text: &str) -> Value {
        Value::String(text.to_owned())
    }

    /// A Confluent frame: byte 0, the id big-endian, the message indexes (a lone 0 for [0]),
    /// the body.
    fn frame(id: u32, indexes: &[i32], body: &[u8]) -> Vec<u8> {
        fn zigzag(value: i64, out: &mut Vec<u8>) {
            let mut encoded = ((value << 1) ^ (value >> 63)) as u64;
            while encoded >= 0x80 {
                out.push((encoded as u8) | 0x80);
                encoded >>= 7;
            }
            out.push(encoded as u8);
        }
        let mut out = vec![0];
        out.extend(id.to_be_bytes());
        if indexes == [0] {
            out.push(0);
        } else {
            zigzag(indexes.len() as i64, &mut out);
            for index in indexes {
                zigzag(i64::from(*index), &mut out);
            }
        }
        out.extend(body);
        out
    }

    fn decode(decoder: &mut ProtobufDecoder, payloads: &[Option<Vec<u8>>]) -> Decoded {
        let payloads: Vec<Option<&[u8]>> = payloads.iter().map(Option::as_deref).collect();
        let decoded = decoder.decode(&payloads).unwrap();
        assert_eq!(decoded.array.len(), payloads.len());
        assert_eq!(decoded.array.data_type(), decoder.data_type());
        decoded
    }

    /// Decode payloads that must all succeed; the rows as a struct array.
    fn rows(decoder: &mut ProtobufDecoder, payloads: &[Option<Vec<u8>>]) -> StructArray {
        let decoded = decode(decoder, payloads);
        assert_eq!(decoded.failures, vec![]);
        decoded.array.as_struct().clone()
    }

    fn column<'a>(rows: &'a StructArray, path: &str) -> &'a ArrayRef {
        let mut parts = path.split('.');
        let mut current = rows.column_by_name(parts.next().unwrap()).unwrap();
        for part in parts {
            current = current.as_struct().column_by_name(part).unwrap();
        }
        current
    }

    fn strings(array: &ArrayRef) -> Vec<Option<&str>> {
        array.as_string::<i32>().iter().collect()
    }

    fn field_type(decoder: &ProtobufDecoder, name: &str) -> (DataType, bool) {
        let DataType::Struct(fields) = decoder.data_type() else {
            panic!("not a struct: {}", decoder.data_type());
        };
        let field = fields.iter().find(|field| field.name() == name).unwrap();
        (field.data_type().clone(), field.is_nullable())
    }

    #[test]
    fn test_protobuf_type_mapping() {
        let decoder = shop(None);
        assert_eq!(decoder.reader_name(), "shop.Order");
        let DataType::Struct(fields) = decoder.data_type() else {
            panic!("{}", decoder.data_type());
        };
        let names: Vec<&str> = fields.iter().map(|field| field.name().as_str()).collect();
        assert_eq!(names[..5], ["id", "quantity", "customer", "tags", "lines"]);
        assert_eq!(names.len(), 25);

        let line = Fields::from(vec![
            Field::new("sku", DataType::Utf8, false),
            Field::new("qty", DataType::UInt32, false),
        ]);
        let map = |value: DataType| {
            DataType::Map(
                Arc::new(Field::new(
                    "entries",
                    DataType::Struct(Fields::from(vec![
                        Field::new("key", DataType::Utf8, false),
                        Field::new("value", value, false),
                    ])),
                    false,
                )),
                false,
            )
        };
        let expected = [
            ("id", DataType::Utf8, false),
            ("quantity", DataType::Int64, false),
            (
                "customer",
                DataType::Struct(Fields::from(vec![
                    Field::new("name", DataType::Utf8, false),
                    Field::new(
                        "address",
                        DataType::Struct(Fields::from(vec![Field::new(
                            "city",
                            DataType::Utf8,
                            false,
                        )])),
                        true,
                    ),
                ])),
                true,
            ),
            (
                "tags",
                DataType::List(Arc::new(Field::new("item", DataType::Utf8, false))),
                false,
            ),
            (
                "lines",
                DataType::List(Arc::new(Field::new(
                    "item",
                    DataType::Struct(line.clone()),
                    false,
                ))),
                false,
            ),
            ("counts", map(DataType::Int64), false),
            ("by_sku", map(DataType::Struct(line)), false),
            ("card", DataType::Utf8, true),
            ("voucher", DataType::Int32, true),
            ("status", DataType::Utf8, false),
            (
                "created",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
            ("priority", DataType::Int32, true),
            ("note", DataType::Utf8, true),
            ("discount", DataType::Int32, true),
            ("ttl", DataType::Duration(TimeUnit::Microsecond), true),
            ("marker", DataType::Boolean, true),
            ("attributes", DataType::Utf8, true),
            (
                "extra",
                DataType::Struct(Fields::from(vec![
                    Field::new("type_url", DataType::Utf8, false),
                    Field::new("value", DataType::Binary, false),
                ])),
                true,
            ),
            ("blob", DataType::Binary, false),
            ("price", DataType::Float64, false),
            ("weight", DataType::Float32, false),
            ("gift", DataType::Boolean, false),
            ("small", DataType::UInt32, false),
            ("big", DataType::UInt64, false),
            ("delta", DataType::Int32, false),
        ];
        for (name, data_type, nullable) in expected {
            assert_eq!(
                field_type(&decoder, name),
                (data_type, nullable),
                "field {name}"
            );
        }
    }

    #[test]
    fn test_protobuf_nested_messages() {
        let mut decoder = shop(None);
        let pool = pool(&decoder);
        let address = build(&pool, "shop.Address", vec![("city", string("Lyon"))]);
        let full = build(
            &pool,
            "shop.Order",
            vec![(
                "customer",
                Value::Message(build(
                    &pool,
                    "shop.Customer",
                    vec![
                        ("name", string("Ada")),
                        ("address", Value::Message(address)),
                    ],
                )),
            )],
        );
        let no_address = build(
            &pool,
            "shop.Order",
            vec![(
                "customer",
                Value::Message(build(&pool, "shop.Customer", vec![("name", string("Bob"))])),
            )],
        );
        let no_customer = build(&pool, "shop.Order", vec![("id", string("o3"))]);
        let rows = rows(
            &mut decoder,
            &[
                Some(full.encode_to_vec()),
                Some(no_address.encode_to_vec()),
                Some(no_customer.encode_to_vec()),
            ],
        );
        let customer = column(&rows, "customer");
        assert_eq!(
            (0..3).map(|row| customer.is_valid(row)).collect::<Vec<_>>(),
            [true, true, false]
        );
        assert_eq!(
            strings(column(&rows, "customer.name"))[..2],
            [Some("Ada"), Some("Bob")]
        );
        let address = column(&rows, "customer.address");
        assert_eq!(
            (0..3).map(|row| address.is_valid(row)).collect::<Vec<_>>(),
            [true, false, false]
        );
        assert_eq!(
            strings(column(&rows, "customer.address.city"))[0],
            Some("Lyon")
        );
        assert_eq!(
            strings(column(&rows, "id")),
            [Some(""), Some(""), Some("o3")]
        );
    }

    #[test]
    fn test_protobuf_repeated_scalars_and_messages() {
        let mut decoder = shop(None);
        let pool = pool(&decoder);
        let line = |sku: &str, qty: u32| {
            Value::Message(build(
                &pool,
                "shop.Order.Line",
                vec![("sku", string(sku)), ("qty", Value::U32(qty))],
            ))
        };
        let order = build(
            &pool,
            "shop.Order",
            vec![
                ("tags", Value::List(vec![string("gift"), string("rush")])),
                ("lines", Value::List(vec![line("A-1", 2), line("B-2", 0)])),
            ],
        );
        let empty = build(&pool, "shop.Order", vec![]);
        let rows = rows(
            &mut decoder,
            &[Some(order.encode_to_vec()), Some(empty.encode_to_vec())],
        );
        let tags = column(&rows, "tags").as_list::<i32>();
        assert_eq!(tags.null_count(), 0);
        assert_eq!(strings(&tags.value(0)), [Some("gift"), Some("rush")]);
        assert_eq!(tags.value(1).len(), 0);
        let lines = column(&rows, "lines").as_list::<i32>();
        assert_eq!(lines.null_count(), 0);
        let first = lines.value(0);
        let first = first.as_struct();
        assert_eq!(
            strings(first.column_by_name("sku").unwrap()),
            [Some("A-1"), Some("B-2")]
        );
        assert_eq!(
            first
                .column_by_name("qty")
                .unwrap()
                .as_primitive::<UInt32Type>()
                .values()
                .to_vec(),
            [2, 0]
        );
        assert_eq!(lines.value(1).len(), 0);
    }

    #[test]
    fn test_protobuf_maps() {
        let mut decoder = shop(None);
        let pool = pool(&decoder);
        let counts = HashMap::from([
            (MapKey::String("b".into()), Value::I64(2)),
            (MapKey::String("a".into()), Value::I64(1)),
            (MapKey::String("c".into()), Value::I64(-3)),
        ]);
        let line = build(
            &pool,
            "shop.Order.Line",
            vec![("sku", string("X")), ("qty", Value::U32(5))],
        );
        let by_sku = HashMap::from([(MapKey::String("X".into()), Value::Message(line))]);
        let order = build(
            &pool,
            "shop.Order",
            vec![
                ("counts", Value::Map(counts)),
                ("by_sku", Value::Map(by_sku)),
            ],
        );
        let empty = build(&pool, "shop.Order", vec![]);
        let rows = rows(
            &mut decoder,
            &[Some(order.encode_to_vec()), Some(empty.encode_to_vec())],
        );
        let counts = column(&rows, "counts").as_map();
        assert_eq!(counts.null_count(), 0);
        let entries = counts.value(0);
        assert_eq!(
            strings(entries.column_by_name("key").unwrap()),
            [Some("a"), Some("b"), Some("c")]
        );
        assert_eq!(
            entries
                .column_by_name("value")
                .unwrap()
                .as_primitive::<Int64Type>()
                .values()
                .to_vec(),
            [1, 2, -3]
        );
        assert_eq!(counts.value(1).len(), 0);
        let by_sku = column(&rows, "by_sku").as_map();
        let entries = by_sku.value(0);
        assert_eq!(strings(entries.column_by_name("key").unwrap()), [Some("X")]);
        let lines = entries.column_by_name("value").unwrap().as_struct();
        assert_eq!(strings(lines.column_by_name("sku").unwrap()), [Some("X")]);
        assert_eq!(
            lines
                .column_by_name("qty")
                .unwrap()
                .as_primitive::<UInt32Type>()
                .value(0),
            5
        );
    }

    #[test]
    fn test_protobuf_oneof() {
        let mut decoder = shop(None);
        let pool = pool(&decoder);
        let card = build(&pool, "shop.Order", vec![("card", string("visa"))]);
        // A member set to its default is still the member that is set.
        let voucher = build(&pool, "shop.Order", vec![("voucher", Value::I32(0))]);
        let neither = build(&pool, "shop.Order", vec![]);
        let rows = rows(
            &mut decoder,
            &[
                Some(card.encode_to_vec()),
                Some(voucher.encode_to_vec()),
                Some(neither.encode_to_vec()),
            ],
        );
        assert_eq!(strings(column(&rows, "card")), [Some("visa"), None, None]);
        let voucher: Vec<Option<i32>> = column(&rows, "voucher")
            .as_primitive::<Int32Type>()
            .iter()
            .collect();
        assert_eq!(voucher, [None, Some(0), None]);
    }

    #[test]
    fn test_protobuf_enums() {
        let mut decoder = shop(None);
        let pool = pool(&decoder);
        let payloads: Vec<Option<Vec<u8>>> = [Some(1), None, Some(7)]
            .into_iter()
            .map(|status| {
                let fields = status
                    .map(|number| vec![("status", Value::EnumNumber(number))])
                    .unwrap_or_default();
                Some(build(&pool, "shop.Order", fields).encode_to_vec())
            })
            .collect();
        let rows = rows(&mut decoder, &payloads);
        assert_eq!(
            strings(column(&rows, "status")),
            [Some("STATUS_PAID"), Some("STATUS_NEW"), Some("7")]
        );
    }

    #[test]
    fn test_protobuf_well_known_types() {
        let mut decoder = shop(None);
        let pool = pool(&decoder);
        let timestamp = build(
            &pool,
            "google.protobuf.Timestamp",
            vec![
                ("seconds", Value::I64(1_700_000_000)),
                ("nanos", Value::I32(123_456_789)),
            ],
        );
        let before_epoch = build(
            &pool,
            "google.protobuf.Timestamp",
            vec![
                ("seconds", Value::I64(-2)),
                ("nanos", Value::I32(500_000_000)),
            ],
        );
        let ttl = build(
            &pool,
            "google.protobuf.Duration",
            vec![
                ("seconds", Value::I64(-90)),
                ("nanos", Value::I32(-250_000_999)),
            ],
        );
        let int32 = build(
            &pool,
            "google.protobuf.Int32Value",
            vec![("value", Value::I32(0))],
        );
        let note = build(
            &pool,
            "google.protobuf.StringValue",
            vec![("value", string("hi"))],
        );
        let json = |kind: &str, value: Value| {
            Value::Message(build(&pool, "google.protobuf.Value", vec![(kind, value)]))
        };
        let inner = build(
            &pool,
            "google.protobuf.Struct",
            vec![(
                "fields",
                Value::Map(HashMap::from([(
                    MapKey::String("d".into()),
                    json("number_value", Value::F64(1.5)),
                )])),
            )],
        );
        let list = build(
            &pool,
            "google.protobuf.ListValue",
            vec![(
                "values",
                Value::List(vec![
                    json("bool_value", Value::Bool(true)),
                    json("null_value", Value::EnumNumber(0)),
                    json("string_value", string("x\"y")),
                    json("number_value", Value::F64(f64::NAN)),
                ]),
            )],
        );
        let attributes = build(
            &pool,
            "google.protobuf.Struct",
            vec![(
                "fields",
                Value::Map(HashMap::from([
                    (
                        MapKey::String("b".into()),
                        json("list_value", Value::Message(list)),
                    ),
                    (
                        MapKey::String("a".into()),
                        json("number_value", Value::F64(1.0)),
                    ),
                    (
                        MapKey::String("c".into()),
                        json("struct_value", Value::Message(inner)),
                    ),
                ])),
            )],
        );
        let extra = build(
            &pool,
            "google.protobuf.Any",
            vec![
                ("type_url", string("type.googleapis.com/shop.Refund")),
                ("value", Value::Bytes(vec![8, 1].into())),
            ],
        );
        let set = build(
            &pool,
            "shop.Order",
            vec![
                ("created", Value::Message(timestamp)),
                ("ttl", Value::Message(ttl)),
                ("priority", Value::Message(int32)),
                ("note", Value::Message(note)),
                (
                    "marker",
                    Value::Message(build(&pool, "google.protobuf.Empty", vec![])),
                ),
                ("attributes", Value::Message(attributes)),
                ("extra", Value::Message(extra)),
            ],
        );
        let early = build(
            &pool,
            "shop.Order",
            vec![("created", Value::Message(before_epoch))],
        );
        let unset = build(&pool, "shop.Order", vec![]);
        let rows = rows(
            &mut decoder,
            &[
                Some(set.encode_to_vec()),
                Some(early.encode_to_vec()),
                Some(unset.encode_to_vec()),
            ],
        );
        let created: Vec<Option<i64>> = column(&rows, "created")
            .as_primitive::<TimestampMicrosecondType>()
            .iter()
            .collect();
        assert_eq!(
            created,
            [Some(1_700_000_000_123_456), Some(-1_500_000), None]
        );
        let ttl: Vec<Option<i64>> = column(&rows, "ttl")
            .as_primitive::<DurationMicrosecondType>()
            .iter()
            .collect();
        assert_eq!(ttl, [Some(-90_250_000), None, None]);
        let priority: Vec<Option<i32>> = column(&rows, "priority")
            .as_primitive::<Int32Type>()
            .iter()
            .collect();
        assert_eq!(priority, [Some(0), None, None]);
        assert_eq!(strings(column(&rows, "note")), [Some("hi"), None, None]);
        let marker: Vec<Option<bool>> = column(&rows, "marker").as_boolean().iter().collect();
        assert_eq!(marker, [Some(true), None, None]);
        assert_eq!(
            strings(column(&rows, "attributes")),
            [
                Some(r#"{"a":1,"b":[true,null,"x\"y","NaN"],"c":{"d":1.5}}"#),
                None,
                None
            ]
        );
        let extra = column(&rows, "extra");
        assert!(extra.is_valid(0) && extra.is_null(2));
        assert_eq!(
            strings(column(&rows, "extra.type_url"))[0],
            Some("type.googleapis.com/shop.Refund")
        );
        assert_eq!(
            column(&rows, "extra.value").as_binary::<i32>().value(0),
            [8, 1]
        );
    }

    #[test]
    fn test_protobuf_proto3_optional_presence() {
        let mut decoder = shop(None);
        let pool = pool(&decoder);
        let zero = build(&pool, "shop.Order", vec![("discount", Value::I32(0))]);
        let five = build(
            &pool,
            "shop.Order",
            vec![("discount", Value::I32(5)), ("quantity", Value::I64(3))],
        );
        let absent = build(&pool, "shop.Order", vec![]);
        let rows = rows(
            &mut decoder,
            &[
                Some(zero.encode_to_vec()),
                Some(five.encode_to_vec()),
                Some(absent.encode_to_vec()),
            ],
        );
        let discount: Vec<Option<i32>> = column(&rows, "discount")
            .as_primitive::<Int32Type>()
            .iter()
            .collect();
        assert_eq!(discount, [Some(0), Some(5), None]);
        // Without presence: absent reads as the default, never NULL.
        let quantity = column(&rows, "quantity").as_primitive::<Int64Type>();
        assert_eq!(quantity.null_count(), 0);
        assert_eq!(quantity.values().to_vec(), [0, 3, 0]);
    }

    #[test]
    fn test_protobuf_message_not_first_in_file() {
        let mut refunds = shop(Some("shop.Refund"));
        assert_eq!(refunds.reader_name(), "shop.Refund");
        let pool = pool(&refunds);
        let refund = build(
            &pool,
            "shop.Refund",
            vec![("order_id", string("o1")), ("amount", Value::I64(250))],
        );
        let decoded = rows(
            &mut refunds,
            &[Some(frame(3, &[1], &refund.encode_to_vec()))],
        );
        assert_eq!(strings(column(&decoded, "order_id")), [Some("o1")]);
        assert_eq!(
            column(&decoded, "amount")
                .as_primitive::<Int64Type>()
                .value(0),
            250
        );

        let mut lines = shop(Some(".shop.Order.Line"));
        let line = build(
            &pool,
            "shop.Order.Line",
            vec![("sku", string("A")), ("qty", Value::U32(4))],
        );
        let decoded = rows(
            &mut lines,
            &[Some(frame(3, &[0, 0], &line.encode_to_vec()))],
        );
        assert_eq!(strings(column(&decoded, "sku")), [Some("A")]);

        // With a registry the indexes are checked against the writer schema.
        let registry = MemoryRegistry::with(vec![registered(3, SHOP, vec![])]);
        let mut decoder = registry.decoder(3, Some("shop.Refund")).unwrap();
        let decoded = decode(
            &mut decoder,
            &[
                Some(frame(3, &[1], &refund.encode_to_vec())),
                Some(frame(3, &[0], &refund.encode_to_vec())),
                Some(frame(3, &[0, 0], &refund.encode_to_vec())),
                Some(frame(3, &[9], &refund.encode_to_vec())),
            ],
        );
        assert!(decoded.array.is_valid(0));
        let reasons: Vec<(usize, Option<u32>, &str)> = decoded
            .failures
            .iter()
            .map(|failure| (failure.row, failure.schema_id, failure.reason.as_str()))
            .collect();
        assert_eq!(
            reasons,
            [
                (
                    1,
                    Some(3),
                    "written as message shop.Order, reader message is shop.Refund"
                ),
                (
                    2,
                    Some(3),
                    "written as message shop.Order.Line, reader message is shop.Refund"
                ),
                (
                    3,
                    Some(3),
                    "the message indexes [9] name no message of the writer schema"
                ),
            ]
        );
        assert_eq!(decoded.array.null_count(), 3);

        // Order declares its map fields before Line: Java's serializer writes Line as [0, 0]
        // (declared messages only), Python's and Go's as [0, 2] (after the two map entries).
        let mut decoder = registry.decoder(3, Some("shop.Order.Line")).unwrap();
        let decoded = rows(
            &mut decoder,
            &[
                Some(frame(3, &[0, 0], &line.encode_to_vec())),
                Some(frame(3, &[0, 2], &line.encode_to_vec())),
            ],
        );
        assert_eq!(
            column(&decoded, "qty")
                .as_primitive::<UInt32Type>()
                .values()
                .to_vec(),
            [4, 4]
        );
    }

    #[test]
    fn test_protobuf_field_number_evolution() {
        let reader = r#"
            syntax = "proto3";
            message Item {
              string name = 1;
              int32 count = 2;
              optional string size = 4;
              repeated string labels = 5;
            }
        "#;
        let newer = r#"
            syntax = "proto3";
            message Item {
              string name = 1;
              int32 count = 2;
              string color = 3;
              optional string size = 4;
              repeated string labels = 5;
            }
        "#;
        let older = r#"
            syntax = "proto3";
            message Item {
              string name = 1;
            }
        "#;
        let newer_pool = pool(&inline(newer, None).unwrap());
        let older_pool = pool(&inline(older, None).unwrap());
        // The writer has a field the reader lacks (color), and sets one the reader has.
        let with_extra = build(
            &newer_pool,
            "Item",
            vec![
                ("name", string("mug")),
                ("count", Value::I32(2)),
                ("color", string("red")),
                ("size", string("L")),
            ],
        );
        // The writer lacks fields the reader has.
        let lacking = build(&older_pool, "Item", vec![("name", string("cup"))]);
        let registry = MemoryRegistry::with(vec![
            registered(1, reader, vec![]),
            registered(2, newer, vec![]),
            registered(3, older, vec![]),
        ]);
        let mut decoder = registry.decoder(1, None).unwrap();
        let rows = rows(
            &mut decoder,
            &[
                Some(frame(2, &[0], &with_extra.encode_to_vec())),
                Some(frame(3, &[0], &lacking.encode_to_vec())),
            ],
        );
        assert_eq!(rows.num_columns(), 4);
        assert_eq!(strings(column(&rows, "name")), [Some("mug"), Some("cup")]);
        assert_eq!(
            column(&rows, "count")
                .as_primitive::<Int32Type>()
                .values()
                .to_vec(),
            [2, 0]
        );
        assert_eq!(strings(column(&rows, "size")), [Some("L"), None]);
        let labels = column(&rows, "labels").as_list::<i32>();
        assert_eq!((labels.null_count(), labels.value(1).len()), (0, 0));
    }

    #[test]
    fn test_protobuf_non_framed_payload() {
        let mut decoder = shop(None);
        let pool = pool(&decoder);
        let order = build(&pool, "shop.Order", vec![("id", string("o1"))]).encode_to_vec();
        // Inline: bare and framed bodies alike.
        let rows = rows(
            &mut decoder,
            &[Some(order.clone()), Some(frame(12, &[0], &order))],
        );
        assert_eq!(strings(column(&rows, "id")), [Some("o1"), Some("o1")]);

        // Registry: the frame is required.
        let registry = MemoryRegistry::with(vec![registered(12, SHOP, vec![])]);
        let mut decoder = registry.decoder(12, None).unwrap();
        let decoded = decode(&mut decoder, &[Some(order), Some(vec![])]);
        assert_eq!(decoded.failures.len(), 2);
        assert_eq!(decoded.failures[0].schema_id, None);
        assert!(
            decoded.failures[0]
                .reason
                .starts_with("the payload is not in the Confluent wire format"),
            "{}",
            decoded.failures[0].reason
        );
        assert_eq!(decoded.array.null_count(), 2);
    }

    #[test]
    fn test_protobuf_truncated_body() {
        let mut decoder = shop(None);
        let pool = pool(&decoder);
        let order = build(
            &pool,
            "shop.Order",
            vec![("id", string("order-1")), ("quantity", Value::I64(3))],
        )
        .encode_to_vec();
        let truncated = &order[..order.len() - 3];
        let decoded = decode(
            &mut decoder,
            &[
                Some(frame(5, &[0], truncated)),
                Some(order),
                Some(vec![0, 0, 0, 0, 5, 0x80]),
            ],
        );
        assert!(decoded.array.is_null(0) && decoded.array.is_valid(1) && decoded.array.is_null(2));
        assert_eq!(decoded.failures.len(), 2);
        assert_eq!(
            (decoded.failures[0].row, decoded.failures[0].schema_id),
            (0, Some(5))
        );
        assert!(
            decoded.failures[0]
                .reason
                .starts_with("the body is not a valid shop.Order message: "),
            "{}",
            decoded.failures[0].reason
        );
        assert_eq!(
            decoded.failures[1].reason,
            "truncated Protobuf message-index varint"
        );
    }

    #[test]
    fn test_protobuf_null_payloads_are_null_rows() {
        let mut decoder = shop(None);
        let empty = Vec::new();
        let decoded = decode(&mut decoder, &[None, Some(empty), None]);
        assert!(decoded.failures.is_empty());
        assert_eq!(decoded.array.null_count(), 2);
        // An empty body is a message with every field at its default.
        let rows = decoded.array.as_struct();
        assert_eq!(strings(column(rows, "status"))[1], Some("STATUS_NEW"));
    }

    #[test]
    fn test_protobuf_timestamp_out_of_range_fails_the_record() {
        let mut decoder = shop(None);
        let pool = pool(&decoder);
        let far = build(
            &pool,
            "google.protobuf.Timestamp",
            vec![("seconds", Value::I64(i64::MAX / 1000))],
        );
        let order = build(&pool, "shop.Order", vec![("created", Value::Message(far))]);
        let decoded = decode(&mut decoder, &[Some(order.encode_to_vec())]);
        assert_eq!(decoded.failures.len(), 1);
        assert!(
            decoded.failures[0]
                .reason
                .starts_with("value.created: google.protobuf.Timestamp {seconds: "),
            "{}",
            decoded.failures[0].reason
        );
    }

    #[test]
    fn test_protobuf_recursive_schema_error() {
        let direct = r#"
            syntax = "proto3";
            package tree;
            message Node {
              string name = 1;
              repeated Node children = 2;
            }
        "#;
        let error = inline(direct, None).err().unwrap().to_string();
        assert!(
            error.starts_with(
                "value_schema: message tree.Node is recursive: value.children holds a tree.Node \
                 inside a tree.Node"
            ),
            "{error}"
        );
        let indirect = r#"
            syntax = "proto2";
            message Top { optional A a = 1; }
            message A { optional B b = 1; }
            message B { map<string, A> back = 1; }
        "#;
        let error = inline(indirect, None).err().unwrap().to_string();
        assert!(
            error.contains("message A is recursive: value.a.b.back holds"),
            "{error}"
        );
        // The same message twice side by side is no recursion.
        let siblings = r#"
            syntax = "proto3";
            message Pair { Point from = 1; Point to = 2; }
            message Point { int32 x = 1; }
        "#;
        assert!(inline(siblings, None).is_ok());
    }

    #[test]
    fn test_protobuf_malformed_inline_schema() {
        let error = inline("syntax = \"proto3\";\nmessage Order { int32 = 1; }", None)
            .err()
            .unwrap();
        let Error::Schema { what, reason } = &error else {
            panic!("{error:?}");
        };
        assert_eq!(what, "value_schema");
        assert!(!reason.is_empty());
        let error = inline(
            "syntax = \"proto3\";\nmessage Order { Missing m = 1; }",
            None,
        )
        .err()
        .unwrap()
        .to_string();
        assert!(error.starts_with("value_schema: "), "{error}");
        assert!(error.contains("Missing"), "{error}");
        let error = inline("syntax = \"proto3\";\nimport \"other.proto\";", None)
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("other.proto"), "{error}");
        let error = inline("syntax = \"proto3\";\nenum E { E_A = 0; }", None)
            .err()
            .unwrap()
            .to_string();
        assert_eq!(error, "value_schema: it defines no message");
    }

    #[test]
    fn test_protobuf_unknown_message_name() {
        let error = inline(SHOP, Some("shop.Ordr")).err().unwrap().to_string();
        assert_eq!(
            error,
            "invalid value_message: expected a message of value_schema (shop.Order, \
             shop.Order.Line, shop.Refund, shop.Customer, shop.Address), found 'shop.Ordr'"
        );
    }

    #[test]
    fn test_protobuf_empty_message_reads_as_true() {
        let mut decoder = inline("syntax = \"proto3\";\nmessage Ping {}", None).unwrap();
        assert_eq!(decoder.data_type(), &DataType::Boolean);
        let decoded = decode(&mut decoder, &[Some(vec![]), None]);
        let values: Vec<Option<bool>> = decoded.array.as_boolean().iter().collect();
        assert_eq!(values, [Some(true), None]);
    }

    // --- registry mode, against schemas held in memory ---

    /// Registry schemas in memory, answering as the registry client does.
    #[derive(Default)]
    struct MemoryRegistry {
        by_id: HashMap<u32, Arc<RegisteredSchema>>,
        by_version: HashMap<(String, String), Arc<RegisteredSchema>>,
        /// Every request fails as if the registry were down.
        down: bool,
    }

    impl MemoryRegistry {
        fn with(schemas: Vec<RegisteredSchema>) -> Arc<Self> {
            let mut registry = Self::default();
            for schema in schemas {
                registry.by_id.insert(schema.id, Arc::new(schema));
            }
            Arc::new(registry)
        }

        fn decoder(
            self: &Arc<Self>,
            reader_id: u32,
            message: Option<&str>,
        ) -> Result<ProtobufDecoder> {
            let schema = self.by_id[&reader_id].clone();
            ProtobufDecoder::from_registry(Side::Value, message, &schema, self.clone())
        }

        fn answer(&self, what: String) -> Result<Option<&Arc<RegisteredSchema>>> {
            if self.down {
                return Err(Error::Registry {
                    url: "http://registry.test".into(),
                    reason: format!("could not connect for {what}"),
                });
            }
            Ok(None)
        }

        fn not_found(what: String) -> Error {
            Error::Registry {
                url: "http://registry.test".into(),
                reason: format!("{what} not found (HTTP 404, error 40403: Schema not found)"),
            }
        }
    }

    impl SchemaLookup for MemoryRegistry {
        fn schema_by_id(&self, id: u32) -> Result<Arc<RegisteredSchema>> {
            self.answer(format!("schema id {id}"))?;
            self.by_id
                .get(&id)
                .cloned()
                .ok_or_else(|| Self::not_found(format!("schema id {id}")))
        }

        fn version(&self, subject: &str, version: &str) -> Result<Arc<RegisteredSchema>> {
            self.answer(format!("subject '{subject}'"))?;
            self.by_version
                .get(&(subject.to_owned(), version.to_owned()))
                .cloned()
                .ok_or_else(|| Self::not_found(format!("subject '{subject}' version {version}")))
        }
    }

    fn registered(id: u32, schema: &str, references: Vec<SchemaReference>) -> RegisteredSchema {
        RegisteredSchema {
            id,
            schema_type: SchemaType::Protobuf,
            schema: schema.to_owned(),
            references,
        }
    }

    #[test]
    fn test_protobuf_registry_unknown_schema_id_fails_the_record() {
        let registry = MemoryRegistry::with(vec![registered(1, SHOP, vec![])]);
        let mut decoder = registry.decoder(1, None).unwrap();
        let order = build(&pool(&decoder), "shop.Order", vec![("id", string("o"))]);
        let decoded = decode(
            &mut decoder,
            &[
                Some(frame(404, &[0], &order.encode_to_vec())),
                Some(frame(1, &[0], &order.encode_to_vec())),
                Some(frame(404, &[0], &order.encode_to_vec())),
            ],
        );
        assert_eq!(decoded.failures.len(), 2);
        assert_eq!(decoded.failures[1].row, 2);
        assert_eq!(decoded.failures[0].schema_id, Some(404));
        assert!(
            decoded.failures[0]
                .reason
                .contains("schema id 404 not found (HTTP 404"),
            "{}",
            decoded.failures[0].reason
        );
        assert!(decoded.array.is_valid(1));
    }

    #[test]
    fn test_protobuf_registry_unreachable_fails_the_call() {
        let mut registry = MemoryRegistry::default();
        registry
            .by_id
            .insert(1, Arc::new(registered(1, SHOP, vec![])));
        registry.down = true;
        let registry = Arc::new(registry);
        let mut decoder = registry.decoder(1, None).unwrap();
        // The reader's own id needs no request.
        let payload = frame(1, &[0], &[]);
        assert!(decoder.decode(&[Some(&payload)]).is_ok());
        let payload = frame(2, &[0], &[]);
        let error = decoder.decode(&[Some(&payload)]).err().unwrap().to_string();
        assert!(error.contains("could not connect"), "{error}");
    }

    #[test]
    fn test_protobuf_registry_references_and_descriptors() {
        // Apicurio returns a base64 FileDescriptorProto, named as its producer named it.
        let common = r#"
            syntax = "proto3";
            package common;
            import "google/protobuf/timestamp.proto";
            message Money { int64 cents = 1; string currency = 2; }
            message Stamp { google.protobuf.Timestamp at = 1; }
        "#;
        let mut files = SchemaFiles::default();
        files
            .0
            .insert("elsewhere/money.proto".into(), common.into());
        let compiled = compile("elsewhere/money.proto", files).unwrap();
        let encoded = base64::engine::general_purpose::STANDARD
            .encode(compiled.file_descriptor_proto().encode_to_vec());
        let order = r#"
            syntax = "proto3";
            package shop;
            import "common.proto";
            message Order { common.Money total = 1; common.Stamp stamp = 2; }
        "#;
        let mut registry = MemoryRegistry::default();
        registry.by_version.insert(
            ("common-value".into(), "4".into()),
            Arc::new(registered(20, &encoded, vec![])),
        );
        let reference = SchemaReference {
            name: "common.proto".into(),
            subject: "common-value".into(),
            version: 4,
        };
        registry
            .by_id
            .insert(21, Arc::new(registered(21, order, vec![reference.clone()])));
        // The writer schema is itself a descriptor, importing the same reference.
        let mut files = SchemaFiles::default();
        files.0.insert("order.proto".into(), order.into());
        files.0.insert("common.proto".into(), common.into());
        let writer = compile("order.proto", files).unwrap();
        let writer_encoded = base64::engine::general_purpose::STANDARD
            .encode(writer.file_descriptor_proto().encode_to_vec());
        registry.by_id.insert(
            22,
            Arc::new(registered(22, &writer_encoded, vec![reference])),
        );
        let registry = Arc::new(registry);

        let mut decoder = registry.decoder(21, None).unwrap();
        let pool = pool(&decoder);
        let money = build(
            &pool,
            "common.Money",
            vec![("cents", Value::I64(1999)), ("currency", string("EUR"))],
        );
        let order = build(&pool, "shop.Order", vec![("total", Value::Message(money))]);
        let rows = rows(
            &mut decoder,
            &[
                Some(frame(21, &[0], &order.encode_to_vec())),
                Some(frame(22, &[0], &order.encode_to_vec())),
            ],
        );
        assert_eq!(
            column(&rows, "total.cents")
                .as_primitive::<Int64Type>()
                .values()
                .to_vec(),
            [1999, 1999]
        );
        assert_eq!(
            field_type(&decoder, "stamp").0,
            DataType::Struct(Fields::from(vec![Field::new(
                "at",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            )]))
        );
    }

    #[test]
    fn test_protobuf_registry_refuses_other_schema_types() {
        let avro = RegisteredSchema {
            schema_type: SchemaType::Avro,
            ..registered(7, "\"string\"", vec![])
        };
        let registry = MemoryRegistry::with(vec![avro]);
        let error = registry.decoder(7, None).err().unwrap().to_string();
        assert_eq!(
            error,
            "schema id 7: the registry holds an Avro schema, not a Protobuf one: set \
             value_format to 'avro'"
        );
    }

    // --- the wire reader against prost-reflect ---

    /// proto2: unpacked repeated fields, defaults, a group, an extension, sparse numbers.
    const LEGACY: &str = r#"
        syntax = "proto2";
        package legacy;
        import "google/protobuf/duration.proto";
        import "google/protobuf/wrappers.proto";

        message Record {
          optional int32 a = 1;
          optional sint64 b = 2 [default = -5];
          repeated fixed32 c = 3;
          repeated sfixed64 d = 4 [packed = true];
          repeated Kind kinds = 5;
          optional Kind kind = 6 [default = BETA];
          map<int32, string> by_id = 7;
          map<bool, Inner> flags = 8;
          map<sint64, double> scores = 9;
          map<uint64, Kind> kinds_by = 10;
          optional group Legacy = 11 { optional int32 x = 12; }
          oneof choice {
            float f = 13;
            bytes raw = 14;
            Inner inner = 15;
          }
          optional google.protobuf.Duration took = 16;
          required string name = 17;
          repeated google.protobuf.UInt64Value counters = 18;
          map<fixed32, google.protobuf.BoolValue> seen = 19;
          optional uint32 far = 100000;
          extensions 200 to 300;

          message Inner {
            optional string s = 1;
            repeated int64 v = 2;
            optional Inner2 deeper = 3;
          }
          message Inner2 { optional sfixed32 z = 1; }
          enum Kind {
            ALPHA = 1;
            BETA = 2;
          }
        }

        extend Record {
          optional int32 ext = 200;
        }
    "#;

    /// A small deterministic generator (splitmix64).
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        fn chance(&mut self, percent: u64) -> bool {
            self.below(100) < percent
        }

        fn int(&mut self) -> i64 {
            match self.below(4) {
                0 => 0,
                1 => self.below(300) as i64 - 150,
                2 => self.next() as i64,
                _ => [i64::MIN, i64::MAX, -1, 1][self.below(4) as usize],
            }
        }

        fn text(&mut self) -> String {
            let pieces = ["", "a", "b", "é", "数", "🦀", "z", "\"", "\u{0}"];
            (0..self.below(4))
                .map(|_| pieces[self.below(pieces.len() as u64) as usize])
                .collect()
        }
    }

    fn random_message(
        rng: &mut Rng,
        descriptor: &MessageDescriptor,
        depth: usize,
    ) -> DynamicMessage {
        let mut message = DynamicMessage::new(descriptor.clone());
        match descriptor.full_name() {
            "google.protobuf.Timestamp" | "google.protobuf.Duration" => {
                let seconds = if rng.chance(10) {
                    rng.int()
                } else {
                    rng.int() % 100_000_000_000
                };
                let nanos = rng.below(1_000_000_000) as i32;
                message.set_field_by_number(1, Value::I64(seconds));
                message
                    .set_field_by_number(2, Value::I32(if seconds < 0 { -nanos } else { nanos }));
                return message;
            }
            "google.protobuf.Value" => {
                let kind = if depth > 3 {
                    rng.below(4) + 1
                } else {
                    rng.below(6) + 1
                };
                let value = match kind {
                    1 => Value::EnumNumber(0),
                    2 => Value::F64([0.5, -3.0, f64::NAN, 1e300][rng.below(4) as usize]),
                    3 => Value::String(rng.text()),
                    4 => Value::Bool(rng.chance(50)),
                    _ => {
                        let field = descriptor.get_field(kind as u32).unwrap();
                        let Kind::Message(inner) = field.kind() else {
                            unreachable!()
                        };
                        Value::Message(random_message(rng, &inner, depth + 1))
                    }
                };
                message.set_field_by_number(kind as u32, value);
                return message;
            }
            _ => {}
        }
        for field in descriptor.fields() {
            if rng.chance(55) {
                let value = random_field(rng, &field, depth);
                message.set_field(&field, value);
            }
        }
        message
    }

    fn random_field(rng: &mut Rng, field: &FieldDescriptor, depth: usize) -> Value {
        let count = if depth > 2 { 0 } else { rng.below(4) };
        if field.is_map() {
            let Kind::Message(entry) = field.kind() else {
                unreachable!()
            };
            let key_kind = entry.map_entry_key_field().kind();
            let value_kind = entry.map_entry_value_field().kind();
            let entries = (0..count)
                .filter_map(|_| {
                    random_value(rng, &key_kind, depth)
                        .into_map_key()
                        .map(|key| (key, random_value(rng, &value_kind, depth)))
                })
                .collect();
            Value::Map(entries)
        } else if field.is_list() {
            Value::List(
                (0..count)
                    .map(|_| random_value(rng, &field.kind(), depth))
                    .collect(),
            )
        } else {
            random_value(rng, &field.kind(), depth)
        }
    }

    fn random_value(rng: &mut Rng, kind: &Kind, depth: usize) -> Value {
        match kind {
            Kind::Double => {
                Value::F64([0.0, -1.5, f64::NAN, f64::INFINITY, 1e-310][rng.below(5) as usize])
            }
            Kind::Float => Value::F32([0.0, 2.5, f32::NAN, -f32::INFINITY][rng.below(4) as usize]),
            Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => Value::I32(rng.int() as i32),
            Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => Value::I64(rng.int()),
            Kind::Uint32 | Kind::Fixed32 => Value::U32(rng.int() as u32),
            Kind::Uint64 | Kind::Fixed64 => Value::U64(rng.int() as u64),
            Kind::Bool => Value::Bool(rng.chance(50)),
            Kind::String => Value::String(rng.text()),
            Kind::Bytes => Value::Bytes(rng.text().into_bytes().into()),
            Kind::Enum(descriptor) => {
                if rng.chance(80) {
                    let values: Vec<i32> = descriptor.values().map(|v| v.number()).collect();
                    Value::EnumNumber(values[rng.below(values.len() as u64) as usize])
                } else {
                    Value::EnumNumber(rng.int() as i32)
                }
            }
            Kind::Message(descriptor) => Value::Message(random_message(rng, descriptor, depth + 1)),
        }
    }

    /// Unknown fields of every wire type, numbers the messages don't use.
    fn unknown_fields(rng: &mut Rng) -> Vec<u8> {
        let mut out = Vec::new();
        for _ in 0..rng.below(3) + 1 {
            let number = [150u64, 999, 5000, 200, 536_870_911][rng.below(5) as usize];
            let wire = [0u64, 1, 2, 5][rng.below(4) as usize];
            let mut key = (number << 3) | wire;
            while key >= 0x80 {
                out.push((key as u8) | 0x80);
                key >>= 7;
            }
            out.push(key as u8);
            match wire {
                0 => out.extend([0x96, 0x01]),
                1 => out.extend([7u8; 8]),
                2 => out.extend([3, b'x', b'y', b'z']),
                _ => out.extend([9u8; 4]),
            }
        }
        out
    }

    /// Bodies of `descriptor` messages, valid and broken, as they may arrive.
    fn random_bodies(rng: &mut Rng, descriptor: &MessageDescriptor) -> Vec<Vec<u8>> {
        let mut bodies = Vec::new();
        for _ in 0..6 {
            let body = random_message(rng, descriptor, 0).encode_to_vec();
            let other = random_message(rng, descriptor, 0).encode_to_vec();
            bodies.push(body.clone());
            // Two messages concatenated read as one merged message.
            bodies.push([body.as_slice(), other.as_slice()].concat());
            let mut unknown = body.clone();
            unknown.extend(unknown_fields(rng));
            bodies.push(unknown);
            if !body.is_empty() {
                let mut flipped = body.clone();
                let at = rng.below(body.len() as u64) as usize;
                flipped[at] ^= 1 << rng.below(8);
                bodies.push(flipped);
                bodies.push(body[..rng.below(body.len() as u64) as usize].to_vec());
            }
        }
        bodies
    }

    fn assert_wire_reader_matches(schema: &str, message: Option<&str>, seed: u64) {
        let mut wire = inline(schema, message).unwrap();
        let mut reference = inline(schema, message).unwrap();
        reference.wire_reader = false;
        let descriptor = wire.reader.clone();
        let mut rng = Rng(seed);
        let bodies = random_bodies(&mut rng, &descriptor);
        let mut payloads: Vec<Option<&[u8]>> =
            bodies.iter().map(|body| Some(body.as_slice())).collect();
        payloads.push(None);
        let fast = wire.decode(&payloads).unwrap();
        let slow = reference.decode(&payloads).unwrap();
        assert_eq!(fast.failures, slow.failures, "seed {seed}");
        assert_eq!(fast.array.to_data(), slow.array.to_data(), "seed {seed}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// The wire reader appends exactly what prost-reflect decodes, for valid, merged,
        /// extended and broken bodies alike.
        #[test]
        fn test_protobuf_wire_reader_matches_prost_reflect(seed in proptest::prelude::any::<u64>()) {
            assert_wire_reader_matches(SHOP, None, seed);
            assert_wire_reader_matches(SHOP, Some("shop.Refund"), seed);
            assert_wire_reader_matches(LEGACY, None, seed);
        }
    }

    // A group field sent length-delimited (key 0x5a: field 11, wire type 2) is an error to
    // prost-reflect; the wire reader must not read it as a message (found by the property
    // test above).
    #[test]
    fn test_protobuf_group_field_with_another_wire_type_fails() {
        let mut decoder = inline(LEGACY, None).unwrap();
        let decoded = decode(&mut decoder, &[Some(vec![0x5a, 0x00])]);
        assert_eq!(decoded.failures.len(), 1);
        assert!(
            decoded.failures[0].reason.contains("invalid wire type"),
            "{}",
            decoded.failures[0].reason
        );
        assert!(!decoder.shape.fits_message(&[0x5a, 0x00], 0));
    }

    #[test]
    fn test_protobuf_wire_reader_takes_plain_bodies() {
        // Most well-formed bodies skip prost-reflect; merged, grouped and JSON ones don't.
        let decoder = shop(None);
        let mut rng = Rng(7);
        let fitting = (0..200)
            .filter(|_| {
                let body = random_message(&mut rng, &decoder.reader, 0).encode_to_vec();
                decoder.shape.fits_message(&body, 0)
            })
            .count();
        assert!(fitting > 50, "{fitting} of 200 bodies fit");
        let pool = pool(&decoder);
        let plain = build(&pool, "shop.Order", vec![("id", string("o1"))]).encode_to_vec();
        assert!(decoder.shape.fits_message(&plain, 0));
        let attributes = build(
            &pool,
            "shop.Order",
            vec![(
                "attributes",
                Value::Message(build(&pool, "google.protobuf.Struct", vec![])),
            )],
        )
        .encode_to_vec();
        assert!(!decoder.shape.fits_message(&attributes, 0));
        let customer = build(
            &pool,
            "shop.Order",
            vec![(
                "customer",
                Value::Message(build(&pool, "shop.Customer", vec![])),
            )],
        )
        .encode_to_vec();
        assert!(decoder.shape.fits_message(&customer, 0));
        assert!(!decoder
            .shape
            .fits_message(&[customer.clone(), customer].concat(), 0));
    }

    /// Apicurio 3.3.3's answer for a schema confluent-kafka 2.16.1's ProtobufSerializer
    /// registered (a base64 FileDescriptorProto importing timestamp.proto):
    ///
    /// ```proto
    /// syntax = "proto3";
    /// package probe;
    /// import "google/protobuf/timestamp.proto";
    /// message Outer {
    ///   map<string, int64> counts = 1;
    ///   message Inner { string name = 1; }
    ///   Inner inner = 2;
    ///   google.protobuf.Timestamp at = 3;
    /// }
    /// message Second { int32 x = 1; }
    /// ```
    const APICURIO_PROBE: &str = concat!(
        "Cgtwcm9iZS5wcm90bxIFcHJvYmUaH2dvb2dsZS9wcm90b2J1Zi90aW1lc3RhbXAucHJvdG8i5wEKBU91dGVy",
        "EjAKBmNvdW50cxgBIAMoCzIYLnByb2JlLk91dGVyLkNvdW50c0VudHJ5UgZjb3VudHMSKAoFaW5uZXIYAiAB",
        "KAsyEi5wcm9iZS5PdXRlci5Jbm5lclIFaW5uZXISKgoCYXQYAyABKAsyGi5nb29nbGUucHJvdG9idWYuVGlt",
        "ZXN0YW1wUgJhdBo5CgtDb3VudHNFbnRyeRIQCgNrZXkYASABKAlSA2tleRIUCgV2YWx1ZRgCIAEoA1IFdmFs",
        "dWU6AjgBGhsKBUlubmVyEhIKBG5hbWUYASABKAlSBG5hbWUiFgoGU2Vjb25kEgwKAXgYASABKAVSAXhiBnBy",
        "b3RvMw==",
    );

    // Records as the Python serializer framed them (schema id 15): an Outer, an Outer.Inner
    // (indexes [0, 1]: Python counts the map entry CountsEntry), a Second ([1]).
    #[test]
    fn test_protobuf_registry_confluent_python_records() {
        fn unhex(text: &str) -> Vec<u8> {
            (0..text.len())
                .step_by(2)
                .map(|at| u8::from_str_radix(&text[at..at + 2], 16).unwrap())
                .collect()
        }
        let records: Vec<Vec<u8>> = [
            "000000000f000a050a016210020a050a0161100112040a02696e1a090880e2cfaa06108827",
            "000000000f0400020a04736f6c6f",
            "000000000f020208f9ffffffffffffffff01",
        ]
        .into_iter()
        .map(unhex)
        .collect();
        let payloads: Vec<Option<Vec<u8>>> = records.into_iter().map(Some).collect();
        let registry = MemoryRegistry::with(vec![registered(15, APICURIO_PROBE, vec![])]);

        let mut outer = registry.decoder(15, None).unwrap();
        let decoded = decode(&mut outer, &payloads);
        let reasons: Vec<&str> = decoded.failures.iter().map(|f| f.reason.as_str()).collect();
        assert_eq!(
            reasons,
            [
                "written as message probe.Outer.Inner, reader message is probe.Outer",
                "written as message probe.Second, reader message is probe.Outer"
            ]
        );
        let rows = decoded.array.as_struct();
        let counts = column(rows, "counts").as_map().value(0);
        assert_eq!(
            strings(counts.column_by_name("key").unwrap()),
            [Some("a"), Some("b")]
        );
        assert_eq!(strings(column(rows, "inner.name"))[0], Some("in"));
        assert_eq!(
            column(rows, "at")
                .as_primitive::<TimestampMicrosecondType>()
                .value(0),
            1_700_000_000_000_005
        );

        let mut inner = registry.decoder(15, Some("probe.Outer.Inner")).unwrap();
        let decoded = decode(&mut inner, &payloads);
        assert_eq!(
            decoded.failures.iter().map(|f| f.row).collect::<Vec<_>>(),
            [0, 2]
        );
        assert_eq!(
            strings(column(decoded.array.as_struct(), "name"))[1],
            Some("solo")
        );

        let mut second = registry.decoder(15, Some("probe.Second")).unwrap();
        let decoded = decode(&mut second, &payloads);
        assert_eq!(
            column(decoded.array.as_struct(), "x")
                .as_primitive::<Int32Type>()
                .value(2),
            -7
        );
    }
}
