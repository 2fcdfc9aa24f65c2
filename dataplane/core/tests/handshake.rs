//! The handshake, cookie and query codecs and crypto against the vectors
//! (`testdata/att-v1-handshake.json`, `testdata/att-v1.1-extensions.json`):
//! every frame rebuilt byte for byte from the vectors' secrets.
#![allow(clippy::indexing_slicing)]

use attnet_core::emit::FrameSpec;
use attnet_core::handshake::{
    check_hello_signature, cookie, info_frame, parse_hello, parse_info_frames, relay_welcome, verify_hello,
    ClientHandshake, HandshakeError,
};
use attnet_core::path::open_indication;
use attnet_core::session::{Role, Session, SessionTable};
use attnet_core::wire::handshake::{Cookie, CookieEcho, DomainParams, Hello, Welcome};
use attnet_core::wire::mcs::{self, channel, KIND_INDICATION, KIND_REQUEST};
use attnet_core::wire::query::{self, Answer, AnswerBody, Query, QueryWhat};
use attnet_core::wire::share::kind;
use attnet_core::{DropReason, Peer};
use ed25519_zebra::{SigningKey, VerificationKey, VerificationKeyBytes};
use serde_json::Value;

fn load(name: &str) -> Value {
    let p = format!("{}/../../testdata/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn hx(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap()).unwrap()
}

fn k32(v: &Value) -> [u8; 32] {
    hx(v).try_into().unwrap()
}

/// The handshake vector's parts.
struct Hs {
    v: Value,
    account: SigningKey,
    node: SigningKey,
    client_eph: [u8; 32],
    relay_eph: [u8; 32],
    network_id: u32,
    session: u16,
    timestamp_ms: u64,
}

fn hs() -> Hs {
    let v = load("att-v1-handshake.json");
    Hs {
        account: SigningKey::from(k32(&v["account_secret"])),
        node: SigningKey::from(k32(&v["node_secret"])),
        client_eph: k32(&v["client_ephemeral_secret"]),
        relay_eph: k32(&v["relay_ephemeral_secret"]),
        network_id: v["network_id"].as_u64().unwrap() as u32,
        session: v["session"].as_u64().unwrap() as u16,
        timestamp_ms: v["timestamp_ms"].as_u64().unwrap(),
        v,
    }
}

impl Hs {
    fn client(&self) -> ClientHandshake {
        ClientHandshake::new(&self.account, self.client_eph, self.timestamp_ms, self.network_id)
    }
    fn node_pub(&self) -> [u8; 32] {
        VerificationKeyBytes::from(&self.node).into()
    }
    fn welcome(&self, c: &ClientHandshake) -> ([u8; Welcome::LEN], attnet_core::handshake::SessionKeys) {
        let hello = verify_hello(self.network_id, c.hello_body()).unwrap();
        relay_welcome(
            &self.node,
            self.relay_eph,
            &hello,
            c.hello_body(),
            self.session,
            &DomainParams::default(),
            self.network_id,
        )
        .unwrap()
    }
}

/// Re-signs a HELLO body with `sk` for `network_id`.
fn resign(body: &mut [u8], sk: &SigningKey, network_id: u32) {
    let msg = attnet_core::handshake::hello_signed_message(network_id, body);
    body[Hello::SIGNED_LEN..].copy_from_slice(&sk.sign(&msg).to_bytes());
}

#[test]
fn hello_and_welcome_rebuilt_byte_for_byte() {
    let h = hs();
    let c = h.client();
    assert_eq!(hex::encode(c.hello_frame()), h.v["hello_frame"].as_str().unwrap());
    let (w, relay_keys) = h.welcome(&c);
    let mut frame = Vec::new();
    info_frame(KIND_INDICATION, h.session, kind::WELCOME, &w, &mut frame);
    assert_eq!(hex::encode(&frame), h.v["welcome_frame"].as_str().unwrap());
    // Both ends hold the vector's keys.
    let est = c.finish(&w, &h.node_pub()).unwrap();
    assert_eq!(est.session_id, h.session);
    assert_eq!(est.params, DomainParams::default());
    for keys in [relay_keys, est.keys] {
        assert_eq!(hex::encode(keys.c2r), h.v["key_c2r"].as_str().unwrap());
        assert_eq!(hex::encode(keys.r2c), h.v["key_r2c"].as_str().unwrap());
    }
    // The frames parse back to the bodies.
    let hello_frame = hx(&h.v["hello_frame"]);
    let f = parse_info_frames(&hello_frame).unwrap();
    assert_eq!(f.len(), 1);
    assert_eq!(
        (f[0].kind, f[0].initiator, f[0].content_kind, f[0].body),
        (KIND_REQUEST, 0, kind::HELLO, c.hello_body())
    );
    let welcome_frame = hx(&h.v["welcome_frame"]);
    let f = parse_info_frames(&welcome_frame).unwrap();
    assert_eq!((f[0].kind, f[0].initiator, f[0].content_kind, f[0].body), (KIND_INDICATION, 7, kind::WELCOME, &w[..]));
}

#[test]
fn finish_refuses_a_wrong_node_another_hello_and_a_tampered_signature() {
    let h = hs();
    let c = h.client();
    let w = {
        let f = hx(&h.v["welcome_frame"]);
        parse_info_frames(&f).unwrap()[0].body.to_vec()
    };
    assert!(c.finish(&w, &h.node_pub()).is_ok());
    // Another pinned key.
    let other: [u8; 32] = VerificationKeyBytes::from(&SigningKey::from([9u8; 32])).into();
    assert_eq!(c.finish(&w, &other), Err(HandshakeError::WrongNodeKey));
    // A WELCOME, validly signed by the pinned node, for another HELLO (a
    // later timestamp).
    let c2 = ClientHandshake::new(&h.account, h.client_eph, h.timestamp_ms + 1, h.network_id);
    let (w2, _) = h.welcome(&c2);
    assert!(c2.finish(&w2, &h.node_pub()).is_ok());
    assert_eq!(c.finish(&w2, &h.node_pub()), Err(HandshakeError::NotForThisHello));
    assert_eq!(c2.finish(&w, &h.node_pub()), Err(HandshakeError::NotForThisHello));
    // A tampered signature (R, then S), and a tampered signed byte.
    for at in [Welcome::SIGNED_LEN, Welcome::LEN - 1, 81] {
        let mut bad = w.clone();
        bad[at] ^= 1;
        assert_eq!(c.finish(&bad, &h.node_pub()), Err(HandshakeError::BadSignature), "byte {at}");
    }
    // S + L (non-canonical S, same equation): refused by the strict rules.
    let mut bad = w.clone();
    add_l(&mut bad[Welcome::SIGNED_LEN + 32..]);
    assert_eq!(c.finish(&bad, &h.node_pub()), Err(HandshakeError::BadSignature));
    // Wrong length and version.
    assert_eq!(c.finish(&w[1..], &h.node_pub()), Err(HandshakeError::Malformed));
    let mut v2 = w.clone();
    v2[0] = 2;
    assert_eq!(c.finish(&v2, &h.node_pub()), Err(HandshakeError::BadVersion));
}

/// Adds the group order L to a 32-byte little-endian scalar.
fn add_l(s: &mut [u8]) {
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let mut carry = 0u16;
    for (b, l) in s.iter_mut().zip(L) {
        let v = u16::from(*b) + u16::from(l) + carry;
        *b = v as u8;
        carry = v >> 8;
    }
}

#[test]
fn verify_hello_refuses_tampering_version_params_length_and_small_order_keys() {
    let h = hs();
    let c = h.client();
    let good = c.hello_body().to_vec();
    assert_eq!(verify_hello(h.network_id, &good).map(|x| x.timestamp_ms), Ok(h.timestamp_ms));
    assert!(check_hello_signature(h.network_id, &good));
    assert_eq!(verify_hello(2, &good), Err(HandshakeError::BadSignature));
    // Tampered: a timestamp byte, then the signature.
    for at in [81, Hello::SIGNED_LEN, Hello::LEN - 1] {
        let mut bad = good.clone();
        bad[at] ^= 1;
        assert_eq!(verify_hello(h.network_id, &bad), Err(HandshakeError::BadSignature), "byte {at}");
        assert!(!check_hello_signature(h.network_id, &bad));
        // The cheap checks pass: only the signature fails.
        assert!(parse_hello(&bad).is_ok());
    }
    // Version 2 (re-signed, so only the version is wrong).
    let mut v2 = good.clone();
    v2[0] = 2;
    resign(&mut v2, &h.account, h.network_id);
    assert_eq!(verify_hello(h.network_id, &v2), Err(HandshakeError::BadVersion));
    assert_eq!(parse_hello(&v2), Err(HandshakeError::BadVersion));
    // Parameters a relay does not accept, validly signed.
    for (at, val) in [(15usize, 3u16), (13, 512), (1, 3)] {
        let mut bad = good.clone();
        bad[at..at + 2].copy_from_slice(&val.to_le_bytes());
        resign(&mut bad, &h.account, h.network_id);
        assert!(check_hello_signature(h.network_id, &bad));
        assert_eq!(verify_hello(h.network_id, &bad), Err(HandshakeError::BadParams), "offset {at}");
    }
    // Wrong length.
    assert_eq!(verify_hello(h.network_id, &good[..Hello::LEN - 1]), Err(HandshakeError::Malformed));
    let mut long = good.clone();
    long.push(0);
    assert_eq!(verify_hello(h.network_id, &long), Err(HandshakeError::Malformed));
    assert!(!check_hello_signature(h.network_id, &long));
    // A small-order account key (the identity) with R = identity and S = 0:
    // the cofactored equation holds, so the library alone accepts it; the
    // strict rules do not.
    let mut so = good.clone();
    let mut identity = [0u8; 32];
    identity[0] = 1;
    so[17..49].copy_from_slice(&identity);
    let mut sig = [0u8; 64];
    sig[..32].copy_from_slice(&identity);
    so[Hello::SIGNED_LEN..].copy_from_slice(&sig);
    let msg = attnet_core::handshake::hello_signed_message(h.network_id, &so);
    let vk = VerificationKey::try_from(VerificationKeyBytes::from(identity)).unwrap();
    assert!(vk.verify(&ed25519_zebra::Signature::from_bytes(&sig), &msg).is_ok());
    assert_eq!(verify_hello(h.network_id, &so), Err(HandshakeError::BadSignature));
    assert!(!check_hello_signature(h.network_id, &so));
}

#[test]
fn cookie_vector() {
    let h = hs();
    let e = load("att-v1.1-extensions.json");
    let cv = &e["cookie"];
    let c = h.client();
    assert_eq!(c.hello_hash(), k32(&cv["hello_body_sha256"]));
    let ip: std::net::Ipv4Addr = cv["source_address"].as_str().unwrap().parse().unwrap();
    let peer = Peer::v4(ip.octets(), cv["source_port"].as_u64().unwrap() as u16);
    let secret = k32(&cv["secret"]);
    let k = cookie(&secret, &peer, &c.hello_hash());
    assert_eq!(hex::encode(k), cv["cookie"].as_str().unwrap());
    // The relay's COOKIE frame.
    let mut body = [0u8; Cookie::LEN];
    Cookie { hello_hash: c.hello_hash(), cookie: k }.emit(&mut body).unwrap();
    let mut frame = Vec::new();
    info_frame(KIND_INDICATION, 0, kind::COOKIE, &body, &mut frame);
    assert_eq!(hex::encode(&frame), cv["cookie_frame"].as_str().unwrap());
    // The client's answer.
    let d = c.echo_datagram(&k);
    assert_eq!(hex::encode(&d), cv["echo_then_hello_datagram"].as_str().unwrap());
    // Both parse back.
    let vf = hx(&cv["cookie_frame"]);
    let f = parse_info_frames(&vf).unwrap();
    assert_eq!(f.len(), 1);
    assert_eq!((f[0].kind, f[0].initiator, f[0].content_kind), (KIND_INDICATION, 0, kind::COOKIE));
    assert_eq!(Cookie::parse(f[0].body), Ok(Cookie { hello_hash: c.hello_hash(), cookie: k }));
    let vd = hx(&cv["echo_then_hello_datagram"]);
    let f = parse_info_frames(&vd).unwrap();
    assert_eq!(f.len(), 2);
    assert_eq!((f[0].kind, f[0].content_kind), (KIND_REQUEST, kind::COOKIE_ECHO));
    assert_eq!(CookieEcho::parse(f[0].body), Ok(CookieEcho { cookie: k }));
    assert_eq!((f[1].kind, f[1].content_kind, f[1].body), (KIND_REQUEST, kind::HELLO, c.hello_body()));
    assert_eq!(
        verify_hello(h.network_id, f[1].body).map(|x| x.account),
        Ok(VerificationKeyBytes::from(&h.account).into())
    );
    // Another port, another address family, another secret: another cookie.
    assert_ne!(cookie(&secret, &Peer::v4(ip.octets(), 40001), &c.hello_hash()), k);
    let mut v6 = [0u8; 16];
    v6[10..12].copy_from_slice(&[0xff, 0xff]);
    v6[12..].copy_from_slice(&ip.octets());
    assert_ne!(cookie(&secret, &Peer::v6(v6, 40000, 0), &c.hello_hash()), k);
    assert_ne!(cookie(&[0; 32], &peer, &c.hello_hash()), k);
}

fn query_spec(kind: u8, content_kind: u8) -> FrameSpec {
    FrameSpec {
        kind,
        initiator: 7,
        channel: channel::MESSAGES,
        priority: mcs::PRIORITY_HIGH,
        long_per: false,
        stream_seq: 0,
        content_kind,
        compress: false,
    }
}

fn state_code(s: &str) -> u8 {
    match s {
        "unknown" => query::state::UNKNOWN,
        "pending" => query::state::PENDING,
        "committed" => query::state::COMMITTED,
        "refused" => query::state::REFUSED,
        other => panic!("state {other}"),
    }
}

#[test]
fn query_and_answer_vectors() {
    let e = load("att-v1.1-extensions.json");
    let q = &e["query"];
    let (c2r, r2c) = (k32(&q["key_c2r"]), k32(&q["key_r2c"]));
    let session = q["session"].as_u64().unwrap() as u32;
    let (_, mut client_tx) = Session::new(Role::Client, session, &c2r, &r2c, 0).unwrap().split();
    let (_, mut relay_tx) = Session::new(Role::Relay, session, &c2r, &r2c, 0).unwrap().split();
    let mut client_table = SessionTable::new(Role::Client);
    client_table.install(session, &c2r, &r2c).unwrap();
    let (mut out, mut scratch, mut open_scratch) = (Vec::new(), Vec::new(), Vec::new());
    let frames = q["frames"].as_array().unwrap();
    assert_eq!(frames.len(), 4);
    let mut seen = (0, 0);
    for f in frames {
        let body = hx(&f["body"]);
        let request_id = f["request_id"].as_u64().unwrap() as u32;
        let what = match f["what"].as_str().unwrap() {
            "account" => query::what::ACCOUNT,
            "transaction" => query::what::TRANSACTION,
            w => panic!("what {w}"),
        };
        let counter = f["counter"].as_u64().unwrap();
        out.clear();
        match f["direction"].as_str().unwrap() {
            "c2r" => {
                seen.0 += 1;
                let parsed = Query::parse(&body).unwrap();
                assert_eq!((parsed.request_id, parsed.what.code()), (request_id, what));
                let mut again = Vec::new();
                parsed.emit(&mut again);
                assert_eq!(again, body);
                let c = client_tx.seal_frame(&query_spec(KIND_REQUEST, kind::QUERY), &body, &mut out, &mut scratch);
                assert_eq!(c, Ok(counter));
                assert_eq!(hex::encode(&out), f["frame"].as_str().unwrap());
            }
            "r2c" => {
                seen.1 += 1;
                let a = Answer::parse(&body).unwrap();
                let want = &f["answer"];
                assert_eq!((a.request_id, a.what), (request_id, what));
                assert_eq!(u64::from(a.status), want["status"].as_u64().unwrap());
                let u = |k: &str| want[k].as_u64().unwrap();
                let expect = match what {
                    query::what::ACCOUNT => AnswerBody::Account {
                        next_nonce: u("next_nonce"),
                        balance: u("balance"),
                        staked: u("staked"),
                        min_fee: u("min_fee"),
                        height: u("height"),
                    },
                    _ => AnswerBody::Transaction {
                        state: state_code(want["state"].as_str().unwrap()),
                        height: u("height"),
                        reason: u("reason") as u8,
                    },
                };
                assert_eq!(a.body, expect);
                // Emitting the vector's fields gives the vector's body.
                let mut again = Vec::new();
                Answer { request_id, what, status: query::status::OK, body: expect }.emit(&mut again);
                assert_eq!(again, body);
                let c = relay_tx.seal_frame(&query_spec(KIND_INDICATION, kind::ANSWER), &body, &mut out, &mut scratch);
                assert_eq!(c, Ok(counter));
                assert_eq!(hex::encode(&out), f["frame"].as_str().unwrap());
                // The client opens the vector's frame to the same body.
                let mut frame = hx(&f["frame"]);
                let ind = open_indication(&client_table, &mut frame, &mut open_scratch).unwrap();
                assert_eq!((ind.session, ind.channel, ind.counter), (7, channel::MESSAGES, counter));
                assert_eq!((ind.content_kind, ind.body), (kind::ANSWER, &body[..]));
            }
            d => panic!("direction {d}"),
        }
    }
    assert_eq!(seen, (2, 2));
    // The first query asks about the handshake vector's account.
    let first = Query::parse(&hx(&frames[0]["body"])).unwrap();
    let hello = Hello::parse(hs().client().hello_body()).unwrap();
    assert_eq!(first.what, QueryWhat::Account(hello.account));
    // A 37-byte account query and a version 2 query are bad_tx.
    let b = hx(&frames[0]["body"]);
    assert_eq!(Query::parse(&b[..37]), Err(DropReason::BadTx));
    let mut v2 = b.clone();
    v2[0] = 2;
    assert_eq!(Query::parse(&v2), Err(DropReason::BadTx));
    // Round trips: each answer kind, and a refusal for an unserved what.
    let other = Query::parse(&[1, 9, 0, 0, 0, 18, 0xaa]).unwrap();
    assert_eq!(other.what, QueryWhat::Other(18));
    for a in [
        Answer::parse(&hx(&frames[1]["body"])).unwrap(),
        Answer::parse(&hx(&frames[3]["body"])).unwrap(),
        Answer::refusal(&other, query::status::NOT_SERVED),
    ] {
        let mut b = Vec::new();
        a.emit(&mut b);
        assert_eq!(Answer::parse(&b), Ok(a));
    }
}
