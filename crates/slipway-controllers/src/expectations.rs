//! Expectations, as Kubernetes' ReplicaSet controller keeps them: the creates and deletes a
//! controller made that its cache may not show yet.
//!
//! The Cluster controller reads a cluster's Machines from an informer's cache, not from the
//! server (a list per reconcile would make the fleet's cost quadratic). A cache can lag its
//! own writes: right after creating a Machine, a reconcile that read a cache without it would
//! create it again. So every create and delete is recorded here, and a reconcile plans only
//! once the cache shows them all (or after a timeout, in case an object it waits for was
//! created and deleted again before the cache ever saw it).

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// What the cache shows of one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    Absent,
    Present,
    /// Present with a deletionTimestamp.
    Deleting,
}

#[derive(Debug)]
struct Pending {
    creates: HashSet<String>,
    deletes: HashSet<String>,
    since: Instant,
}

/// The writes not yet seen, per owner (a Cluster's uid).
#[derive(Debug)]
pub struct Expectations {
    pending: Mutex<HashMap<String, Pending>>,
    timeout: Duration,
}

impl Expectations {
    /// Expectations older than `timeout` are given up on.
    pub fn new(timeout: Duration) -> Self {
        Self {
            pending: Mutex::new(HashMap::new()),
            timeout,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Pending>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn entry<'a>(map: &'a mut HashMap<String, Pending>, owner: &str) -> &'a mut Pending {
        map.entry(owner.to_string()).or_insert_with(|| Pending {
            creates: HashSet::new(),
            deletes: HashSet::new(),
            since: Instant::now(),
        })
    }

    /// `owner` created `name`.
    pub fn created(&self, owner: &str, name: &str) {
        let mut map = self.lock();
        let p = Self::entry(&mut map, owner);
        p.creates.insert(name.to_string());
        p.since = Instant::now();
    }

    /// `owner` asked for `name` to be deleted.
    pub fn deleted(&self, owner: &str, name: &str) {
        let mut map = self.lock();
        let p = Self::entry(&mut map, owner);
        p.deletes.insert(name.to_string());
        p.since = Instant::now();
    }

    /// True when the cache (`seen`) shows every write `owner` made (those are then
    /// forgotten), or when they are older than the timeout.
    pub fn satisfied(&self, owner: &str, seen: impl Fn(&str) -> Seen) -> bool {
        let mut map = self.lock();
        let Some(p) = map.get_mut(owner) else {
            return true;
        };
        p.creates.retain(|name| seen(name) == Seen::Absent);
        p.deletes.retain(|name| seen(name) == Seen::Present);
        if (p.creates.is_empty() && p.deletes.is_empty()) || p.since.elapsed() > self.timeout {
            map.remove(owner);
            return true;
        }
        false
    }

    /// Forget everything about `owner` (it is gone).
    pub fn forget(&self, owner: &str) {
        self.lock().remove(owner);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_for_the_cache_to_show_every_create_and_delete() {
        let e = Expectations::new(Duration::from_secs(60));
        assert!(e.satisfied("c", |_| Seen::Absent), "nothing expected");
        e.created("c", "m1");
        e.deleted("c", "m0");
        let view = |m1: Seen, m0: Seen| move |n: &str| if n == "m1" { m1 } else { m0 };
        assert!(!e.satisfied("c", view(Seen::Absent, Seen::Present)));
        // The create shows; the delete does not yet.
        assert!(!e.satisfied("c", view(Seen::Present, Seen::Present)));
        // Seen once is enough: the create is not expected again.
        assert!(e.satisfied("c", view(Seen::Absent, Seen::Deleting)));
        assert!(e.satisfied("c", view(Seen::Absent, Seen::Present)));
        // Other owners are independent.
        e.created("d", "x");
        assert!(e.satisfied("c", |_| Seen::Absent));
        assert!(!e.satisfied("d", |_| Seen::Absent));
        e.forget("d");
        assert!(e.satisfied("d", |_| Seen::Absent));
    }

    #[test]
    fn gives_up_after_the_timeout() {
        let e = Expectations::new(Duration::ZERO);
        e.created("c", "never-seen");
        std::thread::sleep(Duration::from_millis(2));
        assert!(e.satisfied("c", |_| Seen::Absent));
    }
}
