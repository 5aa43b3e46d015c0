//! Facts about the machine the core runs on, for `fastalign info`.

/// The SIMD features the CPU reports that matter to the core's loops.
pub fn cpu_features() -> Vec<&'static str> {
    #[allow(unused_mut)]
    let mut out = Vec::new();
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    {
        macro_rules! probe {
            ($($f:tt),*) => {$(
                if std::arch::is_x86_feature_detected!($f) { out.push($f); }
            )*};
        }
        probe!("sse4.2", "popcnt", "avx", "avx2", "fma", "bmi2", "avx512f");
    }
    #[cfg(target_arch = "aarch64")]
    {
        macro_rules! probe {
            ($($f:tt),*) => {$(
                if std::arch::is_aarch64_feature_detected!($f) { out.push($f); }
            )*};
        }
        probe!("neon", "sve");
    }
    out
}

/// The number of threads the core's parallel routines use (rayon's global pool; set
/// `RAYON_NUM_THREADS` to change it before the first parallel call).
pub fn num_threads() -> usize {
    rayon::current_num_threads()
}

/// The most threads a call may ask for: 4x the machine's cores, and at least 64 (more only
/// oversubscribes the cores; a typo like 100000 would start that many OS threads).
pub fn max_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (4 * cores).max(64)
}

/// Pools kept for reuse (the most recently used; an older one is dropped, and its threads
/// end once no running call holds it).
const KEPT_POOLS: usize = 4;

/// Runs `work` on a pool of `threads` threads when given (rayon's global pool otherwise), so
/// that a caller can ask for one thread, say, without touching the global pool. The last
/// [`KEPT_POOLS`] pools are kept (a reward loop reuses their warm buffers); `threads` is in
/// `1..=max_threads()`. The work runs under the calling thread's cancellation token
/// ([`crate::cancel::Token`]), and on the thread that polls it the wait is polled
/// ([`crate::cancel::offload`]).
pub fn with_threads<T, F>(threads: Option<usize>, work: F) -> crate::Result<T>
where
    T: Send,
    F: FnOnce() -> crate::Result<T> + Send,
{
    use std::sync::{Arc, Mutex};
    static POOLS: Mutex<Vec<(usize, Arc<rayon::ThreadPool>)>> = Mutex::new(Vec::new());
    let Some(n) = threads else {
        return work();
    };
    let most = max_threads();
    if n == 0 || n > most {
        return Err(crate::Error::invalid(format!(
            "threads must be in [1, {most}], got {n}"
        )));
    }
    let pool = {
        let mut pools = POOLS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let pool = match pools.iter().position(|(k, _)| *k == n) {
            Some(i) => pools.remove(i).1,
            None => Arc::new(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .build()
                    .map_err(|e| crate::Error::invalid(format!("cannot start {n} threads: {e}")))?,
            ),
        };
        pools.push((n, Arc::clone(&pool))); // most recently used last
        if pools.len() > KEPT_POOLS {
            pools.remove(0);
        }
        pool
    };
    crate::cancel::offload(Some(&pool), true, work)
}
