//! `attnet decode` end to end through the built binary.

use std::io::Write;
use std::process::{Command, Stdio};

use dataplane::testkit;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_attnet");

fn keys_file(dir: &std::path::Path) -> std::path::PathBuf {
    let sessions: Vec<Value> = (0..16u16)
        .map(|s| serde_json::json!({"id": s, "c2r": hex::encode(testkit::c2r(s)), "r2c": hex::encode(testkit::r2c(s))}))
        .collect();
    let p = dir.join("keys.json");
    std::fs::write(&p, serde_json::json!({ "sessions": sessions }).to_string()).unwrap();
    p
}

fn tmpdir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("attnet-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn decode(args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut c = Command::new(BIN)
        .arg("decode")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let o = c.wait_with_output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into(),
        String::from_utf8_lossy(&o.stderr).into(),
    )
}

#[test]
fn shared_vectors_all_match() {
    let p = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/att-v1-vectors.json");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
    let vs = v["vectors"].as_array().unwrap();
    let d = tmpdir("vectors");
    let k = keys_file(&d);
    let input: String = vs.iter().map(|x| format!("{}\n", x["frame"].as_str().unwrap())).collect();
    let (code, out, err) = decode(&["--keys", k.to_str().unwrap(), "--network-id", "1"], &input);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), vs.len());
    let mut matched = 0;
    for (got, want) in lines.iter().zip(vs) {
        assert_eq!(got["verdict"], want["verdict"], "{}", want["name"]);
        assert_eq!(got["tx_ids"], want["tx_ids"], "{}", want["name"]);
        matched += 1;
    }
    assert_eq!(matched, 30);
    // Same answer on another network id: every signature fails.
    let (_, out, _) = decode(&["--keys", k.to_str().unwrap(), "--network-id", "2"], &input);
    let first: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(first["verdict"], "bad_signature");
}

/// The shared checker script (copied into testdata/) against this binary.
#[test]
fn shared_checker_prints_30_of_30() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata");
    let o = Command::new("python3")
        .arg(format!("{root}/check_vectors.py"))
        .arg(BIN)
        .arg(format!("{root}/att-v1-vectors.json"))
        .output()
        .expect("python3 runs (scripts/deps.sh installs it)");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}");
    assert_eq!(out.lines().last(), Some("30/30 vectors match"), "{out}");
}

#[test]
fn malformed_input_is_a_clear_error() {
    let d = tmpdir("malformed");
    let k = keys_file(&d);
    let ks = k.to_str().unwrap();
    let (code, out, err) = decode(&["--keys", ks], "030000\nzz\n");
    assert_eq!(code, 2);
    assert_eq!(out.lines().count(), 1, "the good line is still answered");
    assert!(err.contains("line 2") && err.contains("not hex"), "{err}");
    let (code, _, err) = decode(&["--keys", ks], "abc\n");
    assert_eq!(code, 2);
    assert!(err.contains("line 1") && err.contains("odd"), "{err}");
    // An empty line is a zero-byte datagram: truncated.
    let (code, out, _) = decode(&["--keys", ks], "\n");
    assert_eq!(code, 0);
    assert_eq!(out.trim(), r#"{"verdict":"truncated","tx_ids":[]}"#);

    let bad = d.join("bad.json");
    for (text, needle) in [
        ("{", "keys file"),
        (r#"{"sessions": [{"id": 3, "c2r": "00", "r2c": "00"}]}"#, "session 3: c2r"),
        (r#"{"sessions": [{"id": 70000, "c2r": "00", "r2c": "00"}]}"#, "sessions[0]"),
        (&format!(r#"{{"sessions": [{{"id": 70000, "c2r": "{0}", "r2c": "{0}"}}]}}"#, "00".repeat(32)), "out of range"),
        (
            &format!(
                r#"{{"sessions": [{{"id": 1, "c2r": "{0}", "r2c": "{1}"}}, {{"id": 1, "c2r": "{0}", "r2c": "{1}"}}]}}"#,
                "11".repeat(32),
                "22".repeat(32)
            ),
            "listed twice",
        ),
        // Keys no session may use.
        (&format!(r#"{{"sessions": [{{"id": 1, "c2r": "{0}", "r2c": "{0}"}}]}}"#, "11".repeat(32)), "same key"),
        (
            &format!(r#"{{"sessions": [{{"id": 1, "c2r": "{0}", "r2c": "{1}"}}]}}"#, "00".repeat(32), "22".repeat(32)),
            "all zero",
        ),
    ] {
        std::fs::write(&bad, text).unwrap();
        let (code, _, err) = decode(&["--keys", bad.to_str().unwrap()], "");
        assert_eq!(code, 2, "{text}");
        assert!(err.contains(needle), "{text}: {err}");
        assert!(!err.contains("panicked"));
    }
    let (code, _, err) = decode(&["--keys", "/nonexistent/keys.json"], "");
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent/keys.json"), "{err}");
}

mod capture {
    use super::*;

    use dataplane::testkit::{udp4_packet as udp4, udp6_vlan_packet as udp6_vlan};

    /// The packets and the summary they must produce.
    fn traffic() -> (Vec<Vec<u8>>, Value) {
        let (a, _) = testkit::txs(1, 2, 5, 1);
        let (c, _) = testkit::txs(2, 2, 5, 1);
        let f1 = testkit::frame(3, 1, &a, false);
        let f2 = testkit::frame(3, 2, &[a[1].clone(), c[0].clone()], true); // a[1] again: duplicate
        let f4 = testkit::frame(4, 1, &c[1..], false);
        let tcp = testkit::tcp4_packet(7100, &f1);
        let arp = testkit::arp_packet(etherparse::ArpOperation::REQUEST, [127, 0, 0, 2]);
        let frag = testkit::udp4_fragment(7100, &f1);
        let pkts = vec![
            udp4(7100, &f1),
            udp4(7100, &f2),
            udp4(7100, &f1), // replayed
            udp6_vlan(7100, &f4),
            udp4(53, &f1),
            tcp,
            arp,
            frag,
            vec![1, 2, 3, 4, 5],
            udp4(7100, b"hello, world"),
        ];
        let want = serde_json::json!({
            "packets": {"received": 10, "not_att": {"link_type": 0, "malformed": 1, "not_ip": 1, "ip_fragment": 1, "not_udp": 1, "wrong_port": 1}},
            "frames": {"received": 5, "accepted": 3, "dropped": {
                "truncated": 0, "bad_header": 1, "bad_length": 0, "unsupported_channel": 0, "unknown_session": 0,
                "auth_failed": 0, "replay": 1, "bad_security": 0, "bad_compression": 0, "bad_tx": 0, "throttled": 0}},
            "txs": {"seen": 5, "accepted": 4, "dropped": {"bad_signature": 0, "duplicate": 1, "ring_full": 0}},
        });
        (pkts, want)
    }

    fn check(path: &std::path::Path, want: &Value, k: &std::path::Path) {
        let (code, out, err) = decode(&["--keys", k.to_str().unwrap(), "--pcap", path.to_str().unwrap()], "");
        assert_eq!(code, 0, "{err}");
        let got: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(&got, want);
        let frames = &got["frames"];
        let dropped: u64 = frames["dropped"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
        assert_eq!(frames["received"].as_u64().unwrap(), frames["accepted"].as_u64().unwrap() + dropped);
        let txs = &got["txs"];
        let dropped: u64 = txs["dropped"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
        assert_eq!(txs["seen"].as_u64().unwrap(), txs["accepted"].as_u64().unwrap() + dropped);
    }

    #[test]
    fn pcap_summary_adds_up() {
        use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
        let d = tmpdir("pcap");
        let k = keys_file(&d);
        let (pkts, want) = traffic();
        let path = d.join("t.pcap");
        let mut w = PcapWriter::with_header(std::fs::File::create(&path).unwrap(), PcapHeader::default()).unwrap();
        for (i, p) in pkts.iter().enumerate() {
            w.write_packet(&PcapPacket::new(std::time::Duration::from_millis(i as u64), p.len() as u32, p)).unwrap();
        }
        drop(w);
        check(&path, &want, &k);
    }

    #[test]
    fn pcapng_summary_adds_up() {
        use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
        use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionBlock;
        use pcap_file::pcapng::PcapNgWriter;
        use pcap_file::DataLink;
        let d = tmpdir("pcapng");
        let k = keys_file(&d);
        let (pkts, want) = traffic();
        let path = d.join("t.pcapng");
        let mut w = PcapNgWriter::new(std::fs::File::create(&path).unwrap()).unwrap();
        w.write_pcapng_block(InterfaceDescriptionBlock {
            linktype: DataLink::ETHERNET,
            snaplen: 65535,
            options: vec![],
        })
        .unwrap();
        for (i, p) in pkts.iter().enumerate() {
            w.write_pcapng_block(EnhancedPacketBlock {
                interface_id: 0,
                timestamp: std::time::Duration::from_millis(i as u64),
                original_len: p.len() as u32,
                data: std::borrow::Cow::Borrowed(p),
                options: vec![],
            })
            .unwrap();
        }
        drop(w);
        check(&path, &want, &k);
    }

    #[test]
    fn not_a_capture_is_a_clear_error() {
        let d = tmpdir("notpcap");
        let k = keys_file(&d);
        let p = d.join("x.pcap");
        std::fs::write(&p, b"this is not a capture file").unwrap();
        let (code, _, err) = decode(&["--keys", k.to_str().unwrap(), "--pcap", p.to_str().unwrap()], "");
        assert_eq!(code, 2);
        assert!(err.contains("x.pcap"), "{err}");
    }
}
