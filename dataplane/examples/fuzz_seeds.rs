//! Writes the fuzzers' seed corpus (fuzz/corpus/<target>/seed-*) from the
//! shared vectors and from frames built with the testkit.
//! Run: cargo run -p dataplane --example fuzz_seeds

use std::path::Path;

use dataplane::testkit;
use dataplane::wire::share::{self, Compression};
use dataplane::wire::tx::emit_batch;

fn put(root: &Path, target: &str, name: &str, bytes: &[u8]) {
    let d = root.join(target);
    std::fs::create_dir_all(&d).expect("create corpus dir");
    std::fs::write(d.join(format!("seed-{name}")), bytes).expect("write seed");
}

fn plaintext(body: &[u8], lz4: bool) -> Vec<u8> {
    let mut wire = Vec::new();
    if lz4 {
        dataplane::lz4::compress_into(body, &mut wire);
    } else {
        wire.extend_from_slice(body);
    }
    let r = share::Repr {
        stream_seq: 1,
        uncompressed_length: body.len() as u16,
        content_kind: share::kind::TX_BATCH,
        compression: if lz4 { Compression::Lz4 } else { Compression::None },
        body_len: wire.len(),
    };
    let mut out = vec![0u8; r.buffer_len()];
    r.emit(&mut share::Packet::new_unchecked(&mut out[..]));
    out[share::HEADER_LEN..].copy_from_slice(&wire);
    out
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/att-v1-vectors.json"))
        .expect("testdata vectors");
    // The vectors file is small and regular: pull out name/frame pairs.
    let mut name = String::new();
    for line in text.lines() {
        let l = line.trim();
        if let Some(v) = l.strip_prefix("\"name\": \"") {
            name = v.trim_end_matches(['"', ',']).to_string();
        }
        if let Some(v) = l.strip_prefix("\"frame\": \"") {
            let f = hex::decode(v.trim_end_matches(['"', ','])).expect("hex frame");
            let mut even = vec![0u8];
            even.extend_from_slice(&f);
            put(&root, "frame_path", &name, &even);
            put(&root, "parse_headers", &name, &f);
            if f.len() > 7 {
                put(&root, "parse_headers", &format!("{name}-mcs"), &f[7..]);
            }
        }
    }
    for (n, memo, lz4) in [(0usize, 0usize, false), (1, 0, false), (4, 40, true), (8, 300, true), (2, 1024, false)] {
        let (txs, _) = testkit::txs(n as u8, n, memo, 1);
        let mut body = Vec::new();
        emit_batch(txs.iter().map(|t| &t[..]), &mut body);
        let tag = format!("{n}tx-{memo}memo-{}", if lz4 { "lz4" } else { "plain" });
        let pt = plaintext(&body, lz4);
        let mut odd = vec![1u8];
        odd.extend_from_slice(&pt);
        put(&root, "frame_path", &format!("sealed-{tag}"), &odd);
        put(&root, "parse_share", &tag, &pt);
        put(&root, "parse_tx_batch", &tag, &body);
        let mut c = vec![(body.len() / 64 + 1) as u8];
        dataplane::lz4::compress_into(&body, &mut c);
        put(&root, "lz4_exact", &tag, &c);
    }
    let hs = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/att-v1-handshake.json"))
        .expect("handshake vector");
    for key in ["hello_frame", "welcome_frame"] {
        let at = hs.find(key).expect("frame key") + key.len() + 4;
        let end = hs[at..].find('"').expect("end quote") + at;
        let f = hex::decode(&hs[at..end]).expect("hex");
        put(&root, "parse_headers", key, &f);
        // The body follows TPKT (4), X.224 (3), MCS with a two-byte PER
        // length (8), the INFO header (4) and the share-data header (18).
        if let Some(body) = f.get(37..) {
            put(&root, "parse_handshake", key, body);
        }
    }
    // QUERY bodies of every served `what`, and ANSWER pages.
    use dataplane::wire::query::{self, InboxRecord, PageWriter, Query, QueryWhat};
    for (name, what) in [
        ("query-account", QueryWhat::Account([1; 32])),
        ("query-tx", QueryWhat::Transaction([2; 32])),
        ("query-inbox", QueryWhat::Inbox { account: [3; 32], start: 5 }),
        ("query-connections", QueryWhat::Connections { account: [4; 32], start: 0 }),
    ] {
        let mut b = Vec::new();
        Query { request_id: 7, what }.emit(&mut b);
        put(&root, "parse_query", name, &b);
    }
    let mut page = Vec::new();
    let mut w = PageWriter::inbox(&mut page, 7, 9, 2, 3, 1411);
    for (kind, memo) in [(1u8, &b"hi bob"[..]), (2, b"lunch?"), (4, &[0xAB; 300][..])] {
        w.push_record(&InboxRecord { kind, flags: 0, from: [kind; 32], nonce: 1, height: 4, memo });
    }
    put(&root, "parse_query", "answer-inbox", &page);
    let mut page = Vec::new();
    let mut w = PageWriter::inbox(&mut page, 7, 1, 0, 0, 963);
    w.push_record(&InboxRecord { kind: 1, flags: 0, from: [5; 32], nonce: 1, height: 1, memo: &[b'x'; 1024] });
    put(&root, "parse_query", "answer-inbox-cut", &page);
    let mut page = Vec::new();
    let mut w = PageWriter::connections(&mut page, 7, 3, 0, 1411);
    for rel in [query::relation::CONNECTED, query::relation::REQUEST_IN, query::relation::REQUEST_OUT] {
        w.push_entry(rel, &[rel + 8; 32]);
    }
    put(&root, "parse_query", "answer-connections", &page);
    println!("seeds written under {}", root.display());
}
