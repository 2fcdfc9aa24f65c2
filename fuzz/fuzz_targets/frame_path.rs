//! The whole frame path. The first byte picks the mode:
//! even: the rest is a burst of raw datagrams (split at 0xFF 0xFE pairs);
//! odd: the rest is a plaintext sealed into a valid frame for session 1,
//! so share-data, LZ4, TX_BATCH and signature checks are reached.
#![no_main]
use dataplane::{testkit, Burst, FramePath};
use libfuzzer_sys::fuzz_target;
use std::cell::RefCell;

thread_local! {
    static STATE: RefCell<(FramePath, Burst)> = RefCell::new((testkit::relay(1), Burst::default()));
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let mut ds: Vec<Vec<u8>> = Vec::new();
    if mode & 1 == 0 {
        let mut start = 0;
        let mut i = 0;
        while i + 1 < rest.len() {
            if rest[i] == 0xFF && rest[i + 1] == 0xFE {
                ds.push(rest[start..i].to_vec());
                start = i + 2;
                i += 2;
            } else {
                i += 1;
            }
        }
        ds.push(rest[start..].to_vec());
    } else {
        // Seal `rest` verbatim as the plaintext (share-data header included).
        let key = dataplane::crypto::AeadKey::new(&testkit::c2r(1));
        let counter = u64::from(mode >> 1);
        let channel: u16 = if mode & 2 == 0 { 1004 } else { 1005 };
        let ud_len = 12 + rest.len() + 16;
        if ud_len > 0x3FFF {
            return;
        }
        // TPKT, X.224, MCS (PER length), security header, then the
        // plaintext sealed in place.
        let mut f = vec![3, 0, 0, 0, 2, 0xF0, 0x80, 0x64, 0, 1];
        f.extend_from_slice(&channel.to_be_bytes());
        f.push(0x70);
        if ud_len < 0x80 {
            f.push(ud_len as u8);
        } else {
            f.extend_from_slice(&(0x8000u16 | ud_len as u16).to_be_bytes());
        }
        f.extend_from_slice(&8u16.to_le_bytes());
        f.extend_from_slice(&1u16.to_le_bytes());
        f.extend_from_slice(&counter.to_le_bytes());
        let pt_at = f.len();
        f.extend_from_slice(rest);
        let n = (f.len() + 16) as u16;
        f[2..4].copy_from_slice(&n.to_be_bytes());
        let (aad, body) = f.split_at_mut(pt_at);
        let tag = key.seal_in_place(counter, aad, body);
        f.extend_from_slice(&tag);
        ds.push(f);
    }
    STATE.with(|s| {
        let (fp, burst) = &mut *s.borrow_mut();
        // Fresh windows each run so sealed inputs are not replays.
        if mode & 1 == 1 {
            *fp = testkit::relay(1);
        }
        fp.process(&mut ds, burst);
        assert!(burst.counters.balanced(), "{:?}", burst.counters);
        assert!(burst.frames.len() >= ds.len());
    });
});
