//! Per-atom kernels: the descriptor of one atom from its neighbours, its vector–Jacobian product
//! (cotangent on the features → cotangent on each pair vector) and its Jacobian–vector product
//! (tangent on each pair vector → tangent on the features).

use std::f64::consts::PI;

use super::params::AniParams;

/// One neighbour of the central atom: its species, the pair vector `D` (Å) and `|D|`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Neighbour {
    pub species: usize,
    pub v: [f64; 3],
    pub r: f64,
}

/// A neighbour inside the angular cutoff, with its cutoff function and derivative.
#[derive(Debug, Clone, Copy)]
struct AngularNeighbour {
    /// Index into the atom's neighbour slice.
    index: usize,
    species: usize,
    v: [f64; 3],
    r: f64,
    fc: f64,
    dfc: f64,
}

/// Reusable per-thread buffers.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    angular: Vec<AngularNeighbour>,
    a: Vec<f64>,
    da: Vec<f64>,
    rad: Vec<f64>,
    drad: Vec<f64>,
    h: Vec<f64>,
    k: Vec<f64>,
    radial: Vec<f64>,
    dradial: Vec<f64>,
}

/// Precomputed constants of a parameter set.
#[derive(Debug, Clone)]
pub(crate) struct Kernel {
    p: AniParams,
    cos_sections: Vec<f64>,
    sin_sections: Vec<f64>,
    n_radial: usize,
    block: usize,
}

/// Cosine cutoff `½ cos(π r / rc) + ½` and its derivative, zero beyond `rc`.
#[inline(always)]
fn cutoff(r: f64, rc: f64) -> (f64, f64) {
    if r >= rc {
        return (0.0, 0.0);
    }
    let x = PI * r / rc;
    (0.5 * x.cos() + 0.5, -0.5 * PI / rc * x.sin())
}

/// Geometry of a triple `(i, j, k)`: cosine of the angle and its gradients w.r.t. both pair vectors.
#[derive(Debug, Clone, Copy)]
struct Triple {
    cos: f64,
    dcos_da: [f64; 3],
    dcos_db: [f64; 3],
}

#[inline(always)]
fn triple(a: &AngularNeighbour, b: &AngularNeighbour) -> Triple {
    let inv12 = 1.0 / (a.r * b.r);
    let dot = a.v[0] * b.v[0] + a.v[1] * b.v[1] + a.v[2] * b.v[2];
    let cos = dot * inv12;
    let ca = cos / (a.r * a.r);
    let cb = cos / (b.r * b.r);
    Triple {
        cos,
        dcos_da: [
            b.v[0] * inv12 - ca * a.v[0],
            b.v[1] * inv12 - ca * a.v[1],
            b.v[2] * inv12 - ca * a.v[2],
        ],
        dcos_db: [
            a.v[0] * inv12 - cb * b.v[0],
            a.v[1] * inv12 - cb * b.v[1],
            a.v[2] * inv12 - cb * b.v[2],
        ],
    }
}

impl Kernel {
    pub fn new(p: &AniParams) -> Self {
        Kernel {
            cos_sections: p.angle_sections.iter().map(|t| t.cos()).collect(),
            sin_sections: p.angle_sections.iter().map(|t| t.sin()).collect(),
            n_radial: p.n_radial(),
            block: p.angular_block(),
            p: p.clone(),
        }
    }

    pub fn params(&self) -> &AniParams {
        &self.p
    }

    /// Angular factors `A_z = ((1 + cos(θ − θ_z)) / 2)^ζ` and, if asked, `dA_z / d cos_ij`
    /// (derivative with respect to the unscaled cosine).
    #[inline(always)]
    fn angle_terms(&self, cos: f64, a: &mut [f64], da: Option<&mut [f64]>) {
        let s = self.p.cos_scale;
        let zeta = self.p.angular_zeta;
        let c = s * cos;
        let sin = (1.0 - c * c).max(0.0).sqrt();
        match da {
            None => {
                for z in 0..a.len() {
                    let base = 0.5 * (1.0 + c * self.cos_sections[z] + sin * self.sin_sections[z]);
                    a[z] = if base > 0.0 { (zeta * base.ln()).exp() } else { 0.0 };
                }
            }
            Some(da) => {
                let ratio = c / sin;
                for z in 0..a.len() {
                    let base = 0.5 * (1.0 + c * self.cos_sections[z] + sin * self.sin_sections[z]);
                    let pow_m1 = if base > 0.0 {
                        ((zeta - 1.0) * base.ln()).exp()
                    } else if zeta == 1.0 {
                        1.0
                    } else {
                        0.0
                    };
                    a[z] = pow_m1 * base;
                    let dbase = 0.5 * s * (self.cos_sections[z] - ratio * self.sin_sections[z]);
                    da[z] = zeta * pow_m1 * dbase;
                }
            }
        }
    }

    /// Angular radial factors `R_a = exp(−η_A (m − Rs_a)²)` at `m = (r1 + r2) / 2` and, if asked,
    /// `dR_a / dm`.
    #[inline(always)]
    fn mean_distance_terms(&self, m: f64, rad: &mut [f64], drad: Option<&mut [f64]>) {
        let eta = self.p.angular_eta;
        for (a, &shift) in self.p.angular_shifts.iter().enumerate() {
            let x = m - shift;
            rad[a] = (-eta * x * x).exp();
        }
        if let Some(drad) = drad {
            for (a, &shift) in self.p.angular_shifts.iter().enumerate() {
                drad[a] = -2.0 * eta * (m - shift) * rad[a];
            }
        }
    }

    /// Radial terms `q · exp(−η_R (r − Rs)²)` and, if asked, their derivative w.r.t. `r`
    /// (without the cutoff function).
    #[inline(always)]
    fn radial_terms(&self, r: f64, g: &mut [f64], dg: Option<&mut [f64]>) {
        let eta = self.p.radial_eta;
        let q = self.p.radial_scale;
        for (k, &shift) in self.p.radial_shifts.iter().enumerate() {
            let x = r - shift;
            g[k] = q * (-eta * x * x).exp();
        }
        if let Some(dg) = dg {
            for (k, &shift) in self.p.radial_shifts.iter().enumerate() {
                dg[k] = -2.0 * eta * (r - shift) * g[k];
            }
        }
    }

    fn prepare(&self, neighbours: &[Neighbour], scratch: &mut Scratch) {
        let n_r = self.p.radial_shifts.len();
        let n_a = self.p.angular_shifts.len();
        let n_z = self.p.angle_sections.len();
        scratch.radial.resize(n_r, 0.0);
        scratch.dradial.resize(n_r, 0.0);
        scratch.rad.resize(n_a, 0.0);
        scratch.drad.resize(n_a, 0.0);
        scratch.h.resize(n_a, 0.0);
        scratch.a.resize(n_z, 0.0);
        scratch.da.resize(n_z, 0.0);
        scratch.k.resize(n_z, 0.0);
        scratch.angular.clear();
        let rc = self.p.angular_cutoff;
        for (index, nb) in neighbours.iter().enumerate() {
            if nb.r < rc {
                let (fc, dfc) = cutoff(nb.r, rc);
                scratch.angular.push(AngularNeighbour {
                    index,
                    species: nb.species,
                    v: nb.v,
                    r: nb.r,
                    fc,
                    dfc,
                });
            }
        }
    }

    /// Features of one atom (`out` has `n_features` entries and is overwritten).
    pub fn forward(&self, neighbours: &[Neighbour], out: &mut [f64], scratch: &mut Scratch) {
        out.fill(0.0);
        self.prepare(neighbours, scratch);
        let n_r = self.p.radial_shifts.len();
        let rc = self.p.radial_cutoff;
        for nb in neighbours {
            if nb.r >= rc {
                continue;
            }
            let (fc, _) = cutoff(nb.r, rc);
            self.radial_terms(nb.r, &mut scratch.radial, None);
            let row = &mut out[nb.species * n_r..(nb.species + 1) * n_r];
            for (o, g) in row.iter_mut().zip(&scratch.radial) {
                *o += g * fc;
            }
        }
        let n_z = self.p.angle_sections.len();
        let Scratch { angular, a, rad, .. } = scratch;
        for (m, nb1) in angular.iter().enumerate() {
            for nb2 in &angular[m + 1..] {
                let t = triple(nb1, nb2);
                self.angle_terms(t.cos, a, None);
                self.mean_distance_terms(0.5 * (nb1.r + nb2.r), rad, None);
                let f = 2.0 * nb1.fc * nb2.fc;
                let start = self.n_radial + self.p.species_pair_index(nb1.species, nb2.species) * self.block;
                let block = &mut out[start..start + self.block];
                for (ia, &ra) in rad.iter().enumerate() {
                    let fr = f * ra;
                    let row = &mut block[ia * n_z..(ia + 1) * n_z];
                    for (o, &az) in row.iter_mut().zip(a.iter()) {
                        *o += fr * az;
                    }
                }
            }
        }
    }

    /// Vector–Jacobian product: with `cotangent = ∂L/∂G` of this atom, accumulate `∂L/∂D` of each
    /// pair vector into `grad` (one entry per neighbour, added to).
    pub fn vjp(&self, neighbours: &[Neighbour], cotangent: &[f64], grad: &mut [[f64; 3]], scratch: &mut Scratch) {
        self.prepare(neighbours, scratch);
        let n_r = self.p.radial_shifts.len();
        let rc = self.p.radial_cutoff;
        for (p, nb) in neighbours.iter().enumerate() {
            if nb.r >= rc {
                continue;
            }
            let (fc, dfc) = cutoff(nb.r, rc);
            self.radial_terms(nb.r, &mut scratch.radial, Some(&mut scratch.dradial));
            let g = &cotangent[nb.species * n_r..(nb.species + 1) * n_r];
            let mut t = 0.0;
            for k in 0..n_r {
                t += g[k] * (scratch.dradial[k] * fc + scratch.radial[k] * dfc);
            }
            let s = t / nb.r;
            for c in 0..3 {
                grad[p][c] += s * nb.v[c];
            }
        }
        let n_z = self.p.angle_sections.len();
        let Scratch { angular, a, da, rad, drad, h, k, .. } = scratch;
        for (m, nb1) in angular.iter().enumerate() {
            for nb2 in &angular[m + 1..] {
                let start = self.n_radial + self.p.species_pair_index(nb1.species, nb2.species) * self.block;
                let g = &cotangent[start..start + self.block];
                let t = triple(nb1, nb2);
                self.angle_terms(t.cos, a, Some(da));
                self.mean_distance_terms(0.5 * (nb1.r + nb2.r), rad, Some(drad));
                k.fill(0.0);
                for ia in 0..rad.len() {
                    let row = &g[ia * n_z..(ia + 1) * n_z];
                    let mut hs = 0.0;
                    for z in 0..n_z {
                        hs += row[z] * a[z];
                        k[z] += row[z] * rad[ia];
                    }
                    h[ia] = hs;
                }
                let s0: f64 = h.iter().zip(rad.iter()).map(|(x, y)| x * y).sum();
                let s1: f64 = h.iter().zip(drad.iter()).map(|(x, y)| x * y).sum();
                let sc: f64 = k.iter().zip(da.iter()).map(|(x, y)| x * y).sum();
                let f = nb1.fc * nb2.fc;
                let t_r1 = 2.0 * (0.5 * s1 * f + s0 * nb1.dfc * nb2.fc);
                let t_r2 = 2.0 * (0.5 * s1 * f + s0 * nb1.fc * nb2.dfc);
                let t_c = 2.0 * f * sc;
                let (u1, u2) = (t_r1 / nb1.r, t_r2 / nb2.r);
                for c in 0..3 {
                    grad[nb1.index][c] += t_c * t.dcos_da[c] + u1 * nb1.v[c];
                    grad[nb2.index][c] += t_c * t.dcos_db[c] + u2 * nb2.v[c];
                }
            }
        }
    }

    /// Jacobian–vector product: with `tangent[p] = δD` of each pair vector, the change of this
    /// atom's features (`out` is overwritten).
    pub fn jvp(&self, neighbours: &[Neighbour], tangent: &[[f64; 3]], out: &mut [f64], scratch: &mut Scratch) {
        out.fill(0.0);
        self.prepare(neighbours, scratch);
        let n_r = self.p.radial_shifts.len();
        let rc = self.p.radial_cutoff;
        let dot = |x: [f64; 3], y: [f64; 3]| x[0] * y[0] + x[1] * y[1] + x[2] * y[2];
        for (p, nb) in neighbours.iter().enumerate() {
            if nb.r >= rc {
                continue;
            }
            let (fc, dfc) = cutoff(nb.r, rc);
            self.radial_terms(nb.r, &mut scratch.radial, Some(&mut scratch.dradial));
            let dr = dot(nb.v, tangent[p]) / nb.r;
            let row = &mut out[nb.species * n_r..(nb.species + 1) * n_r];
            for k in 0..n_r {
                row[k] += (scratch.dradial[k] * fc + scratch.radial[k] * dfc) * dr;
            }
        }
        let n_z = self.p.angle_sections.len();
        let Scratch { angular, a, da, rad, drad, h, k, .. } = scratch;
        for (m, nb1) in angular.iter().enumerate() {
            for nb2 in &angular[m + 1..] {
                let (ta, tb) = (tangent[nb1.index], tangent[nb2.index]);
                let t = triple(nb1, nb2);
                let dr1 = dot(nb1.v, ta) / nb1.r;
                let dr2 = dot(nb2.v, tb) / nb2.r;
                let dcos = dot(t.dcos_da, ta) + dot(t.dcos_db, tb);
                self.angle_terms(t.cos, a, Some(da));
                self.mean_distance_terms(0.5 * (nb1.r + nb2.r), rad, Some(drad));
                let f = nb1.fc * nb2.fc;
                let df = nb1.dfc * nb2.fc * dr1 + nb1.fc * nb2.dfc * dr2;
                // δG[a, z] = α_z β_a + γ_z ε_a
                for z in 0..n_z {
                    k[z] = 2.0 * da[z] * dcos; // α
                }
                for ia in 0..rad.len() {
                    h[ia] = drad[ia] * f * 0.5 * (dr1 + dr2) + rad[ia] * df; // ε
                }
                let start = self.n_radial + self.p.species_pair_index(nb1.species, nb2.species) * self.block;
                let block = &mut out[start..start + self.block];
                for ia in 0..rad.len() {
                    let beta = rad[ia] * f;
                    let eps = h[ia];
                    let row = &mut block[ia * n_z..(ia + 1) * n_z];
                    for z in 0..n_z {
                        row[z] += k[z] * beta + 2.0 * a[z] * eps;
                    }
                }
            }
        }
    }
}
