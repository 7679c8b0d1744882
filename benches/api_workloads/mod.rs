//! Workloads of the append-API benchmark (`benches/api.rs`), shared with a test that runs them
//! tiny (`tests/api_bench_workloads.rs`) so that the benchmark cannot rot (STYLE.md, habit 11).
//!
//! The same batches of owned payload buffers are appended in three ways: as a slice of
//! `Record`s built before the timed region (what reaches the writer unchanged), as the buffers
//! themselves (`append_batch` converting them), and building a `Vec<Record>` per batch in the
//! timed region (what a caller had to do before `append_batch` took any `AsRecord`).
// Each user of this module uses a different subset of it.
#![allow(dead_code)]

use tidelog::{Log, Record, Result};

/// How a batch reaches `append_batch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A slice of `Record`s built beforehand.
    Records,
    /// The payload buffers themselves (`&[Vec<u8>]`).
    Buffers,
    /// A `Vec<Record>` built from the buffers for each batch.
    BuildRecords,
}

impl Shape {
    /// Every shape, for iterating.
    pub const ALL: [Shape; 3] = [Shape::Records, Shape::Buffers, Shape::BuildRecords];

    /// A short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Shape::Records => "records_slice",
            Shape::Buffers => "owned_buffers",
            Shape::BuildRecords => "build_vec_record",
        }
    }
}

/// `batches` batches of `batch` payloads of `len` bytes each, every payload distinct.
pub fn buffers(batches: usize, batch: usize, len: usize) -> Vec<Vec<Vec<u8>>> {
    (0..batches)
        .map(|b| {
            (0..batch)
                .map(|i| {
                    let mut p = format!("{b}.{i}:").into_bytes();
                    p.resize(len.max(p.len()), b'x');
                    p
                })
                .collect()
        })
        .collect()
}

/// The batches as slices of `Record`s borrowing the buffers.
pub fn records(buffers: &[Vec<Vec<u8>>]) -> Vec<Vec<Record<'_>>> {
    buffers.iter().map(|b| b.iter().map(|p| Record::new(p)).collect()).collect()
}

/// Append every batch once in the given shape; returns the records appended.
pub fn append_all(log: &Log, shape: Shape, buffers: &[Vec<Vec<u8>>], records: &[Vec<Record<'_>>]) -> Result<u64> {
    let mut n = 0;
    match shape {
        Shape::Records => {
            for b in records {
                n += log.append_batch(b)?.count() as u64;
            }
        }
        Shape::Buffers => {
            for b in buffers {
                n += log.append_batch(b)?.count() as u64;
            }
        }
        Shape::BuildRecords => {
            for b in buffers {
                let r: Vec<Record<'_>> = b.iter().map(|p| Record::new(p)).collect();
                n += log.append_batch(&r)?.count() as u64;
            }
        }
    }
    Ok(n)
}
