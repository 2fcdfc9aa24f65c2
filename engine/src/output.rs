//! The node's output files and its per-port lock, all taken before the
//! first packet: an unwritable path or a port held by another node is a
//! start-up error that names it, never a thread dying mid-run.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

/// The summary JSON file: `PATH.tmp` is created when the node starts (so an
/// unwritable directory is refused at once) and the summary is written to
/// it, flushed and renamed over `PATH` at the end, so a reader never sees a
/// half-written summary.
#[derive(Debug)]
pub struct SummaryFile {
    path: PathBuf,
    tmp: PathBuf,
    file: File,
}

impl SummaryFile {
    /// Creates `PATH.tmp` for writing.
    pub fn create(path: &Path) -> Result<SummaryFile, String> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let file = File::create(&tmp).map_err(|e| format!("summary json {}: {e}", tmp.display()))?;
        Ok(SummaryFile { path: path.to_owned(), tmp, file })
    }

    /// Writes `text` to `PATH.tmp`, syncs it, and renames it to `PATH`.
    /// On failure `PATH` is untouched and the temporary file is removed.
    pub fn commit(mut self, text: &str) -> Result<(), String> {
        let r = self
            .file
            .write_all(text.as_bytes())
            .and_then(|()| self.file.write_all(b"\n"))
            .and_then(|()| self.file.sync_all())
            .and_then(|()| std::fs::rename(&self.tmp, &self.path));
        r.map_err(|e| {
            let _ = std::fs::remove_file(&self.tmp);
            format!("summary json {}: {e}", self.path.display())
        })
    }
}

/// Checks at start that the accepted-ids file can be created (the control
/// thread writes it, truncating it again).
pub fn check_accepted_ids(path: &Path) -> Result<(), String> {
    File::create(path).map(drop).map_err(|e| format!("accepted ids {}: {e}", path.display()))
}

/// Held for the node's life: the abstract Unix socket `@attnet/udp/PORT`
/// (Linux; freed by the kernel when the process ends, however it ends).
/// A second node on the same UDP port cannot bind it, so it refuses to
/// start instead of joining the first one's `SO_REUSEPORT` group and
/// taking half of its traffic.
#[derive(Debug)]
pub struct PortLock {
    _sock: UnixDatagram,
}

impl PortLock {
    /// The lock's abstract socket name.
    pub fn name(port: u16) -> String {
        format!("attnet/udp/{port}")
    }

    /// Takes the lock of `addr`'s port; `addr` only names the port in the
    /// error.
    pub fn take(addr: std::net::SocketAddr) -> Result<PortLock, String> {
        use std::os::linux::net::SocketAddrExt;
        let name = PortLock::name(addr.port());
        let sa = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
            .map_err(|e| format!("port lock @{name}: {e}"))?;
        match UnixDatagram::bind_addr(&sa) {
            Ok(sock) => Ok(PortLock { _sock: sock }),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                Err(format!("UDP port {addr} is in use by another attnet process (it holds @{name})"))
            }
            Err(e) => Err(format!("port lock @{name}: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("attnet-output-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn summary_is_written_whole_or_not_at_all() {
        let d = dir("summary");
        let p = d.join("s.json");
        std::fs::write(&p, "old").unwrap();
        let f = SummaryFile::create(&p).unwrap();
        // Until the commit the previous summary stays as it was.
        assert!(d.join("s.json.tmp").exists());
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "old");
        f.commit("{\"a\": 1}").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "{\"a\": 1}\n");
        assert!(!d.join("s.json.tmp").exists(), "the temporary file is renamed, not left behind");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn unwritable_outputs_are_refused_at_once() {
        let e = SummaryFile::create(Path::new("/nonexistent/dir/s.json")).unwrap_err();
        assert!(e.contains("/nonexistent/dir/s.json.tmp"), "{e}");
        let e = check_accepted_ids(Path::new("/nonexistent/dir/ids")).unwrap_err();
        assert!(e.contains("accepted ids /nonexistent/dir/ids"), "{e}");
    }

    #[test]
    fn port_lock_is_exclusive_while_held() {
        // A port number no other test of this crate locks.
        let addr: std::net::SocketAddr = "127.0.0.1:65021".parse().unwrap();
        let held = PortLock::take(addr).unwrap();
        let e = PortLock::take(addr).unwrap_err();
        assert!(e.contains("UDP port 127.0.0.1:65021 is in use by another attnet process"), "{e}");
        drop(held);
        PortLock::take(addr).expect("free again once dropped");
    }
}
