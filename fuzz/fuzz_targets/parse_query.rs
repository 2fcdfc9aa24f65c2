//! QUERY and ANSWER bodies, the paged inbox and connections answers
//! included: no panic; a parse re-emits the same bytes (a page rebuilt
//! from what its readers yield, within its own length, is the same page).
#![no_main]
use attnet_core::wire::query::{connection_entries, inbox_records, Answer, AnswerBody, PageWriter, Query, QueryWhat};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(q) = Query::parse(data) {
        if !matches!(q.what, QueryWhat::Other(_)) {
            let mut b = Vec::new();
            q.emit(&mut b);
            assert_eq!(b, data);
        }
    }
    let Ok(a) = Answer::parse(data) else { return };
    let mut b = Vec::new();
    match a.body {
        AnswerBody::Inbox { total, first, at, count } => {
            let mut w = PageWriter::inbox(&mut b, a.request_id, total, first, at, data.len());
            for r in inbox_records(data) {
                assert!(w.push_record(&r));
            }
            assert_eq!(w.count(), count);
        }
        AnswerBody::Connections { total, at, count } => {
            let mut w = PageWriter::connections(&mut b, a.request_id, total, at, data.len());
            for (rel, peer) in connection_entries(data) {
                assert!(w.push_entry(rel, &peer));
            }
            assert_eq!(w.count(), count);
        }
        _ => a.emit(&mut b),
    }
    assert_eq!(b, data);
});
