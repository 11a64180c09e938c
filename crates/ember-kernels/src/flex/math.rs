//! Element-wise math written so that LLVM vectorises it: no calls, no branches.

/// `a·b + c`: one fused multiply-add (a single rounding) when `FMA` (code compiled for a CPU
/// with the instruction; see `vectorized!`), else a multiply and an add. Elsewhere `mul_add`
/// would be a call into the C library, which keeps a loop from vectorising.
#[inline(always)]
pub fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA { a.mul_add(b, c) } else { a * b + c }
}

/// `e^x` for f32, accurate to about 1 ulp over the range where it does not overflow
/// (Cephes' `expf`: range reduction by ln 2, then a degree-5 polynomial).
#[inline(always)]
pub fn exp<const FMA: bool>(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.336_55, 88.376_26);
    // n = round(x / ln 2), by adding and subtracting 1.5·2²³ (round to nearest even). The sum
    // `shifted` holds n in its low mantissa bits, read below as an integer.
    const MAGIC: f32 = 12_582_912.0;
    let shifted = madd::<FMA>(x, LOG2E, MAGIC);
    let n = shifted - MAGIC;
    let r = madd::<FMA>(-n, LN2_LO, madd::<FMA>(-n, LN2_HI, x));
    let r2 = r * r;
    let p = 1.987_569_1e-4;
    let p = madd::<FMA>(p, r, 1.398_199_9e-3);
    let p = madd::<FMA>(p, r, 8.333_452e-3);
    let p = madd::<FMA>(p, r, 4.166_579_6e-2);
    let p = madd::<FMA>(p, r, 1.666_666_5e-1);
    let p = madd::<FMA>(p, r, 0.5); // Cephes: 5.0000001e-1, the same f32
    let y = madd::<FMA>(p, r2, r) + 1.0;
    // Multiply by 2ⁿ through the exponent bits. n comes from `shifted`'s bits, not `n as i32`:
    // Rust's saturating float-to-int cast is compiled lane by lane and kept this loop scalar.
    const MAGIC_BITS: u32 = 0x4B40_0000; // MAGIC.to_bits(): the bits of `shifted` when n = 0
    let bits = shifted.to_bits().wrapping_sub(MAGIC_BITS).wrapping_add(127) << 23;
    y * f32::from_bits(bits)
}

/// `erf(x)` for f32 with an absolute error below 5e-7: a rational function of `x` clamped to
/// [−4, 4], odd polynomial of degree 13 over even of degree 8, the
/// approximation XLA and Eigen use. No exponential and one division: cheaper than the form
/// below when `e^{−x²}` is not needed anyway.
#[inline(always)]
pub fn erf<const FMA: bool>(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let p = -2.726_142_3e-10;
    let p = madd::<FMA>(p, x2, 2.770_681_4e-8);
    let p = madd::<FMA>(p, x2, -2.101_024e-6);
    let p = madd::<FMA>(p, x2, -5.692_506_4e-5);
    let p = madd::<FMA>(p, x2, -7.349_906_3e-4);
    let p = madd::<FMA>(p, x2, -2.954_600_0e-3);
    let p = madd::<FMA>(p, x2, -1.609_603_3e-2);
    let q = -1.456_607_2e-5;
    let q = madd::<FMA>(q, x2, -2.133_740_6e-4);
    let q = madd::<FMA>(q, x2, -1.682_827e-3);
    let q = madd::<FMA>(q, x2, -7.373_329e-3);
    let q = madd::<FMA>(q, x2, -1.426_474e-2);
    // Beyond |x| = 3.9, erf(x) rounds to ±1 in f32; say so exactly, so that GELU's far tails
    // are exactly 0 and x (a select, not a branch).
    if x.abs() > 3.9 { 1.0f32.copysign(x) } else { x * p / q }
}

/// `erf(x)` with an absolute error below 6e-7 when `e^{−x²}` is already known (the GELU
/// derivative needs both): Abramowitz & Stegun 7.1.26 on |x|, with the sign restored.
#[inline(always)]
pub fn erf_given_gaussian<const FMA: bool>(x: f32, gaussian: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / madd::<FMA>(0.327_591_1, a, 1.0);
    let poly = madd::<FMA>(t, 1.061_405_4, -1.453_152);
    let poly = madd::<FMA>(poly, t, 1.421_413_8);
    let poly = madd::<FMA>(poly, t, -0.284_496_74);
    let poly = madd::<FMA>(poly, t, 0.254_829_6);
    let y = madd::<FMA>(-(poly * t), gaussian, 1.0);
    y.copysign(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_the_standard_library_with_and_without_fma() {
        for fma in [false, true] {
            let mut worst = 0.0f32;
            for i in -8700..8800 {
                let x = i as f32 * 0.01;
                let a = if fma { exp::<true>(x) } else { exp::<false>(x) };
                let e = x.exp();
                worst = worst.max(((a - e) / e).abs());
            }
            assert!(worst < 3e-7, "fma {fma}: relative error {worst}");
        }
    }

    #[test]
    fn both_erfs_match_reference_values() {
        // Reference values of erf from tables (to 10 digits).
        for (x, e) in [
            (0.0f32, 0.0f64),
            (0.1, 0.1124629160),
            (0.5, 0.5204998778),
            (1.0, 0.8427007929),
            (2.0, 0.9953222650),
            (3.5, 0.9999992569),
        ] {
            let g = (-x * x).exp();
            for (erf, erf_g) in [
                (
                    erf::<false> as fn(f32) -> f32,
                    erf_given_gaussian::<false> as fn(f32, f32) -> f32,
                ),
                (erf::<true>, erf_given_gaussian::<true>),
            ] {
                assert!((erf(x) - e as f32).abs() < 2e-7, "erf({x}) = {} vs {e}", erf(x));
                assert!((erf(-x) + e as f32).abs() < 2e-7);
                assert!((erf_g(x, g) - e as f32).abs() < 6e-7);
                assert!((erf_g(-x, g) + e as f32).abs() < 6e-7);
            }
        }
    }
}
