//! Branch-free `exp`, `ln` and the cosine cutoff, accurate to a few ulp, four lanes at a time.
//!
//! The descriptor spends most of its time in `exp` (and `ln` for a non-integer ζ) over short arrays
//! (one entry per radial shift or angle section), and its neighbourhoods in the cutoff's cosine and
//! sine. libm's functions are opaque scalar calls; these are plain arithmetic, with AVX2 versions
//! written with intrinsics that do the same operations in the same order. Their polynomials use
//! fused multiply–adds: `f64::mul_add` in the scalar functions and `vfmadd` in the vector ones,
//! both correctly rounded, so results are the same bits on every machine (one without FMA
//! hardware runs the scalar functions, slowly, through libm's `fma`).

/// Whether the CPU has AVX2 and FMA, which the four-lane functions and the descriptor kernels'
/// fast paths need.
#[inline(always)]
pub(crate) fn simd() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

const LOG2E: f64 = std::f64::consts::LOG2_E;
/// ln 2 split in a high part with trailing zero bits (exact products with small integers) and the rest.
const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
/// 1.5 · 2⁵²: adding it rounds to the nearest integer and leaves that integer in the low bits.
const ROUND: f64 = 6_755_399_441_055_744.0;
const SQRT2: f64 = std::f64::consts::SQRT_2;

/// A polynomial by Estrin's scheme: pairs `a_k + a_{k+1}·x`, then pairs of those with `x²`, `x⁴`,
/// `x⁸`. The same fused multiply–adds as Horner's rule plus three squarings, but a dependency
/// chain of four instead of one per coefficient (the scalar and the AVX2 functions share it, so
/// both give the same bits). `$c` holds 11 or 14 coefficients, the highest power first; `$set`,
/// `$fma` (`a·b + c`, rounded once) and `$mul` are the lane type's broadcast, fused multiply–add
/// and multiplication.
macro_rules! estrin {
    (14, $c:expr, $x:expr, $set:expr, $fma:expr, $mul:expr) => {{
        let (c, x, set, fma, mul) = (&$c, $x, $set, $fma, $mul);
        let a = |k: usize| set(c[13 - k]);
        let pair = |k: usize| fma(a(k + 1), x, a(k));
        let x2 = mul(x, x);
        let x4 = mul(x2, x2);
        let x8 = mul(x4, x4);
        let s0 = fma(pair(2), x2, pair(0));
        let s1 = fma(pair(6), x2, pair(4));
        let s2 = fma(pair(10), x2, pair(8));
        let t0 = fma(s1, x4, s0);
        let t1 = fma(pair(12), x4, s2);
        fma(t1, x8, t0)
    }};
    (11, $c:expr, $x:expr, $set:expr, $fma:expr, $mul:expr) => {{
        let (c, x, set, fma, mul) = (&$c, $x, $set, $fma, $mul);
        let a = |k: usize| set(c[10 - k]);
        let pair = |k: usize| fma(a(k + 1), x, a(k));
        let x2 = mul(x, x);
        let x4 = mul(x2, x2);
        let x8 = mul(x4, x4);
        let s0 = fma(pair(2), x2, pair(0));
        let s1 = fma(pair(6), x2, pair(4));
        let s2 = fma(a(10), x2, pair(8));
        let t0 = fma(s1, x4, s0);
        fma(s2, x8, t0)
    }};
}

/// Estrin's scheme on `f64` (see [`estrin`]).
macro_rules! estrin_f64 {
    ($n:tt, $c:expr, $x:expr) => {
        estrin!(
            $n,
            $c,
            $x,
            |v: f64| v,
            |a: f64, b: f64, c: f64| a.mul_add(b, c),
            |a: f64, b: f64| a * b
        )
    };
}

/// Estrin's scheme on four lanes of AVX2 + FMA (see [`estrin`]); only inside functions compiled
/// for those features.
#[cfg(target_arch = "x86_64")]
macro_rules! estrin_m256 {
    ($n:tt, $c:expr, $x:expr) => {
        estrin!(
            $n,
            $c,
            $x,
            |v: f64| _mm256_set1_pd(v),
            |a, b, c| _mm256_fmadd_pd(a, b, c),
            |a, b| _mm256_mul_pd(a, b)
        )
    };
}

/// `e^x`; 0 below −708.39 (instead of subnormal values), `+inf` above 709.78, NaN for NaN.
#[inline(always)]
pub fn exp(x: f64) -> f64 {
    let xc = x.clamp(-708.0, 709.0);
    let t = xc * LOG2E + ROUND;
    let k = t - ROUND;
    // |r| ≤ ln2 / 2; the Taylor series to degree 13 has a truncation error below 1e-17 there.
    let r = (xc - k * LN2_HI) - k * LN2_LO;
    let p = estrin_f64!(14, EXP_COEFFS, r);
    // 2^k from the integer left in the low bits of t.
    let ki = t.to_bits().wrapping_sub(ROUND.to_bits());
    let scale = f64::from_bits(ki.wrapping_add(1023) << 52);
    let y = p * scale;
    let y = if x < -708.39 { 0.0 } else { y };
    let y = if x > 709.78 { f64::INFINITY } else { y };
    if x.is_nan() {
        f64::NAN
    } else {
        y
    }
}

/// Natural logarithm of a positive, normal, finite `x` (callers guard zero themselves).
#[inline(always)]
pub fn ln(x: f64) -> f64 {
    let bits = x.to_bits();
    // Exponent as a float without int→float conversion: 2⁵² + e in the mantissa field.
    let e_field = f64::from_bits((bits >> 52) | 0x4330_0000_0000_0000) - 4_503_599_627_370_496.0;
    let m = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000); // [1, 2)
    let big = m > SQRT2;
    let m = if big { 0.5 * m } else { m };
    let e = e_field - 1023.0 + if big { 1.0 } else { 0.0 };
    // ln m = 2 atanh(f), f = (m − 1)/(m + 1), |f| ≤ 0.1716.
    let f = (m - 1.0) / (m + 1.0);
    let f2 = f * f;
    let p = estrin_f64!(11, LN_COEFFS, f2);
    let ln_m = 2.0 * f + 2.0 * f * f2 * p;
    e * LN2_HI + (e * LN2_LO + ln_m)
}

/// The Taylor polynomial of [`exp`] on the reduced argument: `p(r) ≈ e^r` for `|r| ≤ ln2 / 2`.
const EXP_COEFFS: [f64; 14] = [
    1.0 / 6_227_020_800.0,
    1.0 / 479_001_600.0,
    1.0 / 39_916_800.0,
    1.0 / 3_628_800.0,
    1.0 / 362_880.0,
    1.0 / 40_320.0,
    1.0 / 5_040.0,
    1.0 / 720.0,
    1.0 / 120.0,
    1.0 / 24.0,
    1.0 / 6.0,
    0.5,
    1.0,
    1.0,
];

/// The odd series of [`ln`]: `ln m = 2f + 2f·f²·p(f²)`.
const LN_COEFFS: [f64; 11] = [
    1.0 / 23.0,
    1.0 / 21.0,
    1.0 / 19.0,
    1.0 / 17.0,
    1.0 / 15.0,
    1.0 / 13.0,
    1.0 / 11.0,
    1.0 / 9.0,
    1.0 / 7.0,
    1.0 / 5.0,
    1.0 / 3.0,
];

/// Guarded logarithm: [`ln`] above `1e-300`, `-1e300` at or below (for bases that underflow).
#[inline(always)]
pub fn ln_guarded(x: f64) -> f64 {
    if x > 1e-300 {
        ln(x)
    } else {
        -1e300
    }
}

/// `$scalar` of every entry of `$xs`, in place: four lanes at a time by `$vector` when the CPU has
/// AVX2 and FMA and there are at least four entries, one by one otherwise (the same bits).
macro_rules! lanes_in_place {
    ($xs:expr, $vector:path, $scalar:path) => {{
        let xs: &mut [f64] = $xs;
        #[cfg(target_arch = "x86_64")]
        {
            if xs.len() >= 4 && simd() {
                // SAFETY: the CPU supports AVX2 and FMA (checked just above).
                unsafe { $vector(xs) };
                return;
            }
        }
        for x in xs {
            *x = $scalar(*x);
        }
    }};
}

/// `e^x` of every entry, in place. With AVX2 and FMA, four entries per instruction; otherwise
/// [`exp`] one by one. Both give the same bits: the same operations in the same order.
#[inline(always)]
pub fn exp_in_place(xs: &mut [f64]) {
    lanes_in_place!(xs, avx2::exp_in_place, exp);
}

/// [`exp_in_place`] for entries known to be finite and `≤ 0` (the Gaussians `−η (r − Rs)²`): the
/// same bits, without the vector version's tests for overflow and NaN.
#[inline(always)]
pub fn exp_nonpositive_in_place(xs: &mut [f64]) {
    debug_assert!(
        xs.iter().all(|&x| x <= 0.0),
        "exp_nonpositive_in_place: an entry is > 0 or NaN"
    );
    lanes_in_place!(xs, avx2::exp_nonpositive_in_place, exp);
}

/// [`ln_guarded`] of every entry, in place, as [`exp_in_place`].
#[inline(always)]
pub fn ln_guarded_in_place(xs: &mut [f64]) {
    lanes_in_place!(xs, avx2::ln_guarded_in_place, ln_guarded);
}

/// Taylor coefficients of `sin y / y` in `u = y²`, highest power first (degree 21 in `y`:
/// truncation error below 2e-18 for `|y| ≤ π/2`).
#[rustfmt::skip]
const SIN_COEFFS: [f64; 11] = [1.0 / 51090942171709440000.0, -1.0 / 121645100408832000.0, 1.0 / 355687428096000.0, -1.0 / 1307674368000.0, 1.0 / 6227020800.0, -1.0 / 39916800.0, 1.0 / 362880.0, -1.0 / 5040.0, 1.0 / 120.0, -1.0 / 6.0, 1.0];
/// Taylor coefficients of `cos y` in `u = y²`, highest power first (degree 20 in `y`:
/// truncation error below 2e-17 for `|y| ≤ π/2`).
#[rustfmt::skip]
const COS_COEFFS: [f64; 11] = [1.0 / 2432902008176640000.0, -1.0 / 6402373705728000.0, 1.0 / 20922789888000.0, -1.0 / 87178291200.0, 1.0 / 479001600.0, -1.0 / 3628800.0, 1.0 / 40320.0, -1.0 / 720.0, 1.0 / 24.0, -1.0 / 2.0, 1.0];

/// `(cos πt, sin πt)` for `t` in `[0, 1]`, within 1e-15 of libm (absolute): polynomials in
/// `y = πt − π/2` (`cos πt = −sin y`, `sin πt = cos y`). Plain arithmetic, so a loop over it can be
/// written four lanes at a time with the same bits ([`cosine_cutoffs`]).
#[inline(always)]
pub fn cos_sin_pi(t: f64) -> (f64, f64) {
    let y = std::f64::consts::PI * t - std::f64::consts::FRAC_PI_2;
    let u = y * y;
    let p = estrin_f64!(11, SIN_COEFFS, u);
    let q = estrin_f64!(11, COS_COEFFS, u);
    (-(y * p), q)
}

/// The cosine cutoff `fc(r) = ½ cos(π r / rc) + ½` and its derivative `−(π / 2rc) sin(π r / rc)`,
/// both zero from `rc` on.
#[inline(always)]
pub fn cosine_cutoff(r: f64, rc: f64) -> (f64, f64) {
    if r >= rc {
        return (0.0, 0.0);
    }
    let (c, s) = cos_sin_pi(r / rc);
    (0.5 * c + 0.5, (-0.5 * std::f64::consts::PI / rc) * s)
}

/// [`cosine_cutoff`] of every distance in `r` into `fc` and `dfc` (the same bits), four at a time
/// with AVX2.
#[inline(always)]
pub fn cosine_cutoffs(r: &[f64], rc: f64, fc: &mut [f64], dfc: &mut [f64]) {
    let n = r.len().min(fc.len()).min(dfc.len());
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    {
        if n >= 4 && simd() {
            // SAFETY: the CPU supports AVX2 and FMA (checked just above).
            done = unsafe { avx2::cosine_cutoffs(&r[..n], rc, &mut fc[..n], &mut dfc[..n]) };
        }
    }
    for k in done..n {
        (fc[k], dfc[k]) = cosine_cutoff(r[k], rc);
    }
}

/// Four-lane versions of [`exp`] and [`ln_guarded`]. LLVM does not vectorise loops over the
/// scalar functions of 8 or 12 entries (its vector loop body starts from 16 iterations, and its
/// SLP vectoriser gives up on the bit manipulation), so these are written with intrinsics.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{
        COS_COEFFS, EXP_COEFFS, LN2_HI, LN2_LO, LN_COEFFS, LOG2E, ROUND, SIN_COEFFS, SQRT2,
    };
    use std::arch::x86_64::*;

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn exp4(x: __m256d) -> __m256d {
        let set = |v: f64| _mm256_set1_pd(v);
        // clamp(−708, 709): NaN lanes are restored at the end.
        let xc = _mm256_min_pd(_mm256_max_pd(x, set(-708.0)), set(709.0));
        let y = exp4_clamped(x, xc);
        let y = _mm256_blendv_pd(
            y,
            set(f64::INFINITY),
            _mm256_cmp_pd::<_CMP_GT_OQ>(x, set(709.78)),
        );
        _mm256_blendv_pd(y, set(f64::NAN), _mm256_cmp_pd::<_CMP_UNORD_Q>(x, x))
    }

    /// [`exp4`] of finite lanes `≤ 0`: no upper clamp, no overflow or NaN lanes to restore.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn exp_nonpositive4(x: __m256d) -> __m256d {
        exp4_clamped(x, _mm256_max_pd(x, _mm256_set1_pd(-708.0)))
    }

    /// `e^x` from `xc`, `x` clamped to `[−708, 709]`; 0 where `x < −708.39`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn exp4_clamped(x: __m256d, xc: __m256d) -> __m256d {
        let set = |v: f64| _mm256_set1_pd(v);
        let t = _mm256_add_pd(_mm256_mul_pd(xc, set(LOG2E)), set(ROUND));
        let k = _mm256_sub_pd(t, set(ROUND));
        let r = _mm256_sub_pd(
            _mm256_sub_pd(xc, _mm256_mul_pd(k, set(LN2_HI))),
            _mm256_mul_pd(k, set(LN2_LO)),
        );
        let p = estrin_m256!(14, EXP_COEFFS, r);
        let ki = _mm256_sub_epi64(
            _mm256_castpd_si256(t),
            _mm256_set1_epi64x(ROUND.to_bits() as i64),
        );
        let scale = _mm256_slli_epi64::<52>(_mm256_add_epi64(ki, _mm256_set1_epi64x(1023)));
        let y = _mm256_mul_pd(p, _mm256_castsi256_pd(scale));
        _mm256_blendv_pd(y, set(0.0), _mm256_cmp_pd::<_CMP_LT_OQ>(x, set(-708.39)))
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn ln_guarded4(x: __m256d) -> __m256d {
        let set = |v: f64| _mm256_set1_pd(v);
        let positive = _mm256_cmp_pd::<_CMP_GT_OQ>(x, set(1e-300));
        // Lanes at or below 1e-300 (and NaN) compute ln 1 and are replaced at the end.
        let x = _mm256_blendv_pd(set(1.0), x, positive);
        let bits = _mm256_castpd_si256(x);
        let e_field = _mm256_sub_pd(
            _mm256_castsi256_pd(_mm256_or_si256(
                _mm256_srli_epi64::<52>(bits),
                _mm256_set1_epi64x(0x4330_0000_0000_0000),
            )),
            set(4_503_599_627_370_496.0),
        );
        let m = _mm256_castsi256_pd(_mm256_or_si256(
            _mm256_and_si256(bits, _mm256_set1_epi64x(0x000f_ffff_ffff_ffff)),
            _mm256_set1_epi64x(0x3ff0_0000_0000_0000),
        ));
        let big = _mm256_cmp_pd::<_CMP_GT_OQ>(m, set(SQRT2));
        let m = _mm256_blendv_pd(m, _mm256_mul_pd(set(0.5), m), big);
        let e = _mm256_add_pd(
            _mm256_sub_pd(e_field, set(1023.0)),
            _mm256_blendv_pd(set(0.0), set(1.0), big),
        );
        let f = _mm256_div_pd(_mm256_sub_pd(m, set(1.0)), _mm256_add_pd(m, set(1.0)));
        let f2 = _mm256_mul_pd(f, f);
        let p = estrin_m256!(11, LN_COEFFS, f2);
        let two_f = _mm256_mul_pd(set(2.0), f);
        let ln_m = _mm256_add_pd(two_f, _mm256_mul_pd(_mm256_mul_pd(two_f, f2), p));
        let y = _mm256_add_pd(
            _mm256_mul_pd(e, set(LN2_HI)),
            _mm256_add_pd(_mm256_mul_pd(e, set(LN2_LO)), ln_m),
        );
        _mm256_blendv_pd(set(-1e300), y, positive)
    }

    /// `$f` on `$xs` four lanes at a time, the last (overlapping) group for a length not divisible
    /// by four.
    macro_rules! map4 {
        ($xs:expr, $f:ident) => {{
            let xs: &mut [f64] = $xs;
            let n = xs.len();
            debug_assert!(n >= 4);
            let ptr = xs.as_mut_ptr();
            let tail = _mm256_loadu_pd(ptr.add(n - 4));
            let mut i = 0;
            while i + 4 <= n {
                _mm256_storeu_pd(ptr.add(i), $f(_mm256_loadu_pd(ptr.add(i))));
                i += 4;
            }
            if i < n {
                _mm256_storeu_pd(ptr.add(n - 4), $f(tail));
            }
        }};
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA; `xs.len() >= 4`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn exp_in_place(xs: &mut [f64]) {
        map4!(xs, exp4);
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA; `xs.len() >= 4`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn exp_nonpositive_in_place(xs: &mut [f64]) {
        map4!(xs, exp_nonpositive4);
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA; `xs.len() >= 4`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn ln_guarded_in_place(xs: &mut [f64]) {
        map4!(xs, ln_guarded4);
    }

    /// Whole groups of four of [`super::cosine_cutoffs`]; returns how many entries were done.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn cosine_cutoffs(r: &[f64], rc: f64, fc: &mut [f64], dfc: &mut [f64]) -> usize {
        let n = r.len().min(fc.len()).min(dfc.len()) / 4 * 4;
        let set = |v: f64| _mm256_set1_pd(v);
        let (pi, half_pi) = (set(std::f64::consts::PI), set(std::f64::consts::FRAC_PI_2));
        let (rcv, slope) = (set(rc), set(-0.5 * std::f64::consts::PI / rc));
        let sign = set(-0.0);
        let mut k = 0;
        while k < n {
            let rv = _mm256_loadu_pd(r.as_ptr().add(k));
            let y = _mm256_sub_pd(_mm256_mul_pd(pi, _mm256_div_pd(rv, rcv)), half_pi);
            let u = _mm256_mul_pd(y, y);
            let p = estrin_m256!(11, SIN_COEFFS, u);
            let q = estrin_m256!(11, COS_COEFFS, u);
            let cos = _mm256_xor_pd(_mm256_mul_pd(y, p), sign);
            let f = _mm256_add_pd(_mm256_mul_pd(set(0.5), cos), set(0.5));
            let df = _mm256_mul_pd(slope, q);
            let beyond = _mm256_cmp_pd::<_CMP_GE_OQ>(rv, rcv);
            _mm256_storeu_pd(
                fc.as_mut_ptr().add(k),
                _mm256_blendv_pd(f, set(0.0), beyond),
            );
            _mm256_storeu_pd(
                dfc.as_mut_ptr().add(k),
                _mm256_blendv_pd(df, set(0.0), beyond),
            );
            k += 4;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(a: f64, b: f64) -> f64 {
        if a == b {
            0.0
        } else {
            ((a - b) / b).abs()
        }
    }

    #[test]
    fn exp_matches_libm() {
        let mut worst = 0.0f64;
        let mut x = -708.0;
        while x < 709.0 {
            worst = worst.max(rel(exp(x), x.exp()));
            x += 0.013_7;
        }
        for &x in &[0.0, 1e-300, -1e-300, 1e-10, -0.5, 0.346, -0.347] {
            worst = worst.max(rel(exp(x), x.exp()));
        }
        assert!(worst < 5e-16, "worst relative error {worst}");
        assert_eq!(exp(-1000.0), 0.0);
        assert_eq!(exp(1000.0), f64::INFINITY);
        assert!(exp(f64::NAN).is_nan());
    }

    #[test]
    fn ln_matches_libm() {
        let mut worst = 0.0f64;
        let mut x = 1e-300f64;
        while x < 1e300 {
            worst = worst.max((ln(x) - x.ln()).abs() / x.ln().abs().max(1.0));
            x *= 1.000_7;
        }
        for k in 0..10_000 {
            let x = 0.5 + k as f64 * 1.5e-4; // around 1, where ln is small: absolute error
            worst = worst.max((ln(x) - x.ln()).abs());
        }
        assert!(worst < 1e-15, "worst error {worst}");
    }

    #[test]
    fn vector_exp_and_ln_give_the_scalar_bits() {
        let mut values = vec![
            0.0,
            -0.0,
            1e-300,
            -1e-300,
            0.346,
            -0.347,
            -708.0,
            -708.39,
            -708.4,
            -745.0,
            -1000.0,
            709.0,
            709.78,
            709.79,
            1000.0,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ];
        let mut x = -750.0;
        while x < 750.0 {
            values.push(x);
            x += 0.377_1;
        }
        for len in 1..=13 {
            for chunk in values.chunks(len) {
                let mut e = chunk.to_vec();
                exp_in_place(&mut e);
                for (&x, &y) in chunk.iter().zip(&e) {
                    assert_eq!(y.to_bits(), exp(x).to_bits(), "exp({x}), {len} entries");
                }
            }
        }
        let nonpositive: Vec<f64> = values
            .iter()
            .copied()
            .filter(|x| *x <= 0.0 && x.is_finite())
            .collect();
        for len in 1..=13 {
            for chunk in nonpositive.chunks(len) {
                let mut e = chunk.to_vec();
                exp_nonpositive_in_place(&mut e);
                for (&x, &y) in chunk.iter().zip(&e) {
                    assert_eq!(y.to_bits(), exp(x).to_bits(), "exp({x}) ≤ 0, {len} entries");
                }
            }
        }
        let mut positive = vec![
            0.0,
            -1.0,
            1e-300,
            1.000_1e-300,
            5e-324,
            1e-310,
            1.0,
            2.0,
            0.5,
            SQRT2,
            1e300,
            f64::MAX,
            f64::NAN,
            f64::INFINITY,
        ];
        let mut x = 1e-300f64;
        while x < 1e300 {
            positive.push(x);
            x *= 1.37;
        }
        for len in 1..=13 {
            for chunk in positive.chunks(len) {
                let mut l = chunk.to_vec();
                ln_guarded_in_place(&mut l);
                for (&x, &y) in chunk.iter().zip(&l) {
                    if x.is_infinite() {
                        continue; // outside ln's documented domain (finite, normal)
                    }
                    assert_eq!(
                        y.to_bits(),
                        ln_guarded(x).to_bits(),
                        "ln({x}), {len} entries"
                    );
                }
            }
        }
    }

    #[test]
    fn cosine_cutoffs_match_libm_and_the_scalar_bits() {
        let rc = 5.2;
        let r: Vec<f64> = (0..1000).map(|k| k as f64 * 0.006_1).collect();
        for &x in r.iter().filter(|&&x| x <= rc) {
            let (c, s) = cos_sin_pi(x / rc);
            let t = std::f64::consts::PI * x / rc;
            let err = (c - t.cos()).abs().max((s - t.sin()).abs());
            assert!(err < 1e-15, "r = {x}: error {err:e}");
        }
        for len in [1, 3, 4, 5, 7, 8, 13, 1000] {
            let (mut fc, mut dfc) = (vec![9.0; len], vec![9.0; len]);
            cosine_cutoffs(&r[..len], rc, &mut fc, &mut dfc);
            for k in 0..len {
                let (f, d) = cosine_cutoff(r[k], rc);
                assert_eq!(
                    (fc[k].to_bits(), dfc[k].to_bits()),
                    (f.to_bits(), d.to_bits())
                );
            }
        }
        assert_eq!(cosine_cutoff(rc, rc), (0.0, 0.0));
        assert_eq!(cosine_cutoff(0.0, rc).0, 1.0);
    }
}
