//! Every workload on every store at a tiny size; what each store reads back must match what
//! was written (counts and checksums), hence be equal across stores.

use tidelog_compare::bench::{run, workload_names, Config};
use tidelog_compare::stores::Kind;

#[test]
fn every_workload_on_every_store_agrees() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = Config {
        records: 2_000,
        durable_ops: 10,
        reads: Some(500),
        reopen_runs: 2,
        bulk_trials: 2,
        tidelog_index_interval: None,
        only: Vec::new(),
        stores: Kind::ALL.to_vec(),
        dir: tmp.path().to_path_buf(),
        settle: false,
        progress: false,
    };
    let out = run(&cfg).unwrap();
    let failed: Vec<_> = out.checks.iter().filter(|c| !c.ok).collect();
    assert!(failed.is_empty(), "checks failed: {failed:#?}");
    for w in workload_names() {
        let stores: Vec<&str> = out.rows.iter().filter(|r| r.workload == w).map(|r| r.store.as_str()).collect();
        let family = w.split('-').next().unwrap();
        for k in Kind::ALL {
            let expected = tidelog_compare::bench::runs(k, family) && !(k == Kind::CommitlogFsync && family == "disk");
            let expected = expected && !(family == "reopen" && k == Kind::CommitlogFsync);
            assert_eq!(stores.contains(&k.name()), expected, "{w}: {} (rows: {stores:?})", k.name());
        }
    }
    // Every read check ran for every store that reads.
    for w in ["replay-100B", "random-16KiB", "durable-b1", "durable-b64", "position", "reopen"] {
        let n = out.checks.iter().filter(|c| c.workload == w).count();
        assert!(n >= 5, "{w}: only {n} checks");
    }
    // tidelog's rows carry no ratio; every peer row in a throughput workload has one.
    for r in &out.rows {
        if !r.store.starts_with("tidelog") {
            assert!(r.tidelog_ratio.is_some(), "{} {} has no ratio", r.workload, r.store);
        }
    }
}
