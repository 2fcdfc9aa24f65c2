//! The keys file of `decode`: configured (not negotiated) session keys; and
//! the node key file of `attnet keygen`: a relay's Ed25519 identity.

use std::path::Path;

use dataplane::FramePath;
use serde::Deserialize;

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

/// Reads and checks the keys file ([`pktgen::plan::read_keys`]).
pub fn read(path: &Path) -> Result<Vec<Configured>, String> {
    Ok(pktgen::plan::read_keys(path)?
        .into_iter()
        .map(|k| Configured { id: u32::from(k.id), c2r: k.c2r, r2c: k.r2c })
        .collect())
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

/// A relay's identity: the Ed25519 key that signs its WELCOMEs. Its
/// `Debug` shows the public key only.
#[derive(Clone, PartialEq, Eq)]
pub struct NodeKey {
    /// The 32-byte Ed25519 seed.
    pub secret: [u8; 32],
    pub public: [u8; 32],
}

impl std::fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeKey").field("public", &hex::encode(self.public)).field("secret", &"<hidden>").finish()
    }
}

impl NodeKey {
    /// The key pair of a 32-byte Ed25519 seed.
    pub fn from_secret(secret: [u8; 32]) -> NodeKey {
        let sk = ed25519_zebra::SigningKey::from(secret);
        let public: [u8; 32] = ed25519_zebra::VerificationKey::from(&sk).into();
        NodeKey { secret, public }
    }

    /// The node key file's text: `{"secret": "<64 hex>", "public": "<64 hex>"}`
    /// and a newline.
    pub fn to_json(&self) -> String {
        format!("{{\"secret\": \"{}\", \"public\": \"{}\"}}\n", hex::encode(self.secret), hex::encode(self.public))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeKeyFile {
    secret: String,
    public: String,
}

/// A node key file is a few dozen bytes; anything much larger is not one.
const NODE_KEY_FILE_MAX: u64 = 4096;

/// Reads and checks a node key file (`attnet keygen --out FILE`): it must be
/// private to its owner (no permission bit for group or others), hold a
/// 32-byte secret and the public key that secret gives.
pub fn read_node_key(path: &Path) -> Result<NodeKey, String> {
    read_key_file(path, "node key")
}

/// Reads and checks an account key file: the same format and rules as a
/// node key file (`attnet keygen` writes both).
pub fn read_account_key(path: &Path) -> Result<NodeKey, String> {
    read_key_file(path, "account key")
}

fn read_key_file(path: &Path, what: &str) -> Result<NodeKey, String> {
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;
    let ctx = |e: &dyn std::fmt::Display| format!("{what} file {}: {e}", path.display());
    let f = std::fs::File::open(path).map_err(|e| ctx(&e))?;
    // The mode of the file opened, not of whatever the path names later.
    let meta = f.metadata().map_err(|e| ctx(&e))?;
    if !meta.is_file() {
        return Err(ctx(&"not a regular file"));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(ctx(&format_args!(
            "mode {mode:04o} lets group or others at the secret key; run `chmod 600 {}`",
            path.display()
        )));
    }
    let mut text = String::new();
    f.take(NODE_KEY_FILE_MAX + 1).read_to_string(&mut text).map_err(|e| ctx(&e))?;
    if text.len() as u64 > NODE_KEY_FILE_MAX {
        return Err(ctx(&format_args!("longer than {NODE_KEY_FILE_MAX} bytes: not a {what} file")));
    }
    let file: NodeKeyFile = serde_json::from_str(&text).map_err(|e| ctx(&e))?;
    let mut secret = [0u8; 32];
    hex::decode_to_slice(file.secret.trim(), &mut secret)
        .map_err(|e| ctx(&format_args!("`secret` must be 64 hex digits ({e})")))?;
    let mut public = [0u8; 32];
    hex::decode_to_slice(file.public.trim(), &mut public)
        .map_err(|e| ctx(&format_args!("`public` must be 64 hex digits ({e})")))?;
    let key = NodeKey::from_secret(secret);
    if key.public != public {
        return Err(ctx(&format_args!(
            "`public` is not the public key of `secret` (the secret gives {})",
            hex::encode(key.public)
        )));
    }
    Ok(key)
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

    fn node_key_file(d: &Path, text: &str, mode: u32) -> std::path::PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = d.join("node.json");
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    #[test]
    fn node_key_round_trips_and_hides_its_secret() {
        let d = dir("node-ok");
        let key = NodeKey::from_secret([7; 32]);
        // The public key as the signature code derives it.
        let sk = ed25519_zebra::SigningKey::from([7u8; 32]);
        assert_eq!(key.public, <[u8; 32]>::from(ed25519_zebra::VerificationKey::from(&sk)));
        let p = node_key_file(&d, &key.to_json(), 0o600);
        assert_eq!(read_node_key(&p).unwrap(), key);
        let shown = format!("{key:?}");
        assert!(shown.contains(&hex::encode(key.public)) && !shown.contains(&hex::encode(key.secret)), "{shown}");
        // Owner-only read permission is enough.
        let p = node_key_file(&d, &key.to_json(), 0o400);
        assert_eq!(read_node_key(&p).unwrap(), key);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn node_key_with_another_public_key_is_refused() {
        let d = dir("node-mismatch");
        let (a, b) = (NodeKey::from_secret([1; 32]), NodeKey::from_secret([2; 32]));
        let text = format!(r#"{{"secret": "{}", "public": "{}"}}"#, hex::encode(a.secret), hex::encode(b.public));
        let p = node_key_file(&d, &text, 0o600);
        let e = read_node_key(&p).unwrap_err();
        assert!(e.contains(&p.display().to_string()), "{e}");
        assert!(e.contains("`public` is not the public key of `secret`"), "{e}");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn node_key_with_a_short_or_bad_secret_is_refused() {
        let d = dir("node-short");
        let public = hex::encode(NodeKey::from_secret([1; 32]).public);
        for (secret, why) in [("01".repeat(31), "Invalid string length"), ("zz".repeat(32), "Invalid character")] {
            let text = format!(r#"{{"secret": "{secret}", "public": "{public}"}}"#);
            let p = node_key_file(&d, &text, 0o600);
            let e = read_node_key(&p).unwrap_err();
            assert!(e.contains(&p.display().to_string()) && e.contains("`secret` must be 64 hex digits"), "{e}");
            assert!(e.contains(why), "{e}");
        }
        let p = node_key_file(&d, &format!(r#"{{"public": "{public}"}}"#), 0o600);
        assert!(read_node_key(&p).unwrap_err().contains("missing field `secret`"));
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn node_key_open_to_others_is_refused() {
        let d = dir("node-mode");
        let key = NodeKey::from_secret([3; 32]);
        for mode in [0o644, 0o640, 0o604, 0o620] {
            let p = node_key_file(&d, &key.to_json(), mode);
            let e = read_node_key(&p).unwrap_err();
            assert!(e.contains(&format!("mode {mode:04o}")), "{e}");
            assert!(e.contains(&format!("chmod 600 {}", p.display())), "{e}");
        }
        let _ = std::fs::remove_dir_all(&d);
    }
}
