//! The declared minimum Rust version is the true one: recomputed from the lockfile.
//!
//! The manifests once said 1.82 while bincode 2.0.1 needed 1.85 and the locked
//! dev-dependencies 1.88 (proptest) and edition 2024 (rand 0.10): a user on 1.82 got a build
//! failure the README promised would not happen. Here every workspace package's
//! `rust-version` must equal the highest version (declared, or implied by the edition) that
//! anything it builds with needs, dev-dependencies included. The default members (the
//! library and the binary, which `cargo test` at the root builds together) share one value,
//! the highest either needs, and the README states it.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::process::Command;

use serde_json::Value;

type Version = (u64, u64, u64);

fn parse_version(s: &str) -> Version {
    let mut parts = s.split('.').map(|p| p.parse::<u64>().unwrap_or_else(|_| panic!("bad version {s}")));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

fn edition_version(edition: &str) -> Version {
    match edition {
        "2015" => (1, 0, 0),
        "2018" => (1, 31, 0),
        "2021" => (1, 56, 0),
        "2024" => (1, 85, 0),
        other => panic!("unknown edition {other}"),
    }
}

fn show(v: Version) -> String {
    if v.2 == 0 {
        format!("{}.{}", v.0, v.1)
    } else {
        format!("{}.{}.{}", v.0, v.1, v.2)
    }
}

fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("cli/ sits in the workspace root")
}

fn metadata() -> Value {
    let o = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked", "--offline"])
        .current_dir(workspace_root())
        .output()
        .expect("run cargo metadata");
    assert!(o.status.success(), "cargo metadata failed: {}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).expect("cargo metadata prints JSON")
}

/// The packages `cargo test -p root` builds: `root`'s dependencies of every kind, and the
/// normal and build dependencies of everything below it.
fn closure(meta: &Value, root: &str) -> BTreeSet<String> {
    let nodes: HashMap<&str, &Value> =
        meta["resolve"]["nodes"].as_array().unwrap().iter().map(|n| (n["id"].as_str().unwrap(), n)).collect();
    let mut seen = BTreeSet::new();
    let mut stack = vec![root.to_owned()];
    while let Some(id) = stack.pop() {
        if !seen.insert(id.clone()) {
            continue;
        }
        let own = id == root;
        for dep in nodes[id.as_str()]["deps"].as_array().unwrap() {
            let kinds: Vec<&str> =
                dep["dep_kinds"].as_array().unwrap().iter().map(|k| k["kind"].as_str().unwrap_or("normal")).collect();
            let dev_only = kinds.iter().all(|k| *k == "dev");
            // Dev-dependencies count only for the package being tested itself.
            if dev_only && !own {
                continue;
            }
            stack.push(dep["pkg"].as_str().unwrap().to_owned());
        }
    }
    seen
}

/// The highest Rust version any package in `ids` needs, and which package needs it.
fn needed(meta: &Value, ids: &BTreeSet<String>) -> (Version, String) {
    let packages: HashMap<&str, &Value> =
        meta["packages"].as_array().unwrap().iter().map(|p| (p["id"].as_str().unwrap(), p)).collect();
    ids.iter()
        .map(|id| {
            let p = packages[id.as_str()];
            let declared = p["rust_version"].as_str().map(parse_version).unwrap_or((0, 0, 0));
            let v = declared.max(edition_version(p["edition"].as_str().unwrap()));
            (v, format!("{} {}", p["name"].as_str().unwrap(), p["version"].as_str().unwrap()))
        })
        .max()
        .expect("at least the package itself")
}

#[test]
fn every_package_declares_the_highest_rust_version_its_locked_dependencies_need() {
    let meta = metadata();
    let packages: HashMap<&str, &Value> =
        meta["packages"].as_array().unwrap().iter().map(|p| (p["id"].as_str().unwrap(), p)).collect();
    let is_default = |id: &str| meta["workspace_default_members"].as_array().unwrap().iter().any(|m| m == id);
    let mut needs = Vec::new();
    for member in meta["workspace_members"].as_array().unwrap() {
        let id = member.as_str().unwrap();
        needs.push((id, needed(&meta, &closure(&meta, id))));
    }
    let (default_need, default_by) =
        needs.iter().filter(|(id, _)| is_default(id)).map(|(_, n)| n.clone()).max().expect("default members");
    for (id, (need, by)) in &needs {
        let p = packages[id];
        let name = p["name"].as_str().unwrap();
        let declared = p["rust_version"].as_str().unwrap_or_else(|| panic!("{name} declares no rust-version"));
        let (want, by) = if is_default(id) { (default_need, &default_by) } else { (*need, by) };
        assert_eq!(
            parse_version(declared),
            want,
            "{name} declares rust-version {declared}, but {by} needs {}",
            show(want)
        );
    }
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).unwrap();
    let promise = format!("stable, {} or newer", show(default_need));
    assert!(readme.contains(&promise), "README must say `{promise}`");
}
