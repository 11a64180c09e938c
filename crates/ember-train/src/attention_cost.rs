//! What attention costs against the context length: the forward and backward time and the peak
//! memory of the attention core (queries, keys, values → outputs) of each variant, and the
//! growth exponent fitted over the longest contexts.
//!
//! Full attention compares every query with every key, so doubling the context quadruples its
//! work (exponent 2); a sliding window compares each query with `window` keys (exponent 1 once
//! the context is well past the window); linear attention keeps running sums (exponent 1).
//! The fused CPU kernel computes full attention's numbers without storing the score matrix,
//! but keeps the probabilities for its backward pass: its memory still grows as the square.

use std::time::Instant;

use burn::nn::DropoutConfig;
use burn::tensor::{Device, Tensor, TensorData};
use ember_nn::attention::{AttentionMask, AttentionTablesConfig, linear, sdpa, window};
use ember_nn::init;
use serde::Serialize;

/// One way of computing attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CostVariant {
    /// `softmax(q kᵀ/√d + mask) v` as Burn operations: the score matrix is stored.
    FullComposition,
    /// The same numbers from ember's fused CPU kernel (flex only).
    FullKernel,
    /// A sliding window computed as bands of `2·window` keys (Burn operations).
    WindowComposition,
    /// A sliding window in the fused CPU kernel, which skips the tiles the mask hides (flex only).
    WindowKernel,
    /// Linear attention as chunked running sums (Burn operations).
    Linear,
}

impl CostVariant {
    /// Every variant, in table order.
    pub const ALL: [CostVariant; 5] = [
        CostVariant::FullComposition,
        CostVariant::FullKernel,
        CostVariant::WindowComposition,
        CostVariant::WindowKernel,
        CostVariant::Linear,
    ];

    /// Its name in tables and plots.
    pub fn name(&self) -> &'static str {
        match self {
            CostVariant::FullComposition => "full, composition",
            CostVariant::FullKernel => "full, fused kernel",
            CostVariant::WindowComposition => "sliding window, banded composition",
            CostVariant::WindowKernel => "sliding window, fused kernel",
            CostVariant::Linear => "linear, running sums",
        }
    }

    /// Its short name on the command line.
    pub fn key(&self) -> &'static str {
        match self {
            CostVariant::FullComposition => "full",
            CostVariant::FullKernel => "full-kernel",
            CostVariant::WindowComposition => "window",
            CostVariant::WindowKernel => "window-kernel",
            CostVariant::Linear => "linear",
        }
    }

    /// Whether it runs on `device` (the kernels need flex).
    pub fn runs_on(&self, device: &Device) -> bool {
        let kernel = matches!(self, CostVariant::FullKernel | CostVariant::WindowKernel);
        !kernel || ember_kernels::fused(&Tensor::<1>::zeros([1], device))
    }
}

/// The attention measured: `batch` sequences of `heads` heads of width `d_head`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CostShape {
    /// Sequences.
    pub batch: usize,
    /// Heads.
    pub heads: usize,
    /// Width of a head.
    pub d_head: usize,
    /// The sliding window's positions.
    pub window: usize,
}

/// One measurement.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CostPoint {
    /// Context length.
    pub context: usize,
    /// Median milliseconds of one forward and backward pass.
    pub ms: f64,
    /// Peak bytes allocated during it (above what existed before: inputs and tables), where
    /// measured.
    pub bytes: Option<u64>,
}

/// Counts memory while a measurement runs (the binary's allocator).
pub trait MemoryProbe {
    /// Starts counting from zero.
    fn start(&self);
    /// Peak bytes since [`start`](Self::start).
    fn peak(&self) -> u64;
}

/// Times one forward and backward pass of `variant` at `context` positions, repeating it for
/// about `seconds` (three times at least), and counts its peak memory with `memory`.
pub fn measure(
    variant: CostVariant,
    shape: CostShape,
    context: usize,
    seconds: f64,
    memory: Option<&dyn MemoryProbe>,
    device: &Device,
) -> CostPoint {
    let CostShape {
        batch,
        heads,
        d_head,
        window: w,
    } = shape;
    let ad = device.clone().autodiff();
    let dims = [batch, heads, context, d_head];
    let n = batch * heads * context * d_head;
    let random = |seed: u64| {
        let values = init::normal_vec(&mut init::seeded(seed), n, 1.0);
        Tensor::<4>::from_data(TensorData::new(values, dims), &ad)
    };
    let (q0, k0, v0, weight) = (random(1), random(2), random(3), random(4));
    // The tables, built before measuring, as a model builds them once.
    let windowed = w < context;
    let tables = AttentionTablesConfig::new(context, heads, d_head)
        .with_full(true)
        .with_window(windowed.then_some(w))
        .init(&ad);
    let mask = if windowed {
        AttentionMask::SlidingWindow { window: w }
    } else {
        AttentionMask::Causal
    };
    let no_dropout = DropoutConfig::new(0.0).init();
    let scale = 1.0 / (d_head as f64).sqrt();
    let pass = || {
        let (q, k, v) = (
            q0.clone().require_grad(),
            k0.clone().require_grad(),
            v0.clone().require_grad(),
        );
        let y = match variant {
            CostVariant::FullComposition => {
                let bias = tables.bias(AttentionMask::Causal, 0, context, 0);
                sdpa::composition(q.clone(), k, v, bias, &no_dropout)
            }
            CostVariant::FullKernel => {
                let bias = tables.bias(AttentionMask::Causal, 0, context, 0).squeeze_dim::<2>(0);
                ember_kernels::attention(q.clone(), k, v, bias, scale)
            }
            CostVariant::WindowComposition => match &tables.band {
                Some(band) => window::attention(q.clone(), k, v, band, None, &no_dropout),
                None => sdpa::composition(q.clone(), k, v, tables.bias(mask, 0, context, 0), &no_dropout),
            },
            CostVariant::WindowKernel => {
                let bias = tables.bias(mask, 0, context, 0).squeeze_dim::<2>(0);
                ember_kernels::attention(q.clone(), k, v, bias, scale)
            }
            CostVariant::Linear => linear::attention(q.clone(), k, v, None),
        };
        let grads = (y * weight.clone()).sum().backward();
        // Reading a gradient waits for the device (a no-op on the CPU).
        let _ = q.grad(&grads).expect("a gradient").into_data();
    };
    pass(); // warm-up
    let bytes = memory.map(|m| {
        m.start();
        pass();
        m.peak()
    });
    let mut times = Vec::new();
    let began = Instant::now();
    while times.len() < 3 || (began.elapsed().as_secs_f64() < seconds && times.len() < 50) {
        let t = Instant::now();
        pass();
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    CostPoint {
        context,
        ms: times[times.len() / 2],
        bytes,
    }
}

/// The least-squares slope of `ln y` against `ln x`: the exponent `p` of `y ∝ xᵖ`.
pub fn exponent(points: &[(f64, f64)]) -> f64 {
    let logs: Vec<(f64, f64)> = points
        .iter()
        .filter(|(x, y)| *x > 0.0 && *y > 0.0)
        .map(|(x, y)| (x.ln(), y.ln()))
        .collect();
    let n = logs.len() as f64;
    if n < 2.0 {
        return f64::NAN;
    }
    let (mx, my) = (
        logs.iter().map(|p| p.0).sum::<f64>() / n,
        logs.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let sxy: f64 = logs.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
    let sxx: f64 = logs.iter().map(|(x, _)| (x - mx).powi(2)).sum();
    sxy / sxx
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoMemory;
    impl MemoryProbe for NoMemory {
        fn start(&self) {}
        fn peak(&self) -> u64 {
            0
        }
    }

    #[test]
    fn exponents_of_known_powers() {
        let square: Vec<(f64, f64)> = [64.0, 128.0, 256.0].iter().map(|&x| (x, 3.0 * x * x)).collect();
        assert!((exponent(&square) - 2.0).abs() < 1e-12);
        let line: Vec<(f64, f64)> = [10.0, 1000.0].iter().map(|&x| (x, 0.5 * x)).collect();
        assert!((exponent(&line) - 1.0).abs() < 1e-12);
        assert!(exponent(&[(1.0, 1.0)]).is_nan());
    }

    #[test]
    fn every_variant_measures() {
        let shape = CostShape {
            batch: 1,
            heads: 2,
            d_head: 8,
            window: 16,
        };
        for variant in CostVariant::ALL {
            let p = measure(variant, shape, 64, 0.0, Some(&NoMemory), &Device::flex());
            assert!(p.ms > 0.0 && p.bytes == Some(0), "{variant:?}");
        }
    }
}
