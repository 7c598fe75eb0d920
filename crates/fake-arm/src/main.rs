//! `fake-arm --port P`: the fake Azure Resource Manager on its own, for benchmarks and by hand.
//! Point clouder at it with `CLOUDER_AZURE_ARM_ENDPOINT=http://127.0.0.1:P CLOUDER_AZURE_TOKEN=x`.

use clap::Parser;
use fake_arm::{Config, Server};

#[derive(Parser)]
#[command(about = "An in-memory Azure Resource Manager for tests and benchmarks")]
struct Args {
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Latency added to every request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Refuse every K-th request with 429 and Retry-After.
    #[arg(long, default_value_t = 0)]
    throttle_every: u64,
    /// Fail every K-th request with 500.
    #[arg(long, default_value_t = 0)]
    fail_every: u64,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let config = Config {
        latency_ms: args.latency_ms,
        throttle_every: args.throttle_every,
        fail_every: args.fail_every,
        ..Config::default()
    };
    let server = Server::start(args.port, config).await?;
    println!("{}", server.endpoint());
    tokio::signal::ctrl_c().await?;
    Ok(())
}
