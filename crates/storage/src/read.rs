//! [`LogRead`]: the result of a read, whole stored batches plus the log's bounds.

use bytes::Bytes;
use rivulet_format::header::BATCH_HEADER_LEN;
use rivulet_format::{BatchHeader, FormatError, Record};

/// Whole record batches read from a log, exactly as stored.
///
/// The first batch may start before the requested offset (batches are never split);
/// [`LogRead::records`] skips the records before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRead {
    requested: u64,
    chunks: Vec<Bytes>,
    log_start_offset: u64,
    log_end_offset: u64,
}

impl LogRead {
    pub(crate) fn new(requested: u64, chunks: Vec<Bytes>, log_start: u64, log_end: u64) -> Self {
        LogRead {
            requested,
            chunks,
            log_start_offset: log_start,
            log_end_offset: log_end,
        }
    }

    /// The offset the read asked for.
    pub fn requested_offset(&self) -> u64 {
        self.requested
    }

    /// The log start offset when the read was made.
    pub fn log_start_offset(&self) -> u64 {
        self.log_start_offset
    }

    /// The log end offset (high watermark) when the read was made.
    pub fn log_end_offset(&self) -> u64 {
        self.log_end_offset
    }

    /// Runs of whole batches, back to back, each borrowed from one segment without copying
    /// where the segment is mapped.
    pub fn chunks(&self) -> &[Bytes] {
        &self.chunks
    }

    /// Total bytes of batches.
    pub fn byte_len(&self) -> usize {
        self.chunks.iter().map(Bytes::len).sum()
    }

    /// Whether no batch was read (the read was at the log end).
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// Each batch as its own `Bytes` (zero-copy slices of the chunks).
    pub fn batches(&self) -> impl Iterator<Item = Bytes> + '_ {
        self.chunks
            .iter()
            .flat_map(|chunk| split_batches(chunk.clone()))
    }

    /// The offset after the last batch read, where the next read should start; the requested
    /// offset if nothing was read.
    pub fn next_offset(&self) -> u64 {
        self.batches()
            .last()
            .and_then(|b| BatchHeader::read(&b).ok())
            .map_or(self.requested, |h| h.next_offset() as u64)
    }

    /// Decodes the records at or after the requested offset.
    ///
    /// # Errors
    ///
    /// A batch whose records cannot be decoded.
    pub fn records(&self) -> Result<Vec<Record>, FormatError> {
        let mut out = Vec::new();
        for batch in self.batches() {
            let (_, records) = rivulet_format::decode_batch(&batch)?;
            out.extend(
                records
                    .into_iter()
                    .filter(|r| r.offset as u64 >= self.requested),
            );
        }
        Ok(out)
    }
}

/// Splits a run of whole batches into one `Bytes` per batch.
fn split_batches(mut run: Bytes) -> impl Iterator<Item = Bytes> {
    std::iter::from_fn(move || {
        if run.len() < BATCH_HEADER_LEN {
            return None;
        }
        let header = BatchHeader::read(&run).ok()?;
        let len = header.total_len().min(run.len());
        Some(run.split_to(len))
    })
}
