//! The sender: paced against absolute time (datagram i is due at
//! `start + i / rate`; late ones go out at once), batched with sendmmsg.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dataplane::crypto::AeadKey;
use dataplane::emit::{emit_frame, FrameSpec};
use dataplane::wire::tx::emit_batch;

use crate::plan::{Plan, TxPool};
use crate::sendmmsg::send_batch;

#[derive(Debug, Clone)]
pub struct SendConfig {
    /// Datagrams per second.
    pub rate: f64,
    pub duration: Duration,
    /// Transactions per frame cycle through 1..=this.
    pub max_txs_per_frame: usize,
    /// Malformed datagrams per thousand.
    pub malformed_per_mille: u32,
    pub batch: usize,
}

impl Default for SendConfig {
    fn default() -> Self {
        SendConfig {
            rate: 2000.0,
            duration: Duration::from_secs(10),
            max_txs_per_frame: 3,
            malformed_per_mille: 30,
            batch: 32,
        }
    }
}

/// The kinds of bad traffic the sender mixes in, and what a receiver
/// must call them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bad {
    /// A flipped tag byte: `auth_failed`.
    Tampered,
    /// A frame cut in half: `truncated`.
    Truncated,
    /// TPKT version 4: `bad_header`.
    BadVersion,
    /// A session the receiver does not know: `unknown_session`.
    UnknownSession,
    /// The previous valid datagram again, from another source port:
    /// `replay` for each of its frames.
    Replayed,
    /// A copy of the next real transaction with a broken signature, sent
    /// before it in a valid frame: `bad_signature`, and the real one must
    /// still be accepted.
    Forged,
    /// A valid frame re-carrying an already sent transaction: `duplicate`.
    Duplicate,
}

impl Bad {
    pub const ALL: [Bad; 7] = [
        Bad::Tampered,
        Bad::Truncated,
        Bad::BadVersion,
        Bad::UnknownSession,
        Bad::Replayed,
        Bad::Forged,
        Bad::Duplicate,
    ];
}

/// What was sent.
#[derive(Debug, Clone, Default)]
pub struct SendReport {
    pub datagrams: u64,
    /// Frames inside those datagrams.
    pub frames: u64,
    /// Distinct, correctly signed transactions sent (each once).
    pub txs: u64,
    /// Malformed datagrams by kind (index as [`Bad::ALL`]).
    pub bad: [u64; 7],
    /// Frames the receiver must drop as `replay` (a replayed datagram may
    /// hold several).
    pub replayed_frames: u64,
    pub elapsed: Duration,
    pub asked_rate: f64,
    /// The receiver's port was closed (ICMP port unreachable): sending
    /// stopped early.
    pub refused: bool,
}

impl SendReport {
    pub fn bad_count(&self, b: Bad) -> u64 {
        Bad::ALL.iter().position(|x| *x == b).map_or(0, |i| self.bad[i])
    }

    pub fn achieved_rate(&self) -> f64 {
        self.datagrams as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

fn start_counter() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| d.as_secs()) << 32
}

/// Sends `pool` (in order, each transaction once) to `dest` until the
/// pool, the duration or `stop` ends it.
pub fn send(
    plan: &Plan,
    pool: &TxPool,
    dest: SocketAddr,
    cfg: &SendConfig,
    stop: &AtomicBool,
) -> io::Result<SendReport> {
    let bind: SocketAddr = if dest.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().map_err(io::Error::other)?;
    let sock = UdpSocket::bind(bind)?;
    sock.connect(dest)?;
    // Replays leave from a second socket: another source port, so with
    // SO_REUSEPORT or RSS they may land on another core than the original,
    // and the receiver must still accept each counter once.
    let replay_sock = UdpSocket::bind(bind)?;
    replay_sock.connect(dest)?;
    let keys: Vec<AeadKey> = plan.sessions.iter().map(|s| AeadKey::new(&s.c2r)).collect();
    let mut counters: Vec<u64> = vec![start_counter(); plan.sessions.len()];
    let mut rep = SendReport { asked_rate: cfg.rate, ..SendReport::default() };
    let batch = cfg.batch.clamp(1, 64);
    let mut out: Vec<Vec<u8>> = (0..batch).map(|_| Vec::with_capacity(4096)).collect();
    let mut is_replay = vec![false; batch];
    let mut body = Vec::with_capacity(16384);
    let mut prev_valid: Vec<u8> = Vec::new();
    let mut prev_frames = 0u64;
    let mut next_tx = 0usize;
    let every = if cfg.malformed_per_mille == 0 { u64::MAX } else { (1000 / cfg.malformed_per_mille.min(1000)) as u64 };
    let mut bad_i = 0usize;
    let start = Instant::now();
    let mut i = 0u64;
    'run: while !stop.load(Ordering::Relaxed) && start.elapsed() < cfg.duration && next_tx < pool.txs.len() {
        let due = start + Duration::from_secs_f64(i as f64 / cfg.rate);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        // Everything due by now goes out in one batch.
        let mut n = 0usize;
        while n < batch && next_tx < pool.txs.len() {
            if n > 0 && start + Duration::from_secs_f64(i as f64 / cfg.rate) > Instant::now() {
                break;
            }
            let d = &mut out[n];
            d.clear();
            is_replay[n] = false;
            let s = (i as usize) % keys.len().max(1);
            let Some(sess) = plan.sessions.get(s) else { break 'run };
            let spec = FrameSpec { compress: i % 2 == 1, stream_seq: i as u16, ..FrameSpec::tx_batch(sess.id) };
            let k = 1 + (i as usize) % cfg.max_txs_per_frame.max(1);
            let malformed = i % every == every - 1 && !prev_valid.is_empty();
            if malformed {
                let kind = Bad::ALL[bad_i % Bad::ALL.len()];
                bad_i += 1;
                // Malformed frames carry a copy of an already sent
                // transaction, so nothing real is lost with them.
                let last = &pool.txs[next_tx.saturating_sub(1)];
                body.clear();
                match kind {
                    Bad::Forged => {
                        let mut forged = pool.txs[next_tx].clone();
                        let l = forged.len();
                        forged[l - 33] ^= 0x01;
                        emit_batch([&forged[..]], &mut body);
                    }
                    _ => emit_batch([&last[..]], &mut body),
                }
                counters[s] += 1;
                let mut sp = spec;
                if kind == Bad::UnknownSession {
                    sp.initiator = 64000;
                }
                emit_frame(&sp, &body, Some((&keys[s], counters[s])), d).map_err(io::Error::other)?;
                match kind {
                    Bad::Tampered => {
                        let l = d.len();
                        d[l - 1] ^= 0x80;
                    }
                    Bad::Truncated => {
                        let l = d.len();
                        d.truncate(l / 2);
                    }
                    Bad::BadVersion => d[0] = 4,
                    Bad::Replayed => {
                        is_replay[n] = true;
                        d.clear();
                        d.extend_from_slice(&prev_valid);
                        rep.replayed_frames += prev_frames;
                        rep.frames += prev_frames - 1;
                        counters[s] -= 1;
                    }
                    _ => {}
                }
                rep.bad[Bad::ALL.iter().position(|x| *x == kind).unwrap_or(0)] += 1;
                rep.frames += 1;
            } else {
                let end = (next_tx + k).min(pool.txs.len());
                body.clear();
                emit_batch(pool.txs[next_tx..end].iter().map(|t| &t[..]), &mut body);
                rep.txs += (end - next_tx) as u64;
                next_tx = end;
                counters[s] += 1;
                emit_frame(&spec, &body, Some((&keys[s], counters[s])), d).map_err(io::Error::other)?;
                rep.frames += 1;
                prev_valid.clear();
                prev_valid.extend_from_slice(d);
                prev_frames = 1;
            }
            n += 1;
            i += 1;
        }
        if n == 0 {
            break;
        }
        // In order: runs of ordinary datagrams in one sendmmsg each, a
        // replay on its own socket after the original went out.
        let mut from = 0;
        while from < n {
            if is_replay[from] {
                match replay_sock.send(&out[from]) {
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                        rep.refused = true;
                        break 'run;
                    }
                    r => r?,
                };
                from += 1;
                rep.datagrams += 1;
                continue;
            }
            let mut to = from;
            while to < n && !is_replay[to] {
                to += 1;
            }
            let refs: Vec<&[u8]> = out[from..to].iter().map(|d| &d[..]).collect();
            let mut off = 0;
            while off < refs.len() {
                match send_batch(&sock, &refs[off..]) {
                    Ok(k) => off += k,
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                        rep.datagrams += off as u64;
                        rep.refused = true;
                        break 'run;
                    }
                    Err(e) => return Err(e),
                }
            }
            rep.datagrams += refs.len() as u64;
            from = to;
        }
    }
    rep.elapsed = start.elapsed();
    Ok(rep)
}
