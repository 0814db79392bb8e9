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
    run_serving_caller(&pool, f)
}

/// A job that a pool thread asks the calling thread to run.
type CallerJob = Box<dyn FnOnce() + Send>;

/// What the pool thread running a `with_threads` closure sends to the calling thread.
enum ToCaller {
    Run(CallerJob),
    Finished,
}

thread_local! {
    /// On the pool thread that runs a `with_threads` closure: the way to the calling thread.
    static CALLER: std::cell::RefCell<Option<std::sync::mpsc::Sender<ToCaller>>> =
        const { std::cell::RefCell::new(None) };
}

/// Tells the calling thread that the closure has finished, also when it unwinds.
struct FinishedOnDrop(std::sync::mpsc::Sender<ToCaller>);

impl Drop for FinishedOnDrop {
    fn drop(&mut self) {
        let _ = self.0.send(ToCaller::Finished);
    }
}

/// Puts back this thread's previous way to a caller when dropped (the pool thread may run
/// another call's closure while it waits inside this one).
struct CallerGuard(Option<std::sync::mpsc::Sender<ToCaller>>);

impl Drop for CallerGuard {
    fn drop(&mut self) {
        let previous = self.0.take();
        CALLER.with(|c| *c.borrow_mut() = previous);
    }
}

/// Run `f` on a thread of `pool` (so that its parallel work uses that pool) while the calling
/// thread waits and runs the jobs `f` hands it through [`on_calling_thread`].
fn run_serving_caller<R: Send>(pool: &ThreadPool, f: impl FnOnce() -> R + Send) -> Result<R> {
    if pool.current_thread_index().is_some() {
        // Already on one of its threads (a nested call): run here, as `install` would; waiting
        // for a job of the same pool could leave no thread to run it.
        return Ok(f());
    }
    let (to_caller, requests) = std::sync::mpsc::channel::<ToCaller>();
    let mut result = None;
    pool.in_place_scope(|scope| {
        let result = &mut result;
        scope.spawn(move |_| {
            let _finished = FinishedOnDrop(to_caller.clone());
            let _guard = CallerGuard(CALLER.with(|c| c.replace(Some(to_caller))));
            *result = Some(f());
        });
        for request in requests.iter() {
            match request {
                ToCaller::Run(job) => job(),
                ToCaller::Finished => break,
            }
        }
    });
    // The scope re-raises a panic of `f`, so the result is set here.
    result.ok_or_else(|| Error::Internal("the pool thread finished without a result".into()))
}

/// Run `job` on the thread that called [`with_threads`] (right here if the current thread is not
/// the one running a `with_threads` closure, or with one thread), and return its result; an
/// error if the calling thread could not run it (a panic of `job` is raised on the calling thread).
///
/// Meant for the large output arrays of a parallel call: the caller frees them (as NumPy arrays,
/// say), and memory freed by the thread that allocated it is reused by the allocator, where a
/// block freed by another thread goes back to the system and comes back as fresh pages, zeroed
/// by the kernel one page fault at a time (a tenth of a 2-thread neighbour list).
pub fn on_calling_thread<R: Send + 'static>(job: impl FnOnce() -> R + Send + 'static) -> Result<R> {
    let caller = CALLER.with(|c| c.borrow().clone());
    let Some(caller) = caller else {
        return Ok(job());
    };
    let (reply, answer) = std::sync::mpsc::sync_channel::<R>(1);
    let request = ToCaller::Run(Box::new(move || {
        let _ = reply.send(job());
    }));
    if caller.send(request).is_err() {
        return Err(Error::Internal(
            "the calling thread no longer takes jobs".into(),
        ));
    }
    // No answer: the job panicked on the calling thread, which raises that panic itself.
    answer
        .recv()
        .map_err(|_| Error::Internal("a job on the calling thread failed".into()))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A job handed to the calling thread runs there, from the closure's own thread and from
    /// a call nested inside it; with one thread it runs in place.
    #[test]
    fn jobs_run_on_the_calling_thread() {
        let caller = std::thread::current().id();
        let (worker, from_worker) = with_threads(2, || {
            let here = std::thread::current().id();
            let there = on_calling_thread(|| std::thread::current().id()).unwrap();
            (here, there)
        })
        .unwrap();
        assert_ne!(worker, caller, "the closure runs on a pool thread");
        assert_eq!(from_worker, caller);
        let nested = with_threads(2, || {
            let outer = std::thread::current().id();
            let inner = with_threads(3, || {
                on_calling_thread(|| std::thread::current().id()).unwrap()
            });
            (outer, inner.unwrap())
        })
        .unwrap();
        assert_eq!(
            nested.1, nested.0,
            "the inner call's caller is the outer closure's thread"
        );
        let same_pool = with_threads(2, || {
            with_threads(2, || {
                on_calling_thread(|| std::thread::current().id()).unwrap()
            })
        })
        .unwrap();
        assert_eq!(
            same_pool.unwrap(),
            caller,
            "a call nested in its own pool runs in place"
        );
        let alone = with_threads(1, || {
            on_calling_thread(|| std::thread::current().id()).unwrap()
        })
        .unwrap();
        assert_eq!(alone, caller);
        assert_eq!(on_calling_thread(|| 7).unwrap(), 7);
    }

    /// A panic in the closure, or in a job it hands to the calling thread, reaches the caller
    /// (no thread waits forever), and the pool serves the next call.
    #[test]
    fn panics_reach_the_caller() {
        let in_closure = std::panic::catch_unwind(|| with_threads(2, || panic!("closure fails")));
        assert!(in_closure.is_err());
        // The job's panic is raised on the calling thread; the closure's thread gets an error.
        let from_closure = std::sync::Mutex::new(None);
        let in_job = std::panic::catch_unwind(|| {
            with_threads(2, || {
                let answer = on_calling_thread(|| -> u8 { panic!("job fails") });
                *from_closure.lock().unwrap() = Some(answer.is_err());
            })
        });
        assert!(in_job.is_err());
        assert_eq!(*from_closure.lock().unwrap(), Some(true));
        assert_eq!(
            with_threads(2, || on_calling_thread(|| 3).unwrap() + 4).unwrap(),
            7
        );
    }
}
