//! Times the descriptor's forward pass and vector–Jacobian product on rattled fcc aluminium, for
//! profiling (`cargo run --release --example profile_descriptor -- [ani1x|anial] [repeat] [iterations]`).

use alal_core::cell::Cell;
use alal_core::descriptors::{AniDescriptor, AniParams, Structure};
use alal_core::neighbors::{neighbor_lists, Cutoff, Options, Quantities};
use ndarray::{Array2, ArrayView2};
use std::time::Instant;

fn params(name: &str) -> AniParams {
    let shifts = |a: f64, b: f64, n: usize| {
        (0..n)
            .map(|k| a + (b - a) * k as f64 / n as f64)
            .collect::<Vec<_>>()
    };
    let sections = (0..8)
        .map(|k| (2 * k + 1) as f64 * std::f64::consts::PI / 16.0)
        .collect();
    match name {
        "ani1x" => AniParams {
            n_species: 1,
            radial_cutoff: 5.2,
            radial_eta: 16.0,
            radial_shifts: shifts(0.9, 5.2, 16),
            radial_scale: 0.25,
            angular_cutoff: 3.5,
            angular_eta: 8.0,
            angular_zeta: 32.0,
            angular_shifts: shifts(0.9, 3.5, 4),
            angle_sections: sections,
            cos_scale: 0.95,
        },
        _ => AniParams {
            n_species: 1,
            radial_cutoff: 7.0,
            radial_eta: 43.9,
            radial_shifts: shifts(1.25, 7.0, 32),
            radial_scale: 0.25,
            angular_cutoff: 5.0,
            angular_eta: 6.5,
            angular_zeta: 69.4,
            angular_shifts: shifts(1.25, 5.0, 8),
            angle_sections: sections,
            cos_scale: 0.95,
        },
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let name = args.get(1).map_or("ani1x", |s| s.as_str());
    let repeat: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5);
    let iterations: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(20);
    let a = 4.05;
    let basis = [
        [0.0, 0.0, 0.0],
        [0.5, 0.5, 0.0],
        [0.5, 0.0, 0.5],
        [0.0, 0.5, 0.5],
    ];
    let mut pos = Vec::new();
    let mut seed = 12345u64;
    let mut rattle = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        ((seed >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * 0.2
    };
    for x in 0..repeat {
        for y in 0..repeat {
            for z in 0..repeat {
                for b in basis {
                    pos.push((x as f64 + b[0]) * a + rattle());
                    pos.push((y as f64 + b[1]) * a + rattle());
                    pos.push((z as f64 + b[2]) * a + rattle());
                }
            }
        }
    }
    let n = pos.len() / 3;
    let l = a * repeat as f64;
    let cell = Cell::new([[l, 0.0, 0.0], [0.0, l, 0.0], [0.0, 0.0, l]], [true; 3]).expect("cell");
    let species = vec![0usize; n];
    let d = AniDescriptor::new(params(name)).expect("parameters");
    let s = Structure {
        positions: ArrayView2::from_shape((n, 3), &pos).expect("shape"),
        cell,
        species: &species,
    };
    let batch = std::slice::from_ref(&s);
    let cot = Array2::<f64>::ones((n, d.n_features()));
    let (mut t_prep, mut t_fwd, mut t_vjp, mut t_nl) = (f64::MAX, f64::MAX, f64::MAX, f64::MAX);
    let options = Options {
        full_list: true,
        self_interaction: false,
        quantities: Quantities {
            shifts: true,
            vectors: true,
            distances: true,
        },
    };
    let systems = [(s.positions, s.cell)];
    let cutoff = Cutoff::Uniform(d.params().max_cutoff());
    let threads: usize = std::env::var("THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    alal_core::threads::with_threads(threads, || {
        for _ in 0..iterations {
            let t = Instant::now();
            neighbor_lists(&systems, &cutoff, &options).expect("neighbour list");
            t_nl = t_nl.min(t.elapsed().as_secs_f64());
            let t = Instant::now();
            let prepared = d.prepare(batch).expect("prepare");
            t_prep = t_prep.min(t.elapsed().as_secs_f64());
            let t = Instant::now();
            d.forward_prepared(&prepared).expect("forward");
            t_fwd = t_fwd.min(t.elapsed().as_secs_f64());
            let t = Instant::now();
            d.vjp_prepared(&prepared, cot.view()).expect("vjp");
            t_vjp = t_vjp.min(t.elapsed().as_secs_f64());
        }
    })
    .expect("threads");
    let us = |t: f64| t / n as f64 * 1e6;
    println!(
        "{name}, {n} atoms, {threads} thread(s): neighbour list {:.2} µs/atom, prepare {:.2} µs/atom, forward {:.2} µs/atom, vjp {:.2} µs/atom",
        us(t_nl),
        us(t_prep),
        us(t_fwd),
        us(t_vjp)
    );
}
