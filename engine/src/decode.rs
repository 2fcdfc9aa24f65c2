//! `attnet decode`: one hex datagram per line in, one JSON verdict per line
//! out, session state (replay windows) kept across lines.

use std::io::{BufRead, Read, Write};

use dataplane::{Burst, FramePath};
use serde::Serialize;

/// The longest line read: the largest UDP payload (65535 bytes) in hex, and
/// room for surrounding whitespace and a CR. A longer line is an error that
/// names it; it is never held in memory whole.
pub const MAX_LINE: usize = 2 * 65535 + 64;

#[derive(Serialize)]
struct Line<'a> {
    verdict: &'a str,
    tx_ids: Vec<String>,
}

pub fn run_stdin(fp: FramePath) -> Result<(), String> {
    let stdin = std::io::stdin().lock();
    let stdout = std::io::stdout();
    run(fp, stdin, std::io::BufWriter::new(stdout.lock()))
}

/// Reads the next line (without its `\n`) into `buf`, at most
/// [`MAX_LINE`] bytes of it; `Ok(None)` at the end of the input,
/// `Ok(Some(false))` for a longer line (the rest of it unread).
fn next_line(input: &mut impl BufRead, buf: &mut Vec<u8>) -> std::io::Result<Option<bool>> {
    buf.clear();
    let n = input.by_ref().take(MAX_LINE as u64 + 1).read_until(b'\n', buf)?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        return Ok(Some(true));
    }
    // No newline: the end of the input, or a line over the limit.
    Ok(Some(buf.len() <= MAX_LINE))
}

fn run(mut fp: FramePath, mut input: impl BufRead, mut out: impl Write) -> Result<(), String> {
    let mut burst = Burst::default();
    let mut dgram: [Vec<u8>; 1] = [Vec::with_capacity(65536)];
    let mut raw = Vec::with_capacity(MAX_LINE + 1);
    let mut n = 0usize;
    loop {
        n += 1;
        let fits = match next_line(&mut input, &mut raw) {
            Ok(None) => break,
            Ok(Some(fits)) => fits,
            Err(e) => {
                let _ = out.flush();
                return Err(format!("stdin line {n}: {e}"));
            }
        };
        if !fits {
            let _ = out.flush();
            return Err(format!(
                "stdin line {n}: longer than {MAX_LINE} bytes (a datagram is at most 65535 bytes, {} hex digits)",
                2 * 65535
            ));
        }
        let text = match std::str::from_utf8(&raw) {
            Ok(t) => t.trim(),
            Err(e) => {
                let _ = out.flush();
                return Err(format!("stdin line {n}: not UTF-8 ({e})"));
            }
        };
        let d = &mut dgram[0];
        d.clear();
        if text.len() % 2 != 0 {
            let _ = out.flush();
            return Err(format!("stdin line {n}: odd number of hex digits ({})", text.len()));
        }
        d.resize(text.len() / 2, 0);
        if let Err(e) = hex::decode_to_slice(text, d) {
            let _ = out.flush();
            return Err(format!("stdin line {n}: not hex ({e})"));
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that yields `len` bytes of `b'a'` and counts what was read,
    /// so the test sees that an over-long line is not read whole.
    struct Endless {
        left: usize,
        read: std::rc::Rc<std::cell::Cell<usize>>,
    }

    impl Read for Endless {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.left);
            buf[..n].fill(b'a');
            self.left -= n;
            self.read.set(self.read.get() + n);
            Ok(n)
        }
    }

    #[test]
    fn over_long_line_is_named_not_read_whole() {
        let read = std::rc::Rc::new(std::cell::Cell::new(0));
        // Two short lines (`00` is a one-byte datagram), then 1 GB without a newline.
        let input = std::io::Cursor::new(b"00\n00\n".to_vec()).chain(Endless { left: 1 << 30, read: read.clone() });
        let mut out = Vec::new();
        let e = run(dataplane::host::frame_path(1), std::io::BufReader::new(input), &mut out).unwrap_err();
        assert!(e.starts_with("stdin line 3: longer than"), "{e}");
        assert_eq!(String::from_utf8(out).unwrap().lines().count(), 2, "the two lines before it were judged");
        assert!(read.get() < 4 * MAX_LINE, "read {} bytes of the long line", read.get());
    }

    #[test]
    fn longest_datagram_line_fits() {
        let line = format!("{}\r\n", "ab".repeat(65535));
        let mut out = Vec::new();
        run(dataplane::host::frame_path(1), line.as_bytes(), &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap().lines().count(), 1);
        // The last line may end without a newline.
        let mut out = Vec::new();
        run(dataplane::host::frame_path(1), &b"00\n00"[..], &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap().lines().count(), 2);
    }
}
