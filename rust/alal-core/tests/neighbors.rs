//! Neighbour lists against a brute-force search over periodic images.

mod common;

use alal_core::cell::Cell;
use alal_core::neighbors::{neighbor_list, Cutoff, Options};
use common::{random_cell, random_positions, Rng};
use ndarray::ArrayView2;

type Pair = (i64, i64, [i64; 3]);

/// Every (i, j, S) with |r_j - r_i + S·cell| < cutoff, by trying all shifts in a box large
/// enough for the cutoff.
fn brute_force(pos: &[f64], cell: &[[f64; 3]; 3], pbc: [bool; 3], cutoff: f64) -> Vec<(Pair, f64)> {
    let n = pos.len() / 3;
    let c = Cell::new(*cell, pbc).unwrap();
    // Plane spacing along each periodic vector bounds the number of images needed; positions may
    // spill out of the cell, which we cover with two extra images.
    let vol = c.volume();
    let cross = |a: [f64; 3], b: [f64; 3]| {
        [
            a[1] * b[2] - a[2] * b[1],
            a[2] * b[0] - a[0] * b[2],
            a[0] * b[1] - a[1] * b[0],
        ]
    };
    let norm = |a: [f64; 3]| (a[0] * a[0] + a[1] * a[1] + a[2] * a[2]).sqrt();
    let mut reach = [0i64; 3];
    for d in 0..3 {
        if pbc[d] {
            let h = vol / norm(cross(cell[(d + 1) % 3], cell[(d + 2) % 3]));
            reach[d] = (cutoff / h).ceil() as i64 + 3;
        }
    }
    let mut out = Vec::new();
    for i in 0..n {
        for j in 0..n {
            for sx in -reach[0]..=reach[0] {
                for sy in -reach[1]..=reach[1] {
                    for sz in -reach[2]..=reach[2] {
                        let s = [sx, sy, sz];
                        if i == j && s == [0, 0, 0] {
                            continue;
                        }
                        let mut v = [0.0; 3];
                        for k in 0..3 {
                            v[k] = pos[3 * j + k] - pos[3 * i + k];
                            for d in 0..3 {
                                v[k] += s[d] as f64 * cell[d][k];
                            }
                        }
                        let d = norm(v);
                        if d < cutoff {
                            out.push(((i as i64, j as i64, s), d));
                        }
                    }
                }
            }
        }
    }
    out.sort_by_key(|a| a.0);
    out
}

fn check(seed: u64, n: usize, pbc: [bool; 3], cutoff: f64, edge: (f64, f64)) {
    let mut rng = Rng::new(seed);
    let cell = random_cell(&mut rng, edge.0, edge.1);
    let pos = random_positions(&mut rng, &cell, n, 0.3);
    let view = ArrayView2::from_shape((n, 3), &pos).unwrap();
    let list = neighbor_list(
        view,
        &Cell::new(cell, pbc).unwrap(),
        &Cutoff::Uniform(cutoff),
        &Options::default(),
    )
    .unwrap();
    let expected = brute_force(&pos, &cell, pbc, cutoff);
    let got: Vec<(Pair, f64)> = (0..list.len())
        .map(|k| {
            let s = [
                list.shifts[3 * k] as i64,
                list.shifts[3 * k + 1] as i64,
                list.shifts[3 * k + 2] as i64,
            ];
            ((list.first[k], list.second[k], s), list.distances[k])
        })
        .collect();
    // Output is sorted by (i, j, S) and equals the brute force, distances to 1e-10 Å.
    assert!(
        got.windows(2).all(|w| w[0].0 < w[1].0),
        "seed {seed}: not sorted"
    );
    let keys = |v: &[(Pair, f64)]| {
        v.iter()
            .filter(|p| (p.1 - cutoff).abs() > 1e-9)
            .map(|p| p.0)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        keys(&got),
        keys(&expected),
        "seed {seed} pbc {pbc:?} cutoff {cutoff}"
    );
    for (g, e) in got.iter().zip(&expected) {
        if g.0 == e.0 {
            assert!((g.1 - e.1).abs() < 1e-10);
        }
    }
}

#[test]
fn matches_brute_force_on_random_triclinic_cells() {
    let pbcs = [
        [true, true, true],
        [true, true, false],
        [true, false, true],
        [false, true, false],
        [false, false, false],
    ];
    for seed in 0..30u64 {
        let pbc = pbcs[(seed as usize) % pbcs.len()];
        check(
            seed,
            1 + (seed as usize * 7) % 23,
            pbc,
            2.0 + (seed % 5) as f64,
            (3.0, 7.0),
        );
    }
}

#[test]
fn cutoff_larger_than_the_cell() {
    for seed in 100..110u64 {
        check(seed, 3, [true, true, true], 6.5, (1.5, 2.5));
        check(seed, 2, [true, false, true], 5.0, (1.0, 2.0));
    }
}

#[test]
fn half_list_holds_each_pair_once() {
    let mut rng = Rng::new(7);
    let cell = random_cell(&mut rng, 3.0, 4.0);
    let pos = random_positions(&mut rng, &cell, 10, 0.0);
    let view = ArrayView2::from_shape((10, 3), &pos).unwrap();
    let c = Cell::new(cell, [true; 3]).unwrap();
    let full = neighbor_list(view, &c, &Cutoff::Uniform(4.5), &Options::default()).unwrap();
    let half = neighbor_list(
        view,
        &c,
        &Cutoff::Uniform(4.5),
        &Options {
            full_list: false,
            ..Options::default()
        },
    )
    .unwrap();
    assert_eq!(2 * half.len(), full.len());
}

#[test]
fn empty_and_single_atom() {
    let c = Cell::new(
        [[3.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 3.0]],
        [true; 3],
    )
    .unwrap();
    let none: Vec<f64> = Vec::new();
    let l = neighbor_list(
        ArrayView2::from_shape((0, 3), &none).unwrap(),
        &c,
        &Cutoff::Uniform(5.0),
        &Options::default(),
    )
    .unwrap();
    assert!(l.is_empty());
    let one = [0.1, 0.2, 0.3];
    let l = neighbor_list(
        ArrayView2::from_shape((1, 3), &one).unwrap(),
        &c,
        &Cutoff::Uniform(4.5),
        &Options::default(),
    )
    .unwrap();
    assert_eq!(l.len(), 18); // 6 faces at 3 Å + 12 edges at 4.24 Å; corners at 5.2 Å are out
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let c = Cell::new(
        [[3.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 3.0]],
        [true; 3],
    )
    .unwrap();
    let nan = [f64::NAN, 0.0, 0.0];
    let v = ArrayView2::from_shape((1, 3), &nan).unwrap();
    assert!(neighbor_list(v, &c, &Cutoff::Uniform(1.0), &Options::default()).is_err());
    let ok = [0.0, 0.0, 0.0];
    let v = ArrayView2::from_shape((1, 3), &ok).unwrap();
    assert!(neighbor_list(v, &c, &Cutoff::Uniform(-1.0), &Options::default()).is_err());
    assert!(neighbor_list(v, &c, &Cutoff::Uniform(f64::NAN), &Options::default()).is_err());
    assert!(neighbor_list(v, &c, &Cutoff::Uniform(1e5), &Options::default()).is_err());
    assert!(Cell::new(
        [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]],
        [true; 3]
    )
    .is_err());
}
