//! HELLO, COOKIE_ECHO and QUERY frames on the relay's path (`att-wire.md`
//! v1.1): accepted as frames and listed for the control plane, with the
//! spec's drop reasons for everything else, from the vectors' own frames.

mod common;

use attnet_core::emit::{emit_frame_with, FrameSpec};
use attnet_core::wire::{mcs, share};
use attnet_core::{Burst, DropReason, Verdict};
use serde_json::Value;

fn json(name: &str) -> Value {
    let p = format!("{}/../../testdata/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn hexv(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap()).unwrap()
}

fn judge(fp: &mut attnet_core::FramePath, datagram: &[u8]) -> Burst {
    let mut burst = Burst::default();
    let mut d = [datagram.to_vec()];
    fp.process(&mut d, &mut burst);
    let c = &burst.counters;
    assert!(c.balanced(), "counters add up: {c:?}");
    burst
}

fn verdicts(b: &Burst) -> Vec<Verdict> {
    b.frames.iter().map(|f| f.verdict).collect()
}

#[test]
fn hellos_and_echoes_are_accepted_only_where_handshakes_are_served() {
    let hs = json("att-v1-handshake.json");
    let ext = json("att-v1.1-extensions.json");
    let hello = hexv(&hs["hello_frame"]);
    let mut fp = common::relay(1);
    // Without a node key, channel 1003 is not served.
    let b = judge(&mut fp, &hello);
    assert_eq!(verdicts(&b), [Verdict::Dropped(DropReason::UnsupportedChannel)]);
    assert!(b.control.is_empty());
    fp.set_handshakes(true);
    let b = judge(&mut fp, &hello);
    assert_eq!(verdicts(&b), [Verdict::Ok]);
    assert_eq!(b.control.len(), 1);
    let c = b.control[0];
    assert_eq!(c.content_kind, share::kind::HELLO);
    let d = [hello.clone()];
    assert_eq!(b.control_body(&d, &c).len(), 153);
    assert_eq!(b.control_body(&d, &c), &hello[hello.len() - 153..]);
    // The echo and its HELLO: two accepted frames, listed in order.
    let echo = hexv(&ext["cookie"]["echo_then_hello_datagram"]);
    let b = judge(&mut fp, &echo);
    assert_eq!(verdicts(&b), [Verdict::Ok, Verdict::Ok]);
    let kinds: Vec<u8> = b.control.iter().map(|c| c.content_kind).collect();
    assert_eq!(kinds, [share::kind::COOKIE_ECHO, share::kind::HELLO]);
    let d = [echo.clone()];
    let cookie = hexv(&ext["cookie"]["cookie"]);
    assert_eq!(&b.control_body(&d, &b.control[0])[1..], &cookie[..]);
    // The relay's own frames on 1003 are indications: `bad_header`.
    let welcome = hexv(&hs["welcome_frame"]);
    assert_eq!(verdicts(&judge(&mut fp, &welcome)), [Verdict::Dropped(DropReason::BadHeader)]);
    // A request of another content kind on 1003: `bad_header`.
    let mut w = hello.clone();
    let kind_at = hello.len() - 153 - 4;
    assert_eq!(w[kind_at], share::kind::HELLO);
    w[kind_at] = share::kind::WELCOME;
    assert_eq!(verdicts(&judge(&mut fp, &w)), [Verdict::Dropped(DropReason::BadHeader)]);
    // ENCRYPT on 1003: `bad_security`.
    let mut sealed = Vec::new();
    let spec = FrameSpec { channel: mcs::channel::CONTROL, content_kind: share::kind::HELLO, ..FrameSpec::tx_batch(0) };
    let key = attnet_core::crypto::AeadKey::new(&[9; 32]);
    emit_frame_with(&spec, &[1; 153], Some((&key, 0)), &mut sealed, &mut Vec::new()).unwrap();
    assert_eq!(verdicts(&judge(&mut fp, &sealed)), [Verdict::Dropped(DropReason::BadSecurity)]);
    assert!(judge(&mut fp, &sealed).control.is_empty());
}

#[test]
fn queries_are_accepted_on_1005_and_checked_at_step_10() {
    let ext = json("att-v1.1-extensions.json");
    let q = &ext["query"];
    let c2r: [u8; 32] = hexv(&q["key_c2r"]).try_into().unwrap();
    let r2c: [u8; 32] = hexv(&q["key_r2c"]).try_into().unwrap();
    let mut fp = common::relay(1);
    fp.sessions.install(7, &c2r, &r2c).unwrap();
    let frames: Vec<&Value> = q["frames"].as_array().unwrap().iter().filter(|f| f["direction"] == "c2r").collect();
    assert_eq!(frames.len(), 2);
    for f in frames {
        let bytes = hexv(&f["frame"]);
        let b = judge(&mut fp, &bytes);
        assert_eq!(verdicts(&b), [Verdict::Ok]);
        assert_eq!(b.control.len(), 1);
        assert_eq!(b.control[0].content_kind, share::kind::QUERY);
        // Decrypted in place: the body is the vector's plaintext body.
        let mut d = [bytes];
        let b = {
            let mut fp2 = common::relay(1);
            fp2.sessions.install(7, &c2r, &r2c).unwrap();
            let mut burst = Burst::default();
            fp2.process(&mut d, &mut burst);
            burst
        };
        assert_eq!(b.control_body(&d, &b.control[0]), &hexv(&f["body"])[..]);
        assert_eq!(b.frames[0].session, 7);
    }
    // Sealed in a configured session: the same checks for hand-made bodies.
    let mut fp = common::relay(1);
    let mut s =
        attnet_core::session::Session::new(attnet_core::session::Role::Client, 3, &common::c2r(3), &common::r2c(3), 0)
            .unwrap();
    fp.sessions.install(3, &common::c2r(3), &common::r2c(3)).unwrap();
    let mut send = |channel: u16, body: &[u8]| {
        let mut f = Vec::new();
        let spec = FrameSpec { channel, content_kind: share::kind::QUERY, ..FrameSpec::tx_batch(3) };
        s.tx.seal_frame(&spec, body, &mut f, &mut Vec::new()).unwrap();
        judge(&mut fp, &f)
    };
    let mut account = vec![1, 9, 0, 0, 0, 1];
    account.extend_from_slice(&[5; 32]);
    assert_eq!(verdicts(&send(1005, &account)), [Verdict::Ok]);
    // A QUERY on 1004 is not valid there.
    assert_eq!(verdicts(&send(1004, &account)), [Verdict::Dropped(DropReason::BadHeader)]);
    // Wrong length, wrong version: `bad_tx`; nothing listed.
    let b = send(1005, &account[..37]);
    assert_eq!(verdicts(&b), [Verdict::Dropped(DropReason::BadTx)]);
    assert!(b.control.is_empty());
    let mut v2 = account.clone();
    v2[0] = 2;
    assert_eq!(verdicts(&send(1005, &v2)), [Verdict::Dropped(DropReason::BadTx)]);
    // The project's inbox and connections queries (16, 17): exactly 46
    // bytes (key and a u64 start index), listed; any other length `bad_tx`.
    for what in [16u8, 17] {
        let mut paged = vec![1, 2, 0, 0, 0, what];
        paged.extend_from_slice(&[5; 32]);
        paged.extend_from_slice(&3u64.to_le_bytes());
        let b = send(1005, &paged);
        assert_eq!((verdicts(&b), b.control.len()), (vec![Verdict::Ok], 1), "what {what}");
        for n in [6, 38, 45, 47] {
            let mut body = paged.clone();
            body.resize(n, 0);
            let b = send(1005, &body);
            assert_eq!(verdicts(&b), [Verdict::Dropped(DropReason::BadTx)], "what {what}, {n} bytes");
            assert!(b.control.is_empty());
        }
    }
    // Another `what` of the project's own range: listed whatever its length
    // (answered as not served).
    let b = send(1005, &[1, 1, 0, 0, 0, 18]);
    assert_eq!((verdicts(&b), b.control.len()), (vec![Verdict::Ok], 1));
}
