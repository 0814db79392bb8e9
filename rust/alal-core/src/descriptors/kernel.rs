//! Per-atom kernels: the descriptor of one atom from its neighbours, its vector–Jacobian product
//! (cotangent on the features → cotangent on each pair vector) and its Jacobian–vector product
//! (tangent on each pair vector → tangent on the features).

use std::f64::consts::PI;

use super::fastmath;
use super::params::{AniParams, MAX_ANGULAR, MAX_RADIAL};

/// A public method that runs an `#[inline(always)]` implementation compiled for AVX2 when the CPU
/// has it, and for the baseline otherwise. Both use the same operations in the same order (no FMA
/// contraction), so results are bitwise identical.
macro_rules! dispatch {
    ($(#[$doc:meta])* $name:ident, $avx2:ident, $imp:ident($($arg:ident: $ty:ty),*)) => {
        $(#[$doc])*
        pub fn $name(&self, $($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU supports AVX2 (checked just above).
                    return unsafe { self.$avx2($($arg),*) };
                }
            }
            self.$imp($($arg),*)
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2")]
        unsafe fn $avx2(&self, $($arg: $ty),*) {
            self.$imp($($arg),*)
        }
    };
}

/// One neighbour of the central atom: its species, the pair vector `D` (Å), `|D|`, and the radial
/// and angular cutoff functions at `|D|` with their derivatives (computed once per pair).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Neighbour {
    pub species: usize,
    pub v: [f64; 3],
    pub r: f64,
    pub fc_radial: f64,
    pub dfc_radial: f64,
    pub fc_angular: f64,
    pub dfc_angular: f64,
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
    /// The angular cotangents of one atom regrouped as `[species pair][z][a * m + k]`, so that
    /// the contractions of all `m` members run as one contiguous, vectorised loop.
    cot_t: Vec<f64>,
    /// `u[a * m + k] = Σ_z g_k[a, z] A_z` and `v[a * m + k] = Σ_z g_k[a, z] ∂A_z/∂cos`.
    u: Vec<f64>,
    v: Vec<f64>,
}

/// `u[q] = Σ_z table[z·width + q] · a[z]` and `v[q] = Σ_z table[z·width + q] · da[z]`, in blocks
/// of columns held in registers across the sum over `z` (the same operations, in the same order,
/// as the plain loop over `z` then `q`).
#[inline(always)]
fn contract_sections(
    table: &[f64],
    width: usize,
    a: &[f64],
    da: &[f64],
    u: &mut [f64],
    v: &mut [f64],
) {
    // Blocks of eight columns, then of four (one AVX2 register: all of it for one committee
    // member and four shifts), then single columns.
    let mut q = contract_blocks::<8>(table, width, 0, a, da, u, v);
    q = contract_blocks::<4>(table, width, q, a, da, u, v);
    contract_blocks::<1>(table, width, q, a, da, u, v);
}

/// The columns `q0..` of [`contract_sections`] in whole blocks of `W`, each held in registers across
/// the sum over `z`; returns the first column not done.
#[inline(always)]
fn contract_blocks<const W: usize>(
    table: &[f64],
    width: usize,
    q0: usize,
    a: &[f64],
    da: &[f64],
    u: &mut [f64],
    v: &mut [f64],
) -> usize {
    let n_z = a.len();
    let end = q0 + (width - q0) / W * W;
    let mut q = q0;
    while q < end {
        let (mut ub, mut vb) = ([0.0f64; W], [0.0f64; W]);
        for z in 0..n_z {
            let row = &table[z * width + q..z * width + q + W];
            let (az, daz) = (a[z], da[z]);
            for l in 0..W {
                ub[l] += row[l] * az;
                vb[l] += row[l] * daz;
            }
        }
        u[q..q + W].copy_from_slice(&ub);
        v[q..q + W].copy_from_slice(&vb);
        q += W;
    }
    end
}

/// Precomputed constants of a parameter set.
#[derive(Debug, Clone)]
pub(crate) struct Kernel {
    p: AniParams,
    cos_sections: Vec<f64>,
    sin_sections: Vec<f64>,
    n_radial: usize,
    block: usize,
    /// ζ when it is a small integer: powers by repeated squaring instead of exp(ζ ln x).
    zeta_int: Option<u32>,
}

/// `out[k] = xs[k]^n` by binary exponentiation: the same multiplications for every entry, so the
/// loops vectorise (ANI-1x and ANI-2x use ζ = 32).
#[inline(always)]
fn powi_all(xs: &[f64], n: u32, out: &mut [f64]) {
    let len = xs.len();
    let mut square = [0.0; MAX_ANGULAR];
    square[..len].copy_from_slice(xs);
    out[..len].fill(1.0);
    let mut e = n;
    while e > 0 {
        if e & 1 == 1 {
            for k in 0..len {
                out[k] *= square[k];
            }
        }
        e >>= 1;
        if e > 0 {
            for k in 0..len {
                square[k] *= square[k];
            }
        }
    }
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
            zeta_int: (p.angular_zeta.fract() == 0.0 && p.angular_zeta <= 1024.0)
                .then_some(p.angular_zeta as u32),
            p: p.clone(),
        }
    }

    pub fn params(&self) -> &AniParams {
        &self.p
    }

    /// A neighbour of species `species` at pair vector `v` (Å), distance `r`.
    #[inline]
    pub fn neighbour(&self, species: usize, v: [f64; 3], r: f64) -> Neighbour {
        let (fc_radial, dfc_radial) = cutoff(r, self.p.radial_cutoff);
        let (fc_angular, dfc_angular) = cutoff(r, self.p.angular_cutoff);
        Neighbour {
            species,
            v,
            r,
            fc_radial,
            dfc_radial,
            fc_angular,
            dfc_angular,
        }
    }

    /// Angular factors `A_z = ((1 + cos(θ − θ_z)) / 2)^ζ` and, if asked, `dA_z / d cos_ij`
    /// (derivative with respect to the unscaled cosine). `a`, `da` and `ln_base` have one entry
    /// per angle section.
    #[inline(always)]
    fn angle_terms(&self, cos: f64, a: &mut [f64], da: Option<&mut [f64]>, ln_base: &mut [f64]) {
        let s = self.p.cos_scale;
        let zeta = self.p.angular_zeta;
        let c = s * cos;
        let sin = (1.0 - c * c).max(0.0).sqrt();
        let n = a.len();
        let (cz, sz) = (&self.cos_sections[..n], &self.sin_sections[..n]);
        // base_z in `a` first, then its logarithm in `ln_base` (a huge negative number where
        // base_z underflows), unless ζ is an integer.
        for z in 0..n {
            a[z] = 0.5 * (1.0 + c * cz[z] + sin * sz[z]);
        }
        if let Some(zi) = self.zeta_int {
            let mut base = [0.0; MAX_ANGULAR];
            base[..n].copy_from_slice(a);
            match da {
                None => powi_all(&base[..n], zi, a),
                Some(da) => {
                    let ratio = c / sin;
                    let mut pow_m1 = [0.0; MAX_ANGULAR];
                    powi_all(&base[..n], zi - 1, &mut pow_m1[..n]);
                    for z in 0..n {
                        a[z] = pow_m1[z] * base[z];
                        da[z] = zeta * pow_m1[z] * (0.5 * s * (cz[z] - ratio * sz[z]));
                    }
                }
            }
            return;
        }
        for z in 0..n {
            let base = a[z];
            ln_base[z] = if base > 1e-300 {
                fastmath::ln(base)
            } else {
                -1e300
            };
        }
        match da {
            None => {
                for z in 0..n {
                    a[z] = fastmath::exp(zeta * ln_base[z]);
                }
            }
            Some(da) => {
                let ratio = c / sin;
                let da = &mut da[..n];
                for z in 0..n {
                    let base = a[z];
                    // base^(ζ−1); exactly 1 for ζ = 1 whatever the base.
                    let pow_m1 = if zeta == 1.0 {
                        1.0
                    } else {
                        fastmath::exp((zeta - 1.0) * ln_base[z])
                    };
                    a[z] = pow_m1 * base;
                    da[z] = zeta * pow_m1 * (0.5 * s * (cz[z] - ratio * sz[z]));
                }
            }
        }
    }

    /// Angular radial factors `R_a = exp(−η_A (m − Rs_a)²)` at `m = (r1 + r2) / 2` and, if asked,
    /// `dR_a / dm`.
    #[inline(always)]
    fn mean_distance_terms(&self, m: f64, rad: &mut [f64], drad: Option<&mut [f64]>) {
        let eta = self.p.angular_eta;
        for (r, &shift) in rad.iter_mut().zip(&self.p.angular_shifts) {
            let x = m - shift;
            *r = fastmath::exp(-eta * x * x);
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
        for (gk, &shift) in g.iter_mut().zip(&self.p.radial_shifts) {
            let x = r - shift;
            *gk = q * fastmath::exp(-eta * x * x);
        }
        if let Some(dg) = dg {
            for (k, &shift) in self.p.radial_shifts.iter().enumerate() {
                dg[k] = -2.0 * eta * (r - shift) * g[k];
            }
        }
    }

    #[inline(always)]
    fn prepare(&self, neighbours: &[Neighbour], scratch: &mut Scratch) {
        scratch.angular.clear();
        let rc = self.p.angular_cutoff;
        for (index, nb) in neighbours.iter().enumerate() {
            if nb.r < rc {
                scratch.angular.push(AngularNeighbour {
                    index,
                    species: nb.species,
                    v: nb.v,
                    r: nb.r,
                    fc: nb.fc_angular,
                    dfc: nb.dfc_angular,
                });
            }
        }
    }

    /// Features of one atom (`out` has `n_features` entries and is overwritten).
    #[inline(always)]
    fn forward_impl(&self, neighbours: &[Neighbour], out: &mut [f64], scratch: &mut Scratch) {
        out.fill(0.0);
        self.prepare(neighbours, scratch);
        let n_r = self.p.radial_shifts.len();
        let rc = self.p.radial_cutoff;
        let mut radial_buf = [0.0; MAX_RADIAL];
        let radial = &mut radial_buf[..n_r];
        for nb in neighbours {
            if nb.r >= rc {
                continue;
            }
            let fc = nb.fc_radial;
            self.radial_terms(nb.r, radial, None);
            let row = &mut out[nb.species * n_r..(nb.species + 1) * n_r];
            for (o, g) in row.iter_mut().zip(radial.iter()) {
                *o += g * fc;
            }
        }
        let n_z = self.p.angle_sections.len();
        let n_a = self.p.angular_shifts.len();
        let angular = &scratch.angular;
        let (mut a_buf, mut rad_buf, mut ln_buf) =
            ([0.0; MAX_ANGULAR], [0.0; MAX_ANGULAR], [0.0; MAX_ANGULAR]);
        let (a, rad, ln_base) = (&mut a_buf[..n_z], &mut rad_buf[..n_a], &mut ln_buf[..n_z]);
        for (m, nb1) in angular.iter().enumerate() {
            for nb2 in &angular[m + 1..] {
                let t = triple(nb1, nb2);
                self.angle_terms(t.cos, a, None, ln_base);
                self.mean_distance_terms(0.5 * (nb1.r + nb2.r), rad, None);
                let f = 2.0 * nb1.fc * nb2.fc;
                let start = self.n_radial
                    + self.p.species_pair_index(nb1.species, nb2.species) * self.block;
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

    /// Vector–Jacobian product for `m` cotangents at once (committee members share the geometric
    /// terms): with `cotangents[k * n_features..][..n_features] = ∂L_k/∂G` of this atom, add
    /// `∂L_k/∂D` of pair `p` to `grad[p * m + k]`.
    #[inline(always)]
    fn vjp_impl(
        &self,
        neighbours: &[Neighbour],
        cotangents: &[f64],
        m: usize,
        grad: &mut [[f64; 3]],
        scratch: &mut Scratch,
    ) {
        self.prepare(neighbours, scratch);
        let nf = cotangents.len() / m.max(1);
        let n_r = self.p.radial_shifts.len();
        let rc = self.p.radial_cutoff;
        let (mut radial_buf, mut dradial_buf) = ([0.0; MAX_RADIAL], [0.0; MAX_RADIAL]);
        let (radial, dradial) = (&mut radial_buf[..n_r], &mut dradial_buf[..n_r]);
        for (p, nb) in neighbours.iter().enumerate() {
            if nb.r >= rc {
                continue;
            }
            let (fc, dfc) = (nb.fc_radial, nb.dfc_radial);
            self.radial_terms(nb.r, radial, Some(&mut *dradial));
            for q in 0..n_r {
                dradial[q] = dradial[q] * fc + radial[q] * dfc;
            }
            for k in 0..m {
                let g = &cotangents[k * nf + nb.species * n_r..][..n_r];
                let mut t = 0.0;
                for q in 0..n_r {
                    t += g[q] * dradial[q];
                }
                let s = t / nb.r;
                let out = &mut grad[p * m + k];
                for c in 0..3 {
                    out[c] += s * nb.v[c];
                }
            }
        }
        let n_z = self.p.angle_sections.len();
        let n_a = self.p.angular_shifts.len();
        let block = self.block;
        let Scratch {
            angular,
            cot_t,
            u,
            v,
        } = scratch;
        if angular.len() < 2 {
            return;
        }
        let n_pairs_species = self.p.n_species_pairs();
        cot_t.clear();
        cot_t.resize(n_pairs_species * block * m, 0.0);
        for sp in 0..n_pairs_species {
            let dst = &mut cot_t[sp * block * m..][..block * m];
            for k in 0..m {
                let src = &cotangents[k * nf + self.n_radial + sp * block..][..block];
                for ia in 0..n_a {
                    for z in 0..n_z {
                        dst[z * n_a * m + ia * m + k] = src[ia * n_z + z];
                    }
                }
            }
        }
        let width = n_a * m;
        u.clear();
        u.resize(width, 0.0);
        v.clear();
        v.resize(width, 0.0);
        let mut bufs = [[0.0; MAX_ANGULAR]; 5];
        let [a, da, rad, drad, ln_base] = &mut bufs;
        let (a, da, ln_base) = (&mut a[..n_z], &mut da[..n_z], &mut ln_base[..n_z]);
        let (rad, drad) = (&mut rad[..n_a], &mut drad[..n_a]);
        let (mut s0, mut s1, mut sc) = (vec![0.0f64; m], vec![0.0f64; m], vec![0.0f64; m]);
        for (i1, nb1) in angular.iter().enumerate() {
            for nb2 in &angular[i1 + 1..] {
                let sp = self.p.species_pair_index(nb1.species, nb2.species);
                let table = &cot_t[sp * block * m..][..block * m];
                let t = triple(nb1, nb2);
                self.angle_terms(t.cos, a, Some(da), ln_base);
                self.mean_distance_terms(0.5 * (nb1.r + nb2.r), rad, Some(drad));
                contract_sections(table, width, a, da, u, v);
                // s0_k = Σ_a u rad, s1_k = Σ_a u ∂rad, sc_k = Σ_a v rad.
                s0.fill(0.0);
                s1.fill(0.0);
                sc.fill(0.0);
                for ia in 0..n_a {
                    let (ur, vr) = (&u[ia * m..][..m], &v[ia * m..][..m]);
                    let (ra, dra) = (rad[ia], drad[ia]);
                    for k in 0..m {
                        s0[k] += ur[k] * ra;
                        s1[k] += ur[k] * dra;
                        sc[k] += vr[k] * ra;
                    }
                }
                let f = nb1.fc * nb2.fc;
                for k in 0..m {
                    let (s0, s1, sc) = (s0[k], s1[k], sc[k]);
                    let t_r1 = 2.0 * (0.5 * s1 * f + s0 * nb1.dfc * nb2.fc);
                    let t_r2 = 2.0 * (0.5 * s1 * f + s0 * nb1.fc * nb2.dfc);
                    let t_c = 2.0 * f * sc;
                    let (u1, u2) = (t_r1 / nb1.r, t_r2 / nb2.r);
                    for c in 0..3 {
                        grad[nb1.index * m + k][c] += t_c * t.dcos_da[c] + u1 * nb1.v[c];
                        grad[nb2.index * m + k][c] += t_c * t.dcos_db[c] + u2 * nb2.v[c];
                    }
                }
            }
        }
    }

    /// Jacobian–vector product for `m` tangents at once: with `tangents[p * m + k] = δD_k` of pair
    /// `p`, write the change of this atom's features under tangent `k` to
    /// `out[k * n_features..][..n_features]` (`out` is overwritten).
    #[inline(always)]
    fn jvp_impl(
        &self,
        neighbours: &[Neighbour],
        tangents: &[[f64; 3]],
        m: usize,
        out: &mut [f64],
        scratch: &mut Scratch,
    ) {
        out.fill(0.0);
        self.prepare(neighbours, scratch);
        let nf = out.len() / m.max(1);
        let n_r = self.p.radial_shifts.len();
        let rc = self.p.radial_cutoff;
        let (mut radial_buf, mut dradial_buf) = ([0.0; MAX_RADIAL], [0.0; MAX_RADIAL]);
        let (radial, dradial) = (&mut radial_buf[..n_r], &mut dradial_buf[..n_r]);
        let dot = |x: [f64; 3], y: [f64; 3]| x[0] * y[0] + x[1] * y[1] + x[2] * y[2];
        for (p, nb) in neighbours.iter().enumerate() {
            if nb.r >= rc {
                continue;
            }
            let (fc, dfc) = (nb.fc_radial, nb.dfc_radial);
            self.radial_terms(nb.r, radial, Some(&mut *dradial));
            for q in 0..n_r {
                dradial[q] = dradial[q] * fc + radial[q] * dfc;
            }
            for k in 0..m {
                let dr = dot(nb.v, tangents[p * m + k]) / nb.r;
                let row = &mut out[k * nf + nb.species * n_r..][..n_r];
                for q in 0..n_r {
                    row[q] += dradial[q] * dr;
                }
            }
        }
        let n_z = self.p.angle_sections.len();
        let n_a = self.p.angular_shifts.len();
        let block = self.block;
        let Scratch {
            angular,
            cot_t: acc,
            u: p_beta,
            v: q_eps,
        } = scratch;
        if angular.len() < 2 {
            return;
        }
        // Accumulated as `[species pair][z][a * m + k]` (contiguous over all members), written
        // back to `out[k * nf + ...]` at the end.
        let n_pairs_species = self.p.n_species_pairs();
        acc.clear();
        acc.resize(n_pairs_species * block * m, 0.0);
        let width = n_a * m;
        p_beta.clear();
        p_beta.resize(width, 0.0);
        q_eps.clear();
        q_eps.resize(width, 0.0);
        let mut bufs = [[0.0; MAX_ANGULAR]; 5];
        let [a, da, rad, drad, ln_base] = &mut bufs;
        let (a, da, ln_base) = (&mut a[..n_z], &mut da[..n_z], &mut ln_base[..n_z]);
        let (rad, drad) = (&mut rad[..n_a], &mut drad[..n_a]);
        for (i1, nb1) in angular.iter().enumerate() {
            for nb2 in &angular[i1 + 1..] {
                let t = triple(nb1, nb2);
                self.angle_terms(t.cos, a, Some(da), ln_base);
                self.mean_distance_terms(0.5 * (nb1.r + nb2.r), rad, Some(drad));
                let f = nb1.fc * nb2.fc;
                // δG_k[a, z] = 2 ∂A_z/∂cos · (R_a f δcos_k) + 2 A_z · ε_k[a]
                for k in 0..m {
                    let (ta, tb) = (tangents[nb1.index * m + k], tangents[nb2.index * m + k]);
                    let dr1 = dot(nb1.v, ta) / nb1.r;
                    let dr2 = dot(nb2.v, tb) / nb2.r;
                    let dcos = dot(t.dcos_da, ta) + dot(t.dcos_db, tb);
                    let df = nb1.dfc * nb2.fc * dr1 + nb1.fc * nb2.dfc * dr2;
                    for ia in 0..n_a {
                        p_beta[ia * m + k] = rad[ia] * f * dcos;
                        q_eps[ia * m + k] = drad[ia] * f * 0.5 * (dr1 + dr2) + rad[ia] * df;
                    }
                }
                let sp = self.p.species_pair_index(nb1.species, nb2.species);
                let table = &mut acc[sp * block * m..][..block * m];
                for z in 0..n_z {
                    let (c1, c2) = (2.0 * da[z], 2.0 * a[z]);
                    let row = &mut table[z * width..][..width];
                    for ((o, &pq), &qq) in row.iter_mut().zip(p_beta.iter()).zip(q_eps.iter()) {
                        *o += c1 * pq + c2 * qq;
                    }
                }
            }
        }
        for sp in 0..n_pairs_species {
            let src = &acc[sp * block * m..][..block * m];
            for k in 0..m {
                let dst = &mut out[k * nf + self.n_radial + sp * block..][..block];
                for ia in 0..n_a {
                    for z in 0..n_z {
                        dst[ia * n_z + z] = src[z * width + ia * m + k];
                    }
                }
            }
        }
    }

    dispatch!(
        /// Features of one atom (`out` has `n_features` entries and is overwritten).
        forward, forward_avx2, forward_impl(neighbours: &[Neighbour], out: &mut [f64], scratch: &mut Scratch)
    );
    dispatch!(
        /// Vector–Jacobian product: with `cotangent = ∂L/∂G` of this atom, add `∂L/∂D` of each pair
        /// vector to `grad` (one entry per neighbour).
        vjp, vjp_avx2, vjp_impl(neighbours: &[Neighbour], cotangents: &[f64], m: usize, grad: &mut [[f64; 3]], scratch: &mut Scratch)
    );
    dispatch!(
        /// Jacobian–vector product: with `tangent[p] = δD` of each pair vector, the change of this
        /// atom's features (`out` is overwritten).
        jvp, jvp_avx2, jvp_impl(neighbours: &[Neighbour], tangents: &[[f64; 3]], m: usize, out: &mut [f64], scratch: &mut Scratch)
    );
}
