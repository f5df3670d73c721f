//! A message still held in librdkafka's memory.
//!
//! librdkafka parses a fetch response into messages whose keys and values point into the
//! response buffer. Holding on to the message, rather than copying its payloads into a buffer
//! of our own, means a payload is copied exactly once on its way out: from the fetch buffer into
//! the DuckDB vector or the Arrow array. No allocation of ours per message either.

use std::ffi::CStr;
use std::os::raw::{c_char, c_void};
use std::ptr::NonNull;
use std::sync::Arc;

use rdkafka::bindings as rdsys;
use rdkafka::consumer::BaseConsumer;

/// One fetched message, owned: destroyed (and its share of the fetch buffer released) on drop.
///
/// The key, value and header list are looked up once, when the message is taken, while it is
/// in the cache: building a batch later reads them from here, not from librdkafka's message.
/// That matters for headers most: librdkafka caches a parsed header list, but not the absence
/// of one, so each lookup on a message without headers allocated and freed a parse buffer.
pub(crate) struct KafkaMessage {
    message: NonNull<rdsys::rd_kafka_message_t>,
    key: Option<(NonNull<u8>, usize)>,
    value: Option<(NonNull<u8>, usize)>,
    /// The parsed header list; `None` when there is none or it was not asked for.
    headers: Option<NonNull<rdsys::rd_kafka_headers_t>>,
    /// A message must not outlive its client: librdkafka's teardown waits for the partitions
    /// and buffers messages refer to.
    _client: Arc<BaseConsumer>,
}

// SAFETY: a librdkafka message may be read and destroyed from any thread; `KafkaMessage` is
// not `Sync`, so it is used by one thread at a time (parsing headers mutates it lazily).
unsafe impl Send for KafkaMessage {}

impl KafkaMessage {
    /// Take ownership of `message`, which came out of `client`'s queues. With `headers`, its
    /// headers are parsed now; without, it has none (a scan that does not read them).
    ///
    /// # Safety
    /// `message` must be a live message that nothing else destroys.
    pub(crate) unsafe fn new(
        message: NonNull<rdsys::rd_kafka_message_t>,
        client: Arc<BaseConsumer>,
        headers: bool,
    ) -> Self {
        // SAFETY: live until drop, per the caller.
        let raw = unsafe { message.as_ref() };
        let slice =
            |data: *mut c_void, len: usize| NonNull::new(data.cast::<u8>()).map(|d| (d, len));
        Self {
            key: slice(raw.key, raw.key_len),
            value: slice(raw.payload, raw.len),
            headers: if headers {
                // SAFETY: the message is live.
                unsafe { headers_of(message) }
            } else {
                None
            },
            message,
            _client: client,
        }
    }

    pub(crate) fn raw(&self) -> &rdsys::rd_kafka_message_t {
        // SAFETY: live until drop.
        unsafe { self.message.as_ref() }
    }

    /// The key; `None` for a null key.
    pub(crate) fn key(&self) -> Option<&[u8]> {
        // SAFETY: librdkafka guarantees `key_len` bytes at `key`, alive with the message.
        self.key
            .map(|(data, len)| unsafe { std::slice::from_raw_parts(data.as_ptr(), len) })
    }

    /// The value; `None` for a tombstone.
    pub(crate) fn value(&self) -> Option<&[u8]> {
        // SAFETY: as for the key.
        self.value
            .map(|(data, len)| unsafe { std::slice::from_raw_parts(data.as_ptr(), len) })
    }

    /// How many headers the message has (none when they were not asked for).
    pub(crate) fn header_count(&self) -> usize {
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
