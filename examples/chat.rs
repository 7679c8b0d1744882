//! Chat rooms as topics, several readers per room. Each reader is its own consumer group, so
//! every reader gets every message of the rooms it joined (fan-out), at its own pace, and a
//! reader that joins late can start from the room's history or from now.
//!
//! Run with `cargo run --example chat`.

use std::sync::mpsc;
use std::time::Duration;

use tidelog::{GroupOptions, Header, Record, StartFrom, Store, StoreOptions};

fn main() -> tidelog::Result<()> {
    let tmp = tempfile::tempdir().map_err(|e| tidelog::Error::Io { path: "tempdir".into(), source: e })?;
    let store = Store::open(tmp.path().join("chat"), StoreOptions::default())?;
    let general = store.topic("room.general")?;
    let rust = store.topic("room.rust")?;

    // Readers: (name, rooms). Each (reader, room) pair is a consumer group named after the
    // reader, so readers do not share messages: all of them see everything in their rooms.
    let readers =
        [("alice", vec!["room.general"]), ("bob", vec!["room.general", "room.rust"]), ("carol", vec!["room.rust"])];
    let (tx, rx) = mpsc::channel::<String>();
    let mut threads = Vec::new();
    for (name, rooms) in readers {
        for room in rooms {
            let group = store.topic(room)?.group(name, GroupOptions::default().start(StartFrom::Latest))?;
            let tx = tx.clone();
            threads.push(std::thread::spawn(move || -> tidelog::Result<usize> {
                let mut n = 0;
                // Each poll blocks until a message arrives; 1 s of silence ends the demo.
                loop {
                    let msgs = group.poll(32, Duration::from_secs(1))?;
                    if msgs.is_empty() {
                        return Ok(n);
                    }
                    for m in &msgs {
                        let from = String::from_utf8_lossy(m.header("from").unwrap_or(b"?"));
                        let _ = tx
                            .send(format!("[{name:>5} sees {room}] {from}: {}", String::from_utf8_lossy(m.payload())));
                        n += 1;
                    }
                    group.ack_batch(&msgs)?;
                }
            }));
        }
    }
    drop(tx);

    let say = |room: &tidelog::Topic, from: &str, text: &str| -> tidelog::Result<u64> {
        let headers = [Header { name: "from", value: from.as_bytes() }];
        room.publish(Record::new(text.as_bytes()).key(from.as_bytes()).headers(&headers))
    };
    say(&general, "alice", "hi all")?;
    say(&rust, "carol", "anyone tried the new borrow checker?")?;
    say(&general, "bob", "morning!")?;
    say(&rust, "bob", "yes, it accepts my code now")?;
    say(&general, "alice", "lunch at noon?")?;

    // Print messages as the readers receive them.
    for _ in 0..10 {
        match rx.recv_timeout(Duration::from_secs(5)) {
            Ok(line) => println!("{line}"),
            Err(_) => break,
        }
    }

    // Dave joins #general late and reads the history first.
    let dave = general.group("dave", GroupOptions::default().start(StartFrom::Earliest))?;
    println!("-- dave joins room.general and catches up --");
    for m in dave.poll(100, Duration::from_secs(1))? {
        println!(
            "[ dave reads history] {}: {}",
            String::from_utf8_lossy(m.header("from").unwrap_or(b"?")),
            String::from_utf8_lossy(m.payload())
        );
        dave.ack(&m)?;
    }

    let mut total = 0;
    for t in threads {
        total += t.join().map_err(|_| tidelog::Error::Closed)??;
    }
    for lag in store.lag()? {
        println!("{:<13} {:<6} read up to {} of {}", lag.topic, lag.group, lag.committed, lag.end_offset);
    }
    assert_eq!(total, 10, "alice 3, bob 3 + 2, carol 2");
    Ok(())
}
