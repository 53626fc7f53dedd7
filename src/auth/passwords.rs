//! Passwords: argon2id (OWASP parameters, the crate's defaults) over Rocket.Chat's pre-hash, the
//! lowercase hex SHA-256 of the password, so plain and `{"digest": …}` logins verify alike.
//!
//! Verification is the one piece of work a client can ask for without a token that costs real
//! memory (19 MiB per argon2 run) and CPU (tens of milliseconds). It runs on a fixed number of
//! [`Verifier`] slots: each slot is a thread that owns one argon2 memory buffer and reuses it for
//! every verification, so a flood of logins costs at most `slots × 19 MiB`, however many arrive.
//! A login that finds no free slot within a short wait is told to come back (429) instead of
//! queueing without bound.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use argon2::password_hash::PasswordHasher;
use argon2::password_hash::phc::{Output, PasswordHash};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The largest argon2 memory cost (KiB) a stored hash may ask for. Ours use 19 MiB; a hash asking
/// for more than this (written by something else) fails to verify rather than make every slot
/// grow its buffer to whatever the hash says.
pub const MAX_M_COST_KIB: u32 = 64 * 1024;

/// How much nicer than the server the verification threads run (`nice` 0–19). Argon2 is pure
/// CPU: at the same priority two verifying threads take two of the cores the workers need to serve
/// getOne. At nice 10 the kernel gives them about a tenth of a contended core (all of an idle
/// one), so a login flood barely dents authenticated reads, and logins still progress.
const VERIFY_NICE: i32 = 10;

/// Lowercase hex SHA-256 of a plain password (what Rocket.Chat clients send as `digest`).
pub fn prehash(plain: &str) -> String {
    hex(&Sha256::digest(plain.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The PHC string to store for a plain password.
pub fn hash_password(plain: &str) -> Result<String, String> {
    Argon2::default()
        .hash_password(prehash(plain).as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| format!("password hashing: {e}"))
}

/// Argon2's working memory, kept between verifications (one per slot).
#[derive(Default)]
pub struct Memory {
    blocks: Vec<Block>,
    /// Where a verification slot counts its argon2 runs (none outside a [`Verifier`]).
    counted: Option<Arc<Verifications>>,
}

/// Argon2 runs by their parameters, counted by a [`Verifier`]'s slots (the metrics show them):
/// every login that reaches a slot costs exactly one run, with the same parameters whether the
/// user exists or not.
#[derive(Debug, Default)]
pub struct Verifications {
    /// `("m=19456,t=2,p=1", runs)`: one entry per parameter set seen, a handful at most.
    runs: Mutex<Vec<(String, u64)>>,
}

impl Verifications {
    fn count(&self, params: &Params) {
        let label = format!(
            "m={},t={},p={}",
            params.m_cost(),
            params.t_cost(),
            params.p_cost()
        );
        let mut runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        match runs.iter_mut().find(|(l, _)| *l == label) {
            Some((_, n)) => *n += 1,
            None => runs.push((label, 1)),
        }
    }

    /// The runs so far, by parameters.
    pub fn snapshot(&self) -> Vec<(String, u64)> {
        self.runs.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Memory {
    fn blocks(&mut self, n: usize) -> &mut [Block] {
        if self.blocks.len() < n {
            self.blocks.resize(n, Block::default());
        }
        &mut self.blocks[..n]
    }
}

/// A stored hash, parsed: what to run and what it must produce.
struct Stored {
    argon2: Argon2<'static>,
    block_count: usize,
    salt: Vec<u8>,
    expected: Vec<u8>,
}

impl Stored {
    fn parse(phc: &str) -> Result<Stored, String> {
        let hash = PasswordHash::new(phc).map_err(|e| format!("stored hash: {e}"))?;
        let algorithm = Algorithm::try_from(hash.algorithm.as_str())
            .map_err(|e| format!("stored hash: algorithm: {e}"))?;
        let version = match hash.version {
            Some(v) => Version::try_from(v).map_err(|e| format!("stored hash: version: {e}"))?,
            None => Version::default(),
        };
        let params = Params::try_from(&hash).map_err(|e| format!("stored hash: params: {e}"))?;
        if params.m_cost() > MAX_M_COST_KIB {
            return Err(format!(
                "stored hash: memory cost {} KiB is over the {MAX_M_COST_KIB} KiB limit",
                params.m_cost()
            ));
        }
        let (Some(salt), Some(expected)) = (hash.salt, hash.hash) else {
            return Err("stored hash: no salt or no hash".into());
        };
        Ok(Stored {
            block_count: params.block_count(),
            argon2: Argon2::new(algorithm, version, params),
            salt: salt.to_vec(),
            expected: expected.as_bytes().to_vec(),
        })
    }

    /// Whether `password` hashes to the expected output, compared in constant time.
    fn matches(&self, memory: &mut Memory, password: &[u8]) -> bool {
        let mut buf = [0u8; Output::MAX_LENGTH];
        let Some(out) = buf.get_mut(..self.expected.len()) else {
            return false;
        };
        let hashed = self.argon2.hash_password_into_with_memory(
            password,
            &self.salt,
            out,
            memory.blocks(self.block_count),
        );
        if let Some(counted) = &memory.counted {
            counted.count(self.argon2.params());
        }
        hashed.is_ok() && bool::from(out.ct_eq(&self.expected))
    }
}

/// What an unknown user (or a user without a usable hash) is verified against: the current
/// parameters with a fixed salt and an output nothing hashes to, so the work is the same as for a
/// real user and the answer is always no.
static DUMMY: LazyLock<Stored> = LazyLock::new(|| Stored {
    argon2: Argon2::default(),
    block_count: Params::default().block_count(),
    salt: b"inquiryd-dummy-salt".to_vec(),
    expected: vec![0; Params::DEFAULT_OUTPUT_LEN],
});

/// Whether `digest` (the hex pre-hash) matches the stored PHC string, using `memory` for argon2.
/// A missing or unusable stored hash still costs one argon2 verification (same parameters), so
/// the answer takes the same time.
pub fn verify_digest_in(memory: &mut Memory, digest: &str, stored: Option<&str>) -> bool {
    let digest = digest.to_ascii_lowercase();
    match stored.map(Stored::parse) {
        Some(Ok(stored)) => stored.matches(memory, digest.as_bytes()),
        failed => {
            if let Some(Err(e)) = failed {
                log::error!("login: {e}");
            }
            let _ = DUMMY.matches(memory, digest.as_bytes());
            false
        }
    }
}

type Job = Box<dyn FnOnce(&mut Memory) + Send>;

/// A fixed number of verification slots, each a thread owning its argon2 memory.
pub struct Verifier {
    permits: Arc<Semaphore>,
    jobs: SyncSender<Job>,
    wait: Duration,
    verifications: Arc<Verifications>,
}

/// A free slot, held until the job given to [`Slot::run`] has finished.
pub struct Slot {
    permit: OwnedSemaphorePermit,
    jobs: SyncSender<Job>,
}

impl Verifier {
    /// Starts `slots` verification threads. A login waits at most `wait` for one of them.
    pub fn start(slots: usize, wait: Duration) -> std::io::Result<Verifier> {
        let slots = slots.max(1);
        // Never more than `slots` jobs exist (one per permit), so the channel never fills.
        let (jobs, rx) = std::sync::mpsc::sync_channel::<Job>(slots);
        let rx = Arc::new(Mutex::new(rx));
        let verifications = Arc::new(Verifications::default());
        for i in 0..slots {
            let rx = rx.clone();
            let counted = verifications.clone();
            std::thread::Builder::new()
                .name(format!("login-verify-{i}"))
                .spawn(move || slot_thread(&rx, counted))?;
        }
        Ok(Verifier {
            permits: Arc::new(Semaphore::new(slots)),
            jobs,
            wait,
            verifications,
        })
    }

    /// The argon2 runs of this verifier's slots.
    pub fn verifications(&self) -> Arc<Verifications> {
        self.verifications.clone()
    }

    /// A free slot, waiting at most the configured time (first come, first served); `None` when
    /// every slot stayed busy.
    pub async fn acquire(&self) -> Option<Slot> {
        let permit = match self.permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => tokio::time::timeout(self.wait, self.permits.clone().acquire_owned())
                .await
                .ok()?
                .ok()?,
        };
        Some(Slot {
            permit,
            jobs: self.jobs.clone(),
        })
    }
}

impl Slot {
    /// Runs `f` on the slot's thread with its argon2 memory. The slot stays taken until `f`
    /// returns, even if the caller stops waiting (a client that hangs up frees no slot early).
    pub async fn run<T: Send + 'static>(
        self,
        f: impl FnOnce(&mut Memory) -> T + Send + 'static,
    ) -> Result<T, String> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let permit = self.permit;
        let job: Job = Box::new(move |memory| {
            let result = f(memory);
            drop(permit);
            let _ = tx.send(result);
        });
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err("verification queue full".into()),
            Err(TrySendError::Disconnected(_)) => return Err("verification threads gone".into()),
        }
        rx.await.map_err(|_| "verification failed".to_string())
    }
}

fn slot_thread(rx: &Mutex<Receiver<Job>>, counted: Arc<Verifications>) {
    lower_priority();
    let fresh = || Memory {
        blocks: Vec::new(),
        counted: Some(counted.clone()),
    };
    let mut memory = fresh();
    loop {
        let job = match rx.lock().unwrap_or_else(|e| e.into_inner()).recv() {
            Ok(job) => job,
            // The verifier is gone: the server stopped.
            Err(_) => return,
        };
        // A panicking job drops its reply (the caller answers 500) but must not lose the slot.
        if std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut memory))).is_err() {
            log::error!("login: password verification panicked");
            memory = fresh();
        }
    }
}

/// Lowers this thread's scheduling priority to [`VERIFY_NICE`] (Linux: `setpriority` on the thread
/// id affects only this thread).
fn lower_priority() {
    let tid = rustix::thread::gettid();
    if let Err(e) = rustix::process::setpriority_process(Some(tid), VERIFY_NICE) {
        log::debug!("login: cannot lower the verification thread's priority: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verify(digest: &str, stored: Option<&str>) -> bool {
        verify_digest_in(&mut Memory::default(), digest, stored)
    }

    #[test]
    fn plain_and_digest_verify() {
        let stored = hash_password("s3cret").unwrap();
        assert!(stored.starts_with("$argon2id$"));
        assert!(verify(&prehash("s3cret"), Some(&stored)));
        assert!(verify(&prehash("s3cret").to_uppercase(), Some(&stored)));
        assert!(!verify(&prehash("wrong"), Some(&stored)));
        assert!(!verify(&prehash("s3cret"), None));
        assert!(!verify(&prehash("s3cret"), Some("not a phc string")));
    }

    #[test]
    fn one_memory_serves_every_verification() {
        let stored = hash_password("s3cret").unwrap();
        let mut memory = Memory::default();
        for _ in 0..3 {
            assert!(verify_digest_in(
                &mut memory,
                &prehash("s3cret"),
                Some(&stored)
            ));
            assert!(!verify_digest_in(&mut memory, &prehash("x"), None));
        }
        assert_eq!(memory.blocks.len(), Params::default().block_count());
    }

    #[test]
    fn a_hash_asking_for_too_much_memory_is_refused_without_allocating_it() {
        // m = 4 GiB: verifying it would allocate 4 GiB per slot.
        let greedy = "$argon2id$v=19$m=4194304,t=2,p=1$c2FsdHNhbHRzYWx0$ZmFrZWhhc2hmYWtlaGFzaGZha2VoYXNoZmFrZWhhc2g";
        let mut memory = Memory::default();
        assert!(!verify_digest_in(&mut memory, &prehash("x"), Some(greedy)));
        assert_eq!(memory.blocks.len(), Params::default().block_count());
    }

    #[test]
    fn busy_slots_answer_none_after_the_wait() {
        actix_web::rt::System::new().block_on(async {
            let v = Verifier::start(1, Duration::from_millis(50)).unwrap();
            let held = v.acquire().await.expect("a free slot");
            assert!(v.acquire().await.is_none(), "the only slot is taken");
            drop(held);
            let slot = v.acquire().await.expect("freed");
            assert_eq!(slot.run(|_| 7).await, Ok(7));
            // The slot is back once the job has run.
            assert!(v.acquire().await.is_some());
        });
    }
}
