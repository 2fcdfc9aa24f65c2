//! The node's topology as data, in the manner of Firedancer's `fd_topo`:
//! which threads ("tiles") run, on which CPU, and which rings ("links")
//! join them, with their depths. The node builds it once from the
//! configuration and the opened backend, spawns its threads from it, logs
//! it at start, and the summary carries it (`"topology"`), so the counters
//! can be read against the shape that produced them.

use dataplane::backend::Backend;
use serde_json::{json, Value};

/// What a tile does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TileKind {
    /// Polls one backend queue and runs the frame path, dedup and sharding.
    DataCore {
        /// The backend queue it polls.
        queue: usize,
    },
    /// Drains the shard rings, applies the ledger, seals blocks, sends
    /// receipts and owns the command ring.
    Control,
}

/// One thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tile {
    /// The thread's name (`attnet-rx0`, `attnet-control`).
    pub name: String,
    pub kind: TileKind,
    /// The CPU it is pinned to, if pinning is on.
    pub cpu: Option<usize>,
}

/// What a link carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkKind {
    /// Batches of accepted transactions for one shard, from one data core
    /// to the control tile (with a return ring for the emptied batches).
    Shard {
        /// The shard.
        shard: usize,
    },
    /// Session installs and removals, from the control tile to one data
    /// core.
    Command,
}

/// One single-producer single-consumer ring between two tiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    pub kind: LinkKind,
    /// Producer tile (index into [`Topology::tiles`]).
    pub from: usize,
    /// Consumer tile.
    pub to: usize,
    /// Entries the ring holds (batches or commands).
    pub depth: usize,
}

/// Tiles and links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// The backend the data cores poll.
    pub backend: Backend,
    pub tiles: Vec<Tile>,
    pub links: Vec<Link>,
    /// Transactions each shard batch is allocated for.
    pub batch_txs: usize,
}

/// What shapes the topology.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub backend: Backend,
    /// Data cores (one per opened queue).
    pub cores: usize,
    pub shards: usize,
    /// Batches per shard ring.
    pub ring_depth: usize,
    /// Commands per command ring.
    pub command_depth: usize,
    pub batch_txs: usize,
    /// Pin threads: the control tile on CPU 0, data cores on 1.. (modulo
    /// the CPUs there are).
    pub pin: bool,
    /// CPUs available.
    pub cpus: usize,
}

impl Topology {
    /// Data cores first (tile `i` polls queue `i`), then the control tile.
    pub fn build(s: &Shape) -> Topology {
        let cpus = s.cpus.max(1);
        let mut tiles: Vec<Tile> = (0..s.cores)
            .map(|i| Tile {
                name: format!("attnet-rx{i}"),
                kind: TileKind::DataCore { queue: i },
                cpu: s.pin.then_some((i + 1) % cpus),
            })
            .collect();
        let control = tiles.len();
        tiles.push(Tile { name: "attnet-control".into(), kind: TileKind::Control, cpu: s.pin.then_some(0) });
        let mut links = Vec::new();
        for core in 0..s.cores {
            for shard in 0..s.shards {
                links.push(Link { kind: LinkKind::Shard { shard }, from: core, to: control, depth: s.ring_depth });
            }
            links.push(Link { kind: LinkKind::Command, from: control, to: core, depth: s.command_depth });
        }
        Topology { backend: s.backend, tiles, links, batch_txs: s.batch_txs }
    }

    /// The data core tiles, in queue order.
    pub fn data_cores(&self) -> impl Iterator<Item = &Tile> {
        self.tiles.iter().filter(|t| matches!(t.kind, TileKind::DataCore { .. }))
    }

    /// The shard links out of data core `core` (tile `core`), in shard
    /// order.
    pub fn shard_links(&self, core: usize) -> impl Iterator<Item = &Link> {
        self.links.iter().filter(move |l| l.from == core && matches!(l.kind, LinkKind::Shard { .. }))
    }

    /// The control tile.
    pub fn control(&self) -> Option<&Tile> {
        self.tiles.iter().find(|t| t.kind == TileKind::Control)
    }

    /// Shards (shard links per data core).
    pub fn shards(&self) -> usize {
        self.shard_links(0).count()
    }

    /// The depth of the first link of a kind.
    fn depth_of(&self, kind: fn(&LinkKind) -> bool) -> usize {
        self.links.iter().find(|l| kind(&l.kind)).map_or(0, |l| l.depth)
    }

    /// One line for the log.
    pub fn describe(&self) -> String {
        let cpu = |t: &Tile| t.cpu.map_or_else(|| "unpinned".to_string(), |c| format!("cpu {c}"));
        let cores: Vec<String> = self.data_cores().map(|t| format!("{} ({})", t.name, cpu(t))).collect();
        format!(
            "topology: {} data core(s) on {} [{}], control {}; {} shard ring(s) of {} batches per core, command rings of {}",
            self.data_cores().count(),
            self.backend,
            cores.join(", "),
            self.control().map_or_else(|| "none".to_string(), cpu),
            self.shards(),
            self.depth_of(|k| matches!(k, LinkKind::Shard { .. })),
            self.depth_of(|k| *k == LinkKind::Command),
        )
    }

    /// The summary's `"topology"` object.
    pub fn to_json(&self) -> Value {
        let tiles: Vec<Value> = self
            .tiles
            .iter()
            .map(|t| {
                let kind = match t.kind {
                    TileKind::DataCore { queue } => json!({"data_core": {"queue": queue}}),
                    TileKind::Control => json!("control"),
                };
                json!({"name": t.name, "kind": kind, "cpu": t.cpu})
            })
            .collect();
        let links: Vec<Value> = self
            .links
            .iter()
            .map(|l| {
                let kind = match l.kind {
                    LinkKind::Shard { shard } => json!({"shard": shard}),
                    LinkKind::Command => json!("command"),
                };
                json!({"kind": kind, "from": l.from, "to": l.to, "depth": l.depth})
            })
            .collect();
        json!({"backend": self.backend.as_str(), "tiles": tiles, "links": links, "batch_txs": self.batch_txs})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_cores_three_shards_pinned_on_two_cpus() {
        let t = Topology::build(&Shape {
            backend: Backend::Recvmmsg,
            cores: 2,
            shards: 3,
            ring_depth: 64,
            command_depth: 256,
            batch_txs: 256,
            pin: true,
            cpus: 2,
        });
        let cpus: Vec<Option<usize>> = t.tiles.iter().map(|t| t.cpu).collect();
        assert_eq!(cpus, [Some(1), Some(0), Some(0)]);
        assert_eq!(t.data_cores().count(), 2);
        assert_eq!(t.shards(), 3);
        assert_eq!(
            t.shard_links(1).map(|l| l.kind).collect::<Vec<_>>(),
            (0..3).map(|shard| LinkKind::Shard { shard }).collect::<Vec<_>>()
        );
        // 2 × 3 shard links into the control tile, 2 command links out of it.
        assert_eq!(t.links.len(), 8);
        assert!(t.links.iter().filter(|l| l.kind == LinkKind::Command).all(|l| l.from == 2 && l.depth == 256));
        let j = t.to_json();
        assert_eq!(j["tiles"][2]["kind"], "control");
        assert_eq!(j["links"][0]["kind"]["shard"], 0);
        assert_eq!(
            t.describe(),
            "topology: 2 data core(s) on recvmmsg [attnet-rx0 (cpu 1), attnet-rx1 (cpu 0)], control cpu 0; \
             3 shard ring(s) of 64 batches per core, command rings of 256"
        );
    }
}
