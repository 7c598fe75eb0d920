//! The `clouder` binary: parses flags, wires the library crates together, prints results.
//! Exit codes: 0 ok, 1 failure, 2 usage or validation error.

mod cli;
mod commands;
mod home;
mod host_progress;
mod output;
mod progress;
mod provider;
mod readiness;
mod reference;
mod remote_state;

use clap::Parser;
use std::process::ExitCode;

/// A mistake in how clouder was called (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

/// Exit with this code and say nothing more (a pass-through tool already spoke).
#[derive(Debug, thiserror::Error)]
#[error("exit {0}")]
pub struct Exit(pub u8);

fn main() -> ExitCode {
    #[cfg(unix)]
    // Everything clouder writes is private to its owner.
    unsafe {
        libc_umask(0o077);
    }
    let cli = cli::Cli::parse();
    init_logging(&cli.global);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if err.downcast_ref::<Exit>().is_some() => {
            ExitCode::from(err.downcast_ref::<Exit>().map_or(1, |e| e.0))
        }
        Err(err) => {
            let usage = err.downcast_ref::<Usage>().is_some()
                || err.downcast_ref::<clouder_spec::SpecErrors>().is_some();
            eprintln!("error: {err:#}");
            ExitCode::from(if usage { 2 } else { 1 })
        }
    }
}

#[cfg(unix)]
unsafe extern "C" {
    #[link_name = "umask"]
    fn libc_umask(mask: u32) -> u32;
}

fn init_logging(global: &cli::Global) {
    let level = match (global.quiet, global.verbose) {
        (true, _) => "error",
        (_, 0) => "warn",
        (_, 1) => "info",
        (_, 2) => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("CLOUDER_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!(
            "{level},aws_config=error,aws_smithy_runtime=error"
        ))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match global.log_format {
        cli::LogFormat::Json => builder.json().init(),
        cli::LogFormat::Text => builder.without_time().init(),
    }
}
