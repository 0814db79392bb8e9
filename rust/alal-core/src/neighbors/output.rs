//! Where found pairs go: growing vectors on one thread; on many threads, one output allocated up
//! front and written in order.
//!
//! Each range of atoms goes into a buffer of its thread (kept in cache) until its offset in the
//! output is known, that is until the counts of all the ranges before it are published; from then
//! on its pairs go straight to their final place, and the buffer is copied there once. The output
//! (zeroed memory that the kernel maps lazily) is touched, and faulted in, once, by the threads in
//! parallel, and no pass over the whole output follows (an earlier design wrote estimated regions
//! of the output and compacted them afterwards: a memmove of everything, a tenth of the work on
//! two threads). A range may publish its count before writing its pairs ([`Sink::announce`]:
//! the cell-list search finds all of a range's pairs first, then sorts and writes them), so that
//! the next range knows its offset before it writes anything: then almost nothing is buffered.
//! Without that, about half the pairs were buffered on two threads, and their copy cost 6-8% of a
//! 2-thread list. Into outputs larger than the caches the buffers are copied with non-temporal
//! stores (`stream_copy`).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::stream_copy::{copy_streaming, STREAM_BYTES};
use super::{PairList, Quantities};
use crate::error::{Error, Result};

/// A pair `(i, j, S)` found for the current atom `i`: its partner `j`, lattice shift `s`, vector
/// `v` (Å) and distance `d` (Å; the squared distance while searching).
///
/// Laid out as the AVX2 search writes it: `s` and `j` in the first 32 bytes, `v` and `d` in the
/// second.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(32))]
pub(crate) struct Pair {
    pub(crate) s: [i64; 3],
    pub(crate) j: usize,
    pub(crate) v: [f64; 3],
    pub(crate) d: f64,
}

/// Receives the pairs of one atom after another.
pub(crate) trait Sink {
    /// Whether the sink wants the number of pairs of all its atoms before the first of them
    /// ([`Sink::announce`]).
    const COUNT_FIRST: bool = false;

    /// All pairs of atom `i`, in order (read through the sort order instead of a sorted copy).
    fn push_atom<'p, P: AtomPairs<'p>>(&mut self, q: Quantities, i: usize, pairs: P);

    /// The number of pairs that will be pushed, all atoms together (only with `COUNT_FIRST`).
    fn announce(&mut self, _count: usize) {}
}

/// The pairs of one atom as a [`Sink`] reads them.
pub(crate) trait AtomPairs<'p>: ExactSizeIterator<Item = &'p Pair> {}

impl<'p, I: ExactSizeIterator<Item = &'p Pair>> AtomPairs<'p> for I {}

impl Sink for PairList {
    #[inline(always)]
    fn push_atom<'p, P: AtomPairs<'p>>(&mut self, q: Quantities, i: usize, pairs: P) {
        let (n, len) = (pairs.len(), self.len());
        let (ws, wv, wd) = widths(q);
        self.first.reserve(n);
        self.second.reserve(n);
        self.shifts.reserve(ws * n);
        self.vectors.reserve(wv * n);
        self.distances.reserve(wd * n);
        let columns = Columns::of(self);
        // SAFETY: rows `len..len + n` lie within the capacity just reserved (the quantities
        // not wanted are not written), and are written before the lengths cover them.
        unsafe {
            columns.write(len, q, i, pairs);
            self.first.set_len(len + n);
            self.second.set_len(len + n);
            self.shifts.set_len(ws * (len + n));
            self.vectors.set_len(wv * (len + n));
            self.distances.set_len(wd * (len + n));
        }
    }
}

/// Raw pointers to the start of each output array (those of quantities not wanted may dangle).
#[derive(Clone, Copy)]
struct Columns {
    first: *mut i64,
    second: *mut i64,
    shifts: *mut i32,
    vectors: *mut f64,
    distances: *mut f64,
}

impl Columns {
    /// The arrays of `list`, from their first row.
    fn of(list: &mut PairList) -> Self {
        Columns {
            first: list.first.as_mut_ptr(),
            second: list.second.as_mut_ptr(),
            shifts: list.shifts.as_mut_ptr(),
            vectors: list.vectors.as_mut_ptr(),
            distances: list.distances.as_mut_ptr(),
        }
    }

    /// Write the pairs of atom `i` to rows `at..at + pairs.len()`: one pass over the pairs,
    /// every column of a pair at once (a pass per column gathered the pairs five times through
    /// the sort order: 5-8% of a list).
    ///
    /// # Safety
    /// The rows must lie within the capacity of the arrays of `q` (and of `first` and `second`)
    /// and be written by nobody else.
    #[inline(always)]
    unsafe fn write<'p, P: AtomPairs<'p>>(&self, at: usize, q: Quantities, i: usize, pairs: P) {
        for (k, p) in pairs.enumerate() {
            let row = at + k;
            // SAFETY: guaranteed by the caller; a quantity's array is only offset and written
            // when it is wanted.
            unsafe {
                self.first.add(row).write(i as i64);
                self.second.add(row).write(p.j as i64);
                if q.shifts {
                    let (a, b, c) = (p.s[0] as i32, p.s[1] as i32, p.s[2] as i32);
                    let dst = self.shifts.add(3 * row);
                    dst.write(a);
                    dst.add(1).write(b);
                    dst.add(2).write(c);
                }
                if q.vectors {
                    let (a, b, c) = (p.v[0], p.v[1], p.v[2]);
                    let dst = self.vectors.add(3 * row);
                    dst.write(a);
                    dst.add(1).write(b);
                    dst.add(2).write(c);
                }
                if q.distances {
                    self.distances.add(row).write(p.d);
                }
            }
        }
    }
}

/// A vector with room for `n` elements, or an error (instead of an abort) without the memory.
///
/// Large outputs are advised to use transparent huge pages, as NumPy does for its own large
/// arrays: the pairs are written once into fresh memory, and 4 KiB pages would cost one page fault
/// each (a third of the time of a large neighbour list on a virtual machine).
pub(crate) fn with_room<T>(n: usize) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| {
        Error::InvalidInput(format!("cannot allocate memory for {n} neighbour pairs"))
    })?;
    advise_huge_pages(&mut v);
    Ok(v)
}

#[cfg(target_os = "linux")]
fn advise_huge_pages<T>(v: &mut Vec<T>) {
    const HUGE: usize = 2 << 20;
    let bytes = v.capacity() * std::mem::size_of::<T>();
    if bytes < 4 * HUGE {
        return;
    }
    let start = v.as_mut_ptr() as usize;
    let first = (start + HUGE - 1) & !(HUGE - 1);
    let last = (start + bytes) & !(HUGE - 1);
    if last > first {
        // SAFETY: [first, last) lies inside the vector's allocation; MADV_HUGEPAGE is advice only
        // and changes neither the mapping's contents nor its validity. Failure is harmless.
        unsafe {
            libc::madvise(
                first as *mut libc::c_void,
                last - first,
                libc::MADV_HUGEPAGE,
            );
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages<T>(_: &mut Vec<T>) {}

/// Mark the first `len` elements of `v` as initialised.
///
/// # Safety
/// Every element in `0..len` must have been written, and `len <= v.capacity()`.
unsafe fn assume_init_prefix<T>(v: &mut Vec<T>, len: usize) {
    debug_assert!(len <= v.capacity());
    // SAFETY: guaranteed by the caller.
    unsafe { v.set_len(len) }
}

/// Where the ranges' pairs go: raw pointers to the start of each output array.
struct Destination {
    columns: Columns,
    /// Whether buffers are copied with non-temporal stores (outputs larger than the caches).
    streaming: bool,
}

// SAFETY: the ranges write disjoint parts of the arrays (each at its own offset), and the arrays
// outlive the threads (a scope joins them before the output is used).
unsafe impl Send for Destination {}
unsafe impl Sync for Destination {}

impl Destination {
    /// Copy `pairs` to rows `offset..offset + pairs.len()`.
    ///
    /// # Safety
    /// The rows must lie within the arrays' capacity and be written by nobody else.
    unsafe fn copy(&self, offset: usize, pairs: &PairList) {
        /// Copy `n` elements.
        ///
        /// # Safety
        /// As for `std::ptr::copy_nonoverlapping`.
        unsafe fn copy_array<T: Copy>(streaming: bool, src: *const T, dst: *mut T, n: usize) {
            // SAFETY: guaranteed by the caller.
            unsafe {
                if streaming {
                    copy_streaming(src, dst, n)
                } else {
                    std::ptr::copy_nonoverlapping(src, dst, n)
                }
            }
        }
        let n = pairs.len();
        let streaming = self.streaming;
        // SAFETY: guaranteed by the caller; each source holds `n` rows of its width.
        unsafe {
            copy_array(
                streaming,
                pairs.first.as_ptr(),
                self.columns.first.add(offset),
                n,
            );
            copy_array(
                streaming,
                pairs.second.as_ptr(),
                self.columns.second.add(offset),
                n,
            );
            if !pairs.shifts.is_empty() {
                let (src, dst) = (pairs.shifts.as_ptr(), self.columns.shifts.add(3 * offset));
                copy_array(streaming, src, dst, 3 * n);
            }
            if !pairs.vectors.is_empty() {
                let (src, dst) = (pairs.vectors.as_ptr(), self.columns.vectors.add(3 * offset));
                copy_array(streaming, src, dst, 3 * n);
            }
            if !pairs.distances.is_empty() {
                let (src, dst) = (pairs.distances.as_ptr(), self.columns.distances.add(offset));
                copy_array(streaming, src, dst, n);
            }
        }
    }

    /// Write the pairs of atom `i` to rows `offset..offset + pairs.len()`, as
    /// [`PairList::push_atom`] appends them.
    ///
    /// # Safety
    /// As for [`Destination::copy`].
    #[inline(always)]
    unsafe fn write_atom<'p, P: AtomPairs<'p>>(
        &self,
        offset: usize,
        q: Quantities,
        i: usize,
        pairs: P,
    ) {
        // SAFETY: guaranteed by the caller.
        unsafe { self.columns.write(offset, q, i, pairs) }
    }
}

thread_local! {
    /// Emptied range buffers kept by each thread for its next call: fresh ones would grow (and be
    /// faulted in, page by page) on every call.
    static SPARE_BUFFERS: std::cell::RefCell<Vec<PairList>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// At most this many buffers are kept per thread between calls.
const KEPT_BUFFERS: usize = 4;
/// Buffers with room for more pairs than this are not kept between calls.
const KEPT_PAIRS: usize = 1 << 16;

/// Count of a range not yet known.
const PENDING: usize = usize::MAX;
/// A range whose search panicked: its count will never be known.
const FAILED: usize = usize::MAX - 1;

/// Publishes a range's count, or [`FAILED`] if dropped before (a panic), so that no thread waits
/// forever for it.
struct Publish<'a>(&'a AtomicUsize);

impl Drop for Publish<'_> {
    fn drop(&mut self) {
        let _ = self
            .0
            .compare_exchange(PENDING, FAILED, Ordering::Release, Ordering::Relaxed);
    }
}

/// What the threads filling one output share.
struct Shared {
    destination: Destination,
    /// Rows the output has room for.
    room: usize,
    /// Each range's number of pairs, once known.
    counts: Vec<AtomicUsize>,
    /// Pairs beyond the room: the last rows of a range and whole ranges after it.
    aside: std::sync::Mutex<Vec<(usize, PairList)>>,
}

/// One thread's state while it fills ranges.
struct Worker<'a> {
    shared: &'a Shared,
    /// Ranges this thread has filled but not yet copied (their offsets not yet known), in
    /// increasing order.
    pending: std::collections::VecDeque<(usize, PairList)>,
    /// Emptied buffers, to use again.
    spare: Vec<PairList>,
    /// First range whose count this thread has not added up yet; `offset` is its offset.
    known: usize,
    offset: usize,
}

impl Worker<'_> {
    /// Add up the published counts before range `k`, without waiting (with `wait`, waiting for
    /// them). `Some(true)` once the offset of `k` is known, `None` if a range failed.
    fn count_up_to(&mut self, k: usize, wait: bool) -> Option<bool> {
        while self.known < k {
            match self.shared.counts[self.known].load(Ordering::Acquire) {
                FAILED => return None,
                PENDING if wait => std::thread::yield_now(),
                PENDING => return Some(false),
                c => {
                    self.offset += c;
                    self.known += 1;
                }
            }
        }
        Some(true)
    }

    /// Put `buffer`, the pairs of range `k` at offset `offset`, in the output, or aside if they
    /// do not fit.
    fn place(&mut self, k: usize, offset: usize, mut buffer: PairList) {
        if offset + buffer.len() <= self.shared.room {
            // SAFETY: the rows lie within the room, and no other range has them (offsets are the
            // prefix sums of the counts).
            unsafe { self.shared.destination.copy(offset, &buffer) };
            buffer.clear();
            self.spare.push(buffer);
        } else {
            self.set_aside(k, buffer);
        }
    }

    /// Keep `buffer`, pairs of range `k` past the room, to be appended at the end.
    fn set_aside(&mut self, k: usize, buffer: PairList) {
        if buffer.is_empty() {
            self.spare.push(buffer);
        } else if let Ok(mut aside) = self.shared.aside.lock() {
            aside.push((k, buffer));
        }
    }

    /// Copy the pending ranges whose offsets are known; with `wait`, all of them, waiting for the
    /// other threads' counts. False if a range failed.
    fn commit(&mut self, wait: bool) -> bool {
        while let Some(&(k, _)) = self.pending.front() {
            match self.count_up_to(k, wait) {
                None => return false,
                Some(false) => return true,
                Some(true) => {}
            }
            if let Some((k, buffer)) = self.pending.pop_front() {
                self.place(k, self.offset, buffer);
            }
        }
        true
    }
}

/// Where the pairs of a range go next.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    /// Its offset is not yet known: into the buffer.
    Buffer,
    /// Straight into the output, from this row on.
    Output(usize),
    /// Past the room: into the buffer, to be set aside.
    Aside,
}

/// Receives the pairs of range `k`: into a buffer while its offset is unknown, then straight into
/// the output.
pub(crate) struct RangeSink<'w, 'a> {
    worker: &'w mut Worker<'a>,
    k: usize,
    buffer: PairList,
    target: Target,
    /// Pairs written straight into the output.
    written: usize,
    /// The count published by [`Sink::announce`], if any.
    announced: Option<usize>,
}

impl RangeSink<'_, '_> {
    /// Once the offset of this range is known (the counts of all the ranges before it are
    /// published): write this thread's earlier ranges and the buffer to the output, and go on
    /// there. Costs an atomic load or two while the offset is unknown.
    #[inline(always)]
    fn try_output(&mut self) {
        // This thread's pending ranges come before this one: all must be placed first.
        if !self.worker.pending.is_empty()
            && (!self.worker.commit(false) || !self.worker.pending.is_empty())
        {
            return;
        }
        if self.worker.count_up_to(self.k, false) != Some(true) {
            return;
        }
        let at = self.worker.offset;
        if at + self.buffer.len() > self.worker.shared.room {
            self.target = Target::Aside;
            return;
        }
        let next = self.worker.spare.pop().unwrap_or_default();
        let buffer = std::mem::replace(&mut self.buffer, next);
        self.written = buffer.len();
        self.target = Target::Output(at + buffer.len());
        self.worker.place(self.k, at, buffer);
    }

    /// Pairs of the range.
    fn len(&self) -> usize {
        self.written + self.buffer.len()
    }
}

impl Sink for RangeSink<'_, '_> {
    /// A range's count, published before its pairs are written, tells the next range its offset:
    /// the thread searching it then writes straight to the output instead of into its buffer
    /// (without this, about half the pairs on two threads were buffered and copied).
    const COUNT_FIRST: bool = true;

    fn announce(&mut self, count: usize) {
        self.announced = Some(count);
        self.worker.shared.counts[self.k].store(count, Ordering::Release);
    }

    #[inline(always)]
    fn push_atom<'p, P: AtomPairs<'p>>(&mut self, q: Quantities, i: usize, pairs: P) {
        if self.target == Target::Buffer {
            self.try_output();
        }
        if let Target::Output(at) = self.target {
            let n = pairs.len();
            if at + n <= self.worker.shared.room {
                // SAFETY: the rows lie within the room and belong to this range (its offset is
                // the prefix sum of the counts before it).
                unsafe { self.worker.shared.destination.write_atom(at, q, i, pairs) };
                self.target = Target::Output(at + n);
                self.written += n;
                return;
            }
            // This atom and the rest of the range go aside.
            self.target = Target::Aside;
        }
        self.buffer.push_atom(q, i, pairs);
    }
}

/// Values per row of the optional outputs `S`, `D` and `d` (0 for those not wanted).
fn widths(q: Quantities) -> (usize, usize, usize) {
    let on = |wanted: bool, width: usize| if wanted { width } else { 0 };
    (on(q.shifts, 3), on(q.vectors, 3), on(q.distances, 1))
}

/// Fill one output from `n_ranges` consecutive ranges of atoms, searched in parallel and written
/// in order, with no pass over the whole output afterwards.
///
/// The threads take the ranges in order. A range whose offset (the sum of the counts of the
/// ranges before it) is not yet known is filled into a buffer of its thread's own (kept in
/// cache); as soon as the offset is known, the buffer is copied and the rest of the range goes
/// straight to the output. A range that ends before that is kept and copied later. A thread
/// never waits for another before its last range, so that one held up by the system does not
/// stop the other. `room` is the expected number of pairs: pairs beyond it are kept aside and
/// appended at the end.
pub(crate) fn fill_in_order<F>(
    n_ranges: usize,
    room: usize,
    q: Quantities,
    fill: F,
) -> Result<PairList>
where
    F: Fn(usize, &mut RangeSink<'_, '_>) + Sync,
{
    let (shifts, vectors, distances) = widths(q);
    let row_bytes =
        size_of::<i64>() * 2 + size_of::<i32>() * shifts + size_of::<f64>() * (vectors + distances);
    let streaming = room.saturating_mul(row_bytes) >= STREAM_BYTES;
    fill_in_order_copying(n_ranges, room, q, streaming, fill)
}

/// [`fill_in_order`], copying the buffers with non-temporal stores when `streaming`.
fn fill_in_order_copying<F>(
    n_ranges: usize,
    room: usize,
    q: Quantities,
    streaming: bool,
    fill: F,
) -> Result<PairList>
where
    F: Fn(usize, &mut RangeSink<'_, '_>) + Sync,
{
    let (shifts, vectors, distances) = widths(q);
    // Allocated by the thread that will free it (see `on_calling_thread`).
    let mut out = crate::threads::on_calling_thread(move || -> Result<PairList> {
        Ok(PairList {
            first: with_room(room)?,
            second: with_room(room)?,
            shifts: with_room(shifts * room)?,
            vectors: with_room(vectors * room)?,
            distances: with_room(distances * room)?,
        })
    })??;
    let shared = Shared {
        destination: Destination {
            columns: Columns::of(&mut out),
            streaming,
        },
        room,
        counts: (0..n_ranges).map(|_| AtomicUsize::new(PENDING)).collect(),
        aside: std::sync::Mutex::new(Vec::new()),
    };
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let work = || {
        let mut worker = Worker {
            shared: &shared,
            pending: Default::default(),
            spare: SPARE_BUFFERS.with(|b| b.take()),
            known: 0,
            offset: 0,
        };
        loop {
            let k = next.fetch_add(1, Ordering::Relaxed);
            if k >= n_ranges || failed.load(Ordering::Relaxed) {
                break;
            }
            let publish = Publish(&shared.counts[k]);
            let buffer = worker.spare.pop().unwrap_or_default();
            let mut sink = RangeSink {
                worker: &mut worker,
                k,
                buffer,
                target: Target::Buffer,
                written: 0,
                announced: None,
            };
            fill(k, &mut sink);
            debug_assert!(sink.announced.is_none_or(|n| n == sink.len()));
            let (count, buffer, target) = (sink.len(), sink.buffer, sink.target);
            shared.counts[k].store(count, Ordering::Release);
            drop(publish);
            match target {
                Target::Buffer => worker.pending.push_back((k, buffer)),
                // The rows past the room (none if all went to the output).
                Target::Output(_) | Target::Aside => worker.set_aside(k, buffer),
            }
            // Never wait here: a thread held up elsewhere must not stop this one.
            if !worker.commit(false) {
                failed.store(true, Ordering::Relaxed);
                return;
            }
        }
        if !worker.commit(true) {
            failed.store(true, Ordering::Relaxed);
        }
        let mut spare = worker.spare;
        spare.retain(|b| b.first.capacity() <= KEPT_PAIRS);
        spare.truncate(KEPT_BUFFERS);
        SPARE_BUFFERS.with(|b| *b.borrow_mut() = spare);
    };
    let threads = crate::threads::current_threads().clamp(1, n_ranges.max(1));
    rayon::scope(|scope| {
        for _ in 1..threads {
            scope.spawn(|_| work());
        }
        work();
    });
    let total: usize = shared
        .counts
        .iter()
        .map(|c| c.load(Ordering::Acquire))
        .sum();
    let mut aside = shared
        .aside
        .into_inner()
        .map_err(|_| Error::Internal("a search thread failed".into()))?;
    // The pairs set aside are the last ones (offsets only grow), all the others were written.
    let within = total - aside.iter().map(|(_, pairs)| pairs.len()).sum::<usize>();
    // SAFETY: rows 0..within were written: the pairs of every range up to the room.
    unsafe {
        assume_init_prefix(&mut out.first, within);
        assume_init_prefix(&mut out.second, within);
        assume_init_prefix(&mut out.shifts, shifts * within);
        assume_init_prefix(&mut out.vectors, vectors * within);
        assume_init_prefix(&mut out.distances, distances * within);
    }
    aside.sort_by_key(|(k, _)| *k);
    for (_, pairs) in aside {
        out.first.extend_from_slice(&pairs.first);
        out.second.extend_from_slice(&pairs.second);
        out.shifts.extend_from_slice(&pairs.shifts);
        out.vectors.extend_from_slice(&pairs.vectors);
        out.distances.extend_from_slice(&pairs.distances);
    }
    debug_assert_eq!(out.len(), total);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pair `p` of atom `k`.
    fn pair(k: usize, p: usize) -> Pair {
        let x = (10 * k + p) as f64;
        Pair {
            j: p,
            s: [k as i64, p as i64, -1],
            v: [x, x + 0.5, -x],
            d: x + 0.25,
        }
    }

    /// Range `k` has atoms `10 k ..` with `sizes[k][a]` pairs each.
    fn by_ranges(
        sizes: &[Vec<usize>],
        room: usize,
        q: Quantities,
        threads: usize,
        streaming: bool,
    ) -> PairList {
        crate::threads::with_threads(threads, || {
            fill_in_order_copying(sizes.len(), room, q, streaming, |k, buffer| {
                // Most ranges announce their count first, as the cell-list search does.
                if k % 4 != 1 {
                    buffer.announce(sizes[k].iter().sum());
                }
                for (a, &n) in sizes[k].iter().enumerate() {
                    let pairs: Vec<Pair> = (0..n).map(|p| pair(10 * k + a, p)).collect();
                    buffer.push_atom(q, 10 * k + a, pairs.iter());
                }
            })
        })
        .unwrap()
        .unwrap()
    }

    fn in_one_go(sizes: &[Vec<usize>], q: Quantities) -> PairList {
        let mut out = PairList::default();
        for (k, atoms) in sizes.iter().enumerate() {
            for (a, &n) in atoms.iter().enumerate() {
                for p in 0..n {
                    out.push_atom(q, 10 * k + a, [pair(10 * k + a, p)].iter());
                }
            }
        }
        out
    }

    /// Many ranges of uneven sizes on 1, 2 and 3 threads, with room for all, for some and for
    /// none, copied through the cache or streamed, most of them announcing their counts before
    /// their pairs: the pairs come out in order, whoever searched them.
    #[test]
    fn ranges_are_written_in_order() {
        let mut uniform = crate::uniform_numbers(9);
        let sizes: Vec<Vec<usize>> = (0..40)
            .map(|_| {
                (0..(uniform() * 6.0) as usize)
                    .map(|_| (uniform() * 9.0) as usize)
                    .collect()
            })
            .collect();
        let only_ij = Quantities {
            shifts: false,
            vectors: false,
            distances: false,
        };
        for q in [Quantities::ALL, only_ij] {
            let want = in_one_go(&sizes, q);
            // Repeated: which ranges go straight to the output depends on the threads' timing.
            for threads in [1, 2, 3, 2, 3, 2, 3] {
                for room in [0, 7, want.len() / 2, want.len(), 2 * want.len()] {
                    for streaming in [false, true] {
                        assert_eq!(
                            by_ranges(&sizes, room, q, threads, streaming),
                            want,
                            "room {room}, {threads} threads, streaming {streaming}"
                        );
                    }
                }
            }
        }
    }

    /// A range whose search panics makes the whole call panic (instead of leaving the other
    /// threads waiting for its count).
    #[test]
    fn a_panicking_range_does_not_hang_the_others() {
        let outcome = std::panic::catch_unwind(|| {
            crate::threads::with_threads(2, || {
                fill_in_order(50, 1000, Quantities::ALL, |k, buffer| {
                    assert!(k != 3, "range 3 fails");
                    buffer.push_atom(Quantities::ALL, k, [pair(k, 0)].iter());
                })
            })
        });
        assert!(outcome.is_err());
    }

    /// The same after the failing range announced its count (its rows are never written: the
    /// output must not come back).
    #[test]
    fn a_range_panicking_after_announcing_its_count_fails_the_call() {
        let outcome = std::panic::catch_unwind(|| {
            crate::threads::with_threads(2, || {
                fill_in_order(50, 1000, Quantities::ALL, |k, buffer| {
                    buffer.announce(1);
                    assert!(k != 3, "range 3 fails");
                    buffer.push_atom(Quantities::ALL, k, [pair(k, 0)].iter());
                })
            })
        });
        assert!(outcome.is_err());
    }
}
