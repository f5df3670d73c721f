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
pub(crate) struct KafkaMessage {
    message: NonNull<rdsys::rd_kafka_message_t>,
    /// A message must not outlive its client: librdkafka's teardown waits for the partitions
    /// and buffers messages refer to.
    _client: Arc<BaseConsumer>,
}

// SAFETY: a librdkafka message may be read and destroyed from any thread; `KafkaMessage` is
// not `Sync`, so it is used by one thread at a time (parsing headers mutates it lazily).
unsafe impl Send for KafkaMessage {}

impl KafkaMessage {
    /// Take ownership of `message`, which came out of `client`'s queues.
    ///
    /// # Safety
    /// `message` must be a live message that nothing else destroys.
    pub(crate) unsafe fn new(
        message: NonNull<rdsys::rd_kafka_message_t>,
        client: Arc<BaseConsumer>,
    ) -> Self {
        Self {
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
        let raw = self.raw();
        // SAFETY: librdkafka guarantees `key_len` bytes at `key`, alive with the message.
        (!raw.key.is_null())
            .then(|| unsafe { std::slice::from_raw_parts(raw.key.cast::<u8>(), raw.key_len) })
    }

    /// The value; `None` for a tombstone.
    pub(crate) fn value(&self) -> Option<&[u8]> {
        let raw = self.raw();
        // SAFETY: as for the key.
        (!raw.payload.is_null())
            .then(|| unsafe { std::slice::from_raw_parts(raw.payload.cast::<u8>(), raw.len) })
    }

    /// The headers, parsed by librdkafka on first use; `None` when there are none.
    fn headers_ptr(&self) -> Option<NonNull<rdsys::rd_kafka_headers_t>> {
        let mut headers: *mut rdsys::rd_kafka_headers_t = std::ptr::null_mut();
        // SAFETY: the message is live; librdkafka keeps ownership of the headers, which live
        // as long as the message.
        let status =
            unsafe { rdsys::rd_kafka_message_headers(self.message.as_ptr(), &mut headers) };
        if status == rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            NonNull::new(headers)
        } else {
            None
        }
    }

    /// How many headers the message has.
    pub(crate) fn header_count(&self) -> usize {
        // SAFETY: `headers` is live with the message.
        self.headers_ptr().map_or(0, |headers| unsafe {
            rdsys::rd_kafka_header_cnt(headers.as_ptr())
        })
    }

    /// The headers as (key bytes, value), in the order the producer wrote them; the header
    /// list is looked up once, not once per header.
    ///
    /// Read through the C API: keys are NUL-terminated by librdkafka but can be any bytes the
    /// producer sent, not necessarily UTF-8.
    pub(crate) fn headers(&self) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> + '_ {
        let headers = self.headers_ptr();
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
