//! Record values: synthetic incompressible bytes of a fixed size, or the lines of a file.
//! Owns the payload pool; values are cheap slices of it, so producing allocates nothing per
//! value.

use std::io::{BufRead, BufReader};
use std::path::Path;

use anyhow::Context;
use bytes::Bytes;

/// Most lines read from a payload file.
const MAX_FILE_LINES: usize = 1_000_000;

/// Most bytes read from a payload file.
const MAX_FILE_BYTES: usize = 512 << 20;

/// Size of the synthetic pool that values are sliced from.
const SYNTHETIC_POOL: usize = 4 << 20;

/// Where record values come from.
#[derive(Debug, Clone)]
pub enum Payloads {
    /// Slices of `size` bytes from a pool of pseudo-random bytes.
    Synthetic { pool: Bytes, size: usize },
    /// Lines of a file, cycled through.
    Lines(Vec<Bytes>),
}

impl Payloads {
    /// Synthetic values of `size` bytes.
    pub fn synthetic(size: usize) -> Payloads {
        let len = SYNTHETIC_POOL.max(size * 2);
        let mut pool = Vec::with_capacity(len);
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        while pool.len() < len {
            // xorshift64*: fast, and random enough that the values do not compress.
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            pool.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
        }
        Payloads::Synthetic {
            pool: Bytes::from(pool),
            size,
        }
    }

    /// The non-empty lines of `path`, at most 1,000,000 of them and 512 MiB in all.
    ///
    /// # Errors
    ///
    /// When the file cannot be read or holds no line.
    pub fn from_file(path: &Path) -> anyhow::Result<Payloads> {
        let file = std::fs::File::open(path)
            .with_context(|| format!("cannot open payload file {}", path.display()))?;
        let mut lines = Vec::new();
        let mut total = 0;
        for line in BufReader::new(file).split(b'\n') {
            let line = line.with_context(|| format!("cannot read {}", path.display()))?;
            if line.is_empty() {
                continue;
            }
            total += line.len();
            lines.push(Bytes::from(line));
            if lines.len() >= MAX_FILE_LINES || total >= MAX_FILE_BYTES {
                break;
            }
        }
        anyhow::ensure!(!lines.is_empty(), "{} holds no line", path.display());
        Ok(Payloads::Lines(lines))
    }

    /// The value of the `i`th record.
    pub fn value(&self, i: u64) -> Bytes {
        match self {
            Payloads::Synthetic { pool, size } => {
                let room = (pool.len() - size) as u64;
                let start = (i.wrapping_mul(7919) % room.max(1)) as usize;
                pool.slice(start..start + size)
            }
            Payloads::Lines(lines) => lines[(i % lines.len() as u64) as usize].clone(),
        }
    }

    /// Mean value size in bytes.
    pub fn mean_size(&self) -> f64 {
        match self {
            Payloads::Synthetic { size, .. } => *size as f64,
            Payloads::Lines(lines) => {
                lines.iter().map(Bytes::len).sum::<usize>() as f64 / lines.len() as f64
            }
        }
    }
}
