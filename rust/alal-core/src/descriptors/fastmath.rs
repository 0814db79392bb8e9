//! Branch-free `exp` and `ln` that the compiler can vectorise, accurate to a few ulp.
//!
//! The descriptor spends most of its time in `exp` and `ln` over short arrays (one entry per radial
//! shift or angle section). libm's functions are opaque calls; these are plain arithmetic on bits,
//! so loops over them become SIMD code, and they give the same results on every machine.

const LOG2E: f64 = std::f64::consts::LOG2_E;
/// ln 2 split in a high part with trailing zero bits (exact products with small integers) and the rest.
const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
/// 1.5 · 2⁵²: adding it rounds to the nearest integer and leaves that integer in the low bits.
const ROUND: f64 = 6_755_399_441_055_744.0;
const SQRT2: f64 = std::f64::consts::SQRT_2;

/// `e^x`; 0 below −708.39 (instead of subnormal values), `+inf` above 709.78, NaN for NaN.
#[inline(always)]
pub fn exp(x: f64) -> f64 {
    let xc = x.clamp(-708.0, 709.0);
    let t = xc * LOG2E + ROUND;
    let k = t - ROUND;
    let r = (xc - k * LN2_HI) - k * LN2_LO; // |r| ≤ ln2 / 2
                                            // Taylor series to degree 13: truncation error below 1e-17 on |r| ≤ 0.347.
    let mut p = 1.0 / 6_227_020_800.0;
    p = p * r + 1.0 / 479_001_600.0;
    p = p * r + 1.0 / 39_916_800.0;
    p = p * r + 1.0 / 3_628_800.0;
    p = p * r + 1.0 / 362_880.0;
    p = p * r + 1.0 / 40_320.0;
    p = p * r + 1.0 / 5_040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
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
    let mut p = 1.0 / 23.0;
    p = p * f2 + 1.0 / 21.0;
    p = p * f2 + 1.0 / 19.0;
    p = p * f2 + 1.0 / 17.0;
    p = p * f2 + 1.0 / 15.0;
    p = p * f2 + 1.0 / 13.0;
    p = p * f2 + 1.0 / 11.0;
    p = p * f2 + 1.0 / 9.0;
    p = p * f2 + 1.0 / 7.0;
    p = p * f2 + 1.0 / 5.0;
    p = p * f2 + 1.0 / 3.0;
    let ln_m = 2.0 * f + 2.0 * f * f2 * p;
    e * LN2_HI + (e * LN2_LO + ln_m)
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
}
