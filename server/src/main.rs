//! The `opendata` binary.

use clap::Parser;

/// mimalloc: markedly less time in the allocator and in page faults than the system
/// allocator under the write path's many short-lived buffers (see docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use opendata_server::Server;
use opendata_server::cli::{Cli, Command};

fn init_tracing(filter: Option<&str>) {
    let filter = filter
        .map(str::to_string)
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "info".to_string());
    let env_filter = tracing_subscriber::EnvFilter::try_new(&filter).unwrap_or_else(|e| {
        eprintln!("invalid log filter '{filter}': {e}; using 'info'");
        tracing_subscriber::EnvFilter::new("info")
    });
    tracing_subscriber::fmt()
        .with_env_filter(env_filter)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // Large stacks: parsing and printing recurse along a request's structure, which the
    // request limits bound (CPU-heavy work runs on the work pools, with stacks of 16 MiB).
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .thread_stack_size(8 * 1024 * 1024)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => {
                init_tracing(args.log_level.as_deref());
                let config = args.resolve()?;
                let server = Server::start(config).await?;
                server.run_until_signal().await
            }
            Command::Log(cmd) => cmd.run().await,
            Command::Vector(cmd) => cmd.run().await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
