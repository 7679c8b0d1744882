//! Every workload on every store at a tiny size; what each store reads back must match what
//! was written (counts and checksums), hence be equal across stores.

use tidelog_compare::bench::{family, run, workload_names, Config};
use tidelog_compare::report;
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
        idle_before: 0.0,
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
        let family = family(&w);
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
    // The baselines and the 4 KiB dataset are read back too; the threaded workload checks one
    // and four threads of tidelog and of the file baseline.
    for w in ["replay-4KiB", "random-4KiB"] {
        for store in ["file", "mmap"] {
            assert!(out.checks.iter().any(|c| c.workload == w && c.store == store), "{w}: no check of {store}");
        }
    }
    let n = out.checks.iter().filter(|c| c.workload == "durable-4t").count();
    assert_eq!(n, 4, "durable-4t checks");
    for r in out.rows.iter().filter(|r| r.workload == "durable-4t") {
        assert!(r.note.contains("4 threads ÷ 1 thread"), "{}: {}", r.store, r.note);
    }
    // The summary compares tidelog with both baselines, SQLite FULL and fjall in every
    // workload all of them take part in.
    let summary = report::summary(&out.rows);
    for w in ["bulk-100B-b64", "bulk-16KiB-b1024", "replay-1KiB", "random-100B", "durable-b1", "disk-4KiB"] {
        let line = summary.iter().find(|l| l[0] == w).unwrap_or_else(|| panic!("{w} not in the summary"));
        assert!(line[2..].iter().all(|c| c.ends_with('×')), "{w}: {line:?}");
    }
    // tidelog's rows carry no ratio; every peer row in a throughput workload has one.
    for r in &out.rows {
        if !r.store.starts_with("tidelog") {
            assert!(r.tidelog_ratio.is_some(), "{} {} has no ratio", r.workload, r.store);
        }
    }
}

/// `--idle-before` sleeps before each bulk load and says so in the row; `--only` selects one
/// chunk size of one dataset, and the reads are skipped.
#[test]
fn idle_before_each_bulk_load_is_reported_and_only_selects_one_chunk_size() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = Config {
        records: 500,
        durable_ops: 1,
        reads: None,
        reopen_runs: 1,
        bulk_trials: 2,
        idle_before: 0.01,
        tidelog_index_interval: None,
        only: vec!["bulk-100B-b64".into()],
        stores: vec![Kind::Tidelog, Kind::File, Kind::Mmap],
        dir: tmp.path().to_path_buf(),
        settle: false,
        progress: false,
    };
    let out = run(&cfg).unwrap();
    assert_eq!(out.rows.len(), 3, "{:#?}", out.rows);
    for r in &out.rows {
        assert_eq!(r.workload, "bulk-100B-b64");
        assert!(r.note.starts_with("after 0.01 s idle; median of 2 trials"), "{}", r.note);
        assert!(r.note.contains("chunks of 64"), "{}", r.note);
    }
}
