//! A client and the node over a DPDK port: the test creates a network
//! namespace and a veth pair, one end inside the namespace with an address
//! (where the client runs, through the kernel's stack), the other end
//! given to the node's DPDK port (`net_af_packet`, no hugepages). The node
//! answers the client's ARP for its address; its WELCOME, ANSWERs and
//! RECEIPT leave on the data core's transmit queue, framed back to the MAC
//! and from the address the client's datagrams used. The client is this
//! test binary again, run inside the namespace (`ip netns exec`): over
//! IPv4 and then over IPv6 it negotiates a session, sends a transfer,
//! waits for its RECEIPT and asks for the recipient's balance (the
//! client's kernel checks every reply's UDP checksum).
//!
//! Needs root and `ip` (CI runs as root); without them the test says so
//! loudly and passes. Without DPDK in the build it says why and passes,
//! unless `ATTNET_REQUIRE_DPDK` is set. The namespace and the veth pair
//! are removed when the test ends, failed or not.

use std::process::Command;
use std::time::{Duration, Instant};

use dataplane::wire::query::{AnswerBody, QueryWhat};

mod session_common;
use session_common::*;

/// Set for the client run inside the namespace: the node's addresses,
/// comma-separated (one session to each).
const CLIENT_ENV: &str = "ATTNET_DPDK_SESSION_RELAYS";
/// The node's addresses on the veth link, and the client's.
const NODE_IP: &str = "10.77.0.1";
const CLIENT_CIDR: &str = "10.77.0.2/24";
const NODE_IP6: &str = "fd77::1";
const CLIENT_CIDR6: &str = "fd77::2/64";

fn ip(args: &[&str]) -> Result<(), String> {
    let o = Command::new("ip").args(args).output().map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if o.status.success() {
        Ok(())
    } else {
        Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&o.stderr)))
    }
}

/// A network namespace with one end of a veth pair in it (`peer`, with
/// the client's IPv4 and IPv6 addresses, up) and the other end (`host`)
/// up in ours, without an address. The node answers ARP but not IPv6
/// neighbour solicitations: the namespace gets a permanent neighbour entry
/// for the node's IPv6 address (the host end's MAC). Both go when it drops.
struct Netns {
    name: String,
    host: String,
}

impl Netns {
    fn create() -> Netns {
        let pid = std::process::id();
        // Made before anything exists, so a failure half-way is cleaned up.
        let ns = Netns { name: format!("attnet-t-{pid}"), host: format!("attv{pid}h") };
        let peer = format!("attv{pid}p");
        let steps: [&[&str]; 8] = [
            &["netns", "add", &ns.name],
            &["link", "add", &ns.host, "type", "veth", "peer", "name", &peer],
            &["link", "set", &peer, "netns", &ns.name],
            &["-n", &ns.name, "addr", "add", CLIENT_CIDR, "dev", &peer],
            &["-n", &ns.name, "addr", "add", CLIENT_CIDR6, "dev", &peer, "nodad"],
            &["-n", &ns.name, "link", "set", &peer, "up"],
            &["-n", &ns.name, "link", "set", "lo", "up"],
            &["link", "set", &ns.host, "up"],
        ];
        for s in steps {
            ip(s).unwrap();
        }
        let mac = std::fs::read_to_string(format!("/sys/class/net/{}/address", ns.host)).unwrap();
        let neigh = ["-n", &ns.name, "-6", "neigh", "replace", NODE_IP6, "lladdr", mac.trim(), "dev", &peer];
        ip(&[&neigh[..], &["nud", "permanent"]].concat()).unwrap();
        ns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting either end of a veth pair deletes both; the namespace
        // goes with its last user.
        let _ = ip(&["link", "del", &self.host]);
        let _ = ip(&["netns", "del", &self.name]);
    }
}

/// Why this machine cannot run the test, if it cannot.
fn missing_capability() -> Option<String> {
    let uid = Command::new("id").arg("-u").output().ok().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    if uid.as_deref() != Some("0") {
        return Some(format!("not root (uid {})", uid.unwrap_or_default()));
    }
    if Command::new("ip").arg("-V").output().is_err() {
        return Some("the `ip` command is missing".into());
    }
    None
}

#[test]
fn a_session_over_dpdk_carries_a_transfer_its_receipt_and_queries() {
    if let Some(why) = missing_capability() {
        eprintln!("\n*** SKIPPED dpdk_sessions: {why}; this test needs root and iproute2 to build its namespace ***\n");
        return;
    }
    if ffi::skip_without_dpdk("the DPDK session test") {
        return;
    }
    let d = tmpdir("dpdk");
    let (key, genesis) = files(&d, 4);
    let ns = Netns::create();
    let pid = std::process::id();
    let eal = format!(
        "--dpdk-eal=--no-huge -m 512 --no-pci --no-shconf --iova-mode=va --log-level=*:error \
         --file-prefix=attnet-sessions-{pid} --vdev=net_af_packet0,iface={}",
        ns.host
    );
    let node = Node::spawn(
        Command::new(BIN)
            .args(["node", "--backend", "dpdk", "--dpdk-port", "net_af_packet0", "--dpdk-ipv4", NODE_IP])
            .args(["--cores", "1", "--pin", "false", "--busy-poll", "false", "--block-interval", "50"])
            .args(["--receipts", "true", "--duration", "60"])
            .arg("--node-key")
            .arg(&key)
            .arg("--genesis")
            .arg(&genesis)
            .arg(eal),
    );
    assert!(!node.stderr().contains("ignored"), "{}", node.stderr());
    // The client: this binary's client test, inside the namespace.
    let exe = std::env::current_exe().unwrap();
    let started = Instant::now();
    let o = Command::new("ip")
        .args(["netns", "exec", &ns.name])
        .arg(&exe)
        .args(["--exact", "client_in_namespace", "--include-ignored", "--nocapture", "--test-threads", "1"])
        .env(CLIENT_ENV, format!("{NODE_IP}:7100,[{NODE_IP6}]:7100"))
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success() && out.contains("1 passed"),
        "the client in the namespace failed after {:?}:\n{out}\n{err}\nnode:\n{}",
        started.elapsed(),
        node.stderr()
    );
    print!("{out}");
    let s = node.stop();
    handshake_adds_up(&s);
    let h = &s["handshake"];
    // One session over IPv4, one over IPv6.
    assert_eq!(n(&h["welcomed"]), 2, "{h}");
    assert_eq!(n(&s["txs"]["accepted"]), 2, "{}", s["txs"]);
    let receipts = n(&s["receipts"]["datagrams"]);
    assert_eq!(receipts, 2, "{}", s["receipts"]);
    let q = &s["queries"];
    assert!(n(&q["answered"]) >= 4, "{q}");
    // The client's ARP request for the node's address was answered.
    assert!(n(&s["packets"]["arp_replies"]) >= 1, "{}", s["packets"]);
    // Every reply is accounted for: the WELCOME, the ANSWERs and the
    // RECEIPT all left on the port, none was dropped.
    let r = &s["replies"];
    let dropped: u64 = r["dropped"].as_object().unwrap().values().map(n).sum();
    assert_eq!(n(&r["queued"]), n(&r["sent"]) + dropped, "{r}");
    assert_eq!(dropped, 0, "{r}");
    println!("replies: {r}");
    let answers = n(&q["sent"]);
    assert_eq!(n(&r["sent"]), n(&h["welcomed"]) + n(&h["cookies_sent"]) + answers + receipts, "{r} {s}");
    drop(ns);
}

/// The client's side, run by the test above inside its namespace (an
/// ignored test: on its own it has no node to talk to and returns).
#[test]
#[ignore = "the client half of the DPDK session test; runs inside its namespace"]
fn client_in_namespace() {
    let Ok(relays) = std::env::var(CLIENT_ENV) else {
        eprintln!("client_in_namespace: run by a_session_over_dpdk_carries_a_transfer_its_receipt_and_queries");
        return;
    };
    for (i, relay) in relays.split(',').enumerate() {
        let (from, to) = (account(2 * i as u32), pk(&account(2 * i as u32 + 1)));
        // The WELCOME arrived and verified under the pinned node key.
        let (mut c, _) = connect(relay.parse().unwrap(), from);
        let a = query(&mut c, QueryWhat::Account(pk(&from)));
        let AnswerBody::Account { next_nonce, balance, .. } = a.body else { panic!("{relay}: {a:?}") };
        assert_eq!((next_nonce, balance), (1, 1_000_000), "{relay}");
        let id = transfer(&mut c, to, next_nonce, 5000);
        // The RECEIPT opens with the session's key and names the transaction.
        let until = Instant::now() + Duration::from_secs(10);
        let height = c.wait_receipt(&id, until).unwrap().unwrap_or_else(|| panic!("{relay}: no RECEIPT"));
        assert!(height >= 1);
        let b = query(&mut c, QueryWhat::Account(to));
        let AnswerBody::Account { balance, .. } = b.body else { panic!("{relay}: {b:?}") };
        assert_eq!(balance, 1_005_000, "{relay}");
        println!("client via {relay}: welcomed, transfer in block {height}, recipient balance {balance}");
    }
}
