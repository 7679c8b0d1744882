//! A read model in SQLite: orders appended to a log, revenue per product kept in a SQLite
//! table by tidelog, queried with SQL (here and with any SQL tool: `sqlite3 DIR/revenue.db`).
//!
//! `cargo run --features sqlite --example sqlite_read_model`

use std::time::Duration;

use tidelog::{BoxError, Header, Log, Options, Record, RecordView, SqlProjection, SqliteOptions, SqliteView};

/// Revenue per product, from orders whose `product` header names the product and whose
/// payload is the amount in cents.
struct Revenue;

impl SqlProjection for Revenue {
    fn name(&self) -> &str {
        "revenue"
    }

    fn version(&self) -> u32 {
        1 // bump it when the schema or `apply` changes: the table is rebuilt beside this one
    }

    fn schema(&self) -> &str {
        "CREATE TABLE revenue (product TEXT PRIMARY KEY, orders INTEGER NOT NULL, cents INTEGER NOT NULL);"
    }

    fn apply(&self, tx: &rusqlite::Transaction<'_>, record: &RecordView<'_>) -> Result<(), BoxError> {
        let product = std::str::from_utf8(record.header("product").ok_or("an order without a product")?)?;
        let cents: i64 = std::str::from_utf8(record.payload())?.parse()?;
        tx.execute(
            "INSERT INTO revenue VALUES (?1, 1, ?2)
             ON CONFLICT (product) DO UPDATE SET orders = orders + 1, cents = cents + ?2",
            rusqlite::params![product, cents],
        )?;
        Ok(())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let log = Log::open(tmp.path().join("orders"), Options::default())?;
    let view = SqliteView::open(log.clone(), tmp.path().join("read-model"), Revenue, SqliteOptions::default())?;

    let mut last = 0;
    for (product, cents) in [("apple", "120"), ("pear", "80"), ("apple", "130")] {
        let headers = [Header { name: "product", value: product.as_bytes() }];
        last = log.append(Record::new(cents.as_bytes()).headers(&headers))?;
    }

    // Read your own write: wait until the table holds the last order, then query it.
    let answer = view.query_at_least(last + 1, Duration::from_secs(5), |conn| {
        let mut st = conn.prepare("SELECT product, orders, cents FROM revenue ORDER BY product")?;
        let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?)))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
    })?;
    println!(
        "at position {} (the orders below it; the database: {}):",
        answer.position,
        view.database_path().display()
    );
    for (product, orders, cents) in &answer.value {
        println!("  {product:<6} {orders} orders, {}.{:02}", cents / 100, cents % 100);
    }
    assert_eq!(answer.value[0], ("apple".to_owned(), 2, 250));
    view.stop()?;
    Ok(())
}
