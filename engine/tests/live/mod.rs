//! A live node for the engine's tests: started on loopback with a node
//! key, waited for until it is ready, stopped by SIGTERM with its JSON
//! summary, killed if a test fails first.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_attnet");

/// A node process, killed when dropped.
pub struct Node {
    child: Option<Child>,
    pub addr: SocketAddr,
}

impl Node {
    pub fn start(backend: &str, cores: &str, key: &std::path::Path, genesis: &std::path::Path, extra: &[&str]) -> Node {
        let mut c = Command::new(BIN)
            .args(["node", "--backend", backend, "--listen", "127.0.0.1:0", "--cores", cores])
            .args(["--block-interval", "50"])
            // RECEIPTs on unless the test says otherwise.
            .args(if extra.contains(&"--receipts") { &[][..] } else { &["--receipts", "true"][..] })
            .arg("--node-key")
            .arg(key)
            .arg("--genesis")
            .arg(genesis)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut err = BufReader::new(c.stderr.take().unwrap());
        let mut line = String::new();
        let addr = loop {
            line.clear();
            assert!(err.read_line(&mut line).unwrap() > 0, "node exited early");
            if let Some((_, a)) = line.trim().rsplit_once("listening on ") {
                break a.parse().unwrap();
            }
        };
        // Then until every table is built and the control thread runs.
        while !line.contains("attnet: ready") {
            line.clear();
            assert!(err.read_line(&mut line).unwrap() > 0, "node exited early");
        }
        // Keep draining stderr so the node never blocks on it.
        std::thread::spawn(move || {
            let mut sink = String::new();
            let _ = err.read_to_string(&mut sink);
        });
        Node { child: Some(c), addr }
    }

    /// SIGTERM, then the summary it prints (bounded).
    pub fn stop(mut self) -> Value {
        let mut c = self.child.take().unwrap();
        assert!(Command::new("kill").args(["-TERM", &c.id().to_string()]).status().unwrap().success());
        let until = Instant::now() + Duration::from_secs(20);
        while c.try_wait().unwrap().is_none() {
            assert!(Instant::now() < until, "node did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut out = String::new();
        c.stdout.take().unwrap().read_to_string(&mut out).unwrap();
        assert!(c.wait().unwrap().success());
        serde_json::from_str(&out).unwrap()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// `received == welcomed + cookies_sent + Σ refusals`.
pub fn handshake_adds_up(s: &Value) {
    let h = &s["handshake"];
    let refused: u64 = h["refused"].as_object().unwrap().values().map(n).sum();
    assert_eq!(n(&h["received"]), n(&h["welcomed"]) + n(&h["cookies_sent"]) + refused, "{h}");
}
