//! `attnet keygen` and the node's handshake settings through the built
//! binary.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_attnet");

fn tmpdir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("attnet-keygen-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn attnet(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn hex32(v: &Value) -> [u8; 32] {
    let s = v.as_str().unwrap();
    assert_eq!(s.len(), 64, "{s}");
    let mut b = [0u8; 32];
    hex::decode_to_slice(s, &mut b).unwrap();
    b
}

#[test]
fn keygen_writes_an_owner_only_key_whose_public_key_matches() {
    let d = tmpdir("new");
    let p = d.join("node.json");
    let o = attnet(&["keygen", "--out", p.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
    let text = std::fs::read_to_string(&p).unwrap();
    assert!(text.ends_with("}\n"), "{text:?}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v.as_object().unwrap().len(), 2, "{text}");
    let (secret, public) = (hex32(&v["secret"]), hex32(&v["public"]));
    let derived: [u8; 32] = ed25519_zebra::VerificationKey::from(&ed25519_zebra::SigningKey::from(secret)).into();
    assert_eq!(public, derived);
    // The public key, and only it, on stdout.
    let out = String::from_utf8(o.stdout.clone()).unwrap();
    assert_eq!(out, format!("{}\n", hex::encode(public)));
    assert!(!out.contains(&hex::encode(secret)) && !stderr(&o).contains(&hex::encode(secret)));
    // A second key is another key.
    let q = d.join("node2.json");
    let o = attnet(&["keygen", "--out", q.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let w: Value = serde_json::from_str(&std::fs::read_to_string(&q).unwrap()).unwrap();
    assert_ne!(w["secret"], v["secret"]);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn keygen_never_overwrites_a_file() {
    let d = tmpdir("exists");
    let p = d.join("node.json");
    std::fs::write(&p, "precious\n").unwrap();
    let o = attnet(&["keygen", "--out", p.to_str().unwrap()]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("node key file {} already exists", p.display())), "{err}");
    assert!(err.contains("never overwritten"), "{err}");
    assert!(o.stdout.is_empty());
    assert_eq!(std::fs::read_to_string(&p).unwrap(), "precious\n");
    // Nor a file behind a symlink, nor a dangling symlink's target.
    let link = d.join("link.json");
    std::os::unix::fs::symlink(d.join("elsewhere.json"), &link).unwrap();
    let o = attnet(&["keygen", "--out", link.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(!d.join("elsewhere.json").exists());
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn keygen_needs_a_file() {
    let o = attnet(&["keygen"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--out <FILE>"), "{}", stderr(&o));
    let o = attnet(&["keygen", "--out", "-"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("never written to stdout"), "{}", stderr(&o));
    assert!(!std::path::Path::new("-").exists());
    let o = attnet(&["keygen", "--out", "/nonexistent-dir/node.json"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("/nonexistent-dir/node.json"), "{}", stderr(&o));
    let o = attnet(&["keygen", "--help"]);
    assert!(o.status.success());
    let help = String::from_utf8_lossy(&o.stdout);
    assert!(help.contains("--out <FILE>") && help.contains("0600") && help.contains("never overwritten"), "{help}");
}

#[test]
fn handshake_settings_out_of_range_are_refused_by_the_node() {
    let d = tmpdir("ranges");
    for (flag, value, want) in [
        ("--hello-source-rate", "0", "config key `hello_source_rate`: 0 is not in 1..=100000"),
        ("--sessions-per-source", "64536", "config key `sessions_per_source`: 64536 is not in 1..=64535"),
        ("--hello-cookie-threshold", "1000001", "config key `hello_cookie_threshold`: 1000001 is not in 0..=1000000"),
    ] {
        // A capture that does not exist: were the value taken, the node
        // would stop at once with another message, not run.
        let o = attnet(&["node", "--backend", "pcap", "--pcap", "/nonexistent/none.pcap", flag, value]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{flag} {value}: {err}");
        // The key, the value and the range, then the fix.
        assert!(err.trim().starts_with(&format!("attnet: {want}; set a value in")), "{flag} {value}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one problem: {err}");
    }
    let cfg = d.join("n.toml");
    std::fs::write(&cfg, "query_queue = 0\n").unwrap();
    let o =
        attnet(&["node", "--config", cfg.to_str().unwrap(), "--backend", "pcap", "--pcap", "/nonexistent/none.pcap"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("config key `query_queue`: 0 is not in 1..=1048576"), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&d);
}
