//! The append-API benchmark's workloads (`benches/api_workloads/mod.rs`), run tiny so that the
//! benchmark cannot rot: each shape appends the same records.

mod common;

#[path = "../benches/api_workloads/mod.rs"]
mod api_workloads;

use api_workloads::Shape;
use tidelog::{Log, Options};

#[test]
fn every_append_shape_appends_the_same_records() {
    let buffers = api_workloads::buffers(3, 20, 24);
    let records = api_workloads::records(&buffers);
    for shape in Shape::ALL {
        let tmp = common::scratch_dir();
        let log = Log::open(tmp.path().join("log"), Options::default().segment_bytes(1 << 20)).unwrap();
        assert_eq!(api_workloads::append_all(&log, shape, &buffers, &records).unwrap(), 60, "{}", shape.name());
        let got: Vec<Vec<u8>> = log.iter(0).map(|r| r.unwrap().payload).collect();
        let want: Vec<Vec<u8>> = buffers.concat();
        assert_eq!(got, want, "{}", shape.name());
    }
}
