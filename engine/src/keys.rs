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

/// Reads the keys file and builds a relay frame path with its sessions.
pub fn load(path: &Path, network_id: u32) -> Result<FramePath, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("keys file {}: {e}", path.display()))?;
    let file: KeysFile = serde_json::from_str(&text).map_err(|e| format!("keys file {}: {e}", path.display()))?;
    let mut fp = FramePath::new(network_id);
    let mut seen = std::collections::HashSet::new();
    for (i, s) in file.sessions.iter().enumerate() {
        if !seen.insert(s.id) {
            return Err(format!("keys file {}: sessions[{i}]: session {} listed twice", path.display(), s.id));
        }
        let c2r = key(&s.c2r, "c2r", s.id).map_err(|e| format!("keys file {}: sessions[{i}]: {e}", path.display()))?;
        let r2c = key(&s.r2c, "r2c", s.id).map_err(|e| format!("keys file {}: sessions[{i}]: {e}", path.display()))?;
        // This path only receives; the send counter is never used.
        fp.sessions
            .install(s.id, &c2r, &r2c, 0)
            .map_err(|e| format!("keys file {}: sessions[{i}]: {e}", path.display()))?;
    }
    Ok(fp)
}
