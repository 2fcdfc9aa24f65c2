//! `attnet top`: a running node's counters, rates and latencies in the
//! terminal, read once a second through its admin socket (`{"q":"stats"}`).
//!
//! Rates come from two successive `stats` answers divided by the node's
//! uptime difference; counters that go backwards (a restarted node) start
//! the history again. Rendering is a pure function of the [`History`] and
//! the link state, so the tests draw into a `TestBackend`; `--once` prints
//! the same tables as plain text, or one JSON line with `--json`.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Paragraph, Row, Sparkline, Table};
use ratatui::Frame;
use serde_json::{json, Value};

/// `attnet top`'s arguments.
#[derive(clap::Args, Debug)]
pub struct TopArgs {
    /// The node's data directory: its admin socket is DIR/admin.sock.
    #[arg(long, value_name = "DIR", conflicts_with = "admin")]
    pub data_dir: Option<PathBuf>,
    /// The admin socket's path (a node without a data directory listens on /run/attnet/<port>.sock).
    #[arg(long, value_name = "SOCKET")]
    pub admin: Option<PathBuf>,
    /// Print one snapshot and exit (no terminal UI).
    #[arg(long)]
    pub once: bool,
    /// With --once: the snapshot as one JSON line (the node's `stats` answer plus computed rates).
    #[arg(long, requires = "once")]
    pub json: bool,
}

/// How long a `stats` answer may take.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Seconds of history in the sparklines.
const HISTORY: usize = 60;
/// The refresh period.
const TICK: Duration = Duration::from_secs(1);

/// Runs `attnet top`: the terminal UI, or with `--once` one snapshot on
/// stdout.
pub fn run(a: TopArgs) -> Result<(), String> {
    let path = match (a.data_dir, a.admin) {
        (Some(d), _) => d.join("admin.sock"),
        (None, Some(s)) => s,
        (None, None) => {
            return Err("top: give --data-dir DIR (the socket is DIR/admin.sock) or --admin SOCKET \
                        (a node without a data directory listens on /run/attnet/<port>.sock)"
                .into())
        }
    };
    if a.once {
        return once(&path, a.json);
    }
    if !std::io::stdout().is_terminal() {
        return Err("top: stdout is not a terminal (use --once for a plain snapshot)".into());
    }
    ui(&path)
}

// ---------------------------------------------------------------------------
// The admin socket.

/// Why a `stats` request failed.
#[derive(Debug, Clone, PartialEq)]
pub enum AskError {
    /// The socket: connect, write, read, a closed connection or an answer
    /// that is not a JSON object. The connection is unusable.
    Link(String),
    /// The node answered `{"error": ...}`.
    Node(String),
}

impl std::fmt::Display for AskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AskError::Link(e) | AskError::Node(e) => f.write_str(e),
        }
    }
}

/// One connection to a node's admin socket, asked any number of times.
pub struct Conn {
    path: PathBuf,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Conn {
    /// Connects to the socket at `path`.
    pub fn connect(path: &Path) -> Result<Conn, AskError> {
        let link = |e: std::io::Error| AskError::Link(format!("{}: {e}", path.display()));
        let s = UnixStream::connect(path)
            .map_err(|e| AskError::Link(format!("{}: {e} (is the node running?)", path.display())))?;
        s.set_read_timeout(Some(READ_TIMEOUT)).map_err(link)?;
        let writer = s.try_clone().map_err(link)?;
        Ok(Conn { path: path.to_path_buf(), reader: BufReader::new(s), writer })
    }

    /// Asks `{"q":"stats"}` and returns the answer, a JSON object.
    pub fn stats(&mut self) -> Result<Value, AskError> {
        let p = self.path.display();
        self.writer.write_all(b"{\"q\":\"stats\"}\n").map_err(|e| AskError::Link(format!("{p}: {e}")))?;
        let mut line = String::new();
        let n = self.reader.read_line(&mut line).map_err(|e| AskError::Link(format!("{p}: {e}")))?;
        if n == 0 {
            return Err(AskError::Link(format!("{p}: the node closed the connection")));
        }
        let v: Value = serde_json::from_str(&line).map_err(|e| AskError::Link(format!("{p}: bad answer: {e}")))?;
        if !v.is_object() {
            return Err(AskError::Link(format!("{p}: bad answer: not a JSON object")));
        }
        if let Some(e) = v.get("error") {
            let e = e.as_str().map_or_else(|| e.to_string(), str::to_string);
            return Err(AskError::Node(format!("{p}: the node answered: {e}")));
        }
        Ok(v)
    }
}

// ---------------------------------------------------------------------------
// Snapshots and rates.

/// The number at `path` in `v`; 0 when missing or not a number.
fn num(v: &Value, path: &[&str]) -> f64 {
    path.iter().try_fold(v, |v, k| v.get(k)).and_then(Value::as_f64).unwrap_or(0.0)
}

/// The counter at `path` in `v`; 0 when missing or not a number.
fn count(v: &Value, path: &[&str]) -> u64 {
    let v = path.iter().try_fold(v, |v, k| v.get(k));
    // A float counter is cut to an integer; a negative one counts as 0.
    v.and_then(|v| v.as_u64().or_else(|| v.as_f64().map(|f| f.max(0.0) as u64))).unwrap_or(0)
}

fn text(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// One data core's counters.
#[derive(Debug, Clone, PartialEq)]
pub struct CoreSnap {
    pub core: u64,
    pub name: String,
    pub packets: u64,
    pub frames: u64,
    pub txs_accepted: u64,
    pub kernel_dropped: u64,
    /// The fullest of the core's rings to the control thread, 0..1.
    pub ring_fill: f64,
}

/// One drop reason's cumulative count.
#[derive(Debug, Clone, PartialEq)]
pub struct DropCount {
    /// `frame`, `tx`, `not-ATT`, `ledger` or `packet` (kernel drops).
    pub group: &'static str,
    pub reason: String,
    pub total: u64,
}

/// One latency histogram's percentiles, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Latency {
    pub p50: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

/// A `stats` answer: the raw object and what top shows of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub raw: Value,
    pub version: String,
    pub backend: String,
    pub uptime_s: f64,
    pub height: u64,
    pub finalized_height: u64,
    pub sessions_live: u64,
    pub sessions_configured: u64,
    pub cores: Vec<CoreSnap>,
    /// Datagrams received, all cores.
    pub datagrams: u64,
    pub frames: u64,
    pub txs_accepted: u64,
    /// Every reason of every drop group, zero ones included.
    pub drops: Vec<DropCount>,
    pub ingest: Latency,
    pub inclusion: Latency,
}

/// The `summary` groups whose reason maps top lists, in display order.
const DROP_GROUPS: [(&str, &[&str]); 4] = [
    ("frame", &["frames", "dropped"]),
    ("tx", &["txs", "dropped"]),
    ("not-ATT", &["packets", "not_att"]),
    ("ledger", &["ledger", "dropped"]),
];

impl Snapshot {
    /// Reads a `stats` answer; missing numbers are 0, missing objects empty.
    pub fn from_value(raw: Value) -> Snapshot {
        let sum = raw.get("summary").cloned().unwrap_or(Value::Null);
        let cores: Vec<CoreSnap> = raw
            .get("cores")
            .and_then(Value::as_array)
            .map(|a| a.as_slice())
            .unwrap_or_default()
            .iter()
            .map(|c| CoreSnap {
                core: count(c, &["core"]),
                name: text(c, "name"),
                packets: count(c, &["packets"]),
                frames: count(c, &["frames_received"]),
                txs_accepted: count(c, &["txs_accepted"]),
                kernel_dropped: count(c, &["kernel_dropped"]),
                ring_fill: num(c, &["ring_fill"]),
            })
            .collect();
        // Summary totals, else the cores' sums (an answer without a summary).
        let total = |path: &[&str], f: fn(&CoreSnap) -> u64| {
            if path.iter().try_fold(&sum, |v, k| v.get(k)).is_some() {
                count(&sum, path)
            } else {
                cores.iter().map(f).sum()
            }
        };
        let datagrams = total(&["packets", "received"], |c| c.packets);
        let frames = total(&["frames", "received"], |c| c.frames);
        let txs_accepted = total(&["txs", "accepted"], |c| c.txs_accepted);
        let kernel_dropped = total(&["packets", "kernel_dropped"], |c| c.kernel_dropped);
        let mut drops = vec![DropCount { group: "packet", reason: "kernel_dropped".into(), total: kernel_dropped }];
        for (group, path) in DROP_GROUPS {
            if let Some(m) = path.iter().try_fold(&sum, |v, k| v.get(k)).and_then(Value::as_object) {
                for (reason, n) in m {
                    drops.push(DropCount { group, reason: reason.clone(), total: count(n, &[]) });
                }
            }
        }
        let lat = |name: &str| Latency {
            p50: count(&sum, &["latency_us", name, "p50"]),
            p99: count(&sum, &["latency_us", name, "p99"]),
            p999: count(&sum, &["latency_us", name, "p999"]),
            max: count(&sum, &["latency_us", name, "max"]),
        };
        Snapshot {
            version: text(&raw, "version"),
            backend: text(&raw, "backend"),
            uptime_s: num(&raw, &["uptime_s"]),
            height: count(&raw, &["height"]),
            finalized_height: count(&raw, &["finalized_height"]),
            sessions_live: count(&raw, &["sessions", "live"]),
            sessions_configured: count(&raw, &["sessions", "configured"]),
            datagrams,
            frames,
            txs_accepted,
            drops,
            ingest: lat("ingest"),
            inclusion: lat("inclusion"),
            cores,
            raw,
        }
    }

    fn drop_total(&self, group: &str, reason: &str) -> Option<u64> {
        self.drops.iter().find(|d| d.group == group && d.reason == reason).map(|d| d.total)
    }
}

/// One core's rates, per second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CoreRates {
    pub core: u64,
    pub datagrams: f64,
    pub txs: f64,
    pub frames: f64,
    pub kernel_dropped: f64,
}

/// Rates, per second, between two snapshots of one node run.
#[derive(Debug, Clone, PartialEq)]
pub struct Rates {
    /// The uptime difference the rates are over, in seconds.
    pub interval_s: f64,
    pub datagrams: f64,
    pub txs: f64,
    pub frames: f64,
    /// In the later snapshot's core order.
    pub cores: Vec<CoreRates>,
    /// In the later snapshot's `drops` order.
    pub drops: Vec<f64>,
}

/// Whether `cur` cannot follow `prev` in one node run: uptime or a counter
/// went backwards, or the cores changed.
pub fn went_back(prev: &Snapshot, cur: &Snapshot) -> bool {
    cur.uptime_s < prev.uptime_s
        || cur.datagrams < prev.datagrams
        || cur.frames < prev.frames
        || cur.txs_accepted < prev.txs_accepted
        || prev.cores.len() != cur.cores.len()
        || prev.cores.iter().zip(&cur.cores).any(|(p, c)| {
            p.core != c.core
                || c.packets < p.packets
                || c.frames < p.frames
                || c.txs_accepted < p.txs_accepted
                || c.kernel_dropped < p.kernel_dropped
        })
        || cur.drops.iter().any(|d| prev.drop_total(d.group, &d.reason).is_some_and(|p| d.total < p))
}

/// The rates from `prev` to `cur`; `None` when they are not of one node run
/// ([`went_back`]) or no uptime passed.
pub fn rates(prev: &Snapshot, cur: &Snapshot) -> Option<Rates> {
    let dt = cur.uptime_s - prev.uptime_s;
    if went_back(prev, cur) || dt <= 0.0 || !dt.is_finite() {
        return None;
    }
    let per_s = |now: u64, then: u64| now.saturating_sub(then) as f64 / dt;
    Some(Rates {
        interval_s: dt,
        datagrams: per_s(cur.datagrams, prev.datagrams),
        txs: per_s(cur.txs_accepted, prev.txs_accepted),
        frames: per_s(cur.frames, prev.frames),
        cores: prev
            .cores
            .iter()
            .zip(&cur.cores)
            .map(|(p, c)| CoreRates {
                core: c.core,
                datagrams: per_s(c.packets, p.packets),
                txs: per_s(c.txs_accepted, p.txs_accepted),
                frames: per_s(c.frames, p.frames),
                kernel_dropped: per_s(c.kernel_dropped, p.kernel_dropped),
            })
            .collect(),
        // A reason new in `cur` counts from 0.
        drops: cur.drops.iter().map(|d| per_s(d.total, prev.drop_total(d.group, &d.reason).unwrap_or(0))).collect(),
    })
}

/// The latest snapshot, the rates that led to it, and the last
/// [`HISTORY`] seconds of total rates.
#[derive(Debug, Default)]
pub struct History {
    pub latest: Option<Snapshot>,
    pub rates: Option<Rates>,
    /// Datagrams per second, oldest first.
    pub datagrams: VecDeque<u64>,
    /// Accepted transactions per second, oldest first.
    pub txs: VecDeque<u64>,
}

impl History {
    /// Takes a new snapshot. A snapshot of another node run (counters went
    /// back) clears the history; one with no uptime passed is ignored.
    pub fn push(&mut self, s: Snapshot) {
        if let Some(prev) = &self.latest {
            if went_back(prev, &s) {
                self.rates = None;
                self.datagrams.clear();
                self.txs.clear();
            } else if let Some(r) = rates(prev, &s) {
                for (q, v) in [(&mut self.datagrams, r.datagrams), (&mut self.txs, r.txs)] {
                    if q.len() == HISTORY {
                        q.pop_front();
                    }
                    q.push_back(v.round() as u64);
                }
                self.rates = Some(r);
            } else {
                return;
            }
        }
        self.latest = Some(s);
    }
}

// ---------------------------------------------------------------------------
// Formatting, shared by the UI and `--once`.

/// A rate: `0`, `2.5`, `950`, `12.3k`, `1.25M`.
fn fmt_rate(x: f64) -> String {
    match x {
        x if x <= 0.0 => "0".into(),
        x if x < 10.0 => format!("{x:.1}"),
        x if x < 1e3 => format!("{x:.0}"),
        x if x < 1e6 => format!("{:.1}k", x / 1e3),
        x if x < 1e9 => format!("{:.2}M", x / 1e6),
        x => format!("{:.2}G", x / 1e9),
    }
}

/// A rate, or `-` before there are two snapshots.
fn fmt_opt_rate(x: Option<f64>) -> String {
    x.map_or_else(|| "-".into(), fmt_rate)
}

/// A latency in microseconds: `40 µs`, `1.50 ms`, `120.0 ms`, `1.20 s`.
fn fmt_us(us: u64) -> String {
    match us {
        0..1_000 => format!("{us} µs"),
        1_000..10_000 => format!("{:.2} ms", us as f64 / 1e3),
        10_000..1_000_000 => format!("{:.1} ms", us as f64 / 1e3),
        _ => format!("{:.2} s", us as f64 / 1e6),
    }
}

/// An uptime: `42s`, `5m03s`, `2h07m`, `3d04h`.
fn fmt_uptime(s: f64) -> String {
    let s = s.max(0.0) as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86400, s % 86400 / 3600),
    }
}

/// The header's first line: what the node is and where its chain is.
fn header_line(s: &Snapshot) -> String {
    format!(
        "attnet {}  {}  up {}  height {} (finalized {})  sessions {}/{}",
        s.version,
        s.backend,
        fmt_uptime(s.uptime_s),
        s.height,
        s.finalized_height,
        s.sessions_live,
        s.sessions_configured
    )
}

/// Totals over all cores.
fn totals_line(r: Option<&Rates>) -> String {
    format!(
        "datagrams/s {}  tx/s {}  frames/s {}",
        fmt_opt_rate(r.map(|r| r.datagrams)),
        fmt_opt_rate(r.map(|r| r.txs)),
        fmt_opt_rate(r.map(|r| r.frames))
    )
}

const CORE_HEAD: [&str; 7] = ["core", "name", "datagrams/s", "tx/s", "frames/s", "kdrops/s", "ring"];
const DROP_HEAD: [&str; 4] = ["group", "reason", "/s", "total"];
const LATENCY_HEAD: [&str; 5] = ["", "p50", "p99", "p999", "max"];

fn core_rows(s: &Snapshot, r: Option<&Rates>) -> Vec<Vec<String>> {
    s.cores
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let cr = r.and_then(|r| r.cores.get(i));
            vec![
                c.core.to_string(),
                c.name.clone(),
                fmt_opt_rate(cr.map(|c| c.datagrams)),
                fmt_opt_rate(cr.map(|c| c.txs)),
                fmt_opt_rate(cr.map(|c| c.frames)),
                fmt_opt_rate(cr.map(|c| c.kernel_dropped)),
                format!("{:.0}%", (c.ring_fill * 100.0).clamp(0.0, 100.0)),
            ]
        })
        .collect()
}

/// The nonzero drop reasons; empty when there are none.
fn drop_rows(s: &Snapshot, r: Option<&Rates>) -> Vec<Vec<String>> {
    s.drops
        .iter()
        .enumerate()
        .filter(|(_, d)| d.total > 0)
        .map(|(i, d)| {
            vec![
                d.group.to_string(),
                d.reason.clone(),
                fmt_opt_rate(r.and_then(|r| r.drops.get(i).copied())),
                d.total.to_string(),
            ]
        })
        .collect()
}

fn latency_rows(s: &Snapshot) -> Vec<Vec<String>> {
    [("ingest", s.ingest), ("inclusion", s.inclusion)]
        .into_iter()
        .map(|(n, l)| vec![n.to_string(), fmt_us(l.p50), fmt_us(l.p99), fmt_us(l.p999), fmt_us(l.max)])
        .collect()
}

/// A plain-text table: the first `left` columns left-aligned, the rest
/// right-aligned, two spaces apart.
fn text_table(head: &[&str], rows: &[Vec<String>], left: usize) -> String {
    let mut w: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in w.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let head: Vec<String> = head.iter().map(|h| h.to_string()).collect();
    for r in std::iter::once(&head).chain(rows) {
        let mut line = String::new();
        for (i, (c, w)) in r.iter().zip(&w).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            let _ = if i < left { write!(line, "{c:<w$}") } else { write!(line, "{c:>w$}") };
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `--once`'s plain-text report.
pub fn format_once(s: &Snapshot, r: Option<&Rates>) -> String {
    let mut out = header_line(s);
    out.push('\n');
    out.push_str(&totals_line(r));
    if let Some(r) = r {
        let _ = write!(out, "  (over {:.2} s)", r.interval_s);
    }
    out.push_str("\n\n");
    out.push_str(&text_table(&CORE_HEAD, &core_rows(s, r), 2));
    out.push('\n');
    let drops = drop_rows(s, r);
    if drops.is_empty() {
        out.push_str("no drops\n");
    } else {
        out.push_str(&text_table(&DROP_HEAD, &drops, 2));
    }
    out.push('\n');
    out.push_str(&text_table(&LATENCY_HEAD, &latency_rows(s), 1));
    out
}

/// `--once --json`'s object: the `stats` answer plus `rates`.
pub fn once_json(s: &Snapshot, r: &Rates) -> Value {
    let mut v = s.raw.clone();
    if let Some(o) = v.as_object_mut() {
        let cores: Vec<Value> = r
            .cores
            .iter()
            .map(|c| json!({"core": c.core, "datagrams_per_s": c.datagrams, "txs_per_s": c.txs}))
            .collect();
        o.insert(
            "rates".into(),
            json!({
                "datagrams_per_s": r.datagrams,
                "txs_per_s": r.txs,
                "frames_per_s": r.frames,
                "cores": cores,
            }),
        );
    }
    v
}

/// Two snapshots a second apart (a third if the node restarted between
/// them), printed as text or one JSON line.
fn once(path: &Path, json: bool) -> Result<(), String> {
    let mut c = Conn::connect(path).map_err(|e| e.to_string())?;
    let mut prev = Snapshot::from_value(c.stats().map_err(|e| e.to_string())?);
    for _ in 0..2 {
        std::thread::sleep(TICK);
        let cur = Snapshot::from_value(c.stats().map_err(|e| e.to_string())?);
        if let Some(r) = rates(&prev, &cur) {
            let out = if json { format!("{}\n", once_json(&cur, &r)) } else { format_once(&cur, Some(&r)) };
            // A reader that went away (`| head`) is not an error.
            let _ = std::io::stdout().write_all(out.as_bytes());
            return Ok(());
        }
        prev = cur;
    }
    Err(format!("{}: the node's counters went back twice in a row (restarting?)", path.display()))
}

// ---------------------------------------------------------------------------
// The terminal UI.

/// The admin socket's state, shown in the header.
#[derive(Debug, Clone, PartialEq)]
pub enum Link {
    Connecting,
    Connected,
    /// The connection failed or dropped; retried every second.
    Down(String),
    /// The node answered with an error.
    Error(String),
}

fn table<'a>(head: &[&'a str], rows: Vec<Vec<String>>, widths: Vec<Constraint>, left: usize) -> Table<'a> {
    let cell = |i: usize, s: String| if i < left { Line::from(s) } else { Line::from(s).right_aligned() };
    let head = Row::new(head.iter().enumerate().map(|(i, h)| cell(i, h.to_string())))
        .style(Style::default().add_modifier(Modifier::BOLD));
    let rows = rows.into_iter().map(|r| Row::new(r.into_iter().enumerate().map(|(i, c)| cell(i, c))));
    Table::new(rows, widths).header(head).column_spacing(2)
}

fn section(title: &str) -> Block<'static> {
    Block::new().borders(Borders::TOP).title(format!(" {title} "))
}

fn sparkline(f: &mut Frame, area: Rect, title: &str, data: &VecDeque<u64>) {
    let block = section(title);
    let inner = block.inner(area);
    // The newest samples that fit, ending at the right edge.
    let skip = data.len().saturating_sub(inner.width as usize);
    let data: Vec<u64> = data.iter().skip(skip).copied().collect();
    f.render_widget(block, area);
    f.render_widget(Sparkline::default().data(data).style(Style::default().fg(Color::Cyan)), inner);
}

/// Draws the whole screen from the history and the link state.
pub fn draw(f: &mut Frame, h: &History, link: &Link) {
    let ncores = h.latest.as_ref().map_or(0, |s| s.cores.len()).clamp(1, 256) as u16;
    let [head, cores, drops, latency, sp1, sp2] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Length(2 + ncores),
        Constraint::Min(3),
        Constraint::Length(4),
        Constraint::Length(3),
        Constraint::Length(3),
    ])
    .areas(f.area());

    let r = h.rates.as_ref();
    let first = h.latest.as_ref().map_or_else(|| "attnet top".into(), header_line);
    let (state, style) = match link {
        Link::Connecting => ("connecting".to_string(), Style::default().fg(Color::Yellow)),
        Link::Connected => ("connected".to_string(), Style::default().fg(Color::Green)),
        Link::Down(e) => (format!("disconnected, retrying: {e}"), Style::default().fg(Color::Red)),
        Link::Error(e) => (format!("error: {e}"), Style::default().fg(Color::Red)),
    };
    let second = match link {
        Link::Connected => Line::from(vec![
            ratatui::text::Span::styled(state, style),
            ratatui::text::Span::raw(format!("  {}  (q quits)", totals_line(r))),
        ]),
        _ => Line::styled(state, style),
    };
    let first = Line::styled(first, Style::default().add_modifier(Modifier::BOLD));
    f.render_widget(Paragraph::new(vec![first, second]), head);

    let Some(s) = h.latest.as_ref() else {
        f.render_widget(Paragraph::new("waiting for the first stats answer").block(section("cores")), cores);
        return;
    };

    let name_w = s.cores.iter().map(|c| c.name.chars().count()).max().unwrap_or(4).clamp(4, 16) as u16;
    let widths = [4, name_w, 11, 8, 8, 8, 4].into_iter().map(Constraint::Length).collect::<Vec<_>>();
    f.render_widget(table(&CORE_HEAD, core_rows(s, r), widths, 2).block(section("cores")), cores);

    let rows = drop_rows(s, r);
    if rows.is_empty() {
        f.render_widget(Paragraph::new("no drops").block(section("drops")), drops);
    } else {
        let widths = vec![Constraint::Length(7), Constraint::Length(24), Constraint::Length(8), Constraint::Length(14)];
        f.render_widget(table(&DROP_HEAD, rows, widths, 2).block(section("drops")), drops);
    }

    let widths = vec![
        Constraint::Length(9),
        Constraint::Length(10),
        Constraint::Length(10),
        Constraint::Length(10),
        Constraint::Length(10),
    ];
    f.render_widget(table(&LATENCY_HEAD, latency_rows(s), widths, 1).block(section("latency")), latency);

    let peak = |q: &VecDeque<u64>| q.iter().max().map_or_else(|| "-".into(), |m| fmt_rate(*m as f64));
    let t1 = format!(
        "datagrams/s, last {HISTORY} s: now {}, max {}",
        fmt_opt_rate(r.map(|r| r.datagrams)),
        peak(&h.datagrams)
    );
    sparkline(f, sp1, &t1, &h.datagrams);
    let t2 = format!("accepted tx/s, last {HISTORY} s: now {}, max {}", fmt_opt_rate(r.map(|r| r.txs)), peak(&h.txs));
    sparkline(f, sp2, &t2, &h.txs);
}

/// What the poller thread reports.
enum Update {
    Stats(Value),
    Failed(AskError),
}

/// Asks for `stats` once a second on one connection, reconnecting when
/// it drops, until the receiver goes away.
fn poll(path: PathBuf, tx: mpsc::Sender<Update>) {
    let mut conn: Option<Conn> = None;
    let mut next = Instant::now();
    loop {
        let res = match conn.as_mut() {
            Some(c) => c.stats(),
            None => Conn::connect(&path).and_then(|c| conn.insert(c).stats()),
        };
        let u = match res {
            Ok(v) => Update::Stats(v),
            Err(e) => {
                if matches!(e, AskError::Link(_)) {
                    conn = None;
                }
                Update::Failed(e)
            }
        };
        if tx.send(u).is_err() {
            return;
        }
        next += TICK;
        let now = Instant::now();
        if next < now {
            next = now;
        }
        std::thread::sleep(next - now);
    }
}

/// Restores the terminal when the UI returns, also on errors.
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

fn is_quit(k: &KeyEvent) -> bool {
    k.kind == KeyEventKind::Press
        && (matches!(k.code, KeyCode::Char('q') | KeyCode::Esc)
            || (k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL)))
}

fn ui(path: &Path) -> Result<(), String> {
    let (tx, rx) = mpsc::channel();
    let p = path.to_path_buf();
    std::thread::Builder::new().name("attnet-top-poll".into()).spawn(move || poll(p, tx)).map_err(|e| e.to_string())?;

    // Made first: a `try_init` failing halfway still restores. `try_init`
    // also restores on panic.
    let _restore = Restore;
    let term_err = |e: std::io::Error| format!("top: terminal: {e}");
    let mut term = ratatui::try_init().map_err(term_err)?;
    let mut h = History::default();
    let mut link = Link::Connecting;
    loop {
        loop {
            match rx.try_recv() {
                Ok(Update::Stats(v)) => {
                    h.push(Snapshot::from_value(v));
                    link = Link::Connected;
                }
                Ok(Update::Failed(AskError::Link(e))) => link = Link::Down(e),
                Ok(Update::Failed(AskError::Node(e))) => link = Link::Error(e),
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => return Err("top: the stats poller stopped".into()),
            }
        }
        term.draw(|f| draw(f, &h, &link)).map_err(term_err)?;
        if event::poll(Duration::from_millis(200)).map_err(term_err)? {
            if let Event::Key(k) = event::read().map_err(term_err)? {
                if is_quit(&k) {
                    return Ok(());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixListener;

    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    use super::*;

    /// A `stats` answer: two cores, counters scaled by the arguments.
    fn fixture(uptime: f64, k: u64, auth_failed: u64, bad_nonce: u64) -> Value {
        json!({
            "version": "0.1.0", "backend": "recvmmsg", "uptime_s": uptime,
            "height": 10, "finalized_height": 9,
            "sessions": {"configured": 2, "live": 1},
            "cores": [
                {"core": 0, "name": "attnet-rx0", "packets": 1000 * k, "bytes": 120000 * k,
                 "frames_received": 990 * k, "frames_accepted": 950 * k, "txs_seen": 2000 * k,
                 "txs_accepted": 1900 * k, "kernel_dropped": 2 * k, "ring_fill": 0.02},
                {"core": 1, "name": "attnet-rx1", "packets": 500 * k, "bytes": 60000 * k,
                 "frames_received": 500 * k, "frames_accepted": 500 * k, "txs_seen": 1000 * k,
                 "txs_accepted": 1000 * k, "kernel_dropped": 0, "ring_fill": 0.5}
            ],
            "summary": {
                "backend": "recvmmsg", "cores": 2,
                "packets": {"received": 1500 * k, "kernel_dropped": 2 * k,
                            "not_att": {"too_short": 0, "bad_magic": 10}},
                "frames": {"received": 1490 * k, "accepted": 1450 * k,
                           "dropped": {"auth_failed": auth_failed, "replay": 10, "truncated": 0}},
                "txs": {"seen": 3000 * k, "accepted": 2900 * k,
                        "dropped": {"bad_signature": 50, "duplicate": 0}},
                "ledger": {"submitted": 2900 * k, "applied": 2800 * k, "dropped": {"bad_nonce": bad_nonce}},
                "blocks": 10, "height": 10,
                "latency_us": {"ingest": {"p50": 40, "p90": 80, "p99": 200, "p999": 900, "max": 1500},
                               "inclusion": {"p50": 40000, "p90": 80000, "p99": 99000, "p999": 120000,
                                             "max": 1500000}},
                "handshake": {"received": 3, "welcomed": 2, "cookies_sent": 0,
                              "refused": {"bad_signature": 1}, "live_sessions": 1},
                "receipts": {}, "queries": {}
            }
        })
    }

    /// Snapshots 2 s apart: counters doubled (k 1 -> 3 over 2 s gives
    /// k's own rates per second).
    fn pair() -> (Snapshot, Snapshot) {
        (Snapshot::from_value(fixture(10.0, 1, 30, 100)), Snapshot::from_value(fixture(12.0, 3, 50, 300)))
    }

    fn screen(h: &History, link: &Link) -> Vec<String> {
        let mut t = Terminal::new(TestBackend::new(100, 30)).unwrap();
        t.draw(|f| draw(f, h, link)).unwrap();
        let b = t.backend().buffer();
        b.content.chunks(b.area.width as usize).map(|r| r.iter().map(|c| c.symbol()).collect()).collect()
    }

    fn row<'a>(lines: &'a [String], first: &str) -> Vec<&'a str> {
        lines
            .iter()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|w| w.first() == Some(&first) || w.get(1) == Some(&first))
            .unwrap_or_else(|| panic!("no row {first:?} in\n{}", lines.join("\n")))
    }

    #[test]
    fn rates_from_two_snapshots() {
        let (a, b) = pair();
        let r = rates(&a, &b).unwrap();
        assert_eq!(r.interval_s, 2.0);
        assert_eq!(r.datagrams, 1500.0);
        assert_eq!(r.txs, 2900.0);
        assert_eq!(r.frames, 1490.0);
        assert_eq!(r.cores.len(), 2);
        assert_eq!(
            r.cores[0],
            CoreRates { core: 0, datagrams: 1000.0, txs: 1900.0, frames: 990.0, kernel_dropped: 2.0 }
        );
        assert_eq!(r.cores[1].datagrams, 500.0);
        let auth = b.drops.iter().position(|d| d.reason == "auth_failed").unwrap();
        assert_eq!(r.drops[auth], 10.0);
        let nonce = b.drops.iter().position(|d| d.reason == "bad_nonce").unwrap();
        assert_eq!(r.drops[nonce], 100.0);
    }

    #[test]
    fn rates_reset_when_counters_go_back() {
        let (a, b) = pair();
        // The node restarted: uptime and counters back near zero.
        let c = Snapshot::from_value(fixture(1.0, 1, 0, 0));
        assert!(went_back(&b, &c));
        assert_eq!(rates(&b, &c), None);
        // Uptime going on but one counter back is a reset as well.
        let mut d = b.clone();
        d.uptime_s = 20.0;
        d.cores[1].txs_accepted = 0;
        assert!(went_back(&b, &d));

        let mut h = History::default();
        h.push(a);
        assert!(h.rates.is_none());
        h.push(b);
        assert_eq!(h.datagrams, [1500]);
        assert_eq!(h.txs, [2900]);
        h.push(c);
        assert!(h.rates.is_none());
        assert!(h.datagrams.is_empty() && h.txs.is_empty());
        assert_eq!(h.latest.as_ref().unwrap().uptime_s, 1.0);
        // The next snapshot of the new run has rates again.
        h.push(Snapshot::from_value(fixture(2.0, 2, 0, 0)));
        assert_eq!(h.rates.as_ref().unwrap().datagrams, 1500.0);
        assert_eq!(h.datagrams, [1500]);
    }

    #[test]
    fn history_keeps_sixty_seconds() {
        let mut h = History::default();
        for i in 0..100u64 {
            h.push(Snapshot::from_value(fixture(i as f64, i, 0, 0)));
        }
        assert_eq!(h.datagrams.len(), HISTORY);
        assert!(h.datagrams.iter().all(|&d| d == 1500));
    }

    #[test]
    fn missing_keys_are_zero() {
        let s = Snapshot::from_value(json!({"uptime_s": 3, "cores": [{"core": 4, "packets": 7}]}));
        assert_eq!(s.uptime_s, 3.0);
        assert_eq!(s.height, 0);
        assert_eq!(s.cores[0].core, 4);
        assert_eq!(s.cores[0].frames, 0);
        // No summary: the totals are the cores' sums.
        assert_eq!(s.datagrams, 7);
        assert!(drop_rows(&s, None).is_empty());
        assert_eq!(Snapshot::from_value(json!({})).cores, []);
    }

    #[test]
    fn renders_cores_drops_latency() {
        let (a, b) = pair();
        let mut h = History::default();
        h.push(a);
        h.push(b);
        let lines = screen(&h, &Link::Connected);
        let all = lines.join("\n");
        assert!(all.contains("attnet 0.1.0  recvmmsg  up 12s  height 10 (finalized 9)  sessions 1/2"), "{all}");
        assert!(all.contains("connected  datagrams/s 1.5k  tx/s 2.9k  frames/s 1.5k"), "{all}");
        assert_eq!(row(&lines, "attnet-rx0"), ["0", "attnet-rx0", "1.0k", "1.9k", "990", "2.0", "2%"]);
        assert_eq!(row(&lines, "attnet-rx1"), ["1", "attnet-rx1", "500", "1.0k", "500", "0", "50%"]);
        assert_eq!(row(&lines, "auth_failed"), ["frame", "auth_failed", "10", "50"]);
        assert_eq!(row(&lines, "bad_nonce"), ["ledger", "bad_nonce", "100", "300"]);
        assert_eq!(row(&lines, "bad_magic"), ["not-ATT", "bad_magic", "0", "10"]);
        assert_eq!(row(&lines, "kernel_dropped"), ["packet", "kernel_dropped", "2.0", "6"]);
        for zero in ["truncated", "too_short", "duplicate"] {
            assert!(!all.contains(zero), "{zero} shown:\n{all}");
        }
        assert!(!all.contains("no drops"));
        assert_eq!(row(&lines, "ingest"), ["ingest", "40", "µs", "200", "µs", "900", "µs", "1.50", "ms"]);
        assert_eq!(row(&lines, "inclusion"), ["inclusion", "40.0", "ms", "99.0", "ms", "120.0", "ms", "1.50", "s"]);
        assert!(all.contains("datagrams/s, last 60 s: now 1.5k, max 1.5k"), "{all}");
        assert!(all.contains("accepted tx/s, last 60 s: now 2.9k, max 2.9k"), "{all}");
    }

    #[test]
    fn renders_first_snapshot_and_link_states() {
        let mut h = History::default();
        let lines = screen(&h, &Link::Down("/x/admin.sock: Connection refused".into()));
        assert!(lines.join("\n").contains("disconnected, retrying: /x/admin.sock: Connection refused"));

        // One snapshot: no rates yet.
        h.push(Snapshot::from_value(fixture(10.0, 1, 0, 0)));
        let lines = screen(&h, &Link::Connected);
        assert_eq!(row(&lines, "attnet-rx0"), ["0", "attnet-rx0", "-", "-", "-", "-", "2%"]);
        assert_eq!(row(&lines, "bad_magic"), ["not-ATT", "bad_magic", "-", "10"]);

        // Nothing dropped at all.
        let mut v = fixture(10.0, 1, 0, 0);
        v["summary"]["packets"] = json!({"received": 1500, "kernel_dropped": 0, "not_att": {"bad_magic": 0}});
        v["summary"]["frames"]["dropped"] = json!({"replay": 0});
        v["summary"]["txs"]["dropped"] = json!({"bad_signature": 0});
        let mut h = History::default();
        h.push(Snapshot::from_value(v));
        let all = screen(&h, &Link::Connected).join("\n");
        assert!(all.contains("no drops"), "{all}");
        assert!(!all.contains("replay"));
    }

    #[test]
    fn renders_in_80x24() {
        let (a, b) = pair();
        let mut h = History::default();
        h.push(a);
        h.push(b);
        let mut t = Terminal::new(TestBackend::new(80, 24)).unwrap();
        t.draw(|f| draw(f, &h, &Link::Connected)).unwrap();
        let buf = t.backend().buffer();
        let all: String = buf.content.iter().map(|c| c.symbol()).collect();
        assert!(all.contains("attnet-rx1") && all.contains("auth_failed") && all.contains("inclusion"));
        assert!(all.contains("accepted tx/s, last 60 s"));
    }

    #[test]
    fn once_text() {
        let (a, b) = pair();
        let out = format_once(&b, rates(&a, &b).as_ref());
        let want = "\
attnet 0.1.0  recvmmsg  up 12s  height 10 (finalized 9)  sessions 1/2
datagrams/s 1.5k  tx/s 2.9k  frames/s 1.5k  (over 2.00 s)

core  name        datagrams/s  tx/s  frames/s  kdrops/s  ring
0     attnet-rx0         1.0k  1.9k       990       2.0    2%
1     attnet-rx1          500  1.0k       500         0   50%

group    reason           /s  total
packet   kernel_dropped  2.0      6
frame    auth_failed      10     50
frame    replay            0     10
tx       bad_signature     0     50
not-ATT  bad_magic         0     10
ledger   bad_nonce       100    300

               p50      p99      p999      max
ingest       40 µs   200 µs    900 µs  1.50 ms
inclusion  40.0 ms  99.0 ms  120.0 ms   1.50 s
";
        assert_eq!(out, want);
        assert!(!out.contains('\x1b'));

        // A node with nothing dropped.
        let s = Snapshot::from_value(json!({"version": "0.1.0", "cores": []}));
        assert!(format_once(&s, None).contains("\nno drops\n"));
    }

    #[test]
    fn once_json_rates() {
        let (a, b) = pair();
        let v = once_json(&b, &rates(&a, &b).unwrap());
        let line = v.to_string();
        assert!(!line.contains('\n'));
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["version"], "0.1.0");
        assert_eq!(v["summary"]["frames"]["dropped"]["auth_failed"], 50);
        let r = &v["rates"];
        assert_eq!(r["datagrams_per_s"].as_f64(), Some(1500.0));
        assert_eq!(r["txs_per_s"].as_f64(), Some(2900.0));
        assert_eq!(r["frames_per_s"].as_f64(), Some(1490.0));
        assert_eq!(
            r["cores"],
            json!([{"core": 0, "datagrams_per_s": 1000.0, "txs_per_s": 1900.0},
                   {"core": 1, "datagrams_per_s": 500.0, "txs_per_s": 1000.0}])
        );
        // The stats keys keep their order; `rates` comes last.
        assert_eq!(v.as_object().unwrap().keys().next_back().map(String::as_str), Some("rates"));
    }

    /// One `stats` answer on a fresh connection.
    fn ask_stats(path: &Path) -> Result<Value, String> {
        Conn::connect(path).and_then(|mut c| c.stats()).map_err(|e| e.to_string())
    }

    /// A socket in a fresh directory answering each request line with the
    /// next of `answers`.
    fn serve(name: &str, answers: Vec<String>) -> (PathBuf, std::thread::JoinHandle<Vec<String>>) {
        let d = std::env::temp_dir().join(format!("attnet-top-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let path = d.join("admin.sock");
        let l = UnixListener::bind(&path).unwrap();
        let t = std::thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            let mut w = s.try_clone().unwrap();
            let mut r = BufReader::new(s);
            let mut got = Vec::new();
            for a in answers {
                let mut line = String::new();
                r.read_line(&mut line).unwrap();
                got.push(line);
                writeln!(w, "{a}").unwrap();
            }
            got
        });
        (path, t)
    }

    #[test]
    fn socket_round_trip() {
        let f = fixture(10.0, 1, 30, 100);
        let (path, t) = serve("ok", vec![f.to_string(), fixture(11.0, 2, 30, 100).to_string()]);
        // One connection, two requests.
        let mut c = Conn::connect(&path).unwrap();
        assert_eq!(c.stats().unwrap(), f);
        assert_eq!(c.stats().unwrap()["uptime_s"], 11.0);
        assert_eq!(t.join().unwrap(), ["{\"q\":\"stats\"}\n", "{\"q\":\"stats\"}\n"]);
        // The server went away: a link error naming the socket.
        match c.stats() {
            Err(AskError::Link(e)) => assert!(e.contains(&path.display().to_string()), "{e}"),
            other => panic!("{other:?}"),
        }
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn socket_error_answer() {
        let (path, t) = serve("err", vec![json!({"error": "unknown query: stats"}).to_string()]);
        let e = ask_stats(&path).unwrap_err();
        assert!(e.contains("unknown query: stats") && e.contains(&path.display().to_string()), "{e}");
        t.join().unwrap();
        let _ = std::fs::remove_dir_all(path.parent().unwrap());

        let (path, t) = serve("bad", vec!["[1, 2]".into()]);
        assert!(ask_stats(&path).unwrap_err().contains("not a JSON object"));
        t.join().unwrap();

        let missing = path.with_file_name("nothing.sock");
        let e = ask_stats(&missing).unwrap_err();
        assert!(e.contains("nothing.sock"), "{e}");
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }
}
