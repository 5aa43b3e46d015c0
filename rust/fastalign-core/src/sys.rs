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

/// Runs `work` on a pool of `threads` threads when given (rayon's global pool otherwise), so
/// that a caller can ask for one thread, say, without touching the global pool. Pools are
/// made once per thread count and kept (a reward loop reuses their warm buffers).
pub fn with_threads<T, F>(threads: Option<usize>, work: F) -> crate::Result<T>
where
    T: Send,
    F: FnOnce() -> crate::Result<T> + Send,
{
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex, OnceLock};
    static POOLS: OnceLock<Mutex<HashMap<usize, Arc<rayon::ThreadPool>>>> = OnceLock::new();
    match threads {
        None => work(),
        Some(0) => Err(crate::Error::invalid("threads must be >= 1")),
        Some(n) => {
            let pool = {
                let mut pools = POOLS
                    .get_or_init(Default::default)
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                match pools.get(&n) {
                    Some(p) => Arc::clone(p),
                    None => {
                        let p = Arc::new(
                            rayon::ThreadPoolBuilder::new()
                                .num_threads(n)
                                .build()
                                .map_err(|e| {
                                    crate::Error::invalid(format!("cannot start {n} threads: {e}"))
                                })?,
                        );
                        pools.insert(n, Arc::clone(&p));
                        p
                    }
                }
            };
            pool.install(work)
        }
    }
}
