//! Choosing where tensors live. This is the only place in ember that names a backend.

use anyhow::{Result, bail};
use burn::tensor::Device;
use ember_train::parallel::Reduce;
use ember_train::shards::Shards;

/// The environment variable that holds the token an `ember serve` asks for and a client
/// presents.
#[cfg(feature = "remote")]
pub const TOKEN_VAR: &str = "EMBER_REMOTE_TOKEN";

/// The backends `--device` accepts.
pub const CHOICES: &str = "cpu, flex, ndarray, wgpu, cuda, cuda:N, ws://HOST:PORT";

/// Resolves a `--device` (or `train.device`) name.
///
/// - `cpu`: the fastest CPU backend (flex, measured; see README's Performance section)
/// - `flex`: Burn's pure-Rust CPU backend
/// - `ndarray`: Burn's older CPU backend (deprecated upstream)
/// - `wgpu`: the default GPU adapter through wgpu (Vulkan, Metal, DX12; on a machine without a
///   GPU, Mesa's lavapipe runs Vulkan on the CPU), when built with `--features wgpu`
/// - `cuda`, `cuda:N`: NVIDIA GPU N (default 0) through Burn's CUDA backend, when built with
///   `--features cuda`
/// - `ws://HOST:PORT`: the device an `ember serve` lends on another machine, through Burn's
///   remote backend, when built with `--features remote`
pub fn parse(name: &str) -> Result<Device> {
    match name {
        "cpu" | "flex" => Ok(Device::flex()),
        #[allow(deprecated)]
        "ndarray" => Ok(Device::ndarray()),
        "wgpu" => wgpu(),
        "cuda" => cuda(0),
        url if url.starts_with("ws://") => remote(url),
        other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(index)) => cuda(index),
            _ => bail!("--device {other}: unknown device; choose one of {CHOICES}"),
        },
    }
}

/// By default a CPU device shards a batch only when every shard gets at least this many
/// training FLOPs per micro-batch (about 1.3 ms at this project's machines' peak): below it,
/// handing the shards to their threads each step costs more than it saves
/// (`configs/nano.toml`, 51 MFLOP per step: 2 shards measured 20% slower than none).
const MIN_SHARD_FLOPS: f64 = 2.5e8;

/// Batch sharding on a CPU device (see `ember_train::shards`): `--cpu-shards K`, or by default
/// one shard per thread of the CPU kernels' pool (`$RAYON_NUM_THREADS`, else one per core) when
/// each shard's share of a micro-batch's training FLOPs (`model`, `batch_size` sequences) is
/// large enough. `None` for one shard and for devices that are not CPUs.
pub fn cpu_shards(
    name: &str,
    requested: Option<usize>,
    model: &ember_model::GptConfig,
    batch_size: usize,
) -> Result<Option<Shards>> {
    let step_flops =
        ember_model::stats::training_flops_per_token(model) as f64 * (batch_size * model.block_size) as f64;
    let cpu = matches!(name, "cpu" | "flex");
    let threads = rayon::current_num_threads();
    let k = match (cpu, requested) {
        (false, Some(_)) => bail!("--cpu-shards applies to the CPU devices cpu and flex, not to {name}"),
        (false, None) => return Ok(None),
        (true, Some(0)) => bail!("--cpu-shards 0: give at least 1 (1 turns sharding off)"),
        (true, Some(k)) => k,
        (true, None) if step_flops / threads as f64 >= MIN_SHARD_FLOPS => threads,
        (true, None) => 1,
    };
    Ok(if k > 1 { Some(Shards::new(k, threads)?) } else { None })
}

#[cfg(feature = "wgpu")]
fn wgpu() -> Result<Device> {
    Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice))
}

#[cfg(not(feature = "wgpu"))]
fn wgpu() -> Result<Device> {
    bail!(
        "--device wgpu: this ember was built without GPU support; rebuild with `cargo build --release --features wgpu`"
    )
}

/// Resolves a `--devices` list for data-parallel training: CUDA GPUs (`cuda:0,cuda:1`,
/// averaged with Burn's collective all-reduce), `ember serve` servers on other machines
/// (`ws://a:3000,ws://b:3000`, averaged on the first one) or CPU replicas (`cpu,cpu`, averaged
/// on the host; as fast as one CPU device at best, and useful to check a configuration).
pub fn parse_list(names: &[String]) -> Result<(Vec<Device>, Reduce)> {
    if names.len() < 2 {
        bail!("--devices needs at least two devices, e.g. cuda:0,cuda:1; use --device for one");
    }
    // Two replicas on one GPU would make NCCL wait for a peer that never joins (seen on an
    // H100: `--devices cuda:0,cuda:0` hangs), so each accelerator may appear once.
    for (i, name) in names.iter().enumerate() {
        if !matches!(name.as_str(), "cpu" | "flex" | "ndarray") && names[..i].contains(name) {
            bail!("--devices lists {name} twice; name each GPU or server once (cpu may repeat)");
        }
    }
    if names.iter().all(|n| matches!(n.as_str(), "cpu" | "flex" | "ndarray")) {
        let devices = names.iter().map(|n| parse(n)).collect::<Result<_>>()?;
        return Ok((devices, Reduce::OnHost));
    }
    if names.iter().all(|n| n.starts_with("ws://")) {
        let devices = names.iter().map(|n| remote(n)).collect::<Result<_>>()?;
        return Ok((devices, Reduce::OnHost));
    }
    let mut devices = Vec::new();
    for name in names {
        let Some(index) = name.strip_prefix("cuda:").and_then(|i| i.parse::<usize>().ok()) else {
            bail!(
                "--devices {name}: expected cuda:N (all devices GPUs), ws://HOST:PORT (all servers) or cpu (all devices CPUs)"
            );
        };
        devices.push(cuda(index)?);
    }
    Ok((devices, Reduce::Collective))
}

#[cfg(feature = "cuda")]
fn cuda(index: usize) -> Result<Device> {
    Ok(Device::cuda(index))
}

#[cfg(not(feature = "cuda"))]
fn cuda(index: usize) -> Result<Device> {
    bail!("cuda:{index}: this ember was built without CUDA; rebuild with `cargo build --release --features cuda`")
}

/// Connects to the device an `ember serve` lends at `url`, presenting $EMBER_REMOTE_TOKEN if set.
#[cfg(feature = "remote")]
fn remote(url: &str) -> Result<Device> {
    use anyhow::Context;
    use burn::tensor::remote::RemoteHost;
    let mut host = RemoteHost::websocket(url);
    if let Ok(token) = std::env::var(TOKEN_VAR) {
        host = host.with_credential(token);
    }
    Device::remote_options(&host).init().with_context(|| {
        format!(
            "cannot connect to {url}: is `ember serve` running there, and is the token in ${} right?",
            TOKEN_VAR
        )
    })
}

#[cfg(not(feature = "remote"))]
fn remote(url: &str) -> Result<Device> {
    bail!(
        "{url}: this ember was built without the remote backend; rebuild with `cargo build --release --features remote`"
    )
}
