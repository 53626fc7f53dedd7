//! A named background thread that runs a task at a fixed interval until its handle is dropped
//! (the auth poller, the WAL checkpointer).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// The running thread; dropping this stops it (waking it from its wait) and joins it.
pub struct Periodic {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Periodic {
    /// Runs `tick` every `every` on a thread named `name`, until the handle is dropped or `tick`
    /// returns `false`. Should the thread not start, the error says why.
    pub fn spawn(
        name: &str,
        every: Duration,
        mut tick: impl FnMut() -> bool + Send + 'static,
    ) -> std::io::Result<Periodic> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::park_timeout(every);
                    if flag.load(Ordering::Relaxed) || !tick() {
                        break;
                    }
                }
            })?;
        Ok(Periodic {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Periodic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn ticks_until_dropped_and_drop_does_not_wait_out_the_interval() {
        let ticks = Arc::new(AtomicUsize::new(0));
        let counted = ticks.clone();
        let p = Periodic::spawn("test-tick", Duration::from_millis(1), move || {
            counted.fetch_add(1, Ordering::Relaxed);
            true
        })
        .unwrap();
        let start = std::time::Instant::now();
        while ticks.load(Ordering::Relaxed) < 3 {
            assert!(start.elapsed() < Duration::from_secs(10), "never ticked");
            std::thread::yield_now();
        }
        drop(p);
        assert_eq!(
            Arc::strong_count(&ticks),
            1,
            "the thread ended and released its task on drop"
        );

        let slow = Periodic::spawn("test-slow", Duration::from_secs(3600), || true).unwrap();
        let start = std::time::Instant::now();
        drop(slow);
        assert!(start.elapsed() < Duration::from_secs(60), "woken to stop");
    }
}
