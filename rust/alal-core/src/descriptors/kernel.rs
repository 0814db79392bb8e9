//! Per-atom kernels: the descriptor of one atom from its neighbours, its vector–Jacobian product
//! (cotangent on the features → cotangent on each pair vector) and its Jacobian–vector product
//! (tangent on each pair vector → tangent on the features).

use super::fastmath;
use super::params::{AniParams, MAX_ANGULAR, MAX_RADIAL};

/// A public method that runs an `#[inline(always)]` implementation compiled for AVX2 and FMA when
/// the CPU has them, and for the baseline otherwise. Both use the same operations in the same
/// order (FMA only where the code asks for `mul_add`, correctly rounded either way), so results
/// are bitwise identical.
macro_rules! dispatch {
    ($(#[$doc:meta])* $name:ident, $avx2:ident, $imp:ident($($arg:ident: $ty:ty),*)) => {
        $(#[$doc])*
        pub fn $name(&self, $($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                if fastmath::simd() {
                    // SAFETY: the CPU supports AVX2 and FMA (checked just above).
                    return unsafe { self.$avx2($($arg),*) };
                }
            }
            self.$imp($($arg),*)
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn $avx2(&self, $($arg: $ty),*) {
            self.$imp($($arg),*)
        }
    };
}

/// Loop extents of the kernels: angle sections `z`, angular shifts `a`, radial shifts `r` and
/// cotangents/tangents `m`. [`Fixed`] makes them compile-time constants for the common parameter
/// sets, so that the per-triple loops unroll and vectorise; [`Runtime`] serves any other set.
/// Both run the same operations in the same order, so results are bitwise identical.
trait Dims: Copy {
    fn z(self) -> usize;
    fn a(self) -> usize;
    fn r(self) -> usize;
    fn m(self) -> usize;
}

/// Extents fixed at compile time (`M = 0`: the number of members is a runtime value).
#[derive(Clone, Copy)]
struct Fixed<const Z: usize, const A: usize, const R: usize, const M: usize> {
    m: usize,
}

impl<const Z: usize, const A: usize, const R: usize, const M: usize> Dims for Fixed<Z, A, R, M> {
    #[inline(always)]
    fn z(self) -> usize {
        Z
    }
    #[inline(always)]
    fn a(self) -> usize {
        A
    }
    #[inline(always)]
    fn r(self) -> usize {
        R
    }
    #[inline(always)]
    fn m(self) -> usize {
        if M > 0 {
            M
        } else {
            self.m
        }
    }
}

/// Extents known only at run time.
#[derive(Clone, Copy)]
struct Runtime {
    z: usize,
    a: usize,
    r: usize,
    m: usize,
}

impl Dims for Runtime {
    #[inline(always)]
    fn z(self) -> usize {
        self.z
    }
    #[inline(always)]
    fn a(self) -> usize {
        self.a
    }
    #[inline(always)]
    fn r(self) -> usize {
        self.r
    }
    #[inline(always)]
    fn m(self) -> usize {
        self.m
    }
}

/// `$body` with `$d` bound to the [`Dims`] of this kernel: compile-time extents for the presets
/// (ANI-1x: 8 sections, 4 angular and 16 radial shifts; ANI-Al: 8, 8, 32; ANI-Al smooth: 8, 8, 12),
/// run-time extents otherwise. With `members`, one cotangent (`m = 1`) is a further constant.
macro_rules! with_dims {
    ($kernel:expr, $m:expr, $d:ident => $body:expr) => {{
        let (z, a, r, m) = ($kernel.n_z, $kernel.n_a, $kernel.n_r, $m);
        match (z, a, r) {
            (8, 4, 16) => {
                let $d = Fixed::<8, 4, 16, 0> { m };
                $body
            }
            (8, 8, 32) => {
                let $d = Fixed::<8, 8, 32, 0> { m };
                $body
            }
            (8, 8, 12) => {
                let $d = Fixed::<8, 8, 12, 0> { m };
                $body
            }
            _ => {
                let $d = Runtime { z, a, r, m };
                $body
            }
        }
    }};
    ($kernel:expr, $m:expr, members, $d:ident => $body:expr) => {{
        let (z, a, r, m) = ($kernel.n_z, $kernel.n_a, $kernel.n_r, $m);
        match (z, a, r, m) {
            (8, 4, 16, 1) => {
                let $d = Fixed::<8, 4, 16, 1> { m };
                $body
            }
            (8, 8, 32, 1) => {
                let $d = Fixed::<8, 8, 32, 1> { m };
                $body
            }
            (8, 8, 12, 1) => {
                let $d = Fixed::<8, 8, 12, 1> { m };
                $body
            }
            _ => with_dims!($kernel, m, $d => $body),
        }
    }};
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
    /// `1 / r` (Å⁻¹): the per-triple terms multiply by it instead of dividing by `r`.
    inv_r: f64,
    fc: f64,
    dfc: f64,
}

/// Reusable per-thread buffers.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    angular: Vec<AngularNeighbour>,
    /// With a [`MeanSplit`]: the pair factors `P_a` of each angular neighbour (`n_a` per
    /// neighbour), and the triple factors `g` of one neighbour with each later one.
    pair_factors: Vec<f64>,
    triple_factors: Vec<f64>,
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

/// The angular Gaussians of the mean distance, `R_a = exp(−η (m − Rs_a)²)` with
/// `m = (r_j + r_k) / 2`, split about a centre `c` (Å) into a factor per pair and shift and one per
/// triple: `R_a = P_a(r_j) · P_a(r_k) · g(m)`, `P_a(r) = exp(η (r − c)(Rs_a − c) − η (Rs_a − c)² / 2)`,
/// `g(m) = exp(−η (m − c)²)`. One exponential per triple (computed a row of triples at a time)
/// instead of one per shift: ANI-Al's forward pass spends 16 % less, its vector–Jacobian product
/// 10 % (ANI-1x's four shifts: no change either way).
///
/// Each exponent is bounded by [`MeanSplit::MAX_EXPONENT`] (so nothing over- or underflows on
/// the way), and each carries a rounding error of about `|exponent| · 2⁻⁵³`: relative errors of
/// ~1e-14 in `R_a` for ANI-Al (exponents up to ~55), against ~1e-16 computing each Gaussian
/// directly. Parameter sets whose exponents could be larger keep the direct computation.
#[derive(Debug, Clone, Copy)]
struct MeanSplit {
    centre: f64,
}

impl MeanSplit {
    /// Largest exponent magnitude allowed in a factor: the product of three factors then stays
    /// inside the normal doubles (`e^±708`), and its relative rounding error below ~3e-14.
    const MAX_EXPONENT: f64 = 100.0;

    /// The split for `p`, if every factor's exponent stays within [`Self::MAX_EXPONENT`] for all
    /// distances in `[0, angular_cutoff]`.
    fn new(p: &AniParams) -> Option<Self> {
        let shifts = &p.angular_shifts;
        let lo = shifts.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = shifts.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let centre = 0.5 * (lo + hi);
        let half_width = 0.5 * (hi - lo);
        let reach = centre.abs().max((p.angular_cutoff - centre).abs());
        let eta = p.angular_eta;
        let pair = eta * reach * half_width + 0.5 * eta * half_width * half_width;
        let triple = eta * reach * reach;
        (pair.max(triple) <= Self::MAX_EXPONENT).then_some(MeanSplit { centre })
    }

    /// `P_a(r)` of each angular neighbour, `n_a` per neighbour, into `out`.
    #[inline(always)]
    fn pair_factors(
        self,
        p: &AniParams,
        n_a: usize,
        angular: &[AngularNeighbour],
        out: &mut Vec<f64>,
    ) {
        let (c, eta) = (self.centre, p.angular_eta);
        out.clear();
        for nb in angular {
            for &shift in &p.angular_shifts[..n_a] {
                let s = shift - c;
                out.push(eta * (nb.r - c) * s - 0.5 * eta * s * s);
            }
        }
        fastmath::exp_in_place(out);
    }

    /// `g` of neighbour `first` with each later one, into `out[first + 1..]`.
    #[inline(always)]
    fn triple_factors(
        self,
        eta: f64,
        angular: &[AngularNeighbour],
        first: usize,
        out: &mut Vec<f64>,
    ) {
        out.resize(angular.len(), 0.0);
        let r1 = angular[first].r;
        for (o, nb) in out[first + 1..].iter_mut().zip(&angular[first + 1..]) {
            let x = 0.5 * (r1 + nb.r) - self.centre;
            *o = -eta * x * x;
        }
        fastmath::exp_nonpositive_in_place(&mut out[first + 1..]);
    }
}

/// For each member `k`: `s0_k = Σ_a u[a·m + k] R_a`, `s1_k = Σ_a u[a·m + k] R'_a` and
/// `sc_k = Σ_a v[a·m + k] R_a` (each summed in order of `a`), into `sums = [s0, s1, sc]`. The
/// partial sums stay in registers, four members at a time (summed through memory, each addition
/// waited on the store of the previous one: 12 % of ANI-Al's vector–Jacobian product).
#[inline(always)]
fn shift_sums(m: usize, u: &[f64], v: &[f64], rad: &[f64], drad: &[f64], sums: [&mut [f64]; 3]) {
    let [s0, s1, sc] = sums;
    let mut k = shift_sums_block::<4>(m, 0, u, v, rad, drad, [&mut *s0, &mut *s1, &mut *sc]);
    while k < m {
        k = shift_sums_block::<1>(m, k, u, v, rad, drad, [&mut *s0, &mut *s1, &mut *sc]);
    }
}

/// The members `k0..` of [`shift_sums`] in whole blocks of `W`; returns the first member not done.
#[inline(always)]
fn shift_sums_block<const W: usize>(
    m: usize,
    k0: usize,
    u: &[f64],
    v: &[f64],
    rad: &[f64],
    drad: &[f64],
    sums: [&mut [f64]; 3],
) -> usize {
    let end = k0 + (m - k0) / W * W;
    let mut k = k0;
    while k < end {
        let (mut a0, mut a1, mut ac) = ([0.0f64; W], [0.0f64; W], [0.0f64; W]);
        for (ia, (&ra, &dra)) in rad.iter().zip(drad).enumerate() {
            let (ur, vr) = (&u[ia * m + k..][..W], &v[ia * m + k..][..W]);
            for l in 0..W {
                a0[l] += ur[l] * ra;
                a1[l] += ur[l] * dra;
                ac[l] += vr[l] * ra;
            }
        }
        sums[0][k..k + W].copy_from_slice(&a0);
        sums[1][k..k + W].copy_from_slice(&a1);
        sums[2][k..k + W].copy_from_slice(&ac);
        k += W;
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
    /// Angle sections, angular shifts and radial shifts.
    n_z: usize,
    n_a: usize,
    n_r: usize,
    /// ζ when it is a small integer: powers by repeated squaring instead of exp(ζ ln x).
    zeta_int: Option<u32>,
    /// How the mean-distance Gaussians are computed, when they can be split.
    mean_split: Option<MeanSplit>,
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

/// Geometry of a triple `(i, j, k)`: cosine of the angle and its gradients w.r.t. both pair vectors.
#[derive(Debug, Clone, Copy)]
struct Triple {
    cos: f64,
    dcos_da: [f64; 3],
    dcos_db: [f64; 3],
}

#[inline(always)]
fn triple(a: &AngularNeighbour, b: &AngularNeighbour) -> Triple {
    let inv12 = a.inv_r * b.inv_r;
    let dot = a.v[0] * b.v[0] + a.v[1] * b.v[1] + a.v[2] * b.v[2];
    let cos = dot * inv12;
    let ca = cos * (a.inv_r * a.inv_r);
    let cb = cos * (b.inv_r * b.inv_r);
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
            n_z: p.angle_sections.len(),
            n_a: p.angular_shifts.len(),
            n_r: p.radial_shifts.len(),
            zeta_int: (p.angular_zeta.fract() == 0.0 && p.angular_zeta <= 1024.0)
                .then_some(p.angular_zeta as u32),
            mean_split: MeanSplit::new(p),
            p: p.clone(),
        }
    }

    pub fn params(&self) -> &AniParams {
        &self.p
    }

    /// A neighbour of species `species` at pair vector `v` (Å), distance `r` (one at a time;
    /// batches go through [`Kernel::fill_cutoffs`]).
    #[cfg(test)]
    pub fn neighbour(&self, species: usize, v: [f64; 3], r: f64) -> Neighbour {
        let (fc_radial, dfc_radial) = fastmath::cosine_cutoff(r, self.p.radial_cutoff);
        let (fc_angular, dfc_angular) = fastmath::cosine_cutoff(r, self.p.angular_cutoff);
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

    /// Fill the cutoff functions of `neighbours` (whose species, vectors and distances are set),
    /// a block of distances at a time (four per instruction with AVX2); the same bits as
    /// [`Kernel::neighbour`].
    pub fn fill_cutoffs(&self, neighbours: &mut [Neighbour]) {
        const BLOCK: usize = 256;
        let mut r = [0.0; BLOCK];
        let (mut fc, mut dfc) = ([0.0; BLOCK], [0.0; BLOCK]);
        for chunk in neighbours.chunks_mut(BLOCK) {
            let n = chunk.len();
            for (x, nb) in r.iter_mut().zip(chunk.iter()) {
                *x = nb.r;
            }
            fastmath::cosine_cutoffs(&r[..n], self.p.radial_cutoff, &mut fc, &mut dfc);
            for (k, nb) in chunk.iter_mut().enumerate() {
                (nb.fc_radial, nb.dfc_radial) = (fc[k], dfc[k]);
            }
            fastmath::cosine_cutoffs(&r[..n], self.p.angular_cutoff, &mut fc, &mut dfc);
            for (k, nb) in chunk.iter_mut().enumerate() {
                (nb.fc_angular, nb.dfc_angular) = (fc[k], dfc[k]);
            }
        }
    }

    /// Angular factors `A_z = ((1 + cos(θ − θ_z)) / 2)^ζ` and, if asked, `dA_z / d cos_ij`
    /// (derivative with respect to the unscaled cosine). `a`, `da` and `ln_base` have one entry
    /// per angle section.
    #[inline(always)]
    fn angle_terms<D: Dims>(
        &self,
        d: D,
        cos: f64,
        a: &mut [f64],
        da: Option<&mut [f64]>,
        ln_base: &mut [f64],
    ) {
        let n = d.z();
        let (a, ln_base) = (&mut a[..n], &mut ln_base[..n]);
        let s = self.p.cos_scale;
        let zeta = self.p.angular_zeta;
        let c = s * cos;
        let sin = (1.0 - c * c).max(0.0).sqrt();
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
                    let da = &mut da[..n];
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
        ln_base.copy_from_slice(a);
        fastmath::ln_guarded_in_place(ln_base);
        match da {
            None => {
                for z in 0..n {
                    a[z] = zeta * ln_base[z];
                }
                fastmath::exp_in_place(a);
            }
            Some(da) => {
                let ratio = c / sin;
                let da = &mut da[..n];
                // base^(ζ−1) in `ln_base`; exactly 1 for ζ = 1 whatever the base (ln_base is
                // finite).
                for z in 0..n {
                    ln_base[z] *= zeta - 1.0;
                }
                fastmath::exp_in_place(ln_base);
                for z in 0..n {
                    let pow_m1 = ln_base[z];
                    a[z] *= pow_m1;
                    da[z] = zeta * pow_m1 * (0.5 * s * (cz[z] - ratio * sz[z]));
                }
            }
        }
    }

    /// Angular radial factors `R_a = exp(−η_A (m − Rs_a)²)` at `m = (r1 + r2) / 2` and, if asked,
    /// `dR_a / dm`; from the factors of a [`MeanSplit`] (`P_a(r1)`, `P_a(r2)`, `g(m)`) when given.
    #[inline(always)]
    fn mean_distance_terms<D: Dims>(
        &self,
        d: D,
        m: f64,
        split: Option<(&[f64], &[f64], f64)>,
        rad: &mut [f64],
        drad: Option<&mut [f64]>,
    ) {
        let n = d.a();
        let (rad, shifts) = (&mut rad[..n], &self.p.angular_shifts[..n]);
        let eta = self.p.angular_eta;
        if let Some((p1, p2, g)) = split {
            let (p1, p2) = (&p1[..n], &p2[..n]);
            for a in 0..n {
                rad[a] = p1[a] * p2[a] * g;
            }
        } else {
            for (r, &shift) in rad.iter_mut().zip(shifts) {
                let x = m - shift;
                *r = -eta * x * x;
            }
            fastmath::exp_nonpositive_in_place(rad);
        }
        if let Some(drad) = drad {
            let drad = &mut drad[..n];
            for a in 0..n {
                drad[a] = -2.0 * eta * (m - shifts[a]) * rad[a];
            }
        }
    }

    /// Radial terms `q · exp(−η_R (r − Rs)²)` and, if asked, their derivative w.r.t. `r`
    /// (without the cutoff function).
    #[inline(always)]
    fn radial_terms<D: Dims>(&self, d: D, r: f64, g: &mut [f64], dg: Option<&mut [f64]>) {
        let n = d.r();
        let (g, shifts) = (&mut g[..n], &self.p.radial_shifts[..n]);
        let eta = self.p.radial_eta;
        let q = self.p.radial_scale;
        for (gk, &shift) in g.iter_mut().zip(shifts) {
            let x = r - shift;
            *gk = -eta * x * x;
        }
        fastmath::exp_nonpositive_in_place(g);
        for gk in g.iter_mut() {
            *gk *= q;
        }
        if let Some(dg) = dg {
            let dg = &mut dg[..n];
            for k in 0..n {
                dg[k] = -2.0 * eta * (r - shifts[k]) * g[k];
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
                    inv_r: 1.0 / nb.r,
                    fc: nb.fc_angular,
                    dfc: nb.dfc_angular,
                });
            }
        }
        if let Some(split) = self.mean_split {
            split.pair_factors(
                &self.p,
                self.n_a,
                &scratch.angular,
                &mut scratch.pair_factors,
            );
        }
    }

    /// The [`MeanSplit`] factors of the triple of angular neighbours `first` and `second`
    /// (`first < second`; `triple_factors` filled for `first`), if the split is on.
    #[inline(always)]
    fn split_factors<'s>(
        &self,
        n_a: usize,
        pair_factors: &'s [f64],
        triple_factors: &[f64],
        first: usize,
        second: usize,
    ) -> Option<(&'s [f64], &'s [f64], f64)> {
        self.mean_split.map(|_| {
            (
                &pair_factors[first * n_a..][..n_a],
                &pair_factors[second * n_a..][..n_a],
                triple_factors[second],
            )
        })
    }

    /// The [`MeanSplit`] triple factors of angular neighbour `first` with each later one, if the
    /// split is on.
    #[inline(always)]
    fn fill_triple_factors(&self, angular: &[AngularNeighbour], first: usize, out: &mut Vec<f64>) {
        if let Some(split) = self.mean_split {
            split.triple_factors(self.p.angular_eta, angular, first, out);
        }
    }

    /// Features of one atom (`out` has `n_features` entries and is overwritten).
    #[inline(always)]
    fn forward_impl(&self, neighbours: &[Neighbour], out: &mut [f64], scratch: &mut Scratch) {
        with_dims!(self, 1, d => self.forward_dims(d, neighbours, out, scratch))
    }

    #[inline(always)]
    fn forward_dims<D: Dims>(
        &self,
        d: D,
        neighbours: &[Neighbour],
        out: &mut [f64],
        scratch: &mut Scratch,
    ) {
        out.fill(0.0);
        self.prepare(neighbours, scratch);
        let n_r = d.r();
        let rc = self.p.radial_cutoff;
        let mut radial_buf = [0.0; MAX_RADIAL];
        let radial = &mut radial_buf[..n_r];
        for nb in neighbours {
            if nb.r >= rc {
                continue;
            }
            let fc = nb.fc_radial;
            self.radial_terms(d, nb.r, radial, None);
            let row = &mut out[nb.species * n_r..][..n_r];
            for (o, g) in row.iter_mut().zip(radial.iter()) {
                *o += g * fc;
            }
        }
        let (n_z, n_a) = (d.z(), d.a());
        let block_len = n_z * n_a;
        let Scratch {
            angular,
            pair_factors,
            triple_factors,
            ..
        } = scratch;
        let (mut a_buf, mut rad_buf, mut ln_buf) =
            ([0.0; MAX_ANGULAR], [0.0; MAX_ANGULAR], [0.0; MAX_ANGULAR]);
        let (a, rad) = (&mut a_buf[..n_z], &mut rad_buf[..n_a]);
        for (i1, nb1) in angular.iter().enumerate() {
            self.fill_triple_factors(angular, i1, triple_factors);
            for (i2, nb2) in angular.iter().enumerate().skip(i1 + 1) {
                let t = triple(nb1, nb2);
                self.angle_terms(d, t.cos, a, None, &mut ln_buf);
                let split = self.split_factors(n_a, pair_factors, triple_factors, i1, i2);
                self.mean_distance_terms(d, 0.5 * (nb1.r + nb2.r), split, rad, None);
                let f = 2.0 * nb1.fc * nb2.fc;
                let start =
                    self.n_radial + self.p.species_pair_index(nb1.species, nb2.species) * block_len;
                let block = &mut out[start..][..block_len];
                for ia in 0..n_a {
                    let fr = f * rad[ia];
                    let row = &mut block[ia * n_z..][..n_z];
                    for z in 0..n_z {
                        row[z] += fr * a[z];
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
        with_dims!(self, m, members, d => self.vjp_dims(d, neighbours, cotangents, grad, scratch))
    }

    #[inline(always)]
    fn vjp_dims<D: Dims>(
        &self,
        d: D,
        neighbours: &[Neighbour],
        cotangents: &[f64],
        grad: &mut [[f64; 3]],
        scratch: &mut Scratch,
    ) {
        let m = d.m();
        self.prepare(neighbours, scratch);
        let nf = cotangents.len() / m.max(1);
        let n_r = d.r();
        let rc = self.p.radial_cutoff;
        let (mut radial_buf, mut dradial_buf) = ([0.0; MAX_RADIAL], [0.0; MAX_RADIAL]);
        let (radial, dradial) = (&mut radial_buf[..n_r], &mut dradial_buf[..n_r]);
        for (p, nb) in neighbours.iter().enumerate() {
            if nb.r >= rc {
                continue;
            }
            let (fc, dfc) = (nb.fc_radial, nb.dfc_radial);
            self.radial_terms(d, nb.r, radial, Some(&mut *dradial));
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
        let (n_z, n_a) = (d.z(), d.a());
        let block = n_z * n_a;
        let Scratch {
            angular,
            pair_factors,
            triple_factors,
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
        let (u, v) = (&mut u[..width], &mut v[..width]);
        let mut bufs = [[0.0; MAX_ANGULAR]; 5];
        let [a, da, rad, drad, ln_base] = &mut bufs;
        let (a, da) = (&mut a[..n_z], &mut da[..n_z]);
        let (rad, drad) = (&mut rad[..n_a], &mut drad[..n_a]);
        let (mut s0, mut s1, mut sc) = (vec![0.0f64; m], vec![0.0f64; m], vec![0.0f64; m]);
        let (s0, s1, sc) = (&mut s0[..m], &mut s1[..m], &mut sc[..m]);
        for (i1, nb1) in angular.iter().enumerate() {
            self.fill_triple_factors(angular, i1, triple_factors);
            for (i2, nb2) in angular.iter().enumerate().skip(i1 + 1) {
                let sp = self.p.species_pair_index(nb1.species, nb2.species);
                let table = &cot_t[sp * block * m..][..block * m];
                let t = triple(nb1, nb2);
                self.angle_terms(d, t.cos, a, Some(&mut *da), ln_base);
                let split = self.split_factors(n_a, pair_factors, triple_factors, i1, i2);
                let mean = 0.5 * (nb1.r + nb2.r);
                self.mean_distance_terms(d, mean, split, rad, Some(&mut *drad));
                contract_sections(table, width, a, da, u, v);
                shift_sums(m, u, v, rad, drad, [&mut *s0, &mut *s1, &mut *sc]);
                let f = nb1.fc * nb2.fc;
                for k in 0..m {
                    let (s0, s1, sc) = (s0[k], s1[k], sc[k]);
                    let t_r1 = 2.0 * (0.5 * s1 * f + s0 * nb1.dfc * nb2.fc);
                    let t_r2 = 2.0 * (0.5 * s1 * f + s0 * nb1.fc * nb2.dfc);
                    let t_c = 2.0 * f * sc;
                    let (u1, u2) = (t_r1 * nb1.inv_r, t_r2 * nb2.inv_r);
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
        with_dims!(self, m, d => self.jvp_dims(d, neighbours, tangents, out, scratch))
    }

    #[inline(always)]
    fn jvp_dims<D: Dims>(
        &self,
        d: D,
        neighbours: &[Neighbour],
        tangents: &[[f64; 3]],
        out: &mut [f64],
        scratch: &mut Scratch,
    ) {
        let m = d.m();
        out.fill(0.0);
        self.prepare(neighbours, scratch);
        let nf = out.len() / m.max(1);
        let n_r = d.r();
        let rc = self.p.radial_cutoff;
        let (mut radial_buf, mut dradial_buf) = ([0.0; MAX_RADIAL], [0.0; MAX_RADIAL]);
        let (radial, dradial) = (&mut radial_buf[..n_r], &mut dradial_buf[..n_r]);
        let dot = |x: [f64; 3], y: [f64; 3]| x[0] * y[0] + x[1] * y[1] + x[2] * y[2];
        for (p, nb) in neighbours.iter().enumerate() {
            if nb.r >= rc {
                continue;
            }
            let (fc, dfc) = (nb.fc_radial, nb.dfc_radial);
            self.radial_terms(d, nb.r, radial, Some(&mut *dradial));
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
        let (n_z, n_a) = (d.z(), d.a());
        let block = n_z * n_a;
        let Scratch {
            angular,
            pair_factors,
            triple_factors,
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
        let (p_beta, q_eps) = (&mut p_beta[..width], &mut q_eps[..width]);
        let mut bufs = [[0.0; MAX_ANGULAR]; 5];
        let [a, da, rad, drad, ln_base] = &mut bufs;
        let (a, da) = (&mut a[..n_z], &mut da[..n_z]);
        let (rad, drad) = (&mut rad[..n_a], &mut drad[..n_a]);
        for (i1, nb1) in angular.iter().enumerate() {
            self.fill_triple_factors(angular, i1, triple_factors);
            for (i2, nb2) in angular.iter().enumerate().skip(i1 + 1) {
                let t = triple(nb1, nb2);
                self.angle_terms(d, t.cos, a, Some(&mut *da), ln_base);
                let split = self.split_factors(n_a, pair_factors, triple_factors, i1, i2);
                let mean = 0.5 * (nb1.r + nb2.r);
                self.mean_distance_terms(d, mean, split, rad, Some(&mut *drad));
                let f = nb1.fc * nb2.fc;
                // δG_k[a, z] = 2 ∂A_z/∂cos · (R_a f δcos_k) + 2 A_z · ε_k[a]
                for k in 0..m {
                    let (ta, tb) = (tangents[nb1.index * m + k], tangents[nb2.index * m + k]);
                    let dr1 = dot(nb1.v, ta) * nb1.inv_r;
                    let dr2 = dot(nb2.v, tb) * nb2.inv_r;
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::PI;

    /// `n` shifts from `a` on, `(b − a) / n` apart (torchani's spacing).
    fn shifts(a: f64, b: f64, n: usize) -> Vec<f64> {
        (0..n).map(|k| a + (b - a) * k as f64 / n as f64).collect()
    }

    /// Eight angle sections, `(2k + 1) π / 16`.
    fn sections() -> Vec<f64> {
        (0..8).map(|k| (2 * k + 1) as f64 * PI / 16.0).collect()
    }

    /// ANI-1x-like constants with two species, ζ integer or not.
    fn params(zeta: f64) -> AniParams {
        AniParams {
            n_species: 2,
            radial_cutoff: 5.2,
            radial_eta: 16.0,
            radial_shifts: shifts(0.9, 5.2, 16),
            radial_scale: 0.25,
            angular_cutoff: 3.5,
            angular_eta: 8.0,
            angular_zeta: zeta,
            angular_shifts: shifts(0.9, 3.5, 4),
            angle_sections: sections(),
            cos_scale: 0.95,
        }
    }

    fn neighbours(kernel: &Kernel) -> Vec<Neighbour> {
        let mut uniform = crate::uniform_numbers(7);
        (0..30)
            .map(|k| {
                let v = [
                    8.0 * uniform() - 4.0,
                    8.0 * uniform() - 4.0,
                    8.0 * uniform() - 4.0,
                ];
                let r = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
                kernel.neighbour(k % 2, v, r)
            })
            .collect()
    }

    /// ANI-Al's angular constants (Smith et al. 2021), one species.
    fn ani_al_angular() -> AniParams {
        AniParams {
            n_species: 1,
            radial_cutoff: 7.0,
            radial_eta: 43.9,
            radial_shifts: shifts(1.25, 7.0, 32),
            radial_scale: 0.25,
            angular_cutoff: 5.0,
            angular_eta: 6.5,
            angular_zeta: 69.4,
            angular_shifts: shifts(1.25, 5.0, 8),
            angle_sections: sections(),
            cos_scale: 0.95,
        }
    }

    /// The split mean-distance Gaussians equal the direct ones to 1e-13 (relative to the largest
    /// Gaussian, 1) over all pairs of distances in the angular cutoff, with ANI-Al's and
    /// ANI-1x's constants; the split is refused where its exponents could grow large.
    #[test]
    fn split_mean_gaussians_match_the_direct_ones() {
        for p in [ani_al_angular(), params(32.0)] {
            let kernel = Kernel::new(&p);
            let split = kernel.mean_split.expect("the split applies to the presets");
            let n_a = p.angular_shifts.len();
            let d = Runtime {
                z: 8,
                a: n_a,
                r: p.radial_shifts.len(),
                m: 1,
            };
            let rc = p.angular_cutoff;
            let angular: Vec<AngularNeighbour> = (0..=200)
                .map(|k| AngularNeighbour {
                    index: k,
                    species: 0,
                    v: [0.0; 3],
                    r: rc * k as f64 / 200.0,
                    inv_r: 200.0 / (rc * k as f64),
                    fc: 1.0,
                    dfc: 0.0,
                })
                .collect();
            let (mut pair, mut triple) = (Vec::new(), Vec::new());
            split.pair_factors(&p, n_a, &angular, &mut pair);
            let mut worst: f64 = 0.0;
            for first in 0..angular.len() {
                split.triple_factors(p.angular_eta, &angular, first, &mut triple);
                for second in first + 1..angular.len() {
                    let m = 0.5 * (angular[first].r + angular[second].r);
                    let (mut direct, mut drad_direct) = ([0.0; MAX_ANGULAR], [0.0; MAX_ANGULAR]);
                    kernel.mean_distance_terms(d, m, None, &mut direct, Some(&mut drad_direct));
                    let (mut split_rad, mut drad_split) = ([0.0; MAX_ANGULAR], [0.0; MAX_ANGULAR]);
                    let factors = Some((
                        &pair[first * n_a..][..n_a],
                        &pair[second * n_a..][..n_a],
                        triple[second],
                    ));
                    kernel.mean_distance_terms(
                        d,
                        m,
                        factors,
                        &mut split_rad,
                        Some(&mut drad_split),
                    );
                    for a in 0..n_a {
                        worst = worst.max((split_rad[a] - direct[a]).abs());
                        worst = worst.max((drad_split[a] - drad_direct[a]).abs() / p.angular_eta);
                    }
                }
            }
            assert!(worst < 1e-13, "largest difference {worst:e}");
        }
        // Exponents of a few hundred would cost accuracy (and could overflow): direct.
        let wide = AniParams {
            angular_eta: 100.0,
            ..ani_al_angular()
        };
        assert!(Kernel::new(&wide).mean_split.is_none());
        let far = AniParams {
            angular_shifts: vec![0.5, 40.0],
            angular_cutoff: 40.0,
            ..ani_al_angular()
        };
        assert!(Kernel::new(&far).mean_split.is_none());
    }

    /// The compile-time extents change nothing but speed: forward, VJP and JVP give the same bits
    /// as with run-time extents, for one and for three cotangents/tangents.
    #[test]
    fn fixed_extents_give_the_runtime_bits() {
        for zeta in [32.0, 14.1] {
            let kernel = Kernel::new(&params(zeta));
            let nbs = neighbours(&kernel);
            let nf = kernel.params().n_features();
            let runtime = |m| Runtime {
                z: 8,
                a: 4,
                r: 16,
                m,
            };
            let mut scratch = Scratch::default();
            let (mut fixed_out, mut runtime_out) = (vec![0.0; nf], vec![0.0; nf]);
            kernel.forward_dims(
                Fixed::<8, 4, 16, 0> { m: 1 },
                &nbs,
                &mut fixed_out,
                &mut scratch,
            );
            kernel.forward_dims(runtime(1), &nbs, &mut runtime_out, &mut scratch);
            assert!(fixed_out.iter().any(|&x| x != 0.0));
            assert_eq!(fixed_out, runtime_out);
            for m in [1, 3] {
                let cot: Vec<f64> = (0..m * nf).map(|k| ((k * 37) % 11) as f64 - 5.0).collect();
                let mut runtime_grad = vec![[0.0; 3]; nbs.len() * m];
                kernel.vjp_dims(runtime(m), &nbs, &cot, &mut runtime_grad, &mut scratch);
                let mut fixed_grad = vec![[0.0; 3]; nbs.len() * m];
                if m == 1 {
                    let d = Fixed::<8, 4, 16, 1> { m };
                    kernel.vjp_dims(d, &nbs, &cot, &mut fixed_grad, &mut scratch);
                } else {
                    let d = Fixed::<8, 4, 16, 0> { m };
                    kernel.vjp_dims(d, &nbs, &cot, &mut fixed_grad, &mut scratch);
                }
                assert_eq!(fixed_grad, runtime_grad, "vjp, m = {m}, ζ = {zeta}");
                // The public entry point (with its own dispatch) agrees too.
                let mut public_grad = vec![[0.0; 3]; nbs.len() * m];
                kernel.vjp(&nbs, &cot, m, &mut public_grad, &mut scratch);
                assert_eq!(public_grad, runtime_grad, "public vjp, m = {m}, ζ = {zeta}");

                let tangents: Vec<[f64; 3]> = (0..nbs.len() * m)
                    .map(|k| [(k % 5) as f64 - 2.0, (k % 3) as f64 - 1.0, 0.5])
                    .collect();
                let (mut fixed_t, mut runtime_t) = (vec![0.0; m * nf], vec![0.0; m * nf]);
                let d = Fixed::<8, 4, 16, 0> { m };
                kernel.jvp_dims(d, &nbs, &tangents, &mut fixed_t, &mut scratch);
                kernel.jvp_dims(runtime(m), &nbs, &tangents, &mut runtime_t, &mut scratch);
                assert_eq!(fixed_t, runtime_t, "jvp, m = {m}, ζ = {zeta}");
            }
        }
    }
}
