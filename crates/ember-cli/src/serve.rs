//! `ember serve`: lends this machine's device to a trainer on another machine, through Burn's
//! remote backend (WebSocket transport).
//!
//! Multi-node data parallelism is one trainer process whose `--devices` are such servers:
//!
//! ```text
//! node-a$ ember serve --device cuda:0 --bind 0.0.0.0 --port 3000 --token "$T"
//! node-b$ ember serve --device cuda:0 --bind 0.0.0.0 --port 3000 --token "$T"
//! head$   EMBER_REMOTE_TOKEN="$T" ember train --config C --devices ws://node-a:3000,ws://node-b:3000
//! ```
//!
//! The trainer holds the autodiff graph and sends each tensor operation to the server that
//! holds the tensor; the gradient average moves tensors between the servers. WebSocket is
//! unencrypted: use it on a trusted network only. A server listens on 127.0.0.1 unless
//! `--bind` says otherwise, and refuses to listen on any other address without a token.

use std::net::IpAddr;

use anyhow::{Result, bail};
use clap::Args;

#[cfg(feature = "remote")]
use crate::device::TOKEN_VAR;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// The device to lend: cpu, flex, ndarray, wgpu or cuda[:N].
    #[arg(long, default_value = "cpu")]
    device: String,
    /// The address to listen on: 127.0.0.1 (this machine only) unless given; 0.0.0.0 (or ::)
    /// opens the server to the network, which requires a token.
    #[arg(long, default_value = "127.0.0.1")]
    bind: String,
    /// TCP port to listen on (0: any free port; the chosen one is printed).
    #[arg(long, default_value_t = 3000, allow_negative_numbers = true)]
    port: u16,
    /// Only serve clients that present this token (default: $EMBER_REMOTE_TOKEN). Required
    /// when --bind is not a loopback address.
    #[arg(long)]
    token: Option<String>,
}

/// The address to listen on, refused when it opens the device to the network without a
/// token: whoever reaches the port could run tensor operations and read every tensor.
fn listen_address(bind: &str, token: Option<&str>) -> Result<IpAddr> {
    let ip: IpAddr = bind.parse().map_err(|_| {
        anyhow::anyhow!("--bind {bind:?} is not an IP address; give one such as 127.0.0.1 (this machine) or 0.0.0.0 (every interface)")
    })?;
    if !ip.is_loopback() && token.is_none_or(str::is_empty) {
        bail!(
            "--bind {ip} lets any machine that reaches the port use this device and read the model; give a token with --token or ${} (clients set the same variable)",
            "EMBER_REMOTE_TOKEN"
        );
    }
    Ok(ip)
}

#[cfg(feature = "remote")]
pub fn run(args: ServeArgs) -> Result<()> {
    use std::io::Write;

    use anyhow::Context;
    use burn::tensor::server::{RemoteServer, TokenAuthorizer, WebSocketTransport};

    let token = args.token.clone().or_else(|| std::env::var(TOKEN_VAR).ok());
    let ip = listen_address(&args.bind, token.as_deref())?;
    let device = crate::device::parse(&args.device)?;
    let listener = std::net::TcpListener::bind((ip, args.port))
        .with_context(|| format!("cannot listen on {ip} port {}; choose another with --port", args.port))?;
    let address = listener.local_addr()?;
    let mut server = RemoteServer::new([device]);
    let guarded = token.is_some();
    if let Some(token) = token {
        let authorizer = TokenAuthorizer::new(token)
            .map_err(|_| anyhow::anyhow!("--token is empty; give a non-empty token or none"))?;
        server = server.with_authorizer(authorizer);
    }
    // The first line of stdout names the address, for scripts that start a server on port 0.
    println!(
        "ember serve: {} on ws://{address} ({}; unencrypted WebSocket: use a trusted network; Ctrl+C stops)",
        args.device,
        if guarded {
            "token required"
        } else {
            "no token: this machine only"
        },
    );
    std::io::stdout().flush()?;
    server
        .serve(WebSocketTransport::from_listener(listener))
        .map_err(|e| anyhow::anyhow!("serving on {address}: {e}"))
}

#[cfg(not(feature = "remote"))]
pub fn run(args: ServeArgs) -> Result<()> {
    listen_address(&args.bind, args.token.as_deref())?;
    bail!(
        "ember serve: this ember was built without the remote backend; rebuild with `cargo build --release --features remote`"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_needs_no_token_and_the_network_does() {
        assert!(listen_address("127.0.0.1", None).unwrap().is_loopback());
        assert!(listen_address("::1", None).unwrap().is_loopback());
        for open in ["0.0.0.0", "::", "192.168.1.5"] {
            let e = listen_address(open, None).unwrap_err().to_string();
            assert!(e.contains("--token") && e.contains(open), "{e}");
            assert!(listen_address(open, Some("")).is_err(), "an empty token is no token");
            assert!(listen_address(open, Some("secret")).is_ok());
        }
        let e = listen_address("localhost:3000", None).unwrap_err().to_string();
        assert!(e.contains("not an IP address"), "{e}");
    }
}
