//! The command line refuses options it cannot honour, with a one-line
//! error and exit status 2, instead of changing them; secret keys are
//! written mode 0600.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_attnet-pktgen");

fn tmpdir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("attnet-pktgen-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs the generator with `args` (nothing to sign: no pool is reached
/// before the checks) and returns its status code and stderr.
fn refused(args: &[&str]) -> (Option<i32>, String) {
    let o = Command::new(BIN).args(["--pool-cache", "off", "--quiet"]).args(args).output().expect("runs");
    (o.status.code(), String::from_utf8_lossy(&o.stderr).into_owned())
}

#[test]
fn bad_counts_rates_and_durations_are_refused_with_one_line() {
    let out = "pcap:/dev/null";
    let cases: &[(&[&str], &str)] = &[
        (&["--threads", "0"], "--threads 0"),
        (&["--sessions", "0"], "--sessions 0"),
        (&["--accounts", "0"], "--accounts 0"),
        (&["--burst", "0"], "--burst 0"),
        (&["--frames-per-datagram", "0"], "--frames-per-datagram 0"),
        (&["--batch", "0"], "--batch 0"),
        (&["--batch", "65"], "--batch 65"),
        (&["--txs", "0"], "--txs 0"),
        (&["--txs-per-frame", "0"], "--txs-per-frame 0"),
        (&["--pps", "NaN"], "--pps NaN"),
        (&["--pps", "inf"], "--pps inf"),
        (&["--pps=-5"], "--pps -5"),
        (&["--pps", "0"], "--pps 0"),
        (&["--pps", "2e9"], "--pps 2000000000"),
        (&["--bps", "NaN"], "--bps NaN"),
        (&["--bps", "1e13"], "--bps 10000000000000"),
        (&["--percent", "150"], "--percent 150"),
        (&["--percent=-1"], "--percent -1"),
        (&["--link-bps", "inf"], "--link-bps inf"),
        (&["--duration", "1e30"], "--duration 1000000000000000000000000000000"),
        (&["--duration=-1"], "--duration -1"),
        (&["--duration", "NaN"], "--duration NaN"),
        (&["--duration", "0"], "--duration 0"),
        (&["--receipt-wait=-1"], "--receipt-wait -1"),
        (&["--bad", "NaN"], "--bad NaN"),
        (&["--bad", "1"], "--bad 1"),
        (&["--attack", "junk", "--attack-share", "0"], "--attack-share 0"),
        (&["--attack", "junk", "--attack-share", "1"], "--attack-share 1"),
        (&["--attack", "junk", "--attack-share", "NaN"], "--attack-share NaN"),
        (&["--attack", "flood"], "unknown shape \"flood\""),
    ];
    for (args, want) in cases {
        let mut all = vec!["--out", out, "--count", "10"];
        all.extend_from_slice(args);
        let (code, err) = refused(&all);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: wanted {want:?} in {err:?}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err:?}");
    }
    // --attack-share means nothing without --attack.
    let (code, err) = refused(&["--attack-share", "0.5"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--attack"), "{err}");
}

#[test]
fn keys_are_written_mode_0600() {
    let d = tmpdir("keys");
    let (keys, genesis) = (d.join("keys.json"), d.join("genesis.json"));
    // An existing file with a wide mode is narrowed too.
    std::fs::write(&keys, "old").unwrap();
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = Command::new(BIN)
        .args(["--quiet", "--seed", "1", "--sessions", "2", "--accounts", "2", "--txs", "2", "--pool-cache", "off"])
        .arg("--keys-out")
        .arg(&keys)
        .arg("--genesis-out")
        .arg(&genesis)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mode = std::fs::metadata(&keys).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{mode:o}");
    let text = std::fs::read_to_string(&keys).unwrap();
    assert!(text.contains("\"c2r\""), "{text}");
    let fresh = d.join("fresh.json");
    let o = Command::new(BIN)
        .args(["--quiet", "--seed", "1", "--sessions", "1", "--accounts", "1", "--txs", "1", "--pool-cache", "off"])
        .arg("--keys-out")
        .arg(&fresh)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777, 0o600);
    let _ = std::fs::remove_dir_all(&d);
}
