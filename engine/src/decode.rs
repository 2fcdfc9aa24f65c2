//! `attnet decode`: one hex datagram per line in, one JSON verdict per line
//! out, session state (replay windows) kept across lines.

use std::io::{BufRead, Write};

use dataplane::{Burst, FramePath};
use serde::Serialize;

#[derive(Serialize)]
struct Line<'a> {
    verdict: &'a str,
    tx_ids: Vec<String>,
}

pub fn run_stdin(mut fp: FramePath) -> Result<(), String> {
    let stdin = std::io::stdin().lock();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut burst = Burst::default();
    let mut dgram: [Vec<u8>; 1] = [Vec::with_capacity(65536)];
    for (n, line) in stdin.lines().enumerate() {
        let line = line.map_err(|e| format!("stdin line {}: {e}", n + 1))?;
        let text = line.trim();
        let d = &mut dgram[0];
        d.clear();
        if text.len() % 2 != 0 {
            let _ = out.flush();
            return Err(format!("stdin line {}: odd number of hex digits ({})", n + 1, text.len()));
        }
        d.resize(text.len() / 2, 0);
        if let Err(e) = hex::decode_to_slice(text, d) {
            let _ = out.flush();
            return Err(format!("stdin line {}: not hex ({e})", n + 1));
        }
        fp.process(&mut dgram, &mut burst);
        let l = Line {
            verdict: burst.datagram_verdict(0).as_str(),
            tx_ids: burst.txs.iter().map(|t| hex::encode(t.id)).collect(),
        };
        let s = serde_json::to_string(&l).map_err(|e| e.to_string())?;
        writeln!(out, "{s}").map_err(|e| format!("stdout: {e}"))?;
    }
    out.flush().map_err(|e| format!("stdout: {e}"))
}
