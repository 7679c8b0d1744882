//! Side-by-side benchmark of tidelog against the two physical baselines a plain program gets
//! from the hardware (a buffered file written with `write` + `fdatasync`, a bare memory map)
//! and the stores users would pick instead: SQLite (WAL, `synchronous=FULL` and `NORMAL`),
//! fjall (LSM key-value store) and the `commitlog` crate. See `docs/benchmarks.md` ("Side by side") at the repository root for what each workload means.

pub mod audit;
pub mod bench;
pub mod data;
pub mod machine;
pub mod report;
#[path = "../../../tests/support/rng.rs"]
mod rng;
pub mod stores;
pub mod svg;

/// Errors from any store, boxed.
pub type Error = Box<dyn std::error::Error + Send + Sync>;
/// Result with a boxed error.
pub type Result<T> = std::result::Result<T, Error>;

/// Microseconds since the Unix epoch (the timestamp each store keeps with a record).
pub fn now_us() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}
