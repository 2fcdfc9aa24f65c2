//! The node summary's accounting, shared by the tests that read summaries.

use serde_json::Value;

/// The sum of an object of counters (`{"reason": n, ...}`).
pub fn sum(v: &Value) -> u64 {
    v.as_object().unwrap().values().map(|x| x.as_u64().unwrap()).sum()
}

/// Every frame and every transaction is accepted or dropped for a reason.
pub fn assert_balanced(s: &Value) {
    let f = &s["frames"];
    assert_eq!(f["received"].as_u64().unwrap(), f["accepted"].as_u64().unwrap() + sum(&f["dropped"]), "{s}");
    let t = &s["txs"];
    assert_eq!(t["seen"].as_u64().unwrap(), t["accepted"].as_u64().unwrap() + sum(&t["dropped"]), "{s}");
}
