//! Lists the Ethernet ports DPDK sees with the given EAL arguments, and
//! what their drivers offer: a quick check of an EAL command line before
//! handing it to the node.
//!
//! ```sh
//! cargo run -p ffi --example dpdk_ports -- --no-huge -m 256 --no-pci --vdev=net_null0
//! ```

use ffi::{Eal, Mempool, Port, PortConfig, DEFAULT_DATA_ROOM};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let eal = match Eal::init(&args) {
        Ok(eal) => eal,
        Err(e) => {
            eprintln!("dpdk_ports: {e}");
            std::process::exit(1);
        }
    };
    println!("{} (main lcore {:?})", ffi::dpdk_version().unwrap_or("DPDK"), eal.lcore_id());
    let pool = match Mempool::new("dpdk_ports", 4095, 0, DEFAULT_DATA_ROOM, None) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("dpdk_ports: {e}");
            std::process::exit(1);
        }
    };
    for (id, name) in eal.ports() {
        // Opening shows the driver's limits; a single queue needs no RSS.
        let cfg = PortConfig { rx_desc: 256, tx_desc: 256, rss: false, ..Default::default() };
        match Port::open(&eal, id, &cfg, &pool) {
            Ok(port) => {
                let i = port.info();
                println!(
                    "port {id} {name}: driver {}, up to {} rx / {} tx queues, RSS hash types {:#x}",
                    i.driver_name, i.max_rx_queues, i.max_tx_queues, i.flow_type_rss_offloads
                );
            }
            Err(e) => println!("port {id} {name}: {e}"),
        }
    }
}
