//! SIGHUP: the node reads its configuration file (and the keys file it
//! names) again, checks it as at start, and applies what can change while
//! it runs, without stopping a core:
//!
//! - `log_level`, at once;
//! - configured sessions (`keys`): added, removed, or given new keys,
//!   through the cores' command rings (the control thread installs them,
//!   with their replay windows persisted and their reply counters above
//!   any this node used);
//! - failure budgets (`throttle_per_s`, `throttle_burst`,
//!   `throttle_cooldown_ms`) on every core and in the control thread;
//! - HELLO limits (`hello_cookie_threshold`, `hello_source_rate`,
//!   `sessions_per_source`, `session_idle_s`).
//!
//! Every other key that changed is named as needing a restart; a file
//! with problems is refused whole (each problem said) and the node keeps
//! its configuration.

use control::runner::Reload;

use crate::config::NodeConfig;
use crate::keys::Configured;

/// What a reload changes, and the keys that changed but need a restart.
#[derive(Debug, Default)]
pub struct Plan {
    pub log_level: Option<String>,
    pub install: Vec<(u16, [u8; 32], [u8; 32])>,
    pub remove: Vec<u16>,
    pub budget: Option<Option<dataplane::budget::BudgetConfig>>,
    pub hello: Option<(u32, u32, u32, u64)>,
    pub restart: Vec<&'static str>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.log_level.is_none()
            && self.install.is_empty()
            && self.remove.is_empty()
            && self.budget.is_none()
            && self.hello.is_none()
    }
}

fn hello(c: &NodeConfig) -> (u32, u32, u32, u64) {
    (c.hello_cookie_threshold, c.hello_source_rate, c.sessions_per_source, u64::from(c.session_idle_s) * 1000)
}

/// The changes from `old` (with sessions `old_s`) to `new` (`new_s`).
pub fn plan(old: &NodeConfig, new: &NodeConfig, old_s: &[Configured], new_s: &[Configured]) -> Plan {
    let mut p = Plan::default();
    if old.log_level != new.log_level {
        p.log_level = Some(new.log_level.clone());
    }
    for s in new_s {
        let same = old_s.iter().any(|o| o.id == s.id && o.c2r == s.c2r && o.r2c == s.r2c);
        if !same {
            // Ids were checked to fit 16 bits when the keys file was read.
            p.install.push((u16::try_from(s.id).unwrap_or(u16::MAX), s.c2r, s.r2c));
        }
    }
    for o in old_s {
        if !new_s.iter().any(|s| s.id == o.id) {
            p.remove.push(u16::try_from(o.id).unwrap_or(u16::MAX));
        }
    }
    if old.budget != new.budget {
        p.budget = Some(new.budget);
    }
    if hello(old) != hello(new) {
        p.hello = Some(hello(new));
    }
    macro_rules! fixed {
        ($($f:ident),*) => { $( if old.$f != new.$f { p.restart.push(stringify!($f)); } )* };
    }
    fixed!(
        backend,
        pcap,
        loops,
        listen,
        cores,
        shards,
        genesis,
        network_id,
        block_interval_ms,
        propose_timeout_ms,
        block_max_txs,
        empty_blocks,
        duration_s,
        summary_json,
        accepted_ids,
        busy_poll,
        pin,
        live,
        ring_depth,
        uring_buffers,
        rcvbuf,
        stop_after,
        receipts,
        node_key,
        data_dir,
        metrics,
        admin,
        log_format,
        committed_ids,
        snapshot_txs,
        retain_mb,
        validator_slots,
        query_queue
    );
    if old.batch.max_sigs != new.batch.max_sigs {
        p.restart.push("verify_batch");
    }
    if old.batch.budget_ns != new.batch.budget_ns {
        p.restart.push("verify_budget_us");
    }
    if format!("{:?}", old.dpdk) != format!("{:?}", new.dpdk) {
        p.restart.push("dpdk");
    }
    p
}

/// The node's side of reloads: the configuration and sessions in force.
pub struct Reloader {
    pub cfg: NodeConfig,
    pub sessions: Vec<Configured>,
    pub to_control: crossbeam_channel::Sender<Reload>,
    /// The views' count of configured sessions.
    pub configured: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Reloader {
    /// Re-reads the configuration and applies what it can; says what
    /// happened in the log. Waits for the control thread (at most 10 s).
    pub fn reload(&mut self) {
        let Some(from) = self.cfg.reload_from.clone() else {
            tracing::warn!("SIGHUP: nothing to reload: the node was started without a configuration file (--config)");
            return;
        };
        let new = match NodeConfig::check(*from) {
            Ok(c) => c,
            Err(problems) => {
                for e in &problems {
                    tracing::error!("SIGHUP: {e}");
                }
                tracing::error!(
                    "SIGHUP: reload refused ({} problem(s)); the configuration in force is kept",
                    problems.len()
                );
                return;
            }
        };
        let sessions = match &new.keys {
            Some(k) => match crate::keys::read(k) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!("SIGHUP: reload refused: keys: {e}; the configuration in force is kept");
                    return;
                }
            },
            None => Vec::new(),
        };
        let p = plan(&self.cfg, &new, &self.sessions, &sessions);
        if !p.restart.is_empty() {
            tracing::warn!("SIGHUP: changed but only applied by a restart: {}", p.restart.join(", "));
        }
        if p.is_empty() {
            tracing::info!("SIGHUP: configuration reloaded, nothing to apply");
            return;
        }
        if let Some(l) = &p.log_level {
            match crate::logs::set_level(l) {
                Ok(()) => tracing::info!("SIGHUP: log_level {l}"),
                Err(e) => tracing::error!("SIGHUP: {e}"),
            }
        }
        let (done, answer) = crossbeam_channel::bounded(1);
        let r = Reload { install: p.install, remove: p.remove, budget: p.budget, hello: p.hello, done };
        if self.to_control.send(r).is_err() {
            tracing::error!("SIGHUP: the control thread has stopped; nothing more applied");
            return;
        }
        match answer.recv_timeout(std::time::Duration::from_secs(10)) {
            Ok(lines) => {
                // Sessions the control thread could not install or remove
                // are in `lines`; the count follows what it did.
                let mut n = self.sessions.len();
                for l in lines {
                    if l.ends_with(" installed") && !sessions_had(&self.sessions, &l) {
                        n += 1;
                    } else if l.ends_with(" removed") {
                        n = n.saturating_sub(1);
                    }
                    tracing::info!("SIGHUP: {l}");
                }
                self.configured.store(n, std::sync::atomic::Ordering::Relaxed);
            }
            Err(_) => tracing::error!("SIGHUP: the control thread did not answer within 10 s"),
        }
        // What is in force now (restart-only keys keep their old values).
        self.cfg = merged(self.cfg.clone(), &new);
        self.sessions = sessions;
    }
}

/// Whether `line` (`session N installed`) names a session already in
/// `sessions` (its keys were replaced).
fn sessions_had(sessions: &[Configured], line: &str) -> bool {
    let id = line.split_whitespace().nth(1).and_then(|n| n.parse::<u32>().ok());
    id.is_some_and(|id| sessions.iter().any(|s| s.id == id))
}

/// `old` with the reloadable keys of `new`: what is in force after a
/// reload (a restart-only key changed in the file stays as it was, and
/// is named again by the next reload).
fn merged(old: NodeConfig, new: &NodeConfig) -> NodeConfig {
    NodeConfig {
        log_level: new.log_level.clone(),
        keys: new.keys.clone(),
        budget: new.budget,
        hello_cookie_threshold: new.hello_cookie_threshold,
        hello_source_rate: new.hello_source_rate,
        sessions_per_source: new.sessions_per_source,
        session_idle_s: new.session_idle_s,
        ..old
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Overrides;

    fn cfg(f: impl FnOnce(&mut Overrides)) -> NodeConfig {
        let mut o = Overrides::default();
        f(&mut o);
        NodeConfig::check(o).unwrap()
    }

    fn s(id: u32, k: u8) -> Configured {
        Configured { id, c2r: [k; 32], r2c: [k + 1; 32] }
    }

    #[test]
    fn a_plan_applies_what_can_change_and_names_the_rest() {
        let old = cfg(|_| {});
        let new = cfg(|o| {
            o.log_level = Some("debug".into());
            o.throttle_per_s = Some(7);
            o.hello_source_rate = Some(3);
            o.cores = Some(1);
            o.shards = Some(2);
            o.listen = Some("127.0.0.1:7200".into());
        });
        let p = plan(&old, &new, &[s(1, 1), s(2, 3), s(3, 5)], &[s(1, 1), s(2, 9), s(4, 11)]);
        assert_eq!(p.log_level.as_deref(), Some("debug"));
        let installed: Vec<u16> = p.install.iter().map(|i| i.0).collect();
        assert_eq!(installed, [2, 4], "new keys for 2, 4 added; 1 unchanged");
        assert_eq!(p.install[0].1, [9; 32]);
        assert_eq!(p.remove, [3]);
        assert_eq!(p.budget.unwrap().unwrap().per_s, 7);
        assert_eq!(p.hello.unwrap().1, 3);
        assert!(p.restart.contains(&"shards") && p.restart.contains(&"listen"), "{:?}", p.restart);
        assert!(!p.restart.contains(&"log_level") && !p.restart.contains(&"budget"), "{:?}", p.restart);
        let same = plan(&old, &old, &[s(1, 1)], &[s(1, 1)]);
        assert!(same.is_empty() && same.restart.is_empty(), "{same:?}");
        let m = merged(old.clone(), &new);
        assert_eq!((m.log_level.as_str(), m.shards, m.hello_source_rate), ("debug", old.shards, 3));
    }
}
