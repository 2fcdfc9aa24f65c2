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
        out.push(Configured { id: s.id, c2r, r2c });
    }
    Ok(out)
}
