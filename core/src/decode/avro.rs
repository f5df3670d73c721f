//! Avro payloads, decoded by `arrow-avro` into Arrow arrays in bulk.
//!
//! The reader schema fixes the column type; each record is decoded with the writer schema its
//! framing names (fetched from the registry once per id) and resolved to the reader schema by
//! arrow-avro, following the Avro specification's schema resolution rules: a field the reader
//! adds gets its default, a field the writer had and the reader lacks is skipped, numeric
//! promotions apply. A writer schema that can't be resolved makes its records decode errors.
//!
//! arrow-avro decodes records only (a top-level record becomes a RecordBatch). A non-record
//! schema (a `"string"` key, say) is wrapped in a one-field record: a record's binary encoding
//! is the concatenation of its fields' encodings (Avro specification, "Binary Encoding"), so
//! the wrapped schema reads the same bytes, and the column is that field.
//!
//! Each writer schema gets its own arrow-avro `Decoder` in `UnframedDatum` mode, fed one body
//! at a time; the rows of the different writers are put back into record order with
//! `interleave`. A body that fails part-way leaves arrow-avro's builders holding part of a
//! row, so that decoder is rebuilt and the good rows it held are decoded again (each row at
//! most once more per call: the rebuilt decoder is flushed at once).

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{new_null_array, Array, ArrayRef, RecordBatch, StructArray};
use arrow_avro::codec::Tz;
use arrow_avro::reader::{Decoder, DecoderMode, ReaderBuilder};
use arrow_avro::schema::{AvroSchema, Fingerprint, FingerprintAlgorithm, SchemaStore};
use arrow_schema::DataType;
use serde_json::Value as Json;

use super::framing;
use super::registry::{RegisteredSchema, SchemaRegistry, SchemaType};
use super::{Decoded, Failure, FormatDecoder, ResolveContext};
use crate::error::{Error, Result};

/// The name of the record that wraps a non-record schema, and of its one field.
const WRAPPER_RECORD: &str = "kafkars_payload";
const WRAPPER_FIELD: &str = "value";
/// arrow-avro flushes when a batch is full; ours are flushed after every call, so the limit
/// is never reached (it sizes nothing up front).
const BATCH_LIMIT: usize = 1 << 30;
/// The key of the inline schema's decoder (inline schemas have no registry id).
const INLINE: u32 = u32::MAX;

/// How the reader schema was given.
#[derive(Clone)]
enum Source {
    /// From a registry: records carry Confluent framing with their writer schema's id.
    Registry(Arc<SchemaRegistry>),
    /// Inline: the schema is the writer schema too. Records may be Confluent-framed (the id
    /// is ignored) or bare datums.
    Inline,
}

/// A writer schema's decoder, or why it can't be had.
enum Writer {
    Ready(Box<WriterDecoder>),
    Unusable(String),
}

struct WriterDecoder {
    /// The writer schema's id (the fingerprint arrow-avro files it under).
    id: u32,
    /// The writer schema as arrow-avro takes it.
    builder_schema: String,
    decoder: Decoder,
    /// Rows of the current call decoded into `decoder` and not yet flushed, with where their
    /// Avro body starts in the payload.
    pending: Vec<(usize, usize)>,
    /// Batches of the current call flushed early (see [`WriterDecoder::recover`]), with
    /// their rows.
    flushed: Vec<(RecordBatch, Vec<usize>)>,
}

pub(crate) struct AvroDecoder {
    source: Source,
    /// The reader schema as arrow-avro takes it (wrapped when not a record).
    reader: String,
    /// Whether the reader schema was wrapped.
    wrapped: bool,
    /// What the reader schema is, for messages.
    reader_name: String,
    data_type: DataType,
    writers: HashMap<u32, Writer>,
}

impl AvroDecoder {
    pub fn resolve(context: &ResolveContext<'_>) -> Result<Self> {
        let (source, text, reader_name, reader_id) = match &context.registry {
            Some(registry) => {
                let schema = context.registry_reader_schema(registry)?;
                check_type(&schema, &format!("schema id {}", schema.id))?;
                let name = format!("reader schema id {}", schema.id);
                (
                    Source::Registry(registry.clone()),
                    schema.schema.clone(),
                    name,
                    schema.id,
                )
            }
            None => {
                let text = context.spec.schema.clone().ok_or_else(|| {
                    super::invalid(
                        &context.side.parameter("format"),
                        "'avro' needs a schema: give schema_registry or an inline schema".into(),
                    )
                })?;
                (Source::Inline, text, context.schema_parameter(), INLINE)
            }
        };
        let json: Json = serde_json::from_str(&text).map_err(|error| Error::Schema {
            what: reader_name.clone(),
            reason: format!("not valid Avro schema JSON: {error}"),
        })?;
        check_not_recursive(&json, context.side.as_str(), None, &mut Vec::new()).map_err(
            |reason| Error::Schema {
                what: reader_name.clone(),
                reason,
            },
        )?;
        let wrapped = !is_record(&json);
        let reader = if wrapped { wrap(&json) } else { text.clone() };
        // The reader read as its own writer gives the column type.
        let decoder =
            build_decoder(reader_id, &reader, &reader).map_err(|reason| Error::Schema {
                what: reader_name.clone(),
                reason,
            })?;
        let schema = decoder.schema();
        let data_type = if wrapped {
            schema.field(0).data_type().clone()
        } else {
            DataType::Struct(schema.fields().clone())
        };
        let mut writers = HashMap::new();
        writers.insert(
            reader_id,
            Writer::Ready(Box::new(WriterDecoder::new(
                reader_id,
                reader.clone(),
                decoder,
            ))),
        );
        Ok(Self {
            source,
            reader,
            wrapped,
            reader_name,
            data_type,
            writers,
        })
    }

    /// The decoder for writer schema `id`, fetched and built on first sight.
    fn writer(&mut self, id: u32) -> Result<&mut Writer> {
        if !self.writers.contains_key(&id) {
            let Source::Registry(registry) = &self.source else {
                unreachable!("inline decoders are created at resolve");
            };
            let writer = match registry.try_schema_by_id(id)? {
                None => Writer::Unusable(format!(
                    "schema id {id} is not in the registry {}",
                    registry.url()
                )),
                Some(schema) => match check_type(&schema, &format!("schema id {id}")) {
                    Err(error) => Writer::Unusable(error.to_string()),
                    Ok(()) => match writer_text(&schema.schema, self.wrapped) {
                        Err(reason) => Writer::Unusable(reason),
                        Ok(text) => match build_decoder(id, &text, &self.reader) {
                            Ok(decoder) => {
                                Writer::Ready(Box::new(WriterDecoder::new(id, text, decoder)))
                            }
                            Err(reason) => Writer::Unusable(format!(
                                "writer schema id {id} can't be resolved to the {}: {reason}",
                                self.reader_name
                            )),
                        },
                    },
                },
            };
            self.writers.insert(id, writer);
        }
        Ok(self.writers.get_mut(&id).expect("inserted above"))
    }

    /// Decode row `row` into the right writer's decoder; a failure (schema id, reason) when
    /// it can't be decoded.
    fn decode_one(
        &mut self,
        payloads: &[Option<&[u8]>],
        row: usize,
    ) -> Result<std::result::Result<(), (Option<u32>, String)>> {
        let Some(payload) = payloads[row] else {
            return Ok(Ok(()));
        };
        let reader = self.reader.clone();
        if let Source::Registry(_) = self.source {
            let id = match framing::split(payload) {
                Ok(framed) => framed.schema_id,
                Err(reason) => return Ok(Err((None, reason))),
            };
            return Ok(match self.writer(id)? {
                Writer::Unusable(reason) => Err((Some(id), reason.clone())),
                Writer::Ready(writer) => writer
                    .decode(payloads, row, framing::HEADER_LEN, &reader)
                    .map_err(|reason| (Some(id), reason)),
            });
        }
        let Some(Writer::Ready(writer)) = self.writers.get_mut(&INLINE) else {
            unreachable!("the inline decoder is created at resolve");
        };
        // Confluent-framed first (its id is ignored: the inline schema is the writer schema),
        // then a bare datum. Each must consume the payload exactly, so one is not mistaken
        // for the other.
        let framed_error = if framing::looks_framed(payload) {
            match writer.decode(payloads, row, framing::HEADER_LEN, &reader) {
                Ok(()) => return Ok(Ok(())),
                Err(reason) => Some(reason),
            }
        } else {
            None
        };
        Ok(writer
            .decode(payloads, row, 0, &reader)
            .map_err(|reason| match framed_error {
                Some(framed) => (
                    None,
                    format!("read as Confluent-framed: {framed}; read as a bare datum: {reason}"),
                ),
                None => (None, reason),
            }))
    }
}

impl FormatDecoder for AvroDecoder {
    fn data_type(&self) -> &DataType {
        &self.data_type
    }

    fn decode(&mut self, payloads: &[Option<&[u8]>]) -> Result<Decoded> {
        let mut failures = Vec::new();
        for row in 0..payloads.len() {
            if let Err((schema_id, reason)) = self.decode_one(payloads, row)? {
                failures.push(Failure {
                    row,
                    schema_id,
                    reason,
                });
            }
        }
        // Gather every writer's rows and put them back into record order.
        let mut sources: Vec<ArrayRef> = Vec::new();
        let mut place: Vec<Option<(usize, usize)>> = vec![None; payloads.len()];
        for writer in self.writers.values_mut() {
            let Writer::Ready(writer) = writer else {
                continue;
            };
            let batches = writer.finish().map_err(|reason| Error::Schema {
                what: self.reader_name.clone(),
                reason,
            })?;
            for (batch, rows) in batches {
                let index = sources.len();
                for (position, row) in rows.into_iter().enumerate() {
                    place[row] = Some((index, position));
                }
                let array = column(batch, self.wrapped);
                let found = array.data_type().clone();
                sources.push(super::conform(array, &self.data_type).ok_or_else(|| {
                    Error::Schema {
                        what: self.reader_name.clone(),
                        reason: format!(
                            "a writer schema was resolved to {found}, not the reader's type {}",
                            self.data_type
                        ),
                    }
                })?);
            }
        }
        if sources.is_empty() {
            return Ok(Decoded::all_null(&self.data_type, failures, payloads.len()));
        }
        let null_source = sources.len();
        sources.push(new_null_array(&self.data_type, 1));
        let indices: Vec<(usize, usize)> = place
            .into_iter()
            .map(|slot| slot.unwrap_or((null_source, 0)))
            .collect();
        let refs: Vec<&dyn Array> = sources.iter().map(|array| array.as_ref()).collect();
        let array = arrow_select::interleave::interleave(&refs, &indices).map_err(|error| {
            Error::Schema {
                what: self.reader_name.clone(),
                reason: format!(
                    "decoded rows of different writer schemas don't fit together: {error}"
                ),
            }
        })?;
        Ok(Decoded { array, failures })
    }

    fn fork(&self) -> Box<dyn FormatDecoder> {
        // Only the reader's own decoder is rebuilt now; writers are built on first sight.
        let mut writers = HashMap::new();
        for (id, writer) in &self.writers {
            if let Writer::Ready(writer) = writer {
                if writer.builder_schema == self.reader {
                    if let Ok(decoder) = build_decoder(*id, &self.reader, &self.reader) {
                        writers.insert(
                            *id,
                            Writer::Ready(Box::new(WriterDecoder::new(
                                *id,
                                self.reader.clone(),
                                decoder,
                            ))),
                        );
                    }
                }
            }
        }
        Box::new(Self {
            source: self.source.clone(),
            reader: self.reader.clone(),
            wrapped: self.wrapped,
            reader_name: self.reader_name.clone(),
            data_type: self.data_type.clone(),
            writers,
        })
    }
}

impl WriterDecoder {
    fn new(id: u32, builder_schema: String, decoder: Decoder) -> Self {
        Self {
            id,
            builder_schema,
            decoder,
            pending: Vec::new(),
            flushed: Vec::new(),
        }
    }

    /// Decode `payload[body_start..]` as row `row`. A failed record leaves part of a row in
    /// arrow-avro's builders, so the decoder is then rebuilt, the good rows it held are
    /// decoded again from `payloads` and flushed at once (so none is decoded more than twice).
    fn decode(
        &mut self,
        payloads: &[Option<&[u8]>],
        row: usize,
        body_start: usize,
        reader: &str,
    ) -> std::result::Result<(), String> {
        let body = body_of(payloads, row, body_start);
        let reason = match self.decoder.decode(body) {
            Ok(consumed) if consumed == body.len() => {
                self.pending.push((row, body_start));
                return Ok(());
            }
            Ok(consumed) => format!(
                "{} byte(s) left over after the Avro record (was it written with another \
                 schema?)",
                body.len() - consumed
            ),
            Err(error) => format!("invalid Avro body: {error}"),
        };
        self.recover(payloads, reader)?;
        Err(reason)
    }

    /// Rebuild the decoder and re-decode the rows the old one held.
    fn recover(
        &mut self,
        payloads: &[Option<&[u8]>],
        reader: &str,
    ) -> std::result::Result<(), String> {
        self.decoder = build_decoder(self.id, &self.builder_schema, reader)?;
        let rows = std::mem::take(&mut self.pending);
        if rows.is_empty() {
            return Ok(());
        }
        for &(row, body_start) in &rows {
            self.decoder
                .decode(body_of(payloads, row, body_start))
                .map_err(|error| format!("re-decoding a good record failed: {error}"))?;
        }
        let batch = self
            .decoder
            .flush()
            .map_err(|error| error.to_string())?
            .ok_or("re-decoded rows went missing")?;
        self.flushed
            .push((batch, rows.into_iter().map(|(row, _)| row).collect()));
        Ok(())
    }

    /// The batches decoded in this call, each with its rows; the decoder is ready for the next
    /// call.
    fn finish(&mut self) -> std::result::Result<Vec<(RecordBatch, Vec<usize>)>, String> {
        let mut out = std::mem::take(&mut self.flushed);
        if !self.pending.is_empty() {
            let batch = self
                .decoder
                .flush()
                .map_err(|error| error.to_string())?
                .ok_or("decoded rows went missing")?;
            let rows = std::mem::take(&mut self.pending);
            out.push((batch, rows.into_iter().map(|(row, _)| row).collect()));
        }
        Ok(out)
    }
}

fn body_of<'a>(payloads: &[Option<&'a [u8]>], row: usize, body_start: usize) -> &'a [u8] {
    payloads[row].map_or(&[][..], |payload| &payload[body_start..])
}

fn column(batch: RecordBatch, wrapped: bool) -> ArrayRef {
    if wrapped {
        batch.column(0).clone()
    } else {
        Arc::new(StructArray::from(batch))
    }
}

/// An arrow-avro decoder of single datums written with `writer`, resolved to `reader`.
fn build_decoder(id: u32, writer: &str, reader: &str) -> std::result::Result<Decoder, String> {
    let fingerprint = Fingerprint::Id(id);
    let mut store = SchemaStore::new_with_type(FingerprintAlgorithm::Id);
    store
        .set(fingerprint, AvroSchema::new(writer.to_owned()))
        .map_err(|error| error.to_string())?;
    let mut builder = ReaderBuilder::new()
        .with_writer_schema_store(store)
        .with_active_fingerprint(fingerprint)
        .with_decoder_mode(DecoderMode::UnframedDatum)
        .with_batch_size(BATCH_LIMIT)
        .with_tz(Tz::Utc);
    if writer != reader {
        builder = builder.with_reader_schema(AvroSchema::new(reader.to_owned()));
    }
    builder.build_decoder().map_err(|error| error.to_string())
}

fn check_type(schema: &RegisteredSchema, what: &str) -> Result<()> {
    if schema.schema_type != SchemaType::Avro {
        return Err(Error::Schema {
            what: what.to_owned(),
            reason: format!(
                "it is a {} schema, not Avro (use format '{}')",
                schema.schema_type.format_name().to_uppercase(),
                schema.schema_type.format_name()
            ),
        });
    }
    if !schema.references.is_empty() {
        return Err(Error::Schema {
            what: what.to_owned(),
            reason: "Avro schemas with references to other subjects are not supported yet".into(),
        });
    }
    Ok(())
}

/// A record that contains itself (a tree, a linked list) has no column type: a DuckDB STRUCT
/// cannot nest itself. arrow-avro would say only that it "failed to resolve" the name; this
/// names the field where the recursion closes.
fn check_not_recursive(
    schema: &Json,
    path: &str,
    namespace: Option<&str>,
    open: &mut Vec<String>,
) -> std::result::Result<(), String> {
    let full_name = |name: &str, namespace: Option<&str>| match (name.contains('.'), namespace) {
        (false, Some(namespace)) if !namespace.is_empty() => format!("{namespace}.{name}"),
        _ => name.to_owned(),
    };
    match schema {
        Json::String(name) => {
            let full = full_name(name, namespace);
            if open
                .iter()
                .any(|open| *open == full || open.rsplit('.').next() == Some(name))
            {
                return Err(format!(
                    "{path} refers back to record '{name}' that contains it: a recursive type \
                     has no column type"
                ));
            }
            Ok(())
        }
        Json::Array(branches) => branches
            .iter()
            .try_for_each(|branch| check_not_recursive(branch, path, namespace, open)),
        Json::Object(object) => match object.get("type") {
            Some(Json::String(kind)) if kind == "record" || kind == "error" => {
                let name = object.get("name").and_then(Json::as_str).unwrap_or("");
                let namespace = object
                    .get("namespace")
                    .and_then(Json::as_str)
                    .or(if name.contains('.') { None } else { namespace });
                let full = full_name(name, namespace);
                let record_namespace = full.rsplit_once('.').map(|(ns, _)| ns.to_owned());
                open.push(full);
                let fields = object.get("fields").and_then(Json::as_array);
                for field in fields.into_iter().flatten() {
                    let field_name = field.get("name").and_then(Json::as_str).unwrap_or("?");
                    if let Some(field_type) = field.get("type") {
                        check_not_recursive(
                            field_type,
                            &format!("{path}.{field_name}"),
                            record_namespace.as_deref(),
                            open,
                        )?;
                    }
                }
                open.pop();
                Ok(())
            }
            Some(Json::String(kind)) if kind == "array" => match object.get("items") {
                Some(items) => check_not_recursive(items, path, namespace, open),
                None => Ok(()),
            },
            Some(Json::String(kind)) if kind == "map" => match object.get("values") {
                Some(values) => check_not_recursive(values, path, namespace, open),
                None => Ok(()),
            },
            Some(nested @ (Json::Object(_) | Json::Array(_))) => {
                check_not_recursive(nested, path, namespace, open)
            }
            _ => Ok(()),
        },
        _ => Ok(()),
    }
}

fn is_record(json: &Json) -> bool {
    json.get("type").and_then(Json::as_str) == Some("record")
}

/// A non-record schema as the one field of a record (same binary encoding).
fn wrap(json: &Json) -> String {
    serde_json::json!({
        "type": "record",
        "name": WRAPPER_RECORD,
        "fields": [{"name": WRAPPER_FIELD, "type": json}],
    })
    .to_string()
}

/// A writer schema as arrow-avro takes it: wrapped when the reader is.
fn writer_text(text: &str, wrapped: bool) -> std::result::Result<String, String> {
    if !wrapped {
        return Ok(text.to_owned());
    }
    let json: Json = serde_json::from_str(text)
        .map_err(|error| format!("the writer schema is not valid JSON: {error}"))?;
    Ok(wrap(&json))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{PayloadFormat, PayloadSpec, Side};
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;

    /// Avro's zigzag varint encoding of a long (Avro specification, "Binary Encoding").
    fn long(value: i64) -> Vec<u8> {
        let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
        let mut out = Vec::new();
        loop {
            let byte = (zigzag & 0x7f) as u8;
            zigzag >>= 7;
            if zigzag == 0 {
                out.push(byte);
                return out;
            }
            out.push(byte | 0x80);
        }
    }

    fn string(text: &str) -> Vec<u8> {
        let mut out = long(text.len() as i64);
        out.extend_from_slice(text.as_bytes());
        out
    }

    fn framed(id: u32, body: &[u8]) -> Vec<u8> {
        let mut out = vec![0];
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    fn inline(schema: &str) -> AvroDecoder {
        resolve_inline(schema).unwrap()
    }

    fn resolve_inline(schema: &str) -> Result<AvroDecoder> {
        let spec = PayloadSpec {
            format: PayloadFormat::Avro,
            schema: Some(schema.into()),
            ..PayloadSpec::default()
        };
        let topics = vec!["t".to_owned()];
        let context = ResolveContext {
            side: Side::Value,
            spec: &spec,
            topics: &topics,
            registry: None,
            json_sample_size: 10,
        };
        AvroDecoder::resolve(&context)
    }

    const USER: &str = r#"{"type":"record","name":"User","fields":[
        {"name":"id","type":"long"},{"name":"name","type":"string"}]}"#;

    #[test]
    fn test_avro_inline_bare_framed_null_and_bad_rows() {
        let mut decoder = inline(USER);
        let good = |id: i64, name: &str| [long(id), string(name)].concat();
        let rows: Vec<Option<Vec<u8>>> = vec![
            Some(good(1, "ann")),
            Some(framed(42, &good(2, "bob"))),
            None,
            // A truncated body: the string says 9 bytes, 2 follow.
            Some([long(3), long(9), b"cy".to_vec()].concat()),
            Some(good(4, "dee")),
            // Trailing bytes after a whole record.
            Some([good(5, "eve"), vec![1, 2]].concat()),
            Some(good(6, "fay")),
        ];
        let payloads: Vec<Option<&[u8]>> = rows.iter().map(Option::as_deref).collect();
        let decoded = decoder.decode(&payloads).unwrap();
        let failed: Vec<usize> = decoded.failures.iter().map(|f| f.row).collect();
        assert_eq!(failed, vec![3, 5]);
        assert!(
            decoded.failures[1].reason.contains("left over"),
            "{}",
            decoded.failures[1].reason
        );
        let values = decoded.array.as_struct();
        assert_eq!(values.len(), 7);
        let ids = values.column(0).as_primitive::<Int64Type>();
        let names = values.column(1).as_string::<i32>();
        for (row, id, name) in [(0, 1, "ann"), (1, 2, "bob"), (4, 4, "dee"), (6, 6, "fay")] {
            assert!(values.is_valid(row), "row {row}");
            assert_eq!((ids.value(row), names.value(row)), (id, name));
        }
        for row in [2, 3, 5] {
            assert!(values.is_null(row), "row {row}");
        }
        // The decoder is whole again for the next call.
        let again = good(7, "gus");
        let decoded = decoder.decode(&[Some(&again)]).unwrap();
        assert!(decoded.failures.is_empty());
        assert_eq!(
            decoded
                .array
                .as_struct()
                .column(0)
                .as_primitive::<Int64Type>()
                .value(0),
            7
        );
    }

    #[test]
    fn test_avro_non_record_schema_is_wrapped() {
        let mut decoder = inline(r#""string""#);
        assert_eq!(decoder.data_type(), &DataType::Utf8);
        let body = string("k1");
        let decoded = decoder.decode(&[Some(&body), None]).unwrap();
        let keys = decoded.array.as_string::<i32>();
        assert_eq!(keys.value(0), "k1");
        assert!(keys.is_null(1));
    }

    #[test]
    fn test_avro_all_failed_is_null_array() {
        let mut decoder = inline(USER);
        let decoded = decoder.decode(&[Some(&[0xff][..])]).unwrap();
        assert_eq!(decoded.failures.len(), 1);
        assert_eq!(decoded.array.len(), 1);
        assert!(decoded.array.is_null(0));
    }

    #[test]
    fn test_avro_recursive_schema_names_field() {
        let error = resolve_inline(
            r#"{"type":"record","name":"Node","namespace":"t","fields":[
                {"name":"label","type":"string"},
                {"name":"children","type":{"type":"array","items":"Node"}}]}"#,
        )
        .err()
        .unwrap()
        .to_string();
        assert!(
            error.contains("value.children refers back to record 'Node'"),
            "{error}"
        );
    }

    #[test]
    fn test_avro_malformed_inline_schema() {
        let error =
            resolve_inline(r#"{"type":"record","name":"X","fields":[{"name":"a","type":"nope"}]}"#)
                .err()
                .unwrap()
                .to_string();
        assert!(error.starts_with("value_schema: "), "{error}");
    }
}
