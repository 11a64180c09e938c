//! Times one self-attention layer's forward and backward pass (`ember_kernels::self_attention`
//! on flex with autodiff, causal mask, RoPE) on one thread, as a batch shard runs it.
//!
//!   cargo run --release -p ember-kernels --example attention_bench -- [BATCH SEQ D_MODEL HEADS]
//!
//! Defaults: 6 64 128 4 (one of cpu-baby's two shards). Prints the best of five rounds, in µs
//! per layer. Run it with `GLIBC_TUNABLES=glibc.malloc.mmap_max=0` to allocate as `ember` does
//! (it keeps freed memory; see README's Performance section): otherwise glibc maps and unmaps
//! every large buffer, and at larger sizes (`4 256 384 6`) page faults decide the time.

use std::time::Instant;

use burn::tensor::{Device, Tensor, TensorData};

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("BATCH SEQ D_MODEL HEADS as integers"))
        .collect();
    let [b, t, dm, heads] = match args[..] {
        [] => [6, 64, 128, 4],
        [b, t, dm, h] => [b, t, dm, h],
        _ => panic!("give BATCH SEQ D_MODEL HEADS, or nothing"),
    };
    let d = dm / heads;
    let device = Device::flex().autodiff();
    let values: Vec<f32> = (0..b * t * 3 * dm)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
        .collect();
    let qkv = Tensor::<3>::from_data(TensorData::new(values, [b, t, 3 * dm]), &device);
    // Rotate-half RoPE tables [t, d] and the causal mask bias [t, t].
    let angle = |n: usize| (n / d) as f64 * 10000f64.powf(-2.0 * (n % d % (d / 2)) as f64 / d as f64);
    let table = |f: fn(f64) -> f64| {
        let v: Vec<f32> = (0..t * d).map(|n| f(angle(n)) as f32).collect();
        Tensor::<2>::from_data(TensorData::new(v, [t, d]), &device)
    };
    let (cos, sin) = (table(f64::cos), table(f64::sin));
    let bias: Vec<f32> = (0..t * t)
        .map(|n| if n % t <= n / t { 0.0 } else { f32::NEG_INFINITY })
        .collect();
    let bias = Tensor::<2>::from_data(TensorData::new(bias, [t, t]), &device);
    let weights = Tensor::<3>::from_data(TensorData::new(vec![0.01f32; b * t * dm], [b, t, dm]), &device);
    let scale = 1.0 / (d as f64).sqrt();
    // About 0.2 s per round.
    let iters = (2e8 / (b * heads * t * t * d) as f64).ceil() as usize;

    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("a thread");
    let best = pool.install(|| {
        (0..5)
            .map(|_| {
                let start = Instant::now();
                for _ in 0..iters {
                    let x = qkv.clone().require_grad();
                    let out =
                        ember_kernels::self_attention(x.clone(), cos.clone(), sin.clone(), bias.clone(), heads, scale);
                    let grads = (out * weights.clone()).sum().backward();
                    x.grad(&grads).expect("a gradient");
                }
                start.elapsed().as_secs_f64() * 1e6 / iters as f64
            })
            .fold(f64::INFINITY, f64::min)
    });
    println!("batch {b}, seq {t}, d_model {dm}, {heads} heads: {best:.1} µs per layer, forward and backward");
}
