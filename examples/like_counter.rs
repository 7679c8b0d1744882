//! A like counter that moves the moment a like is published: the counter blocks in
//! `Group::poll` and wakes on the publish itself (no polling loop, no sleep), acks each like
//! once counted, and survives a poison event: a malformed like is retried, then moved to the
//! dead letters, listed, and redriven once the counter knows how to read it.
//!
//! Run with `cargo run --example like_counter`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use tidelog::{Backoff, GroupOptions, Record, Store, StoreOptions};

fn main() -> tidelog::Result<()> {
    let tmp = tempfile::tempdir().map_err(|e| tidelog::Error::Io { path: "tempdir".into(), source: e })?;
    let store = Store::open(tmp.path().join("store"), StoreOptions::default())?;
    let likes = store.topic("likes")?;
    let counter = likes.group(
        "counter",
        GroupOptions::default()
            .max_deliveries(3)
            .backoff(Backoff::new(Duration::from_millis(20), Duration::from_millis(100))),
    )?;

    // Learned after the poison event shows up: likes may come as "LIKE:<post>".
    let understands_uppercase = Arc::new(AtomicBool::new(false));
    let (seen_tx, seen_rx) = mpsc::channel::<(String, u64, Instant)>();
    let worker = {
        let counter = counter.clone();
        let understands_uppercase = understands_uppercase.clone();
        std::thread::spawn(move || -> tidelog::Result<BTreeMap<String, u64>> {
            let mut counts: BTreeMap<String, u64> = BTreeMap::new();
            loop {
                // Blocks until a like is published (or 2 s pass: then we are done).
                let deliveries = counter.poll(64, Duration::from_secs(2))?;
                if deliveries.is_empty() {
                    return Ok(counts);
                }
                for d in deliveries {
                    let text = String::from_utf8_lossy(d.payload()).into_owned();
                    let post = match text.strip_prefix("like:") {
                        Some(p) => p.to_owned(),
                        None if understands_uppercase.load(Ordering::SeqCst) && text.starts_with("LIKE:") => {
                            text["LIKE:".len()..].to_lowercase()
                        }
                        None => {
                            println!("  counter: cannot parse {text:?} (attempt {}), nack", d.attempt());
                            counter.nack(&d, &format!("unparseable like {text:?}"))?;
                            continue;
                        }
                    };
                    let n = counts.entry(post.clone()).or_default();
                    *n += 1;
                    let _ = seen_tx.send((post, *n, Instant::now()));
                    counter.ack(&d)?;
                }
            }
        })
    };

    // Publish likes; each one moves the counter right away.
    let mut latencies = Vec::new();
    for i in 0..12u32 {
        let post = format!("post-{}", i % 3 + 1);
        let sent = Instant::now();
        likes.publish(Record::new(format!("like:{post}").as_bytes()).key(post.as_bytes()))?;
        let (p, n, at) = seen_rx.recv_timeout(Duration::from_secs(5)).map_err(|_| timeout())?;
        let lat = at.duration_since(sent);
        latencies.push(lat);
        println!("{p}: {n} like(s)   (counted {lat:?} after the publish)");
        if i == 5 {
            println!("-- a malformed like arrives --");
            likes.publish(Record::new(b"LIKE:POST-2"))?;
        }
        std::thread::sleep(Duration::from_millis(30));
    }

    // The poison like was retried and dead-lettered; the other likes were never held up.
    std::thread::sleep(Duration::from_millis(400));
    let dead = counter.dead_letters()?;
    for d in &dead {
        println!(
            "dead letter #{}: topic {} offset {} after {} attempts, reason: {}",
            d.dlq_offset, d.topic, d.source_offset, d.attempts, d.reason
        );
    }
    let lag = counter.lag()?;
    println!("lag: committed {} of {}, {} dead letter(s)", lag.committed, lag.end_offset, lag.dead_letters);

    println!("-- the counter learns the uppercase format; redrive --");
    understands_uppercase.store(true, Ordering::SeqCst);
    let n = counter.redrive_all()?;
    println!("redriven {n}");
    let (p, n, _) = seen_rx.recv_timeout(Duration::from_secs(5)).map_err(|_| timeout())?;
    println!("{p}: {n} like(s)   (the redriven one)");

    let counts = worker.join().map_err(|_| timeout())??;
    latencies.sort();
    println!("final counts: {counts:?}");
    println!(
        "publish-to-count latency: median {:?}, max {:?}",
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1]
    );
    assert_eq!(counts.get("post-2"), Some(&5));
    assert_eq!(counter.lag()?.dead_letters, 0);
    Ok(())
}

fn timeout() -> tidelog::Error {
    tidelog::Error::InvalidOptions("the counter did not answer in time".into())
}
