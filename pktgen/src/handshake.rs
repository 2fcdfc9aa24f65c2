//! `--handshake`: the generator's sessions opened by real handshakes with
//! the node (HELLO, the cookie round trip when the node asks, a new HELLO
//! after an unanswered one, the node key pinned) through the shared client
//! ([`dataplane::client::Connection`]), instead of taken from a keys file.
//! Session `i`'s HELLO is signed by account `i mod accounts`: the node
//! takes any account's HELLO (its genesis funds the accounts, whose
//! transactions each carry their own signature), so the plan's accounts
//! stay the ones its genesis funds.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Instant;

use dataplane::client::{ClientConfig, ClientError, Connection, HandshakeStats};
use serde_json::{json, Value};

use crate::plan::{Plan, SessionKeys};
use crate::traffic::Expected;

/// How the handshakes went.
#[derive(Debug, Clone, Default)]
pub struct HandshakeReport {
    /// Sessions asked for.
    pub asked: usize,
    /// Sessions opened.
    pub opened: usize,
    /// Seconds all the handshakes took.
    pub seconds: f64,
    /// What the clients sent and met, over every attempt.
    pub hellos: u64,
    pub cookies: u64,
    pub late_welcomes: u64,
    /// Failed handshakes by reason.
    pub failed: BTreeMap<String, u64>,
}

impl HandshakeReport {
    /// Handshakes opened per second.
    pub fn per_second(&self) -> f64 {
        self.opened as f64 / self.seconds.max(1e-9)
    }

    /// The summary's `handshake` object.
    pub fn to_json(&self) -> Value {
        json!({
            "asked": self.asked,
            "opened": self.opened,
            "seconds": (self.seconds * 1e6).round() / 1e6,
            "per_s": (self.per_second() * 10.0).round() / 10.0,
            "hellos": self.hellos,
            "cookies": self.cookies,
            "late_welcomes": self.late_welcomes,
            "failed": self.failed,
        })
    }

    /// What a correct node counts for these handshakes: every HELLO
    /// datagram and COOKIE_ECHO datagram (two frames) an accepted frame
    /// and one handshake item; every session opened, and every late
    /// WELCOME, one WELCOME.
    pub fn expected(&self) -> Expected {
        let mut e = Expected::default();
        e.add_handshakes(self.hellos, self.cookies, (self.opened as u64) + self.late_welcomes);
        e
    }
}

/// The name a failure is counted under.
fn reason(e: &ClientError) -> String {
    match e {
        ClientError::Io(_) => "socket".into(),
        ClientError::Timeout(_) => "timeout".into(),
        ClientError::Welcome(h) => h.as_str().into(),
    }
}

/// Opens `sessions` sessions with the node at `relay` (pinned to
/// `relay_key`), one after another, each from a socket of its own; returns
/// the opened sessions' ids and keys and the report. A failed handshake is
/// counted by reason and the next one tried, unless no session has opened
/// yet: then the rest are not tried.
pub fn open_sessions(
    plan: &Plan,
    sessions: usize,
    relay: SocketAddr,
    relay_key: [u8; 32],
) -> (Vec<SessionKeys>, HandshakeReport) {
    let cfg = ClientConfig::new(relay, relay_key, plan.network_id);
    let any: SocketAddr =
        if relay.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { (std::net::Ipv6Addr::UNSPECIFIED, 0).into() };
    let mut report = HandshakeReport { asked: sessions, ..HandshakeReport::default() };
    let mut keys = Vec::with_capacity(sessions);
    let t = Instant::now();
    for i in 0..sessions {
        let sk = plan.accounts[i % plan.accounts.len()];
        let mut stats = HandshakeStats::default();
        let r = std::net::UdpSocket::bind(any)
            .map_err(ClientError::Io)
            .and_then(|sock| Connection::connect_counted(sock, &cfg, sk, &mut stats));
        report.hellos += u64::from(stats.hellos);
        report.cookies += u64::from(stats.cookies);
        report.late_welcomes += u64::from(stats.late_welcomes);
        match r {
            Ok(c) => {
                let k = c.keys();
                keys.push(SessionKeys { id: c.session_id(), c2r: k.c2r, r2c: k.r2c });
            }
            Err(e) => {
                *report.failed.entry(reason(&e)).or_insert(0) += 1;
                // A node that answered none of the first session's
                // HELLOs is not tried again for every other session.
                if keys.is_empty() {
                    break;
                }
            }
        }
    }
    report.seconds = t.elapsed().as_secs_f64();
    report.opened = keys.len();
    (keys, report)
}
