//! A shop's read side, from views over its event log: orders and cart changes are appended
//! on the write side; "items in cart", "revenue per product", "average order value per
//! customer" and "orders by status" are answered from views, without reading the log.
//!
//! * `cart-items` is inline: each append returns after the view applied it, so the cart is
//!   exact the moment `append` returns.
//! * `revenue` and `order-value` are async (a runner thread each): appends never wait; the
//!   query after placing an order asks for a view at least as fresh as that order.
//! * `order-status` is a user fold (a `Projection`): each order's latest status, counted.
//!
//! Run with `cargo run --example shop`.

use std::collections::BTreeMap;
use std::time::Duration;

use tidelog::{
    BoxError, GroupBy, Header, Projection, Record, RecordView, Store, StoreOptions, ValueOf, ViewDefinition, ViewMode,
    ViewOptions, Views,
};

/// Each order's latest status (a user-defined fold).
#[derive(Clone)]
struct OrderStatus;

impl Projection for OrderStatus {
    type State = BTreeMap<Vec<u8>, Vec<u8>>;

    fn name(&self) -> &str {
        "order-status"
    }

    fn fingerprint(&self) -> u64 {
        tidelog::fingerprint_of(b"order-status v1: key = order id, header status")
    }

    fn initial(&self) -> Self::State {
        BTreeMap::new()
    }

    fn apply(&self, state: &mut Self::State, r: &RecordView<'_>) -> Result<(), BoxError> {
        if let (Some(order), Some(status)) = (r.key(), r.header("status")) {
            state.insert(order.to_vec(), status.to_vec());
        }
        Ok(())
    }

    fn snapshot(&self, state: &Self::State, out: &mut Vec<u8>) -> Result<(), BoxError> {
        for (k, v) in state {
            for part in [k, v] {
                out.extend_from_slice(&(part.len() as u32).to_le_bytes());
                out.extend_from_slice(part);
            }
        }
        Ok(())
    }

    fn restore(&self, mut b: &[u8]) -> Result<Self::State, BoxError> {
        let mut state = BTreeMap::new();
        let take = |b: &mut &[u8]| -> Result<Vec<u8>, BoxError> {
            let len = u32::from_le_bytes(b.get(..4).ok_or("cut short")?.try_into()?) as usize;
            let v = b.get(4..4 + len).ok_or("cut short")?.to_vec();
            *b = &b[4 + len..];
            Ok(v)
        };
        while !b.is_empty() {
            let (k, v) = (take(&mut b)?, take(&mut b)?);
            state.insert(k, v);
        }
        Ok(state)
    }
}

fn add_to_cart(views: &Views, cart: &str, sku: &str, qty: i64) -> tidelog::Result<u64> {
    let q = qty.to_string();
    let headers = [Header { name: "cart", value: cart.as_bytes() }, Header { name: "qty", value: q.as_bytes() }];
    views.append(Record::new(format!("{{\"sku\":\"{sku}\",\"qty\":{qty}}}").as_bytes()).headers(&headers))
}

fn place_order(views: &Views, order: &str, customer: &str, product: &str, total: f64) -> tidelog::Result<u64> {
    let payload =
        format!("{{\"order\":\"{order}\",\"customer\":\"{customer}\",\"product\":\"{product}\",\"total\":{total}}}");
    let headers = [Header { name: "status", value: b"placed" }];
    views.append(Record::new(payload.as_bytes()).key(order.as_bytes()).headers(&headers))
}

fn set_status(views: &Views, order: &str, status: &str) -> tidelog::Result<u64> {
    let headers = [Header { name: "status", value: status.as_bytes() }];
    views.append(Record::new(format!("{{\"order\":\"{order}\"}}").as_bytes()).key(order.as_bytes()).headers(&headers))
}

fn main() -> tidelog::Result<()> {
    let tmp = tempfile::tempdir().map_err(|e| tidelog::Error::Io { path: "tempdir".into(), source: e })?;
    let store = Store::open(tmp.path().join("store"), StoreOptions::default())?;
    let views = Views::for_topic(&store.topic("shop")?)?;

    let inline = ViewOptions::default().mode(ViewMode::Inline);
    let cart = views.aggregate(
        ViewDefinition::aggregate("cart-items", 1, GroupBy::Header("cart".into()), ValueOf::Header("qty".into())),
        inline,
    )?;
    let revenue = views.aggregate(
        ViewDefinition::aggregate(
            "revenue",
            1,
            GroupBy::JsonField("product".into()),
            ValueOf::JsonField("total".into()),
        ),
        ViewOptions::default(),
    )?;
    let order_value = views.aggregate(
        ViewDefinition::aggregate(
            "order-value",
            1,
            GroupBy::JsonField("customer".into()),
            ValueOf::JsonField("total".into()),
        ),
        ViewOptions::default(),
    )?;
    let status = views.projection(
        ViewDefinition::fold("order-status", 1, "OrderStatus"),
        OrderStatus,
        ViewOptions::default(),
    )?;

    // The write side.
    add_to_cart(&views, "cart-1", "apple", 3)?;
    add_to_cart(&views, "cart-1", "pear", 2)?;
    add_to_cart(&views, "cart-1", "apple", -1)?;
    // Inline: exact the moment the append returned.
    let items = cart.query(|s| s.get(b"cart-1").map_or(0.0, |g| g.sum))?;
    println!("items in cart-1: {} (view at position {})", items.value, items.position);
    assert_eq!(items.value, 4.0);

    place_order(&views, "o-1", "alice", "apple", 12.5)?;
    place_order(&views, "o-2", "bob", "pear", 4.0)?;
    place_order(&views, "o-3", "alice", "pear", 7.5)?;
    set_status(&views, "o-1", "shipped")?;
    let just_placed = place_order(&views, "o-4", "carol", "apple", 30.0)?;

    // Async: ask for a view that includes the order just placed (read-your-writes), waiting
    // up to a second; a view that is not there by then answers a typed "not yet".
    let rev = revenue.query_at_least(just_placed + 1, Duration::from_secs(1), |s| {
        s.iter().map(|(p, g)| (String::from_utf8_lossy(p).into_owned(), g.sum)).collect::<Vec<_>>()
    })?;
    println!("revenue per product at position {}: {:?}", rev.position, rev.value);
    assert_eq!(rev.value, vec![("apple".to_owned(), 42.5), ("pear".to_owned(), 11.5)]);

    let avg = order_value.query_at_least(just_placed + 1, Duration::from_secs(1), |s| {
        s.iter().map(|(c, g)| (String::from_utf8_lossy(c).into_owned(), g.average())).collect::<Vec<_>>()
    })?;
    println!("average order value per customer at position {}: {:?}", avg.position, avg.value);
    assert_eq!(avg.value[0], ("alice".to_owned(), Some(10.0)));

    let by_status = status.query_at_least(just_placed + 1, Duration::from_secs(1), |s| {
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for st in s.values() {
            *counts.entry(String::from_utf8_lossy(st).into_owned()).or_default() += 1;
        }
        counts
    })?;
    println!("orders by status at position {}: {:?}", by_status.position, by_status.value);
    assert_eq!(by_status.value.get("placed"), Some(&3));

    for (name, lag) in views.lags() {
        println!("{name}: position {}, lag {} records", lag.position, lag.records);
    }
    Ok(())
}
