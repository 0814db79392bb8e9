//! Descriptor gradients against finite differences, and invariances, in pure Rust.

mod common;

use alal_core::cell::Cell;
use alal_core::descriptors::{AniDescriptor, AniParams, Structure};
use common::{random_cell, random_positions, Rng};
use ndarray::{Array2, ArrayView2};

fn params(n_species: usize) -> AniParams {
    let lin = |a: f64, b: f64, n: usize| {
        (0..n)
            .map(|k| a + (b - a) * k as f64 / n as f64)
            .collect::<Vec<_>>()
    };
    AniParams {
        n_species,
        radial_cutoff: 5.0,
        radial_eta: 16.0,
        radial_shifts: lin(0.9, 5.0, 8),
        radial_scale: 0.25,
        angular_cutoff: 3.8,
        angular_eta: 8.0,
        angular_zeta: 13.7,
        angular_shifts: lin(0.9, 3.8, 4),
        angle_sections: (0..4)
            .map(|k| (2 * k + 1) as f64 * std::f64::consts::PI / 8.0)
            .collect(),
        cos_scale: 0.95,
    }
}

struct System {
    pos: Vec<f64>,
    cell: Cell,
    species: Vec<usize>,
}

fn system(seed: u64, n: usize, pbc: [bool; 3]) -> System {
    let mut rng = Rng::new(seed);
    let m = random_cell(&mut rng, 4.5, 6.0);
    // Random positions, redrawn while two atoms are closer than 1.2 Å.
    'draw: loop {
        let pos = random_positions(&mut rng, &m, n, 0.0);
        for i in 0..n {
            for j in 0..i {
                let d: f64 = (0..3)
                    .map(|c| (pos[3 * i + c] - pos[3 * j + c]).powi(2))
                    .sum::<f64>()
                    .sqrt();
                if d < 1.2 {
                    continue 'draw;
                }
            }
        }
        let species = (0..n).map(|k| k % 2).collect();
        return System {
            pos,
            cell: Cell::new(m, pbc).unwrap(),
            species,
        };
    }
}

fn features(d: &AniDescriptor, s: &System, pos: &[f64], cell: Cell) -> Array2<f64> {
    let n = s.species.len();
    let st = Structure {
        positions: ArrayView2::from_shape((n, 3), pos).unwrap(),
        cell,
        species: &s.species,
    };
    d.forward(&[st]).unwrap()
}

#[test]
fn vjp_and_jvp_match_finite_differences() {
    // ζ = 13.7 goes through exp(ζ ln x), ζ = 32 (ANI-1x) through repeated squaring.
    for zeta in [13.7, 32.0] {
        gradients_match_finite_differences(zeta);
    }
}

fn gradients_match_finite_differences(zeta: f64) {
    let d = AniDescriptor::new(AniParams {
        angular_zeta: zeta,
        ..params(2)
    })
    .unwrap();
    for (seed, pbc) in [(1u64, [true; 3]), (2, [true, true, false]), (3, [false; 3])] {
        let s = system(seed, 7, pbc);
        let n = s.species.len();
        let mut rng = Rng::new(seed + 100);
        let cot = Array2::from_shape_fn((n, d.n_features()), |_| rng.uniform(-1.0, 1.0));
        let st = Structure {
            positions: ArrayView2::from_shape((n, 3), &s.pos).unwrap(),
            cell: s.cell,
            species: &s.species,
        };
        let grads = d.vjp(std::slice::from_ref(&st), cot.view()).unwrap();
        let tangent = Array2::from_shape_fn((n, 3), |_| rng.uniform(-1.0, 1.0));
        let jvp = d.jvp(&[st], tangent.view(), None).unwrap();
        let h = 1e-5;
        let loss = |pos: &[f64]| (&features(&d, &s, pos, s.cell) * &cot).sum();
        for a in 0..n {
            for c in 0..3 {
                let (mut p, mut m) = (s.pos.clone(), s.pos.clone());
                p[3 * a + c] += h;
                m[3 * a + c] -= h;
                let fd = (loss(&p) - loss(&m)) / (2.0 * h);
                let an = grads.positions[[a, c]];
                assert!(
                    (fd - an).abs() < 1e-6 * (1.0 + an.abs()),
                    "vjp seed {seed} atom {a} axis {c}: {fd} vs {an}"
                );
            }
        }
        let (mut p, mut m) = (s.pos.clone(), s.pos.clone());
        for k in 0..3 * n {
            p[k] += h * tangent[[k / 3, k % 3]];
            m[k] -= h * tangent[[k / 3, k % 3]];
        }
        let fd = (features(&d, &s, &p, s.cell) - features(&d, &s, &m, s.cell)) / (2.0 * h);
        let err = (&fd - &jvp).iter().fold(0.0f64, |e, x| e.max(x.abs()));
        let scale = jvp.iter().fold(0.0f64, |e, x| e.max(x.abs()));
        assert!(err < 1e-6 * (1.0 + scale), "jvp seed {seed}: error {err}");
    }
}

#[test]
fn invariant_under_translation_and_rotation() {
    let d = AniDescriptor::new(params(2)).unwrap();
    let s = system(9, 6, [false; 3]);
    let g0 = features(&d, &s, &s.pos, s.cell);
    let (c, si) = (0.3f64.cos(), 0.3f64.sin());
    let moved: Vec<f64> = s
        .pos
        .chunks(3)
        .flat_map(|r| {
            [
                c * r[0] - si * r[1] + 1.7,
                si * r[0] + c * r[1] - 0.4,
                r[2] + 2.2,
            ]
        })
        .collect();
    let g1 = features(&d, &s, &moved, s.cell);
    let err = (&g0 - &g1).iter().fold(0.0f64, |e, x| e.max(x.abs()));
    assert!(err < 1e-12, "error {err}");
}

#[test]
fn refuses_bad_parameters_and_species() {
    let mut p = params(1);
    p.angular_zeta = 0.5;
    assert!(AniDescriptor::new(p).is_err());
    let mut p = params(1);
    p.radial_shifts.clear();
    assert!(AniDescriptor::new(p).is_err());
    let d = AniDescriptor::new(params(1)).unwrap();
    let s = system(4, 3, [true; 3]);
    let st = Structure {
        positions: ArrayView2::from_shape((3, 3), &s.pos).unwrap(),
        cell: s.cell,
        species: &s.species,
    };
    assert!(d.forward(&[st]).is_err()); // species 1 with a one-species descriptor
}

#[test]
fn many_cotangents_and_tangents_equal_one_at_a_time() {
    use ndarray::{Array3, Array4};
    let d = AniDescriptor::new(params(2)).unwrap();
    let systems = [system(11, 6, [true; 3]), system(12, 5, [true, false, true])];
    let structures: Vec<Structure> = systems
        .iter()
        .map(|s| Structure {
            positions: ArrayView2::from_shape((s.species.len(), 3), &s.pos).unwrap(),
            cell: s.cell,
            species: &s.species,
        })
        .collect();
    let prepared = d.prepare(&structures).unwrap();
    let (n, nf, m) = (prepared.n_atoms(), d.n_features(), 3);
    let mut rng = Rng::new(7);
    let cot = Array3::from_shape_fn((m, n, nf), |_| rng.uniform(-1.0, 1.0));
    let tan = Array3::from_shape_fn((m, n, 3), |_| rng.uniform(-1.0, 1.0));
    let cell_tan = Array4::from_shape_fn((m, 2, 3, 3), |_| rng.uniform(-0.1, 0.1));
    let many = d.vjp_many_prepared(&prepared, cot.view()).unwrap();
    let jvps = d
        .jvp_many_prepared(&prepared, tan.view(), Some(cell_tan.view()))
        .unwrap();
    for k in 0..m {
        let one = d
            .vjp_prepared(&prepared, cot.index_axis(ndarray::Axis(0), k))
            .unwrap();
        assert_eq!(
            one.positions,
            many.positions.index_axis(ndarray::Axis(0), k)
        );
        for b in 0..2 {
            for x in 0..3 {
                for y in 0..3 {
                    assert_eq!(one.cells[b][x][y], many.cells[[k, b, x, y]]);
                    assert_eq!(one.virials[b][x][y], many.virials[[k, b, x, y]]);
                }
            }
        }
        let ct: Vec<[[f64; 3]; 3]> = (0..2)
            .map(|b| std::array::from_fn(|x| std::array::from_fn(|y| cell_tan[[k, b, x, y]])))
            .collect();
        let one = d
            .jvp_prepared(&prepared, tan.index_axis(ndarray::Axis(0), k), Some(&ct))
            .unwrap();
        assert_eq!(one, jvps.index_axis(ndarray::Axis(0), k));
    }
    assert!(d
        .vjp_many_prepared(&prepared, Array3::zeros((0, n, nf)).view())
        .is_err());
    assert!(d
        .jvp_many_prepared(
            &prepared,
            tan.view(),
            Some(Array4::zeros((m, 1, 3, 3)).view())
        )
        .is_err());
}
