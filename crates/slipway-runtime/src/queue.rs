//! The work queue: client-go's `workqueue` semantics on tokio.
//!
//! - A key added while queued is queued once (de-duplication).
//! - A key handed out by [`WorkQueue::get`] is *processing* until [`WorkQueue::done`]; adding
//!   it meanwhile marks it dirty, and `done` queues it again once: at most one worker holds a
//!   key at a time, and no change is lost.
//! - [`WorkQueue::add_after`] queues later (the earliest pending deadline wins);
//!   [`WorkQueue::add_rate_limited`] queues after a per-key exponential backoff
//!   (`base * 2^failures`, capped) that [`WorkQueue::forget`] resets.
//! - [`WorkQueue::shut_down`] stops handing out keys: `get` returns `None`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// Per-key exponential backoff: `base * 2^failures`, at most `cap`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
}

impl Default for Backoff {
    /// 5 ms doubling up to 5 minutes, as client-go's default controller rate limiter.
    fn default() -> Self {
        Self {
            base: Duration::from_millis(5),
            cap: Duration::from_secs(300),
        }
    }
}

impl Backoff {
    /// The delay after `failures` previous failures (0 for the first retry gives `base`).
    pub fn delay(&self, failures: u32) -> Duration {
        let factor = 2u32.checked_pow(failures.min(31)).unwrap_or(u32::MAX);
        self.base
            .checked_mul(factor)
            .unwrap_or(self.cap)
            .min(self.cap)
    }
}

struct State<T> {
    queue: VecDeque<T>,
    /// Keys in `queue`.
    queued: HashSet<T>,
    /// Keys handed out and not yet done.
    processing: HashSet<T>,
    /// Keys added while processing: queued again by `done`.
    dirty: HashSet<T>,
    /// Earliest pending delayed add per key.
    waiting: HashMap<T, Instant>,
    failures: HashMap<T, u32>,
    /// When each queued key was (first) added, for queue latency.
    added_at: HashMap<T, Instant>,
    shut_down: bool,
}

/// A de-duplicating work queue of keys with delayed and rate-limited adds. Cheap to clone
/// (a handle).
pub struct WorkQueue<T> {
    state: Arc<Mutex<State<T>>>,
    notify: Arc<Notify>,
    backoff: Backoff,
}

impl<T> Clone for WorkQueue<T> {
    fn clone(&self) -> Self {
        Self {
            state: Arc::clone(&self.state),
            notify: Arc::clone(&self.notify),
            backoff: self.backoff,
        }
    }
}

impl<T> std::fmt::Debug for WorkQueue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkQueue")
            .field("backoff", &self.backoff)
            .finish_non_exhaustive()
    }
}

impl<T: Hash + Eq + Clone + Send + 'static> WorkQueue<T> {
    /// An empty queue with this backoff for [`WorkQueue::add_rate_limited`].
    pub fn new(backoff: Backoff) -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                queue: VecDeque::new(),
                queued: HashSet::new(),
                processing: HashSet::new(),
                dirty: HashSet::new(),
                waiting: HashMap::new(),
                failures: HashMap::new(),
                added_at: HashMap::new(),
                shut_down: false,
            })),
            notify: Arc::new(Notify::new()),
            backoff,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queue `key` now (no-op if already queued; re-run after `done` if processing).
    pub fn add(&self, key: T) {
        let mut s = self.lock();
        if s.shut_down {
            return;
        }
        if s.processing.contains(&key) {
            s.dirty.insert(key);
            return;
        }
        if s.queued.insert(key.clone()) {
            s.added_at.insert(key.clone(), Instant::now());
            s.queue.push_back(key);
            drop(s);
            self.notify.notify_one();
        }
    }

    /// Queue `key` after `delay`. If an earlier delayed add is pending for it, that one wins.
    pub fn add_after(&self, key: T, delay: Duration) {
        if delay.is_zero() {
            self.add(key);
            return;
        }
        let deadline = Instant::now() + delay;
        {
            let mut s = self.lock();
            if s.shut_down {
                return;
            }
            match s.waiting.get(&key) {
                Some(existing) if *existing <= deadline => return,
                _ => {
                    s.waiting.insert(key.clone(), deadline);
                }
            }
        }
        let queue = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(deadline).await;
            let due = {
                let mut s = queue.lock();
                // Only the add that owns the current deadline fires.
                if s.waiting.get(&key) == Some(&deadline) {
                    s.waiting.remove(&key);
                    true
                } else {
                    false
                }
            };
            if due {
                queue.add(key);
            }
        });
    }

    /// Replace whatever delayed add is pending for `key` with one after `delay`, or with none:
    /// unlike [`WorkQueue::add_after`], a later deadline wins over an earlier one. Adds that
    /// are not delayed (queued, or due again after processing) are left alone.
    pub fn reschedule(&self, key: T, delay: Option<Duration>) {
        // A pending add fires only while it owns the key's deadline: dropping the deadline
        // cancels it.
        self.lock().waiting.remove(&key);
        if let Some(delay) = delay {
            self.add_after(key, delay);
        }
    }

    /// Queue `key` after its backoff, and count a failure for it.
    pub fn add_rate_limited(&self, key: T) -> Duration {
        let delay = {
            let mut s = self.lock();
            let failures = s.failures.entry(key.clone()).or_insert(0);
            let delay = self.backoff.delay(*failures);
            *failures = failures.saturating_add(1);
            delay
        };
        self.add_after(key, delay);
        delay
    }

    /// Reset `key`'s failure count (after a success).
    pub fn forget(&self, key: &T) {
        self.lock().failures.remove(key);
    }

    /// How many times `key` failed since it was last forgotten.
    pub fn failures(&self, key: &T) -> u32 {
        self.lock().failures.get(key).copied().unwrap_or(0)
    }

    /// The next key and how long it waited in the queue, once one is ready; `None` once the
    /// queue is shut down. The caller must call [`WorkQueue::done`] with it.
    pub async fn get(&self) -> Option<(T, Duration)> {
        loop {
            let notified = self.notify.notified();
            {
                let mut s = self.lock();
                if s.shut_down {
                    return None;
                }
                if let Some(key) = s.queue.pop_front() {
                    s.queued.remove(&key);
                    let waited = s
                        .added_at
                        .remove(&key)
                        .map(|t| t.elapsed())
                        .unwrap_or_default();
                    s.processing.insert(key.clone());
                    let more = !s.queue.is_empty();
                    drop(s);
                    if more {
                        // Wake another worker for the rest.
                        self.notify.notify_one();
                    }
                    return Some((key, waited));
                }
            }
            notified.await;
        }
    }

    /// Finish processing `key`: if it was added meanwhile, queue it again now.
    pub fn done(&self, key: &T) {
        let requeue = {
            let mut s = self.lock();
            s.processing.remove(key);
            s.dirty.remove(key)
        };
        if requeue {
            self.add(key.clone());
        }
    }

    /// Keys ready to be handed out.
    pub fn len(&self) -> usize {
        self.lock().queue.len()
    }

    /// True when no key is ready.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keys currently handed out.
    pub fn in_flight(&self) -> usize {
        self.lock().processing.len()
    }

    /// Stop handing out keys; pending and later adds are dropped.
    pub fn shut_down(&self) {
        self.lock().shut_down = true;
        self.notify.notify_waiters();
    }

    /// True after [`WorkQueue::shut_down`].
    pub fn is_shut_down(&self) -> bool {
        self.lock().shut_down
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue() -> WorkQueue<&'static str> {
        WorkQueue::new(Backoff {
            base: Duration::from_millis(10),
            cap: Duration::from_millis(100),
        })
    }

    async fn next(q: &WorkQueue<&'static str>) -> &'static str {
        tokio::time::timeout(Duration::from_secs(5), q.get())
            .await
            .expect("a key in time")
            .expect("queue open")
            .0
    }

    #[test]
    fn backoff_table() {
        let b = Backoff {
            base: Duration::from_millis(10),
            cap: Duration::from_millis(100),
        };
        let got: Vec<u128> = (0..6).map(|n| b.delay(n).as_millis()).collect();
        assert_eq!(got, [10, 20, 40, 80, 100, 100]);
        assert_eq!(b.delay(u32::MAX), Duration::from_millis(100));
    }

    #[tokio::test(start_paused = true)]
    async fn deduplicates_queued_keys() {
        let q = queue();
        q.add("a");
        q.add("b");
        q.add("a");
        q.add("a");
        assert_eq!(q.len(), 2);
        assert_eq!(next(&q).await, "a");
        assert_eq!(next(&q).await, "b");
        assert!(q.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn one_in_flight_per_key_and_rerun_once_after() {
        let q = queue();
        q.add("a");
        assert_eq!(next(&q).await, "a");
        // Added (twice) while processing: not handed out to another worker...
        q.add("a");
        q.add("a");
        assert!(q.is_empty());
        assert!(
            tokio::time::timeout(Duration::from_secs(1), q.get())
                .await
                .is_err(),
            "a key in flight was handed out twice"
        );
        // ...but re-run exactly once after done.
        q.done(&"a");
        assert_eq!(q.len(), 1);
        assert_eq!(next(&q).await, "a");
        q.done(&"a");
        assert!(q.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn add_after_waits_and_earliest_wins() {
        let q = queue();
        let start = Instant::now();
        q.add_after("a", Duration::from_secs(10));
        q.add_after("a", Duration::from_secs(3));
        q.add_after("a", Duration::from_secs(7));
        assert_eq!(next(&q).await, "a");
        assert_eq!(start.elapsed(), Duration::from_secs(3));
        q.done(&"a");
        // The superseded deadlines do not fire again.
        tokio::time::sleep(Duration::from_secs(20)).await;
        assert!(q.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn reschedule_replaces_the_pending_deadline_later_or_none() {
        let q = queue();
        let start = Instant::now();
        q.add_after("a", Duration::from_secs(3));
        q.reschedule("a", Some(Duration::from_secs(10)));
        tokio::time::sleep(Duration::from_secs(9)).await;
        assert!(q.is_empty(), "the replaced deadline fired");
        assert_eq!(next(&q).await, "a");
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(10),
            "the later deadline won"
        );
        q.done(&"a");
        // None cancels what is pending; a queued key stays queued.
        q.add_after("a", Duration::from_secs(3));
        q.add("b");
        q.reschedule("a", None);
        q.reschedule("b", None);
        assert_eq!(next(&q).await, "b");
        q.done(&"b");
        tokio::time::sleep(Duration::from_secs(20)).await;
        assert!(q.is_empty(), "a cancelled deadline fired");
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_grows_and_resets_on_forget() {
        let q = queue();
        let mut delays = Vec::new();
        for _ in 0..6 {
            let start = Instant::now();
            q.add_rate_limited("a");
            assert_eq!(next(&q).await, "a");
            delays.push(start.elapsed().as_millis());
            q.done(&"a");
        }
        assert_eq!(delays, [10, 20, 40, 80, 100, 100]);
        assert_eq!(q.failures(&"a"), 6);
        q.forget(&"a");
        let start = Instant::now();
        q.add_rate_limited("a");
        assert_eq!(next(&q).await, "a");
        assert_eq!(start.elapsed().as_millis(), 10);
    }

    #[tokio::test(start_paused = true)]
    async fn shut_down_wakes_getters() {
        let q = queue();
        let waiter = {
            let q = q.clone();
            tokio::spawn(async move { q.get().await })
        };
        tokio::task::yield_now().await;
        q.shut_down();
        assert!(waiter.await.expect("join").is_none());
        q.add("a");
        assert!(q.get().await.is_none());
    }
}
