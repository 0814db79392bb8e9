//! Thread pools with an explicit thread count, safe to use again after `fork()`.
//!
//! With one thread, work runs on the calling thread itself (no hand-off to a pool: that costs
//! ~15 µs per call, noticeable for the small cells of molecular dynamics), and [`current_threads`]
//! tells the parallel code paths to run sequentially.
//!
//! rayon's global pool cannot survive a `fork()`: its threads do not exist in the child, and a
//! child that calls into it waits forever. alal therefore never uses the global pool: every
//! parallel call runs inside a pool of its own, cached by thread count, and
//! [`forget_pools_after_fork`] (called by the binding in the child of a fork) drops the cache so that
//! the child builds fresh pools.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use rayon::ThreadPool;

use crate::error::{Error, Result};

thread_local! {
    /// Set while a `with_threads(1, ..)` call runs on this thread.
    static SEQUENTIAL: Cell<bool> = const { Cell::new(false) };
}

/// Number of threads the current computation may use: 1 inside `with_threads(1, ..)`, else the
/// size of the rayon pool it runs in.
pub fn current_threads() -> usize {
    if SEQUENTIAL.with(Cell::get) {
        1
    } else {
        rayon::current_num_threads()
    }
}

/// Restores the sequential flag when dropped (also on unwinding).
struct SequentialGuard(bool);

impl Drop for SequentialGuard {
    fn drop(&mut self) {
        SEQUENTIAL.with(|s| s.set(self.0));
    }
}

fn pools() -> &'static Mutex<HashMap<usize, Arc<ThreadPool>>> {
    static POOLS: OnceLock<Mutex<HashMap<usize, Arc<ThreadPool>>>> = OnceLock::new();
    POOLS.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Number of threads used when the caller asks for "all": `RAYON_NUM_THREADS` if set, else the
/// number of logical CPUs.
pub fn default_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Run `f` inside a rayon pool of `n_threads` threads (0 means [`default_threads`]).
pub fn with_threads<R: Send>(n_threads: usize, f: impl FnOnce() -> R + Send) -> Result<R> {
    let n = if n_threads == 0 {
        default_threads()
    } else {
        n_threads
    };
    if n == 1 {
        let _guard = SequentialGuard(SEQUENTIAL.with(|s| s.replace(true)));
        return Ok(f());
    }
    let pool = {
        let mut cache = pools()
            .lock()
            .map_err(|_| Error::Internal("thread-pool cache poisoned".into()))?;
        match cache.get(&n) {
            Some(pool) => Arc::clone(pool),
            None => {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .thread_name(|i| format!("alal-{i}"))
                    .build()
                    .map_err(|e| Error::Internal(format!("cannot start {n} threads: {e}")))?;
                let pool = Arc::new(pool);
                cache.insert(n, Arc::clone(&pool));
                pool
            }
        }
    };
    Ok(pool.install(f))
}

/// Forget every cached pool without joining its threads (they do not exist after a fork).
///
/// Only meant for the child process right after `fork()`, when no other thread runs.
pub fn forget_pools_after_fork() {
    if let Ok(mut cache) = pools().lock() {
        for (_, pool) in cache.drain() {
            std::mem::forget(pool);
        }
    }
}
