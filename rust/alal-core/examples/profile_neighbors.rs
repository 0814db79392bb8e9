//! Times the neighbour list on rattled fcc aluminium, for profiling
//! (`cargo run --release --example profile_neighbors -- [repeat] [cutoff] [full|half] [iterations]`;
//! `THREADS=n` for n threads, `SHUFFLE=1` for atoms in random order).

use alal_core::cell::Cell;
use alal_core::neighbors::{neighbor_list, Cutoff, Options, Quantities};
use ndarray::ArrayView2;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let repeat: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(3);
    let cutoff: f64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5.0);
    let full = args.get(3).is_none_or(|s| s != "half");
    let iterations: usize = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(100);
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
    if std::env::var_os("SHUFFLE").is_some() {
        // Atoms in random order (Fisher-Yates), as after sorting by species or in a liquid: the
        // neighbours of an atom come in no particular index order.
        for k in (1..n).rev() {
            let m = (rattle() + 0.1) / 0.2 * (k + 1) as f64;
            let m = (m as usize).min(k);
            for c in 0..3 {
                pos.swap(3 * k + c, 3 * m + c);
            }
        }
    }
    let l = a * repeat as f64;
    let cell = Cell::new([[l, 0.0, 0.0], [0.0, l, 0.0], [0.0, 0.0, l]], [true; 3]).expect("cell");
    let positions = ArrayView2::from_shape((n, 3), &pos).expect("shape");
    let options = Options {
        full_list: full,
        self_interaction: false,
        quantities: if full {
            Quantities::ALL
        } else {
            Quantities {
                shifts: true,
                vectors: false,
                distances: false,
            }
        },
    };
    let cut = Cutoff::Uniform(cutoff);
    let mut best = f64::MAX;
    let mut pairs = 0;
    let threads: usize = std::env::var("THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    alal_core::threads::with_threads(threads, || {
        for _ in 0..iterations {
            let t = Instant::now();
            let list = neighbor_list(positions, &cell, &cut, &options).expect("neighbour list");
            best = best.min(t.elapsed().as_secs_f64());
            pairs = list.len();
        }
    })
    .expect("threads");
    println!(
        "{n} atoms, cutoff {cutoff} Å, {} list, {threads} thread(s): {pairs} pairs, best {:.3} ms, {:.1} M pairs/s",
        if full { "full" } else { "half" },
        best * 1e3,
        pairs as f64 / best * 1e-6
    );
}
