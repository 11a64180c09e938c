//! `ember serve`: lends this machine's device to a trainer on another machine, through Burn's
//! remote backend (WebSocket transport).
//!
//! Multi-node data parallelism is one trainer process whose `--devices` are such servers:
//!
//! ```text
//! node-a$ ember serve --device cuda:0 --port 3000 --token "$T"
//! node-b$ ember serve --device cuda:0 --port 3000 --token "$T"
//! head$   EMBER_REMOTE_TOKEN="$T" ember train --config C --devices ws://node-a:3000,ws://node-b:3000
//! ```
//!
//! The trainer holds the autodiff graph and sends each tensor operation to the server that
//! holds the tensor; the gradient average moves tensors between the servers. WebSocket is
//! unencrypted: use it on a trusted network only, with a token to keep stray clients out.

use anyhow::Result;
use clap::Args;

/// The environment variable that holds the token a server asks for and a client presents.
#[cfg(feature = "remote")]
pub const TOKEN_VAR: &str = "EMBER_REMOTE_TOKEN";

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// The device to lend: cpu, flex, ndarray, wgpu or cuda[:N].
    #[arg(long, default_value = "cpu")]
    device: String,
    /// TCP port to listen on, on every interface (0: any free port; the chosen one is printed).
    #[arg(long, default_value_t = 3000)]
    port: u16,
    /// Only serve clients that present this token (default: $EMBER_REMOTE_TOKEN; none: serve
    /// every client).
    #[arg(long)]
    token: Option<String>,
}

#[cfg(feature = "remote")]
pub fn run(args: ServeArgs) -> Result<()> {
    use std::io::Write;

    use anyhow::Context;
    use burn::tensor::server::{RemoteServer, TokenAuthorizer, WebSocketTransport};

    let device = crate::device::parse(&args.device)?;
    let listener = std::net::TcpListener::bind(("0.0.0.0", args.port))
        .with_context(|| format!("cannot listen on port {}; choose another with --port", args.port))?;
    let port = listener.local_addr()?.port();
    let mut server = RemoteServer::new([device]);
    let token = args.token.or_else(|| std::env::var(TOKEN_VAR).ok());
    if let Some(token) = token {
        let authorizer = TokenAuthorizer::new(token)
            .map_err(|_| anyhow::anyhow!("--token is empty; give a non-empty token or none"))?;
        server = server.with_authorizer(authorizer);
    }
    // The first line of stdout names the address, for scripts that start a server on port 0.
    println!("ember serve: {} on ws://0.0.0.0:{port} (Ctrl+C stops)", args.device);
    std::io::stdout().flush()?;
    server
        .serve(WebSocketTransport::from_listener(listener))
        .map_err(|e| anyhow::anyhow!("serving on port {port}: {e}"))
}

#[cfg(not(feature = "remote"))]
pub fn run(_args: ServeArgs) -> Result<()> {
    anyhow::bail!(
        "ember serve: this ember was built without the remote backend; rebuild with `cargo build --release --features remote`"
    )
}
