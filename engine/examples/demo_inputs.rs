//! Writes the demo's inputs into a folder: keys.json (the vectors' session
//! keys), vectors.hex (one datagram per line) and demo.pcap (the same
//! datagrams as UDP to port 7100 on loopback addresses, then all of them
//! again, which the relay must refuse as replays, and a few non-ATT
//! packets).

use std::path::PathBuf;

use dataplane::testkit;
use etherparse::PacketBuilder;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use serde_json::{json, Value};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(std::env::args().nth(1).ok_or("usage: demo_inputs DIR")?);
    let vectors: Value = serde_json::from_str(&std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../testdata/att-v1-vectors.json"
    ))?)?;
    let frames: Vec<Vec<u8>> = vectors["vectors"]
        .as_array()
        .ok_or("vectors")?
        .iter()
        .map(|v| hex::decode(v["frame"].as_str().unwrap_or_default()))
        .collect::<Result<_, _>>()?;
    let sessions: Vec<Value> = (0..16u16)
        .map(|s| json!({"id": s, "c2r": hex::encode(testkit::c2r(s)), "r2c": hex::encode(testkit::r2c(s))}))
        .collect();
    std::fs::write(dir.join("keys.json"), json!({ "sessions": sessions }).to_string())?;
    std::fs::write(dir.join("vectors.hex"), frames.iter().map(|f| hex::encode(f) + "\n").collect::<String>())?;

    let mut w = PcapWriter::with_header(std::fs::File::create(dir.join("demo.pcap"))?, PcapHeader::default())?;
    let mut t = 0u64;
    let mut put = |w: &mut PcapWriter<std::fs::File>, p: &[u8]| -> Result<(), Box<dyn std::error::Error>> {
        t += 1;
        w.write_packet(&PcapPacket::new(std::time::Duration::from_micros(t), p.len() as u32, p))?;
        Ok(())
    };
    let udp = |port: u16, payload: &[u8]| -> Result<Vec<u8>, Box<dyn std::error::Error>> {
        let mut v = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([127, 0, 0, 1], [127, 0, 0, 2], 64)
            .udp(40000, port)
            .write(&mut v, payload)?;
        Ok(v)
    };
    for round in 0..2 {
        for f in &frames {
            put(&mut w, &udp(7100, f)?)?;
        }
        if round == 0 {
            put(&mut w, &udp(53, b"not att")?)?;
        }
    }
    Ok(())
}
