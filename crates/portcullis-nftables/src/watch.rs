//! Hand edits, from the namespace's nf_tables notifications: what a drift check must compare, so that it costs
//! what others changed rather than a listing of a million entries (which takes the kernel minutes, see
//! `crate::netlink`).
//!
//! A thread reads the notifications from the first drift check on. Each transaction's element notifications for
//! Portcullis' table are parked under the generation its commit announces; a drift check takes them, drops those
//! of the generations this process committed itself ([`EditWatch::own`]), and answers the single addresses of
//! the rest. Anything it cannot pin to single addresses (networks, rules, sets made or deleted, notifications lost
//! to a full buffer, the start of the watch) answers [`HandEdits::Unknown`]: compare whole.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ipnet::IpNet;
use portcullis_core::firewall::HandEdits;
use portcullis_core::model::net_to_string;

use crate::netlink::{Netlink, Notification, key_address};
use crate::translate::{GENERATION_SET, SetPart};

/// How long the watching thread waits for notifications before it looks whether it should stop.
const POLL: Duration = Duration::from_millis(500);
/// Past this many single addresses of others, a check compares whole rather than looking each one up.
const MAX_TOUCHED: usize = 200_000;

/// What one transaction (or the notifications not yet closed by a generation) touched of Portcullis' table.
#[derive(Debug, Default)]
struct Touch {
    /// Single addresses by alias.
    hosts: BTreeMap<String, BTreeSet<String>>,
    count: usize,
    /// Something that is not a single address of an alias: a network, a rule, a chain, a set.
    beyond_hosts: bool,
}

impl Touch {
    fn is_empty(&self) -> bool {
        self.count == 0 && !self.beyond_hosts
    }

    fn merge(&mut self, other: Touch) {
        self.count += other.count;
        self.beyond_hosts |= other.beyond_hosts;
        if self.count > MAX_TOUCHED {
            self.hosts.clear();
            return;
        }
        for (alias, values) in other.hosts {
            self.hosts.entry(alias).or_default().extend(values);
        }
    }

    /// Notes one address; past [`MAX_TOUCHED`] only the count is kept (a bulk change is compared whole, or is this
    /// process' own and dropped), which bounds what a transaction of a million elements holds in memory.
    fn add_host(&mut self, alias: &str, value: String) {
        self.count += 1;
        if self.count > MAX_TOUCHED {
            self.hosts.clear();
            return;
        }
        self.hosts.entry(alias.to_string()).or_default().insert(value);
    }
}

#[derive(Debug, Default)]
struct Parked {
    /// Whether every notification since the last take was read: false at the start and after an overrun.
    complete: bool,
    /// Notifications of the transaction not committed yet.
    pending: Touch,
    by_generation: BTreeMap<u32, Touch>,
    /// Generations this process committed.
    own: BTreeSet<u32>,
}

/// The watch of one table, started by the first [`EditWatch::take`].
pub(crate) struct EditWatch {
    table: String,
    netlink: Netlink,
    parked: Arc<Mutex<Parked>>,
    running: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl EditWatch {
    pub fn new(table: String, netlink: Netlink) -> Self {
        EditWatch {
            table,
            netlink,
            parked: Arc::default(),
            running: Arc::new(AtomicBool::new(false)),
            stop: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Marks generations `first..=last` as this process' own commits; what they touched is dropped.
    pub fn own(&self, first: u32, last: u32) {
        let mut parked = self.lock();
        let mut g = first;
        loop {
            if parked.by_generation.remove(&g).is_none() {
                // Not announced yet: dropped when it is taken.
                parked.own.insert(g);
            }
            if g == last {
                break;
            }
            g = g.wrapping_add(1);
        }
    }

    /// What others changed since the last take.
    pub fn take(&self) -> HandEdits {
        if !self.running.swap(true, Ordering::AcqRel) && !self.start() {
            self.running.store(false, Ordering::Release);
            return HandEdits::Unknown;
        }
        let mut parked = self.lock();
        let complete = std::mem::replace(&mut parked.complete, true);
        let mut foreign = Touch::default();
        for (generation, touch) in std::mem::take(&mut parked.by_generation) {
            if !parked.own.remove(&generation) {
                foreign.merge(touch);
            }
        }
        // Own generations that announced nothing of this table never come back for removal.
        if parked.own.len() > 10_000 {
            parked.own.clear();
        }
        if !complete || foreign.beyond_hosts || foreign.count > MAX_TOUCHED {
            return HandEdits::Unknown;
        }
        HandEdits::Touched(foreign.hosts)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Parked> {
        self.parked.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts the watching thread; false when the namespace's notifications cannot be read.
    fn start(&self) -> bool {
        let mut monitor = match self.netlink.monitor() {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(table = %self.table, "hand edits are not watched, drift checks compare whole: {e}");
                return false;
            }
        };
        let (table, parked, stop, running) =
            (self.table.clone(), self.parked.clone(), self.stop.clone(), self.running.clone());
        let spawned = std::thread::Builder::new().name("nft-watch".into()).spawn(move || {
            while !stop.load(Ordering::Acquire) {
                match monitor.next(POLL) {
                    Ok(notifications) => park(&parked, &table, notifications),
                    Err(e) => {
                        if !e.is_overrun() {
                            tracing::warn!(%table, "the nf_tables notifications stopped: {e}");
                            running.store(false, Ordering::Release);
                            parked.lock().unwrap_or_else(|p| p.into_inner()).complete = false;
                            return;
                        }
                        parked.lock().unwrap_or_else(|p| p.into_inner()).complete = false;
                    }
                }
            }
        });
        spawned.is_ok()
    }
}

impl Drop for EditWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

fn park(parked: &Mutex<Parked>, table: &str, notifications: Vec<Notification>) {
    let mut parked = parked.lock().unwrap_or_else(|p| p.into_inner());
    for n in notifications {
        match n {
            Notification::Generation(generation) => {
                let touch = std::mem::take(&mut parked.pending);
                if !touch.is_empty() {
                    parked.by_generation.entry(generation).or_default().merge(touch);
                }
            }
            Notification::Object { table: Some(t) } if t == table => parked.pending.beyond_hosts = true,
            Notification::Object { .. } => {}
            Notification::Elements { table: t, set, keys } if t == table => {
                note_elements(&mut parked.pending, &set, keys)
            }
            Notification::Elements { .. } => {}
        }
    }
}

fn note_elements(touch: &mut Touch, set: &str, keys: Vec<Vec<u8>>) {
    if set == GENERATION_SET {
        return;
    }
    // Sets that are not an alias' (the DDoS protections') are not compared with a record.
    let Some((alias, part)) = SetPart::split(set) else { return };
    if part.is_interval() {
        touch.beyond_hosts = true;
        return;
    }
    for key in keys {
        match key_address(&key) {
            Some(addr) => touch.add_host(alias, net_to_string(&IpNet::from(addr))),
            None => touch.beyond_hosts = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elements(set: &str, addr: [u8; 4]) -> Notification {
        Notification::Elements { table: "portcullis".into(), set: set.into(), keys: vec![addr.to_vec()] }
    }

    fn watch_with(notifications: Vec<Notification>, own: &[u32]) -> EditWatch {
        let watch = EditWatch::new("portcullis".into(), Netlink::new(None));
        watch.running.store(true, Ordering::Release);
        watch.lock().complete = true;
        park(&watch.parked, "portcullis", notifications);
        for g in own {
            watch.own(*g, *g);
        }
        watch
    }

    #[test]
    fn single_addresses_of_others_are_answered_and_own_generations_dropped() {
        let watch = watch_with(
            vec![
                elements("BLOCK_h4", [192, 0, 2, 7]),
                Notification::Generation(10),
                elements("BLOCK_h4", [192, 0, 2, 8]),
                elements(GENERATION_SET, [0, 0, 0, 1]),
                Notification::Generation(11),
                Notification::Elements { table: "other".into(), set: "x_n4".into(), keys: vec![vec![10, 0, 0, 0]] },
                Notification::Generation(12),
            ],
            &[11],
        );
        let HandEdits::Touched(touched) = watch.take() else { panic!("single addresses are answered") };
        assert_eq!(touched, BTreeMap::from([("BLOCK".to_string(), BTreeSet::from(["192.0.2.7".to_string()]))]));
        assert_eq!(watch.take(), HandEdits::Touched(BTreeMap::new()), "taken once");
    }

    #[test]
    fn networks_rules_and_lost_notifications_mean_compare_whole() {
        let net = watch_with(vec![elements("BLOCK_n4", [10, 0, 0, 0]), Notification::Generation(3)], &[]);
        assert_eq!(net.take(), HandEdits::Unknown);
        let rule = watch_with(
            vec![Notification::Object { table: Some("portcullis".into()) }, Notification::Generation(3)],
            &[],
        );
        assert_eq!(rule.take(), HandEdits::Unknown);
        let own_rule = watch_with(
            vec![Notification::Object { table: Some("portcullis".into()) }, Notification::Generation(3)],
            &[3],
        );
        assert_eq!(own_rule.take(), HandEdits::Touched(BTreeMap::new()));
        let lost = watch_with(vec![], &[]);
        lost.lock().complete = false;
        assert_eq!(lost.take(), HandEdits::Unknown);
        assert_eq!(lost.take(), HandEdits::Touched(BTreeMap::new()), "complete again from the next take on");
    }
}
