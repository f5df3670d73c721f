//! A message taken from librdkafka, for the moment its payloads are copied.
//!
//! librdkafka parses a fetch response into messages whose keys and values point into the
//! response buffer. A scan copies what it reads of each message into a chunk of its own (see
//! [`crate::chunk`]) and destroys the message right away, on the thread that took it:
//! holding messages instead kept each one's op and its whole fetch response alive, and freeing
//! them later, cold, cost more than the copy.

use std::ffi::CStr;
use std::os::raw::{c_char, c_void};
use std::ptr::NonNull;

use rdkafka::bindings as rdsys;

use crate::chunk::ChunkWriter;
use crate::record::{Fields, Payloads};

/// One fetched message, owned: destroyed (and its share of the fetch buffer released) on drop.
/// It lives only inside one poll of the consumer that fetched it.
///
/// The key, value and header list are looked up once, when the message is taken. That matters
/// for headers most: librdkafka caches a parsed header list, but not the absence of one, so
/// each lookup on a message without headers allocated and freed a parse buffer.
pub(crate) struct KafkaMessage {
    message: NonNull<rdsys::rd_kafka_message_t>,
    /// The key, when the scan reads keys.
    key: Option<(NonNull<u8>, usize)>,
    /// The value, when the scan reads values.
    value: Option<(NonNull<u8>, usize)>,
    /// The parsed header list; `None` when there is none or it was not asked for.
    headers: Option<NonNull<rdsys::rd_kafka_headers_t>>,
}

impl KafkaMessage {
    /// Take ownership of `message`, looking up the `fields` the scan reads.
    ///
    /// # Safety
    /// `message` must be a live message that nothing else destroys, and its consumer must
    /// outlive the returned value.
    pub(crate) unsafe fn new(message: NonNull<rdsys::rd_kafka_message_t>, fields: Fields) -> Self {
        // SAFETY: live until drop, per the caller.
        let raw = unsafe { message.as_ref() };
        let slice =
            |data: *mut c_void, len: usize| NonNull::new(data.cast::<u8>()).map(|d| (d, len));
        let is_record = raw.err == rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR;
        Self {
            key: (is_record && fields.key)
                .then(|| slice(raw.key, raw.key_len))
                .flatten(),
            value: (is_record && fields.value)
                .then(|| slice(raw.payload, raw.len))
                .flatten(),
            headers: if is_record && fields.headers {
                // SAFETY: the message is live.
                unsafe { headers_of(message) }
            } else {
                None
            },
            message,
        }
    }

    pub(crate) fn raw(&self) -> &rdsys::rd_kafka_message_t {
        // SAFETY: live until drop.
        unsafe { self.message.as_ref() }
    }

    /// The raw payload, whatever the scan reads: for an error event, librdkafka's
    /// description.
    pub(crate) fn payload(&self) -> Option<&[u8]> {
        let raw = self.raw();
        // SAFETY: librdkafka guarantees `len` bytes at `payload`, alive with the message.
        NonNull::new(raw.payload.cast::<u8>())
            .map(|data| unsafe { std::slice::from_raw_parts(data.as_ptr(), raw.len) })
    }

    /// The bytes of the key or value `part` of this message.
    fn part(&self, (data, len): (NonNull<u8>, usize)) -> &[u8] {
        // SAFETY: librdkafka guarantees `len` bytes at `data`, alive with the message.
        unsafe { std::slice::from_raw_parts(data.as_ptr(), len) }
    }

    /// Whether [`KafkaMessage::copy_into`] has anything to write: a key, value or header list
    /// the scan reads (an empty key or value counts, it is not NULL). Without, the record
    /// needs no chunk: `SELECT count(*)` reads none.
    pub(crate) fn has_payloads(&self) -> bool {
        self.key.is_some() || self.value.is_some() || self.headers.is_some()
    }

    /// The bytes [`KafkaMessage::copy_into`] copies: the key, value and headers the scan reads.
    pub(crate) fn copy_len(&self) -> usize {
        let len = |part: Option<(NonNull<u8>, usize)>| part.map_or(0, |(_, len)| len);
        len(self.key)
            + len(self.value)
            + self
                .headers()
                .map(|(key, value)| key.len() + value.map_or(0, <[u8]>::len))
                .sum::<usize>()
    }

    /// Copy the key, value and headers the scan reads into `chunk`. `None` when they do not
    /// fit in the room it has (see [`KafkaMessage::copy_len`]); it may then hold part of
    /// them, unreferenced.
    pub(crate) fn copy_into(&self, chunk: &mut ChunkWriter) -> Option<Payloads> {
        let mut copy = |part: Option<(NonNull<u8>, usize)>| match part {
            Some(part) => chunk.push(self.part(part)).map(Some),
            None => Some(None),
        };
        let key = copy(self.key)?;
        let value = copy(self.value)?;
        let mut headers = Vec::with_capacity(self.header_count());
        for (name, value) in self.headers() {
            let name = chunk.push(name)?;
            let value = match value {
                Some(value) => Some(chunk.push(value)?),
                None => None,
            };
            headers.push((name, value));
        }
        Some(Payloads {
            key,
            value,
            headers,
        })
    }

    /// How many headers the message has (none when they were not asked for).
    fn header_count(&self) -> usize {
        // SAFETY: `headers` is live with the message.
        self.headers.map_or(0, |headers| unsafe {
            rdsys::rd_kafka_header_cnt(headers.as_ptr())
        })
    }

    /// The headers as (key bytes, value), in the order the producer wrote them; the header
    /// list is looked up once, not once per header.
    ///
    /// Read through the C API: keys are NUL-terminated by librdkafka but can be any bytes the
    /// producer sent, not necessarily UTF-8.
    pub(crate) fn headers(&self) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> + '_ {
        let headers = self.headers;
        (0..).map_while(move |index| {
            let headers = headers?;
            let mut name: *const c_char = std::ptr::null();
            let mut value: *const c_void = std::ptr::null();
            let mut size: usize = 0;
            // SAFETY: `headers` is live; librdkafka writes pointers into its own storage,
            // which lives as long as the message (and so as long as `&self`).
            let status = unsafe {
                rdsys::rd_kafka_header_get_all(
                    headers.as_ptr(),
                    index,
                    &mut name,
                    &mut value,
                    &mut size,
                )
            };
            if status != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || name.is_null() {
                return None;
            }
            // SAFETY: NUL-terminated, owned by the message.
            let key = unsafe { CStr::from_ptr(name) }.to_bytes();
            // SAFETY: `size` bytes at `value`, owned by the message.
            let value = (!value.is_null())
                .then(|| unsafe { std::slice::from_raw_parts(value.cast::<u8>(), size) });
            Some((key, value))
        })
    }
}

/// The header list of `message`, parsed by librdkafka; `None` when there is none.
///
/// # Safety
/// `message` must be live. librdkafka keeps ownership of the list, which lives as long as the
/// message.
unsafe fn headers_of(
    message: NonNull<rdsys::rd_kafka_message_t>,
) -> Option<NonNull<rdsys::rd_kafka_headers_t>> {
    let mut headers: *mut rdsys::rd_kafka_headers_t = std::ptr::null_mut();
    // SAFETY: per the caller.
    let status = unsafe { rdsys::rd_kafka_message_headers(message.as_ptr(), &mut headers) };
    if status == rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
        NonNull::new(headers)
    } else {
        None
    }
}

impl Drop for KafkaMessage {
    fn drop(&mut self) {
        // SAFETY: owned since `new`, destroyed exactly once.
        unsafe { rdsys::rd_kafka_message_destroy(self.message.as_ptr()) };
    }
}

impl std::fmt::Debug for KafkaMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaMessage")
            .field("key_len", &self.raw().key_len)
            .field("len", &self.raw().len)
            .finish()
    }
}
