//! `attnet keygen`: a new node key (a relay's Ed25519 identity).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rand::TryRng;

use crate::keys::{self, NodeKey};

#[derive(Debug, clap::Args)]
pub struct KeygenArgs {
    /// The node key file to create: {"secret": "<64 hex>", "public": "<64
    /// hex>"}, mode 0600. An existing file is never overwritten. The
    /// secret is never printed: there is no `--out -`.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

/// Writes a new node key to `a.out` and prints its public key (hex) on
/// stdout.
pub fn run(a: KeygenArgs) -> Result<(), String> {
    let key = generate()?;
    write_new(&a.out, &key)?;
    // Read back through the node's own reader: what was written is what a
    // node will load.
    let back = keys::read_node_key(&a.out)?;
    if back.secret != key.secret || back.public != key.public {
        return Err(format!("node key file {}: reads back as another key", a.out.display()));
    }
    println!("{}", hex::encode(key.public));
    Ok(())
}

/// A node key from 32 bytes of the operating system's randomness
/// (`getrandom`), with no generator in between.
pub(crate) fn generate() -> Result<NodeKey, String> {
    let mut seed = [0u8; 32];
    rand::rngs::SysRng.try_fill_bytes(&mut seed).map_err(|e| format!("no randomness from the OS: {e}"))?;
    Ok(NodeKey::from_secret(seed))
}

/// Creates `path` (mode 0600 from the start; refused if it exists) and
/// writes the key into it. A file left half written is removed.
pub(crate) fn write_new(path: &Path, key: &NodeKey) -> Result<(), String> {
    if path.as_os_str() == "-" {
        return Err("keygen: --out must name a file; the secret key is never written to stdout".into());
    }
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            format!(
                "node key file {} already exists; it is never overwritten (move it away or choose another --out)",
                path.display()
            )
        } else {
            format!("node key file {}: {e}", path.display())
        }
    })?;
    let res = f.write_all(key.to_json().as_bytes()).and_then(|()| f.sync_all());
    if let Err(e) = res {
        drop(f);
        let _ = std::fs::remove_file(path);
        return Err(format!("node key file {}: {e}", path.display()));
    }
    Ok(())
}
