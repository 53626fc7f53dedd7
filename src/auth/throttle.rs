//! Failed-login throttling per username and per client address, within a sliding window.
//!
//! An attempt is counted *before* its password is verified: [`Throttle::reserve`] checks both
//! limits and records the attempt in one step under the lock, so however many attempts arrive at
//! once, exactly the limit get through; a success or a failure on our side hands the attempt back.
//!
//! Memory is bounded: each map holds at most [`MAX_KEYS`] keys, and a key holds at most its limit
//! of timestamps. IPv6 clients are counted per /64 (what one host or one customer usually gets), so
//! rotating through a subnet's addresses does not buy more guesses.
//!
//! When a map is full, keys whose attempts have all left the window go first; if that is not
//! enough, the keys with the fewest live failures (oldest last attempt first) are dropped, in a
//! batch of an eighth of the capacity so the scan is paid once per batch. Dropping a key forgets
//! its failures, so an attacker might try to flush a victim's count by failing with many other
//! names; but the victim under attack has many failures and goes last, and every key a flood adds
//! costs the flood one argon2 verification: with few verification slots, filling 50,000 keys takes
//! longer than the 300-second window on a small machine, and evicting a key with `n` failures
//! takes `n` failures on each of the keys kept instead. The per-username limit therefore holds in
//! the common case, and the per-address limit still slows the flood.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How many keys each map (usernames, addresses) tracks at most.
pub const MAX_KEYS: usize = 50_000;

/// Why an attempt must wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    /// Seconds until the oldest counted failure leaves the window (at least 1).
    pub retry_after: u64,
    /// Whether this is the first refusal since the key reached its limit: log that one at WARN,
    /// the rest of a flood at DEBUG, so a flood of throttled attempts does not flood the log.
    pub first: bool,
}

/// One counted attempt, to hand back with [`Throttle::refund`] or [`Throttle::succeeded`].
#[derive(Debug)]
pub struct Reservation {
    user: Option<String>,
    addr: Option<IpAddr>,
    at: Instant,
}

#[derive(Default)]
struct Entry {
    attempts: VecDeque<Instant>,
    /// A refusal for this key was logged at WARN since it last let an attempt through.
    warned: bool,
}

impl Entry {
    /// Drops attempts that left the window; the number left.
    fn live(&mut self, now: Instant, window: Duration) -> usize {
        while self
            .attempts
            .front()
            .is_some_and(|t| now.duration_since(*t) >= window)
        {
            self.attempts.pop_front();
        }
        self.attempts.len()
    }
}

/// Failures per key of one kind, at most `capacity` keys.
struct Counts<K> {
    map: HashMap<K, Entry>,
    limit: usize,
    capacity: usize,
}

impl<K: Hash + Eq + Clone> Counts<K> {
    fn new(limit: usize, capacity: usize) -> Self {
        Counts {
            map: HashMap::new(),
            limit,
            capacity: capacity.max(8),
        }
    }

    /// How long `key` must wait, when it is at its limit.
    fn blocked(&mut self, key: &K, now: Instant, window: Duration) -> Option<(Duration, bool)> {
        let entry = self.map.get_mut(key)?;
        if entry.live(now, window) < self.limit {
            return None;
        }
        let wait = entry
            .attempts
            .front()
            .map_or(window, |t| window.saturating_sub(now.duration_since(*t)));
        let first = !entry.warned;
        entry.warned = true;
        Some((wait, first))
    }

    fn record(&mut self, key: K, now: Instant, window: Duration) {
        if !self.map.contains_key(&key) && self.map.len() >= self.capacity {
            self.make_room(now, window);
        }
        let entry = self.map.entry(key).or_default();
        entry.attempts.push_back(now);
        entry.warned = false;
    }

    fn refund(&mut self, key: &K, at: Instant) {
        if let Some(entry) = self.map.get_mut(key) {
            if let Some(i) = entry.attempts.iter().rposition(|t| *t == at) {
                entry.attempts.remove(i);
            }
            if entry.attempts.is_empty() {
                self.map.remove(key);
            }
        }
    }

    /// Brings the map down to seven eighths of its capacity (see the module comment).
    fn make_room(&mut self, now: Instant, window: Duration) {
        self.map.retain(|_, e| e.live(now, window) > 0);
        let target = self.capacity - self.capacity / 8;
        if self.map.len() <= target {
            return;
        }
        let excess = self.map.len() - target;
        let mut ranked: Vec<(usize, Instant, &K)> = self
            .map
            .iter()
            .map(|(k, e)| {
                (
                    e.attempts.len(),
                    e.attempts.back().copied().unwrap_or(now),
                    k,
                )
            })
            .collect();
        ranked.select_nth_unstable_by_key(excess - 1, |(n, last, _)| (*n, *last));
        let victims: Vec<K> = ranked[..excess]
            .iter()
            .map(|(_, _, k)| (*k).clone())
            .collect();
        for k in &victims {
            self.map.remove(k);
        }
    }
}

struct State {
    by_user: Counts<String>,
    by_addr: Counts<IpAddr>,
}

/// Counts failures and says when a client must wait.
pub struct Throttle {
    window: Duration,
    state: Mutex<State>,
}

/// The key an address is counted under: IPv4 as is (also when mapped into IPv6), IPv6 by /64.
fn addr_key(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => addr,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

fn user_key(username: &str) -> String {
    username.to_lowercase()
}

impl Throttle {
    pub fn new(max_per_user: u32, max_per_addr: u32, window: Duration) -> Throttle {
        Throttle::with_capacity(max_per_user, max_per_addr, window, MAX_KEYS)
    }

    /// As [`Throttle::new`], tracking at most `capacity` keys per map.
    pub fn with_capacity(
        max_per_user: u32,
        max_per_addr: u32,
        window: Duration,
        capacity: usize,
    ) -> Throttle {
        Throttle {
            window,
            state: Mutex::new(State {
                by_user: Counts::new(max_per_user as usize, capacity),
                by_addr: Counts::new(max_per_addr as usize, capacity),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn blocked(
        &self,
        s: &mut State,
        user: Option<&String>,
        addr: Option<IpAddr>,
        now: Instant,
    ) -> Result<(), Throttled> {
        let by_user = user.and_then(|u| s.by_user.blocked(u, now, self.window));
        let by_addr = addr.and_then(|a| s.by_addr.blocked(&a, now, self.window));
        match (by_user, by_addr) {
            (None, None) => Ok(()),
            (u, a) => {
                let wait = u.map(|x| x.0).max(a.map(|x| x.0)).unwrap_or_default();
                let first = u.is_some_and(|x| x.1) || a.is_some_and(|x| x.1);
                Err(Throttled {
                    retry_after: wait.as_secs().max(1),
                    first,
                })
            }
        }
    }

    /// Whether an attempt for this username (if any) from this address would be refused now,
    /// without counting it: lets a throttled client be answered before it waits for anything.
    pub fn check(&self, username: Option<&str>, addr: Option<IpAddr>) -> Result<(), Throttled> {
        let user = username.map(user_key);
        let addr = addr.map(addr_key);
        let mut s = self.lock();
        self.blocked(&mut s, user.as_ref(), addr, Instant::now())
    }

    /// Counts one attempt against the username (if any; case-insensitive) and the address, unless
    /// either is at its limit. Check and count are one step, so concurrent attempts cannot both
    /// take the last one left.
    pub fn reserve(
        &self,
        username: Option<&str>,
        addr: Option<IpAddr>,
    ) -> Result<Reservation, Throttled> {
        let user = username.map(user_key);
        let addr = addr.map(addr_key);
        let now = Instant::now();
        let mut s = self.lock();
        self.blocked(&mut s, user.as_ref(), addr, now)?;
        if let Some(u) = &user {
            s.by_user.record(u.clone(), now, self.window);
        }
        if let Some(a) = addr {
            s.by_addr.record(a, now, self.window);
        }
        Ok(Reservation {
            user,
            addr,
            at: now,
        })
    }

    /// Hands back an attempt that was not a failure of the client's (our error).
    pub fn refund(&self, r: Reservation) {
        let mut s = self.lock();
        if let Some(u) = &r.user {
            s.by_user.refund(u, r.at);
        }
        if let Some(a) = &r.addr {
            s.by_addr.refund(a, r.at);
        }
    }

    /// A successful login: the username's failures are forgotten, and the address gets its
    /// attempt back.
    pub fn succeeded(&self, r: Reservation) {
        let mut s = self.lock();
        if let Some(u) = &r.user {
            s.by_user.map.remove(u);
        }
        if let Some(a) = &r.addr {
            s.by_addr.refund(a, r.at);
        }
    }

    /// How many keys are tracked (usernames, addresses).
    pub fn tracked(&self) -> (usize, usize) {
        let s = self.lock();
        (s.by_user.map.len(), s.by_addr.map.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCAL: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));

    #[test]
    fn blocks_after_max_and_forgets_after_window() {
        let t = Throttle::new(2, 100, Duration::from_millis(200));
        assert!(t.check(Some("a"), None).is_ok());
        t.reserve(Some("a"), None).unwrap();
        t.reserve(Some("A"), None).unwrap();
        let refused = t.check(Some("a"), None).unwrap_err();
        assert!(refused.first && refused.retry_after >= 1);
        // Only the first refusal asks to be logged.
        assert!(!t.reserve(Some("a"), None).unwrap_err().first);
        assert!(t.check(Some("b"), None).is_ok());
        std::thread::sleep(Duration::from_millis(250));
        assert!(t.check(Some("a"), None).is_ok());
    }

    #[test]
    fn concurrent_attempts_get_exactly_the_limit() {
        let t = Throttle::new(1000, 50, Duration::from_secs(60));
        let granted = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for i in 0..16 {
                let (t, granted) = (&t, &granted);
                s.spawn(move || {
                    for j in 0..20 {
                        if t.reserve(Some(&format!("u{i}-{j}")), LOCAL).is_ok() {
                            granted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(granted.into_inner(), 50);
    }

    #[test]
    fn refunds_and_successes_give_attempts_back() {
        let t = Throttle::new(2, 2, Duration::from_secs(60));
        let r = t.reserve(Some("a"), LOCAL).unwrap();
        t.refund(r);
        assert_eq!(t.tracked(), (0, 0), "a refund leaves nothing behind");
        t.reserve(Some("a"), LOCAL).unwrap();
        let r = t.reserve(Some("a"), LOCAL).unwrap();
        assert!(t.check(Some("a"), None).is_err());
        t.succeeded(r);
        // The username's failures are forgotten; the address keeps the one failure.
        assert!(t.check(Some("a"), None).is_ok());
        t.reserve(Some("b"), LOCAL).unwrap();
        assert!(t.check(Some("c"), LOCAL).is_err());
    }

    #[test]
    fn ipv6_addresses_count_per_64() {
        let t = Throttle::new(100, 2, Duration::from_secs(60));
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        t.reserve(None, Some(a)).unwrap();
        t.reserve(None, Some(b)).unwrap();
        assert!(t.check(None, Some(a)).is_err());
        assert!(t.check(None, Some(other)).is_ok());
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        t.reserve(None, Some(mapped)).unwrap();
        t.reserve(None, LOCAL).unwrap();
        assert!(t.check(None, LOCAL).is_err(), "v4-mapped counts as IPv4");
    }

    #[test]
    fn the_maps_stay_bounded_and_keep_the_most_failed_keys() {
        let cap = 1000;
        let t = Throttle::with_capacity(5, 1_000_000, Duration::from_secs(300), cap);
        for _ in 0..4 {
            t.reserve(Some("victim"), None).unwrap();
        }
        for i in 0..20 * cap {
            let addr = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i as u32));
            t.reserve(Some(&format!("flood-{i}")), Some(addr)).unwrap();
            let (users, addrs) = t.tracked();
            assert!(
                users <= cap && addrs <= cap,
                "{users} users, {addrs} addresses"
            );
        }
        // The victim's four failures survived the flood of one-failure names.
        t.reserve(Some("victim"), None).unwrap();
        assert!(t.check(Some("victim"), None).is_err());
    }
}
