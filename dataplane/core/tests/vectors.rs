//! The shared test vectors (copied into testdata/) through the library:
//! one datagram per burst, and all of them as one burst, must give the
//! vectors' verdicts and ids, with counters that add up.

mod common;

use attnet_core::wire::{mcs, security, share, tpkt};
use attnet_core::{Burst, Verdict};
use serde_json::Value;

fn vectors() -> Vec<Value> {
    let p = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/att-v1-vectors.json");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
    v["vectors"].as_array().unwrap().clone()
}

fn want(v: &Value) -> (String, Vec<String>) {
    let ids = v["tx_ids"].as_array().unwrap().iter().map(|x| x.as_str().unwrap().to_string()).collect();
    (v["verdict"].as_str().unwrap().to_string(), ids)
}

#[test]
fn every_vector_one_at_a_time() {
    let vs = vectors();
    assert_eq!(vs.len(), 30);
    let mut fp = common::relay(1);
    let mut burst = Burst::default();
    let mut total = attnet_core::Counters::default();
    for v in &vs {
        let mut d = [hex::decode(v["frame"].as_str().unwrap()).unwrap()];
        fp.process(&mut d, &mut burst);
        let got_ids: Vec<String> = burst.txs.iter().map(|t| hex::encode(t.id)).collect();
        let got = (burst.datagram_verdict(0).as_str().to_string(), got_ids);
        assert_eq!(got, want(v), "vector {}", v["name"]);
        assert!(burst.counters.balanced(), "{:?}", burst.counters);
        for t in &burst.txs {
            // The bytes handed out are the transaction the id names.
            let bytes = burst.tx_bytes(&d, t);
            use sha2::Digest;
            let id: [u8; 32] = sha2::Sha256::digest(attnet_core::wire::tx::unsigned_part(bytes)).into();
            assert_eq!(id, t.id);
        }
    }
    total.add(&burst.counters);
    assert_eq!(total.frames_received, 31, "two_frames_one_datagram holds two frames");
    assert!(total.balanced());
}

#[test]
fn all_vectors_as_one_burst() {
    let vs = vectors();
    let mut fp = common::relay(1);
    let mut burst = Burst::default();
    let mut ds: Vec<Vec<u8>> = vs.iter().map(|v| hex::decode(v["frame"].as_str().unwrap()).unwrap()).collect();
    fp.process(&mut ds, &mut burst);
    assert!(burst.counters.balanced());
    for (i, v) in vs.iter().enumerate() {
        let frames: Vec<u32> =
            burst.frames.iter().enumerate().filter(|(_, f)| f.datagram == i as u32).map(|(k, _)| k as u32).collect();
        let ids: Vec<String> =
            burst.txs.iter().filter(|t| frames.contains(&t.frame)).map(|t| hex::encode(t.id)).collect();
        assert_eq!((burst.datagram_verdict(i as u32).as_str().to_string(), ids), want(v), "vector {}", v["name"]);
    }
    // One verification call for the burst; bisection only for the forged ones.
    assert!(fp.batch_checks() < 60, "batch checks: {}", fp.batch_checks());
    let bad: u16 = burst.frames.iter().map(|f| if let Verdict::BadSignature(n) = f.verdict { n } else { 0 }).sum();
    assert_eq!(bad as u64, burst.counters.tx_drop(attnet_core::TxDrop::BadSignature));
}

#[test]
fn handshake_vector_parses_and_derives_the_keys() {
    use ed25519_zebra::{Signature, VerificationKey};
    use hkdf::Hkdf;
    use sha2::{Digest, Sha256};
    let p = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/att-v1-handshake.json");
    let h: Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
    let body_of = |hexs: &str, kind: u8, ct: u8, initiator: u16| -> Vec<u8> {
        let f = hex::decode(hexs).unwrap();
        let t = tpkt::Packet::new_checked(&f[..]).unwrap();
        assert_eq!(t.length() as usize, f.len());
        let m = mcs::Packet::new_checked(&f[7..]).unwrap();
        assert_eq!((m.kind(), m.channel(), m.initiator()), (kind, mcs::channel::CONTROL, initiator));
        let s = security::Packet::new_checked(m.user_data(), true).unwrap();
        let sd = share::Packet::new_unchecked(s.clear_payload());
        let r = share::Repr::parse(&sd).unwrap();
        assert_eq!(r.content_kind, ct);
        sd.body().to_vec()
    };
    let hello_b = body_of(h["hello_frame"].as_str().unwrap(), mcs::KIND_REQUEST, share::kind::HELLO, 0);
    let welcome_b = body_of(h["welcome_frame"].as_str().unwrap(), mcs::KIND_INDICATION, share::kind::WELCOME, 7);
    // The relay's WELCOME already carries the session id it assigns as
    // initiator; the client's HELLO uses 0.
    let hello = attnet_core::wire::handshake::Hello::parse(&hello_b).unwrap();
    let welcome = attnet_core::wire::handshake::Welcome::parse(&welcome_b).unwrap();
    assert_eq!(hello.timestamp_ms, h["timestamp_ms"].as_u64().unwrap());
    assert_eq!(welcome.session_id as u64, h["session"].as_u64().unwrap());
    let hh: [u8; 32] = Sha256::digest(&hello_b).into();
    assert_eq!(welcome.hello_hash, hh);
    // Re-emitting gives the same bytes.
    let mut again = [0u8; attnet_core::wire::handshake::Hello::LEN];
    hello.emit(&mut again).unwrap();
    assert_eq!(&again[..], &hello_b[..]);
    // Signatures with prefix and network id 1.
    let signed = |prefix: &[u8], body: &[u8], n: usize| {
        let mut m = prefix.to_vec();
        m.extend_from_slice(&1u32.to_le_bytes());
        m.extend_from_slice(&body[..n]);
        m
    };
    let vk = VerificationKey::try_from(hello.account).unwrap();
    vk.verify(&Signature::from_bytes(&hello.signature), &signed(b"ATT-HELLO-v1", &hello_b, 89)).unwrap();
    let vk = VerificationKey::try_from(welcome.node_key).unwrap();
    vk.verify(&Signature::from_bytes(&welcome.signature), &signed(b"ATT-WELCOME-v1", &welcome_b, 115)).unwrap();
    // Key schedule.
    let sec = |k: &str| -> [u8; 32] { hex::decode(h[k].as_str().unwrap()).unwrap().try_into().unwrap() };
    let client = x25519_dalek::StaticSecret::from(sec("client_ephemeral_secret"));
    assert_eq!(x25519_dalek::PublicKey::from(&client).to_bytes(), hello.ephemeral);
    let shared = client.diffie_hellman(&x25519_dalek::PublicKey::from(welcome.ephemeral));
    let mut salt = Sha256::new();
    salt.update(&hello_b);
    salt.update(&welcome_b);
    let salt: [u8; 32] = salt.finalize().into();
    let hk = Hkdf::<Sha256>::new(Some(&salt), shared.as_bytes());
    let mut okm = [0u8; 64];
    hk.expand(b"ATT-SESSION-v1", &mut okm).unwrap();
    assert_eq!(hex::encode(&okm[..32]), h["key_c2r"].as_str().unwrap());
    assert_eq!(hex::encode(&okm[32..]), h["key_r2c"].as_str().unwrap());
}
