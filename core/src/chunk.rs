//! Chunks: the bytes of the records a scan copied out of librdkafka.
//!
//! Why copies: a librdkafka message that is held keeps its op (235 bytes) and its whole fetch
//! response alive, and destroying it later, cold and on another thread than the one that
//! allocated it, was the largest single cost of the reading thread (12 % of an ordered scan's
//! samples in `free`). A scan copies the key, value and headers it reads and destroys the
//! message at once, as a plain consumer does.
//!
//! Why chunks, written here rather than taken from a crate: the copies of one partition's
//! consecutive records go into one fixed-size buffer that the records share (one allocation
//! for many records, freed with the last of them), still appended to while earlier records
//! are already out in the merge or the output on other threads. The buffers are recycled
//! through a pool owned by the scan, because the thread that fills them moves: DuckDB calls a
//! scan from any of its threads, and with glibc each of them allocating from its own arena
//! left freed buffers stranded in arenas the next thread did not use (the Arrow reader at a
//! 256 MiB budget peaked 30 to 50 MiB higher). Arena crates such as `bumpalo` are
//! single-threaded and free all at once; `bytes` would cost an allocation per record.

use std::mem::MaybeUninit;
use std::ptr::NonNull;
use std::sync::{Arc, Mutex, PoisonError};

/// Where a key, value or header lies in its record's chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    start: u32,
    len: u32,
}

impl Span {
    /// Its length in bytes.
    pub(crate) fn len(self) -> usize {
        self.len as usize
    }
}

/// A heap buffer of `capacity` bytes, owned.
#[derive(Debug)]
struct Buffer {
    data: NonNull<MaybeUninit<u8>>,
    capacity: usize,
}

impl Buffer {
    fn new(capacity: usize) -> Self {
        let boxed: Box<[MaybeUninit<u8>]> = Box::new_uninit_slice(capacity);
        let capacity = boxed.len();
        let data = NonNull::from(Box::leak(boxed)).cast::<MaybeUninit<u8>>();
        Self { data, capacity }
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        let slice = std::ptr::slice_from_raw_parts_mut(self.data.as_ptr(), self.capacity);
        // SAFETY: `data` and `capacity` come from the box leaked in `new`, freed only here.
        drop(unsafe { Box::from_raw(slice) });
    }
}

// SAFETY: a `Buffer` owns its allocation; who may write it is governed by `Chunk`.
unsafe impl Send for Buffer {}

/// The buffers of one scan's chunks that are free for reuse, all of `buffer_bytes`.
#[derive(Debug)]
pub(crate) struct ChunkPool {
    buffer_bytes: usize,
    /// How many free buffers are kept; more are returned to the allocator.
    max_free: usize,
    free: Mutex<Vec<Buffer>>,
}

impl ChunkPool {
    /// A pool of buffers of `buffer_bytes` that keeps up to `max_free_bytes` of them free.
    pub(crate) fn new(buffer_bytes: usize, max_free_bytes: usize) -> Arc<Self> {
        let buffer_bytes = buffer_bytes.max(1);
        Arc::new(Self {
            buffer_bytes,
            max_free: max_free_bytes / buffer_bytes,
            free: Mutex::new(Vec::new()),
        })
    }

    fn take(&self) -> Buffer {
        let reused = self
            .free
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        reused.unwrap_or_else(|| Buffer::new(self.buffer_bytes))
    }

    fn give(&self, buffer: Buffer) {
        let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        if buffer.capacity == self.buffer_bytes && free.len() < self.max_free {
            free.push(buffer);
        }
    }
}

/// A buffer shared by the records whose bytes it holds; freed (or returned to its pool) with
/// the last of them.
///
/// Its first bytes are written once, by the [`ChunkWriter`] that appends to it, and never
/// again: a [`Span`] is handed out only once its bytes are written, and no span reaches
/// beyond what was written. Readers on any thread read written bytes while the writer writes
/// bytes past them.
#[derive(Debug)]
pub(crate) struct Chunk {
    buffer: Option<Buffer>,
    pool: Option<Arc<ChunkPool>>,
}

// SAFETY: see the type's comment: writes go only to bytes no span covers, through the one
// `ChunkWriter`, and reads only to bytes of spans, which are written before they exist.
unsafe impl Send for Chunk {}
// SAFETY: as for `Send`.
unsafe impl Sync for Chunk {}

impl Chunk {
    /// The bytes of `span`, which a writer of this chunk handed out.
    pub(crate) fn get(&self, span: Span) -> &[u8] {
        let Some(buffer) = &self.buffer else {
            return &[];
        };
        debug_assert!(span.start as usize + span.len() <= buffer.capacity);
        // SAFETY: the span's bytes are inside the buffer and were written before the span
        // was handed out; nothing writes them again while the chunk lives.
        unsafe {
            std::slice::from_raw_parts(
                buffer.data.as_ptr().add(span.start as usize).cast::<u8>(),
                span.len(),
            )
        }
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        if let (Some(buffer), Some(pool)) = (self.buffer.take(), &self.pool) {
            pool.give(buffer);
        }
    }
}

/// Appends bytes to a chunk that records may already share.
#[derive(Debug)]
pub(crate) struct ChunkWriter {
    chunk: Arc<Chunk>,
    /// Bytes written so far.
    len: usize,
    capacity: usize,
}

impl ChunkWriter {
    /// A writer with room for `needed` bytes: a buffer of `pool`'s when they fit in one, else
    /// one of its own, freed with its chunk.
    pub(crate) fn open(pool: &Arc<ChunkPool>, needed: usize) -> Self {
        if needed <= pool.buffer_bytes {
            Self::with_buffer(pool.take(), Some(Arc::clone(pool)))
        } else {
            Self::with_buffer(Buffer::new(needed), None)
        }
    }

    /// A writer of a chunk of exactly `capacity` bytes, not pooled.
    pub(crate) fn exact(capacity: usize) -> Self {
        Self::with_buffer(Buffer::new(capacity), None)
    }

    fn with_buffer(buffer: Buffer, pool: Option<Arc<ChunkPool>>) -> Self {
        let capacity = buffer.capacity;
        Self {
            chunk: Arc::new(Chunk {
                buffer: Some(buffer),
                pool,
            }),
            len: 0,
            capacity,
        }
    }

    /// Bytes it can still take.
    pub(crate) fn room(&self) -> usize {
        self.capacity - self.len
    }

    /// The chunk it writes, for the records whose spans it handed out.
    pub(crate) fn chunk(&self) -> &Arc<Chunk> {
        &self.chunk
    }

    /// Append `bytes` and say where they lie; `None` when there is not room for them (or
    /// the chunk would pass the 4 GiB spans address; no Kafka message comes near that).
    pub(crate) fn push(&mut self, bytes: &[u8]) -> Option<Span> {
        if bytes.len() > self.room() {
            return None;
        }
        let start = u32::try_from(self.len).ok()?;
        let len = u32::try_from(bytes.len()).ok()?;
        start.checked_add(len)?;
        let buffer = self.chunk.buffer.as_ref()?;
        // SAFETY: `len..len + bytes.len()` is inside the buffer (checked against the room)
        // and past every span handed out, so no reader sees these bytes yet; this writer is
        // the only one.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                buffer.data.as_ptr().add(self.len).cast::<u8>(),
                bytes.len(),
            );
        }
        self.len += bytes.len();
        Some(Span { start, len })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_spans_read_back_while_the_writer_appends() {
        let pool = ChunkPool::new(8, 64);
        let mut writer = ChunkWriter::open(&pool, 3);
        let first = writer.push(b"abc").unwrap();
        let chunk = Arc::clone(writer.chunk());
        let second = writer.push(b"defgh").unwrap();
        assert_eq!(writer.room(), 0);
        assert_eq!(writer.push(b"i"), None, "no room left");
        assert_eq!(chunk.get(first), b"abc");
        assert_eq!(chunk.get(second), b"defgh");
        assert_eq!(writer.push(b""), Some(Span { start: 8, len: 0 }));
    }

    #[test]
    fn test_pool_recycles_its_buffers_up_to_its_bound() {
        let pool = ChunkPool::new(16, 32);
        let writers: Vec<_> = (0..3).map(|_| ChunkWriter::open(&pool, 16)).collect();
        let addresses: Vec<_> = writers
            .iter()
            .map(|w| w.chunk.buffer.as_ref().unwrap().data)
            .collect();
        drop(writers);
        let free = pool.free.lock().unwrap();
        assert_eq!(
            free.len(),
            2,
            "keeps two 16-byte buffers free, frees the third"
        );
        assert!(free.iter().all(|buffer| addresses.contains(&buffer.data)));
        drop(free);
        let reused = ChunkWriter::open(&pool, 10);
        assert!(addresses.contains(&reused.chunk.buffer.as_ref().unwrap().data));
        // Larger than the pool's buffers: a buffer of its own, not kept afterwards.
        let large = ChunkWriter::open(&pool, 17);
        assert_eq!(large.room(), 17);
        drop(large);
        assert_eq!(pool.free.lock().unwrap().len(), 1);
    }
}
