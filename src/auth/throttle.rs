//! Failed-login throttling per username and per client address, within a sliding window.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Past this many tracked keys, stale ones are pruned on the next failure.
const PRUNE_AT: usize = 10_000;

#[derive(Default)]
struct Failures {
    by_user: HashMap<String, VecDeque<Instant>>,
    by_addr: HashMap<IpAddr, VecDeque<Instant>>,
}

/// Counts failures and says when a client must wait.
pub struct Throttle {
    max_per_user: usize,
    max_per_addr: usize,
    window: Duration,
    state: Mutex<Failures>,
}

fn live(q: &mut VecDeque<Instant>, now: Instant, window: Duration) -> usize {
    while q.front().is_some_and(|t| now.duration_since(*t) >= window) {
        q.pop_front();
    }
    q.len()
}

impl Throttle {
    pub fn new(max_per_user: u32, max_per_addr: u32, window: Duration) -> Throttle {
        Throttle {
            max_per_user: max_per_user as usize,
            max_per_addr: max_per_addr as usize,
            window,
            state: Mutex::new(Failures::default()),
        }
    }

    /// `Some(seconds to wait)` when this username or address has used up its failures.
    pub fn check(&self, username: &str, addr: Option<IpAddr>) -> Option<u64> {
        let now = Instant::now();
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let window = self.window;
        let mut wait = None;
        if let Some(q) = s.by_user.get_mut(&username.to_lowercase())
            && live(q, now, window) >= self.max_per_user
        {
            wait = q
                .front()
                .map(|t| window.saturating_sub(now.duration_since(*t)));
        }
        if let Some(q) = addr.and_then(|a| s.by_addr.get_mut(&a))
            && live(q, now, window) >= self.max_per_addr
        {
            let w = q
                .front()
                .map(|t| window.saturating_sub(now.duration_since(*t)));
            wait = wait.max(w);
        }
        wait.map(|d| d.as_secs().max(1))
    }

    /// Records one failed attempt.
    pub fn failed(&self, username: &str, addr: Option<IpAddr>) {
        let now = Instant::now();
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.by_user.len() > PRUNE_AT || s.by_addr.len() > PRUNE_AT {
            let window = self.window;
            s.by_user.retain(|_, q| live(q, now, window) > 0);
            s.by_addr.retain(|_, q| live(q, now, window) > 0);
        }
        s.by_user
            .entry(username.to_lowercase())
            .or_default()
            .push_back(now);
        if let Some(a) = addr {
            s.by_addr.entry(a).or_default().push_back(now);
        }
    }

    /// Forgets a username's failures after a successful login.
    pub fn succeeded(&self, username: &str) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.by_user.remove(&username.to_lowercase());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_max_and_forgets_after_window() {
        let t = Throttle::new(2, 100, Duration::from_millis(200));
        assert!(t.check("a", None).is_none());
        t.failed("a", None);
        t.failed("A", None);
        assert!(t.check("a", None).is_some());
        assert!(t.check("b", None).is_none());
        std::thread::sleep(Duration::from_millis(250));
        assert!(t.check("a", None).is_none());
    }
}
