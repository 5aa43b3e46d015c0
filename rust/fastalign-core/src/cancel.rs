//! Cooperative cancellation of long calls.
//!
//! Whoever runs a call may give it a [`Token`] and cancel the token while the call runs; the
//! call's long loops check it at natural points (a chunk of documents, a bootstrap round, a
//! local-search move) and return [`Error::Interrupted`]. A call whose token is never cancelled
//! gives the same bits as without a token.
//!
//! A token may also carry a *poll*: the runner's own look for a reason to stop (the binding's
//! looks at Python's signal handlers, which only the thread that made the call may run).
//! [`Token::run_polled`] makes the calling thread the poller: its checks poll when
//! [`POLL_EVERY`] has passed since the last poll, and [`offload`] moves a parallel section to
//! rayon's pool while the calling thread, instead of blocking in rayon, waits and polls. A
//! poll that finds a reason cancels the token. Other threads only read the flag: one relaxed
//! atomic load.
//!
//! The token travels with the thread that runs the call: [`Token::scope`] makes it that
//! thread's current token and [`Token::current`] reads it. A routine reads it once, before its
//! parallel sections, and moves that copy into their closures (rayon's worker threads do not
//! see the calling thread's current token); [`offload`] and [`crate::sys::with_threads`] carry
//! it to the threads they run work on. Without a token (Rust callers, `cargo test`) nothing is
//! ever cancelled and nothing is offloaded.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use crate::{Error, Result};

/// How often the polling thread polls: its checks poll once this has passed since the last
/// poll, and [`offload`] polls this often while it waits.
pub const POLL_EVERY: Duration = Duration::from_millis(50);

/// How long [`offload`] first waits awake for the work (yielding its core): a short section's
/// result comes back within it, without a sleep and a wake-up.
const SPIN: Duration = Duration::from_micros(50);

/// A poll: `true` when the call should stop.
type Poll = dyn Fn() -> bool + Send + Sync;

struct Inner {
    flag: AtomicBool,
    poll: Option<Box<Poll>>,
}

/// A cancellation flag shared by a call and whoever runs it, with the runner's poll; the
/// default token is never cancelled.
#[derive(Clone, Default)]
pub struct Token(Option<Arc<Inner>>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("cancelled", &self.is_cancelled())
            .field("polled", &self.0.as_ref().is_some_and(|i| i.poll.is_some()))
            .finish()
    }
}

thread_local! {
    static CURRENT: RefCell<Token> = RefCell::new(Token::default());
    /// On the thread that polls its current token: when it last polled.
    static LAST_POLL: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Puts back the thread's previous token (and polling state) when a scope ends, also when it
/// unwinds.
struct Restore(Option<(Token, Option<Instant>)>);

impl Drop for Restore {
    fn drop(&mut self) {
        if let Some((token, last)) = self.0.take() {
            CURRENT.with(|c| *c.borrow_mut() = token);
            LAST_POLL.with(|p| p.set(last));
        }
    }
}

impl Token {
    /// A token that can be cancelled.
    pub fn new() -> Self {
        Token(Some(Arc::new(Inner {
            flag: AtomicBool::new(false),
            poll: None,
        })))
    }

    /// A token that can be cancelled, and that polls `poll` on the thread that runs the call
    /// with [`Token::run_polled`] (never on another thread): `poll` returning `true` cancels it.
    pub fn with_poll(poll: impl Fn() -> bool + Send + Sync + 'static) -> Self {
        Token(Some(Arc::new(Inner {
            flag: AtomicBool::new(false),
            poll: Some(Box::new(poll)),
        })))
    }

    /// Asks every holder of this token (and of its clones) to stop.
    pub fn cancel(&self) {
        if let Some(inner) = &self.0 {
            inner.flag.store(true, Ordering::Relaxed);
        }
    }

    /// Whether the token was cancelled (the flag only: the check of parallel closures).
    #[inline]
    pub fn is_cancelled(&self) -> bool {
        self.0
            .as_ref()
            .is_some_and(|i| i.flag.load(Ordering::Relaxed))
    }

    /// `Err(Error::Interrupted)` once the token is cancelled; on the polling thread, first a
    /// poll when one is due.
    #[inline]
    pub fn check(&self) -> Result<()> {
        if !self.is_cancelled()
            && LAST_POLL
                .with(Cell::get)
                .is_some_and(|t| t.elapsed() >= POLL_EVERY)
        {
            self.poll_now();
        }
        if self.is_cancelled() {
            Err(Error::Interrupted)
        } else {
            Ok(())
        }
    }

    /// Polls (when the token has a poll) and cancels the token when the poll says so.
    fn poll_now(&self) {
        LAST_POLL.with(|p| p.set(Some(Instant::now())));
        if let Some(poll) = self.0.as_ref().and_then(|i| i.poll.as_ref()) {
            if poll() {
                self.cancel();
            }
        }
    }

    /// Whether this thread polls `self` (it runs the call under [`Token::run_polled`]).
    fn polled_here(&self) -> bool {
        self.0.as_ref().is_some_and(|i| i.poll.is_some()) && LAST_POLL.with(Cell::get).is_some()
    }

    /// The current token of this thread (the default token outside any scope).
    pub fn current() -> Token {
        CURRENT.with(|c| c.borrow().clone())
    }

    /// Runs `work` with this token as the thread's current token (not polled here), then puts
    /// the previous one back.
    pub fn scope<T>(&self, work: impl FnOnce() -> T) -> T {
        self.enter(false, work)
    }

    /// Runs `work` with this token as the thread's current token, this thread polling it (see
    /// [`Token::with_poll`]), then puts the previous one back.
    pub fn run_polled<T>(&self, work: impl FnOnce() -> T) -> T {
        self.enter(true, work)
    }

    fn enter<T>(&self, polled: bool, work: impl FnOnce() -> T) -> T {
        let previous = CURRENT.with(|c| std::mem::replace(&mut *c.borrow_mut(), self.clone()));
        let last = LAST_POLL.with(|p| p.replace(polled.then(Instant::now)));
        let _restore = Restore(Some((previous, last)));
        work()
    }
}

/// Runs a parallel section of the current call. On the thread that polls the call's token,
/// and when `parallel` (the section would go to the pool anyway: without this, the thread
/// would block in rayon until the section ends), the section runs on rayon's pool (`pool`, or
/// the global one) while this thread waits and polls every [`POLL_EVERY`]; anywhere else it
/// runs here, as `pool.install` or a plain call would. The result is the section's either way.
pub fn offload<T: Send>(
    pool: Option<&rayon::ThreadPool>,
    parallel: bool,
    work: impl FnOnce() -> T + Send,
) -> T {
    let token = Token::current();
    if !(parallel && token.polled_here()) {
        return match pool {
            Some(pool) => {
                let token = token.clone();
                pool.install(move || token.scope(work))
            }
            None => work(),
        };
    }
    let out = match pool {
        Some(pool) => pool.in_place_scope(|s| spawn_and_wait(s, &token, work)),
        None => rayon::in_place_scope(|s| spawn_and_wait(s, &token, work)),
    };
    // a section that panicked has no result: its scope re-raised the panic above
    match out {
        Some(value) => value,
        None => unreachable!("an offloaded section ended without a result or a panic"),
    }
}

/// Spawns `work` on the scope's pool under `token` and waits for its result, polling `token`;
/// `None` when it ended without one (it panicked).
fn spawn_and_wait<'scope, T: Send + 'scope>(
    s: &rayon::Scope<'scope>,
    token: &Token,
    work: impl FnOnce() -> T + Send + 'scope,
) -> Option<T> {
    let (tx, rx) = mpsc::sync_channel::<T>(1);
    let worker_token = token.clone();
    s.spawn(move |_| {
        let _ = tx.send(worker_token.scope(work));
    });
    let start = Instant::now();
    while start.elapsed() < SPIN {
        match rx.try_recv() {
            Ok(value) => return Some(value),
            Err(mpsc::TryRecvError::Empty) => std::thread::yield_now(),
            Err(mpsc::TryRecvError::Disconnected) => return None,
        }
    }
    loop {
        match rx.recv_timeout(POLL_EVERY) {
            Ok(value) => return Some(value),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if !token.is_cancelled() {
                    token.poll_now();
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => return None,
        }
    }
}

/// Test helpers: a call cancelled from another thread while it runs.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// Runs `work` under a fresh token that another thread cancels after `delay`; the result
    /// and how long after the cancellation `work` returned.
    pub(crate) fn cancel_after<T>(delay: Duration, work: impl FnOnce() -> T) -> (T, Duration) {
        let token = Token::new();
        let canceller = token.clone();
        let start = Instant::now();
        let timer = std::thread::spawn(move || {
            std::thread::sleep(delay);
            canceller.cancel();
        });
        let out = token.scope(work);
        let late = start.elapsed().saturating_sub(delay);
        let _ = timer.join();
        (out, late)
    }

    /// Runs `work` as the binding does on Python's main thread: polled here, the poll saying
    /// "stop" once `delay` has passed; the result, how long after that `work` returned, and
    /// how many polls ran.
    pub(crate) fn polled_stop_after<T>(
        delay: Duration,
        work: impl FnOnce() -> T,
    ) -> (T, Duration, usize) {
        use std::sync::atomic::AtomicUsize;
        let start = Instant::now();
        let polls = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&polls);
        let token = Token::with_poll(move || {
            counted.fetch_add(1, Ordering::Relaxed);
            start.elapsed() >= delay
        });
        let out = token.run_polled(work);
        let late = start.elapsed().saturating_sub(delay);
        (out, late, polls.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::testing::polled_stop_after;
    use super::*;

    #[test]
    fn scopes_nest_and_restore() {
        assert!(!Token::current().is_cancelled());
        assert_eq!(Token::default().check(), Ok(()));
        let outer = Token::new();
        let inner = Token::new();
        inner.cancel();
        outer.scope(|| {
            assert_eq!(Token::current().check(), Ok(()));
            inner.scope(|| assert_eq!(Token::current().check(), Err(Error::Interrupted)));
            assert_eq!(Token::current().check(), Ok(()));
            outer.cancel();
            assert_eq!(Token::current().check(), Err(Error::Interrupted));
        });
        assert!(!Token::current().is_cancelled());
        // restored after a panic too
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            inner.run_polled(|| panic!("boom"))
        }));
        assert!(caught.is_err());
        assert!(!Token::current().is_cancelled());
        assert_eq!(LAST_POLL.with(Cell::get), None);
    }

    #[test]
    fn checks_poll_on_the_polling_thread_only() {
        // a sequential loop of checks on the polling thread: stops once the poll says so
        let (out, late, polls) = polled_stop_after(Duration::from_millis(120), || loop {
            if let Err(e) = Token::current().check() {
                return e;
            }
            std::thread::sleep(Duration::from_millis(1));
        });
        assert_eq!(out, Error::Interrupted);
        assert!(late < Duration::from_millis(500), "{late:?}");
        assert!((2..=10).contains(&polls), "{polls} polls");
        // the same token checked on another thread never polls
        let token = Token::with_poll(|| panic!("polled off the polling thread"));
        token.run_polled(|| {
            let t = Token::current();
            std::thread::scope(|s| {
                s.spawn(|| {
                    t.scope(|| {
                        std::thread::sleep(POLL_EVERY * 2);
                        assert_eq!(Token::current().check(), Ok(()));
                    })
                });
            });
        });
    }

    #[test]
    fn offloaded_sections_are_polled_while_they_run() {
        use rayon::prelude::*;
        // a parallel section whose closures read the flag only: the waiting thread polls
        let (out, late, polls) = polled_stop_after(Duration::from_millis(150), || {
            let stop = Token::current();
            offload(None, true, || {
                (0..10_000u64)
                    .into_par_iter()
                    .map(|i| {
                        if !stop.is_cancelled() {
                            std::thread::sleep(Duration::from_millis(1));
                        }
                        i
                    })
                    .sum::<u64>()
            });
            stop.check()
        });
        assert_eq!(out, Err(Error::Interrupted));
        assert!(late < Duration::from_millis(500), "{late:?}");
        assert!(polls >= 2, "{polls} polls");
        // a section that is not parallel, or a thread that does not poll: run in place
        let here = std::thread::current().id();
        assert_eq!(offload(None, true, || std::thread::current().id()), here);
        let t = Token::with_poll(|| false);
        t.run_polled(|| {
            assert_eq!(offload(None, false, || std::thread::current().id()), here);
            assert_ne!(offload(None, true, || std::thread::current().id()), here);
            assert!(Token::current().polled_here());
            // the offloaded section sees the call's token, and does not poll
            offload(None, true, || {
                assert!(!Token::current().polled_here());
                assert!(Token::current().0.is_some());
            });
        });
        // a panic in an offloaded section reaches the caller
        let caught = std::panic::catch_unwind(|| {
            Token::with_poll(|| false)
                .run_polled(|| offload(None, true, || -> u32 { panic!("in section") }))
        });
        assert!(caught.is_err());
    }
}
