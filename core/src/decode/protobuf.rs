//! Protobuf payloads: `.proto` schemas compiled with `protox`, bodies decoded with
//! `prost-reflect` into dynamic messages, then appended column-wise into Arrow builders.
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
//!   than the reader message fails (`written as message X, reader message is Y`). A schema id
//!   the registry doesn't know fails that record; a registry that can't be reached fails the
//!   scan.
//! - With an inline schema, framed and bare bodies are both accepted (a Protobuf body never
//!   starts with byte 0, which a frame always does); the frame's id and indexes are not
//!   checked, as there is no registry to look them up in.
//!
//! A NULL payload is a NULL row. A record that can't be decoded is a NULL row and a
//! [`Failure`].
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
//! | `google.protobuf.Struct`, `Value`, `ListValue` | `Utf8`: JSON text |
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
}

/// How payloads are framed, and what the frame is checked against.
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
    pub fn resolve(context: &ResolveContext<'_>) -> Result<Self> {
        let message = context.spec.message.as_deref();
        match &context.registry {
            Some(registry) => {
                let schema = context.registry_reader_schema(registry)?;
                let lookup: Arc<dyn SchemaLookup> = registry.clone();
                Self::from_registry(context.side, message, &schema, lookup)
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
            ..
        } = self;
        let mut column = Column::new(shape, payloads.len());
        let mut failures = Vec::new();
        for (row, payload) in payloads.iter().enumerate() {
            let Some(payload) = payload else {
                column.append_null();
                continue;
            };
            match read(framing, reader, shape, payload)? {
                Ok(message) => column.append(&Value::Message(message)),
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
}

/// Why one record could not be decoded: the schema id of its frame, if any, and the reason.
type Refusal = (Option<u32>, String);

/// Decode one payload with the reader message.
///
/// # Errors
/// Only when the registry can't be reached; a bad record is the inner `Err`.
fn read(
    mode: &mut Framing,
    reader: &MessageDescriptor,
    shape: &Shape,
    payload: &[u8],
) -> Result<std::result::Result<DynamicMessage, Refusal>> {
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
    Ok(Ok(message))
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
        let written = message_at(file, indexes, MapEntries::Skipped);
        if written.as_ref().map(MessageDescriptor::full_name) == Some(reader) {
            return Ok(Ok(()));
        }
        if indexes.len() > 1
            && message_at(file, indexes, MapEntries::Counted)
                .is_some_and(|message| message.full_name() == reader)
        {
            return Ok(Ok(()));
        }
        Ok(Err(match written {
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
enum Shape {
    Int32,
    Int64,
    UInt32,
    UInt64,
    Float32,
    Float64,
    Boolean,
    Utf8,
    Binary,
    /// The value's name, or its number in decimal when the reader's enum doesn't have it.
    Enum(EnumDescriptor),
    /// `google.protobuf.Timestamp`: microseconds since the epoch, UTC.
    Timestamp,
    /// `google.protobuf.Duration`: microseconds.
    Duration,
    /// `google.protobuf.Struct`, `Value` or `ListValue`: JSON text.
    Json(JsonKind),
    /// A wrapper (`Int32Value`, …): the `value` field's shape.
    Wrapper(FieldDescriptor, Box<Shape>),
    /// A message without fields: `true`.
    Present,
    /// A message with fields: a struct.
    Message {
        members: Vec<Member>,
        fields: Fields,
        /// Whether some value inside can be out of range (a Timestamp, a Duration).
        fallible: bool,
    },
    /// A repeated field.
    List {
        item: FieldRef,
        shape: Box<Shape>,
    },
    /// A map field.
    Map {
        entries: FieldRef,
        key: Box<Shape>,
        value: Box<Shape>,
    },
}

/// One field of a message shape.
struct Member {
    field: FieldDescriptor,
    /// Whether the field has presence, so that absent is NULL.
    nullable: bool,
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

impl Shape {
    fn data_type(&self) -> DataType {
        match self {
            Shape::Int32 => DataType::Int32,
            Shape::Int64 => DataType::Int64,
            Shape::UInt32 => DataType::UInt32,
            Shape::UInt64 => DataType::UInt64,
            Shape::Float32 => DataType::Float32,
            Shape::Float64 => DataType::Float64,
            Shape::Boolean | Shape::Present => DataType::Boolean,
            Shape::Utf8 | Shape::Enum(_) | Shape::Json(_) => DataType::Utf8,
            Shape::Binary => DataType::Binary,
            Shape::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into())),
            Shape::Duration => DataType::Duration(TimeUnit::Microsecond),
            Shape::Wrapper(_, inner) => inner.data_type(),
            Shape::Message { fields, .. } => DataType::Struct(fields.clone()),
            Shape::List { item, .. } => DataType::List(item.clone()),
            Shape::Map { entries, .. } => DataType::Map(entries.clone(), false),
        }
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
            members.push(Member {
                nullable: field.supports_presence() && !field.is_list() && !field.is_map(),
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
            members,
            fields,
            fallible,
        })
    }

    fn field(&mut self, field: &FieldDescriptor, path: &str) -> std::result::Result<Shape, String> {
        if field.is_map() {
            let Kind::Message(entry) = field.kind() else {
                return Err(format!("{path}: a map field without an entry message"));
            };
            let key = self.kind(entry.map_entry_key_field().kind(), path)?;
            let value = self.kind(entry.map_entry_value_field().kind(), path)?;
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
                key: Box::new(key),
                value: Box::new(value),
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
        Ok(match kind {
            Kind::Double => Shape::Float64,
            Kind::Float => Shape::Float32,
            Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => Shape::Int32,
            Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => Shape::Int64,
            Kind::Uint32 | Kind::Fixed32 => Shape::UInt32,
            Kind::Uint64 | Kind::Fixed64 => Shape::UInt64,
            Kind::Bool => Shape::Boolean,
            Kind::String => Shape::Utf8,
            Kind::Bytes => Shape::Binary,
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
    let wrapped = |kind: Kind, shape: Shape| {
        scalar(1, kind).map(|field| Shape::Wrapper(field, Box::new(shape)))
    };
    let seconds_nanos = scalar(1, Kind::Int64).is_some() && scalar(2, Kind::Int32).is_some();
    match message.full_name() {
        "google.protobuf.Timestamp" if seconds_nanos => Some(Shape::Timestamp),
        "google.protobuf.Duration" if seconds_nanos => Some(Shape::Duration),
        "google.protobuf.Struct" => Some(Shape::Json(JsonKind::Struct)),
        "google.protobuf.Value" => Some(Shape::Json(JsonKind::Value)),
        "google.protobuf.ListValue" => Some(Shape::Json(JsonKind::List)),
        "google.protobuf.DoubleValue" => wrapped(Kind::Double, Shape::Float64),
        "google.protobuf.FloatValue" => wrapped(Kind::Float, Shape::Float32),
        "google.protobuf.Int64Value" => wrapped(Kind::Int64, Shape::Int64),
        "google.protobuf.UInt64Value" => wrapped(Kind::Uint64, Shape::UInt64),
        "google.protobuf.Int32Value" => wrapped(Kind::Int32, Shape::Int32),
        "google.protobuf.UInt32Value" => wrapped(Kind::Uint32, Shape::UInt32),
        "google.protobuf.BoolValue" => wrapped(Kind::Bool, Shape::Boolean),
        "google.protobuf.StringValue" => wrapped(Kind::String, Shape::Utf8),
        "google.protobuf.BytesValue" => wrapped(Kind::Bytes, Shape::Binary),
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
    seconds
        .checked_mul(1_000_000)?
        .checked_add(i64::from(nanos.div_euclid(1000)))
}

/// A Duration in microseconds, rounded toward zero (seconds and nanos share their sign);
/// `None` beyond 64 bits.
fn duration_micros(message: &DynamicMessage) -> Option<i64> {
    let (seconds, nanos) = seconds_nanos(message);
    seconds
        .checked_mul(1_000_000)?
        .checked_add(i64::from(nanos / 1000))
}

// ---------------------------------------------------------------------------------------------
// Columns: the builders of one decode call
// ---------------------------------------------------------------------------------------------

/// A tree of Arrow builders mirroring a [`Shape`], created once per decode call.
enum Column<'a> {
    Int32(Int32Builder),
    Int64(Int64Builder),
    UInt32(UInt32Builder),
    UInt64(UInt64Builder),
    Float32(Float32Builder),
    Float64(Float64Builder),
    Boolean(BooleanBuilder),
    Utf8(StringBuilder),
    Binary(BinaryBuilder),
    Enum(StringBuilder, &'a EnumDescriptor),
    Timestamp(TimestampMicrosecondBuilder),
    Duration(DurationMicrosecondBuilder),
    Json(StringBuilder, JsonKind),
    Wrapper(&'a FieldDescriptor, Box<Column<'a>>),
    Present(BooleanBuilder),
    Struct {
        members: &'a [Member],
        fields: &'a Fields,
        columns: Vec<Column<'a>>,
        nulls: NullBufferBuilder,
    },
    List {
        item: &'a FieldRef,
        offsets: OffsetBufferBuilder<i32>,
        nulls: NullBufferBuilder,
        items: Box<Column<'a>>,
    },
    Map {
        entries: &'a FieldRef,
        offsets: OffsetBufferBuilder<i32>,
        nulls: NullBufferBuilder,
        keys: Box<Column<'a>>,
        values: Box<Column<'a>>,
    },
}

impl<'a> Column<'a> {
    fn new(shape: &'a Shape, capacity: usize) -> Self {
        let strings = || StringBuilder::with_capacity(capacity, capacity * 16);
        match shape {
            Shape::Int32 => Column::Int32(Int32Builder::with_capacity(capacity)),
            Shape::Int64 => Column::Int64(Int64Builder::with_capacity(capacity)),
            Shape::UInt32 => Column::UInt32(UInt32Builder::with_capacity(capacity)),
            Shape::UInt64 => Column::UInt64(UInt64Builder::with_capacity(capacity)),
            Shape::Float32 => Column::Float32(Float32Builder::with_capacity(capacity)),
            Shape::Float64 => Column::Float64(Float64Builder::with_capacity(capacity)),
            Shape::Boolean => Column::Boolean(BooleanBuilder::with_capacity(capacity)),
            Shape::Utf8 => Column::Utf8(strings()),
            Shape::Binary => Column::Binary(BinaryBuilder::with_capacity(capacity, capacity * 16)),
            Shape::Enum(descriptor) => Column::Enum(strings(), descriptor),
            Shape::Timestamp => Column::Timestamp(
                TimestampMicrosecondBuilder::with_capacity(capacity).with_timezone(UTC),
            ),
            Shape::Duration => {
                Column::Duration(DurationMicrosecondBuilder::with_capacity(capacity))
            }
            Shape::Json(kind) => Column::Json(strings(), *kind),
            Shape::Wrapper(field, inner) => {
                Column::Wrapper(field, Box::new(Column::new(inner, capacity)))
            }
            Shape::Present => Column::Present(BooleanBuilder::with_capacity(capacity)),
            Shape::Message {
                members, fields, ..
            } => Column::Struct {
                members,
                fields,
                columns: members
                    .iter()
                    .map(|member| Column::new(&member.shape, capacity))
                    .collect(),
                nulls: NullBufferBuilder::new(capacity),
            },
            Shape::List { item, shape } => Column::List {
                item,
                offsets: OffsetBufferBuilder::new(capacity),
                nulls: NullBufferBuilder::new(capacity),
                items: Box::new(Column::new(shape, capacity)),
            },
            Shape::Map {
                entries,
                key,
                value,
            } => Column::Map {
                entries,
                offsets: OffsetBufferBuilder::new(capacity),
                nulls: NullBufferBuilder::new(capacity),
                keys: Box::new(Column::new(key, capacity)),
                values: Box::new(Column::new(value, capacity)),
            },
        }
    }

    /// Append a value of this column's Protobuf type.
    fn append(&mut self, value: &Value) {
        match (self, value) {
            (Column::Int32(builder), Value::I32(v)) => builder.append_value(*v),
            (Column::Int64(builder), Value::I64(v)) => builder.append_value(*v),
            (Column::UInt32(builder), Value::U32(v)) => builder.append_value(*v),
            (Column::UInt64(builder), Value::U64(v)) => builder.append_value(*v),
            (Column::Float32(builder), Value::F32(v)) => builder.append_value(*v),
            (Column::Float64(builder), Value::F64(v)) => builder.append_value(*v),
            (Column::Boolean(builder), Value::Bool(v)) => builder.append_value(*v),
            (Column::Utf8(builder), Value::String(v)) => builder.append_value(v),
            (Column::Binary(builder), Value::Bytes(v)) => builder.append_value(v),
            (Column::Enum(builder, descriptor), Value::EnumNumber(number)) => {
                match descriptor.get_value(*number) {
                    Some(known) => builder.append_value(known.name()),
                    None => builder.append_value(number.to_string()),
                }
            }
            (Column::Timestamp(builder), Value::Message(message)) => {
                builder.append_option(timestamp_micros(message))
            }
            (Column::Duration(builder), Value::Message(message)) => {
                builder.append_option(duration_micros(message))
            }
            (Column::Json(builder, kind), Value::Message(message)) => {
                builder.append_value(json_text(*kind, message))
            }
            (Column::Wrapper(field, inner), Value::Message(message)) => {
                inner.append(&message.get_field(field))
            }
            (Column::Present(builder), Value::Message(_)) => builder.append_value(true),
            (
                Column::Struct {
                    members,
                    columns,
                    nulls,
                    ..
                },
                Value::Message(message),
            ) => {
                for (member, column) in members.iter().zip(columns.iter_mut()) {
                    if member.nullable && !message.has_field(&member.field) {
                        column.append_null();
                    } else {
                        column.append(&message.get_field(&member.field));
                    }
                }
                nulls.append_non_null();
            }
            (
                Column::List {
                    offsets,
                    nulls,
                    items,
                    ..
                },
                Value::List(values),
            ) => {
                for value in values {
                    items.append(value);
                }
                offsets.push_length(values.len());
                nulls.append_non_null();
            }
            (
                Column::Map {
                    offsets,
                    nulls,
                    keys,
                    values,
                    ..
                },
                Value::Map(entries),
            ) => {
                // A map decodes into a hash map: key order makes the rows reproducible.
                let mut sorted: Vec<(&MapKey, &Value)> = entries.iter().collect();
                sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
                for (key, value) in &sorted {
                    keys.append_key(key);
                    values.append(value);
                }
                offsets.push_length(sorted.len());
                nulls.append_non_null();
            }
            (column, value) => {
                // The shape and the message come from the same descriptor: unreachable unless
                // prost-reflect breaks its own typing.
                debug_assert!(false, "value {value:?} does not fit its column");
                column.append_null();
            }
        }
    }

    /// Append a map key (a scalar column).
    fn append_key(&mut self, key: &MapKey) {
        match (self, key) {
            (Column::Int32(builder), MapKey::I32(v)) => builder.append_value(*v),
            (Column::Int64(builder), MapKey::I64(v)) => builder.append_value(*v),
            (Column::UInt32(builder), MapKey::U32(v)) => builder.append_value(*v),
            (Column::UInt64(builder), MapKey::U64(v)) => builder.append_value(*v),
            (Column::Boolean(builder), MapKey::Bool(v)) => builder.append_value(*v),
            (Column::Utf8(builder), MapKey::String(v)) => builder.append_value(v),
            (column, key) => {
                debug_assert!(false, "map key {key:?} does not fit its column");
                column.append_null();
            }
        }
    }

    /// Append NULL. Under a NULL struct, non-nullable children hold NULL too: the parent's
    /// validity masks them, as Arrow allows.
    fn append_null(&mut self) {
        match self {
            Column::Int32(builder) => builder.append_null(),
            Column::Int64(builder) => builder.append_null(),
            Column::UInt32(builder) => builder.append_null(),
            Column::UInt64(builder) => builder.append_null(),
            Column::Float32(builder) => builder.append_null(),
            Column::Float64(builder) => builder.append_null(),
            Column::Boolean(builder) | Column::Present(builder) => builder.append_null(),
            Column::Utf8(builder) | Column::Enum(builder, _) | Column::Json(builder, _) => {
                builder.append_null()
            }
            Column::Binary(builder) => builder.append_null(),
            Column::Timestamp(builder) => builder.append_null(),
            Column::Duration(builder) => builder.append_null(),
            Column::Wrapper(_, inner) => inner.append_null(),
            Column::Struct { columns, nulls, .. } => {
                for column in columns {
                    column.append_null();
                }
                nulls.append_null();
            }
            Column::List { offsets, nulls, .. } | Column::Map { offsets, nulls, .. } => {
                offsets.push_length(0);
                nulls.append_null();
            }
        }
    }

    fn finish(self) -> ArrayRef {
        match self {
            Column::Int32(mut builder) => Arc::new(builder.finish()),
            Column::Int64(mut builder) => Arc::new(builder.finish()),
            Column::UInt32(mut builder) => Arc::new(builder.finish()),
            Column::UInt64(mut builder) => Arc::new(builder.finish()),
            Column::Float32(mut builder) => Arc::new(builder.finish()),
            Column::Float64(mut builder) => Arc::new(builder.finish()),
            Column::Boolean(mut builder) | Column::Present(mut builder) => {
                Arc::new(builder.finish())
            }
            Column::Utf8(mut builder)
            | Column::Enum(mut builder, _)
            | Column::Json(mut builder, _) => Arc::new(builder.finish()),
            Column::Binary(mut builder) => Arc::new(builder.finish()),
            Column::Timestamp(mut builder) => Arc::new(builder.finish()),
            Column::Duration(mut builder) => Arc::new(builder.finish()),
            Column::Wrapper(_, inner) => inner.finish(),
            Column::Struct {
                fields,
                columns,
                mut nulls,
                ..
            } => Arc::new(StructArray::new(
                fields.clone(),
                columns.into_iter().map(Column::finish).collect(),
                nulls.finish(),
            )),
            Column::List {
                item,
                offsets,
                mut nulls,
                items,
            } => Arc::new(ListArray::new(
                item.clone(),
                offsets.finish(),
                items.finish(),
                nulls.finish(),
            )),
            Column::Map {
                entries,
                offsets,
                mut nulls,
                keys,
                values,
            } => {
                let DataType::Struct(key_value) = entries.data_type() else {
                    unreachable!("map entries are planned as a struct")
                };
                let entry_array = StructArray::new(
                    key_value.clone(),
                    vec![keys.finish(), values.finish()],
                    None,
                );
                Arc::new(MapArray::new(
                    entries.clone(),
                    offsets.finish(),
                    entry_array,
                    nulls.finish(),
                    false,
                ))
            }
        }
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
        ProtobufDecoder::resolve(&context)
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
}
