//! The keys file of `decode`: configured (not negotiated) session keys.

use std::path::Path;

use dataplane::FramePath;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysFile {
    sessions: Vec<SessionKeys>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionKeys {
    id: u32,
    c2r: String,
    r2c: String,
}

fn key(hex_str: &str, what: &str, id: u32) -> Result<[u8; 32], String> {
    let mut k = [0u8; 32];
    hex::decode_to_slice(hex_str.trim(), &mut k)
        .map_err(|e| format!("session {id}: {what} must be 64 hex digits ({e})"))?;
    Ok(k)
}

/// One configured session.
#[derive(Debug, Clone, Copy)]
pub struct Configured {
    pub id: u32,
    pub c2r: [u8; 32],
    pub r2c: [u8; 32],
}

/// Reads the keys file and builds a relay frame path with its sessions.
pub fn load(path: &Path, network_id: u32) -> Result<FramePath, String> {
    let mut fp = dataplane::host::frame_path(network_id);
    for s in read(path)? {
        // `read` checked the id range.
        let _ = fp.sessions.install(s.id, &s.c2r, &s.r2c);
    }
    Ok(fp)
}

/// Reads and checks the keys file.
pub fn read(path: &Path) -> Result<Vec<Configured>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("keys file {}: {e}", path.display()))?;
    let file: KeysFile = serde_json::from_str(&text).map_err(|e| format!("keys file {}: {e}", path.display()))?;
    let mut out = Vec::with_capacity(file.sessions.len());
    let mut seen = std::collections::HashSet::new();
    for (i, s) in file.sessions.iter().enumerate() {
        if !seen.insert(s.id) {
            return Err(format!("keys file {}: sessions[{i}]: session {} listed twice", path.display(), s.id));
        }
        let c2r = key(&s.c2r, "c2r", s.id).map_err(|e| format!("keys file {}: sessions[{i}]: {e}", path.display()))?;
        let r2c = key(&s.r2c, "r2c", s.id).map_err(|e| format!("keys file {}: sessions[{i}]: {e}", path.display()))?;
        if s.id > u32::from(dataplane::wire::mcs::MAX_SESSION_ID) {
            return Err(format!(
                "keys file {}: sessions[{i}]: {}",
                path.display(),
                dataplane::session::BadSessionId(s.id)
            ));
        }
        dataplane::session::check_keys(&c2r, &r2c)
            .map_err(|e| format!("keys file {}: sessions[{i}]: session {}: {e}", path.display(), s.id))?;
        out.push(Configured { id: s.id, c2r, r2c });
    }
    Ok(out)
}

/// Writes a file holding keys: created with mode 0600 (owner only) from the
/// start, never readable by others even for a moment.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("keys file {}: {e}", path.display()))?;
    // An existing file keeps its mode through `open`: narrow it too.
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .map_err(|e| format!("keys file {}: {e}", path.display()))?;
    f.write_all(bytes).map_err(|e| format!("keys file {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("attnet-keys-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn keys_file(d: &Path, c2r: &str, r2c: &str) -> std::path::PathBuf {
        let p = d.join("keys.json");
        std::fs::write(&p, format!(r#"{{"sessions": [{{"id": 3, "c2r": "{c2r}", "r2c": "{r2c}"}}]}}"#)).unwrap();
        p
    }

    #[test]
    fn weak_keys_are_refused() {
        let d = dir("weak");
        let (a, b, z) = ("11".repeat(32), "22".repeat(32), "00".repeat(32));
        assert_eq!(read(&keys_file(&d, &a, &b)).unwrap().len(), 1);
        for (c2r, r2c, why) in [(&a, &a, "same key"), (&z, &b, "c2r key is all zero"), (&a, &z, "r2c key is all zero")]
        {
            let e = read(&keys_file(&d, c2r, r2c)).unwrap_err();
            assert!(e.contains("sessions[0]: session 3") && e.contains(why), "{e}");
        }
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn written_keys_are_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let d = dir("mode");
        let p = d.join("k.json");
        std::fs::write(&p, "old").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_private(&p, b"{}").unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read(&p).unwrap(), b"{}");
        let fresh = d.join("new.json");
        write_private(&fresh, b"{}").unwrap();
        assert_eq!(std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777, 0o600);
        let _ = std::fs::remove_dir_all(&d);
    }
}
