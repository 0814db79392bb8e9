//! Where found pairs go: growing vectors on one thread, or disjoint pre-sized regions of one
//! shared output on many threads, compacted in place at the end.
//!
//! Writing into one output allocated up front (zeroed memory that the kernel maps lazily) means
//! each page is first touched, and faulted in, by the thread that fills it, and the pairs are
//! copied at most once more (by the compaction), instead of being built in per-thread vectors and
//! concatenated into a second, freshly faulted output.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::{PairList, Quantities};
use crate::error::{Error, Result};

/// A pair `(i, j, S)` found for the current atom `i`: its partner `j`, lattice shift `s`, vector
/// `v` (Å) and distance `d` (Å; the squared distance while searching).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pair {
    pub(crate) j: usize,
    pub(crate) s: [i64; 3],
    pub(crate) v: [f64; 3],
    pub(crate) d: f64,
}

/// Receives the pairs of one atom after another.
pub(crate) trait Sink {
    /// All pairs of atom `i`, in order.
    fn push_atom(&mut self, q: Quantities, i: usize, pairs: &[Pair]);
}

/// Append one row of `W` values per item of `rows` (a single reservation and no per-element
/// capacity checks).
#[inline(always)]
fn extend_rows<T: Copy, const W: usize>(
    v: &mut Vec<T>,
    rows: impl ExactSizeIterator<Item = [T; W]>,
) {
    let n = rows.len();
    v.reserve(W * n);
    let written = write_rows(&mut v.spare_capacity_mut()[..W * n], rows);
    // SAFETY: `write_rows` wrote the first `W * written` spare elements.
    unsafe { v.set_len(v.len() + W * written) }
}

/// Write one row of `W` values per item of `rows` into `dst`, as many rows as both hold; returns
/// the number of rows written.
#[inline(always)]
fn write_rows<T: Copy, const W: usize>(
    dst: &mut [MaybeUninit<T>],
    rows: impl Iterator<Item = [T; W]>,
) -> usize {
    let mut written = 0;
    for (dst, row) in dst.chunks_exact_mut(W).zip(rows) {
        for (d, x) in dst.iter_mut().zip(row) {
            d.write(x);
        }
        written += 1;
    }
    written
}

impl Sink for PairList {
    #[inline(always)]
    fn push_atom(&mut self, q: Quantities, i: usize, pairs: &[Pair]) {
        extend_rows(&mut self.first, pairs.iter().map(|_| [i as i64]));
        extend_rows(&mut self.second, pairs.iter().map(|p| [p.j as i64]));
        if q.shifts {
            extend_rows(
                &mut self.shifts,
                pairs.iter().map(|p| p.s.map(|x| x as i32)),
            );
        }
        if q.vectors {
            extend_rows(&mut self.vectors, pairs.iter().map(|p| p.v));
        }
        if q.distances {
            extend_rows(&mut self.distances, pairs.iter().map(|p| [p.d]));
        }
    }
}

/// One thread's slice of the shared output (not yet initialised), spilling into `overflow` when full.
pub(crate) struct Region<'a> {
    first: &'a mut [MaybeUninit<i64>],
    second: &'a mut [MaybeUninit<i64>],
    shifts: &'a mut [MaybeUninit<i32>],
    vectors: &'a mut [MaybeUninit<f64>],
    distances: &'a mut [MaybeUninit<f64>],
    len: usize,
    overflow: PairList,
}

impl Sink for Region<'_> {
    #[inline(always)]
    fn push_atom(&mut self, q: Quantities, i: usize, pairs: &[Pair]) {
        let (k, n) = (self.len, pairs.len());
        if k + n > self.first.len() || !self.overflow.is_empty() {
            // Out of room: this atom's pairs and all that follow go to the overflow.
            self.overflow.push_atom(q, i, pairs);
            return;
        }
        write_rows(&mut self.first[k..k + n], pairs.iter().map(|_| [i as i64]));
        write_rows(
            &mut self.second[k..k + n],
            pairs.iter().map(|p| [p.j as i64]),
        );
        if q.shifts {
            write_rows(
                &mut self.shifts[3 * k..3 * (k + n)],
                pairs.iter().map(|p| p.s.map(|x| x as i32)),
            );
        }
        if q.vectors {
            write_rows(
                &mut self.vectors[3 * k..3 * (k + n)],
                pairs.iter().map(|p| p.v),
            );
        }
        if q.distances {
            write_rows(&mut self.distances[k..k + n], pairs.iter().map(|p| [p.d]));
        }
        self.len += n;
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

/// Fill one output from several ranges of atoms in parallel. `capacities[k]` is the room given to
/// range `k`; `fill(k, sink)` writes that range's pairs in order.
pub(crate) fn fill_in_parallel<F>(capacities: &[usize], q: Quantities, fill: F) -> Result<PairList>
where
    F: Fn(usize, &mut Region<'_>) + Sync,
{
    let total: usize = capacities.iter().sum();
    let width = |on: bool, w: usize| if on { w } else { 0 };
    let mut out = PairList {
        first: with_room(total)?,
        second: with_room(total)?,
        shifts: with_room(width(q.shifts, 3) * total)?,
        vectors: with_room(width(q.vectors, 3) * total)?,
        distances: with_room(width(q.distances, 1) * total)?,
    };
    let starts: Vec<usize> = capacities
        .iter()
        .scan(0, |acc, &c| {
            let s = *acc;
            *acc += c;
            Some(s)
        })
        .collect();
    let results: Vec<(usize, PairList)> = {
        let mut regions = Vec::with_capacity(capacities.len());
        let (mut first, mut second) = (
            out.first.spare_capacity_mut(),
            out.second.spare_capacity_mut(),
        );
        let (mut shifts, mut vectors, mut distances) = (
            out.shifts.spare_capacity_mut(),
            out.vectors.spare_capacity_mut(),
            out.distances.spare_capacity_mut(),
        );
        for &c in capacities {
            let (f, rf) = first.split_at_mut(c);
            let (s2, rs2) = second.split_at_mut(c);
            let (sh, rsh) = shifts.split_at_mut(if q.shifts { 3 * c } else { 0 });
            let (ve, rve) = vectors.split_at_mut(if q.vectors { 3 * c } else { 0 });
            let (di, rdi) = distances.split_at_mut(if q.distances { c } else { 0 });
            (first, second, shifts, vectors, distances) = (rf, rs2, rsh, rve, rdi);
            regions.push(Region {
                first: f,
                second: s2,
                shifts: sh,
                vectors: ve,
                distances: di,
                len: 0,
                overflow: PairList::default(),
            });
        }
        regions
            .into_par_iter()
            .enumerate()
            .map(|(k, mut region)| {
                fill(k, &mut region);
                (region.len, region.overflow)
            })
            .collect()
    };
    if results.iter().all(|(_, overflow)| overflow.is_empty()) {
        // Slide each region down to the end of the previous one (within the written parts). The
        // five arrays are independent: they slide in parallel.
        let moves: Vec<(usize, usize)> = starts
            .iter()
            .zip(&results)
            .map(|(&s, &(len, _))| (s, len))
            .collect();
        let cursor: usize = moves.iter().map(|m| m.1).sum();
        fn slide<T: Copy>(v: &mut Vec<T>, width: usize, moves: &[(usize, usize)]) {
            let buffer = v.spare_capacity_mut();
            let mut cursor = 0;
            for &(start, len) in moves {
                if start != cursor {
                    buffer.copy_within(width * start..width * (start + len), width * cursor);
                }
                cursor += len;
            }
        }
        let PairList {
            first,
            second,
            shifts,
            vectors,
            distances,
        } = &mut out;
        rayon::scope(|scope| {
            scope.spawn(|_| slide(first, 1, &moves));
            scope.spawn(|_| slide(second, 1, &moves));
            scope.spawn(|_| slide(shifts, width(q.shifts, 3), &moves));
            scope.spawn(|_| slide(vectors, width(q.vectors, 3), &moves));
            slide(distances, width(q.distances, 1), &moves);
        });
        // SAFETY: after the slides, elements 0..cursor (times the width of each quantity) are
        // exactly the written elements of the regions, in order.
        unsafe {
            assume_init_prefix(&mut out.first, cursor);
            assume_init_prefix(&mut out.second, cursor);
            assume_init_prefix(&mut out.shifts, width(q.shifts, 3) * cursor);
            assume_init_prefix(&mut out.vectors, width(q.vectors, 3) * cursor);
            assume_init_prefix(&mut out.distances, width(q.distances, 1) * cursor);
        }
        return Ok(out);
    }
    // Some region ran out of room (a much denser part than estimated): rebuild in order from the
    // written parts of each region and its overflow.
    fn written<T: Copy>(v: &mut Vec<T>, range: std::ops::Range<usize>) -> Vec<T> {
        // SAFETY: `range` lies within a region's written elements.
        v.spare_capacity_mut()[range]
            .iter()
            .map(|x| unsafe { x.assume_init() })
            .collect()
    }
    let mut joined = PairList::default();
    let w = |on: bool, k: usize| if on { k } else { 0 };
    for (&start, (len, overflow)) in starts.iter().zip(results) {
        joined
            .first
            .extend(written(&mut out.first, start..start + len));
        joined
            .second
            .extend(written(&mut out.second, start..start + len));
        let s3 = w(q.shifts, 3);
        joined
            .shifts
            .extend(written(&mut out.shifts, s3 * start..s3 * (start + len)));
        let v3 = w(q.vectors, 3);
        joined
            .vectors
            .extend(written(&mut out.vectors, v3 * start..v3 * (start + len)));
        let d1 = w(q.distances, 1);
        joined
            .distances
            .extend(written(&mut out.distances, d1 * start..d1 * (start + len)));
        joined.first.extend_from_slice(&overflow.first);
        joined.second.extend_from_slice(&overflow.second);
        joined.shifts.extend_from_slice(&overflow.shifts);
        joined.vectors.extend_from_slice(&overflow.vectors);
        joined.distances.extend_from_slice(&overflow.distances);
    }
    Ok(joined)
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

    /// Region `k` writes `k + 2` pairs; with the given capacities some regions overflow.
    fn filled(capacities: &[usize], q: Quantities) -> PairList {
        fill_in_parallel(capacities, q, |k, region| {
            for p in 0..k + 2 {
                region.push_atom(q, k, &[pair(k, p)]);
            }
        })
        .unwrap()
    }

    fn expected(n_regions: usize, q: Quantities) -> PairList {
        let mut out = PairList::default();
        for k in 0..n_regions {
            for p in 0..k + 2 {
                out.push_atom(q, k, &[pair(k, p)]);
            }
        }
        out
    }

    #[test]
    fn regions_are_compacted_in_order() {
        let q = Quantities::ALL;
        assert_eq!(filled(&[5, 9, 4, 8], q), expected(4, q));
    }

    #[test]
    fn overflowing_regions_keep_the_order() {
        let q = Quantities::ALL;
        assert_eq!(filled(&[1, 0, 7, 2], q), expected(4, q));
        let only_ij = Quantities {
            shifts: false,
            vectors: false,
            distances: false,
        };
        assert_eq!(filled(&[3, 1, 0, 9], only_ij), expected(4, only_ij));
    }

    /// Atoms pushed whole: once an atom did not fit, later atoms that would fit still go to the
    /// overflow, so that the order is kept.
    #[test]
    fn atoms_pushed_whole_keep_the_order() {
        let q = Quantities::ALL;
        let pairs = |atom: usize, n: usize| -> Vec<Pair> {
            (0..n)
                .map(|p| Pair {
                    j: 100 * atom + p,
                    s: [p as i64, -1, 0],
                    v: [atom as f64, p as f64, 0.5],
                    d: p as f64 + 0.25,
                })
                .collect()
        };
        let sizes = [[2, 5, 1, 0, 3], [4, 1, 2, 2, 0]];
        let got = fill_in_parallel(&[6, 3], q, |k, region| {
            for (a, &n) in sizes[k].iter().enumerate() {
                region.push_atom(q, 10 * k + a, &pairs(10 * k + a, n));
            }
        })
        .unwrap();
        let mut want = PairList::default();
        for (k, atoms) in sizes.iter().enumerate() {
            for (a, &n) in atoms.iter().enumerate() {
                for p in pairs(10 * k + a, n) {
                    want.push_atom(q, 10 * k + a, &[p]);
                }
            }
        }
        assert_eq!(got, want);
    }
}
