//! Entry point. Everything, including the exit-code contract (0 ok, 1 transfer/registry failure,
//! 2 invalid configuration), lives in [`model_sync::app::main`].
#![forbid(unsafe_code)]

use std::process::ExitCode;

use model_sync::config::LoadContext;

fn main() -> ExitCode {
    model_sync::app::main(std::env::args_os().collect(), &LoadContext::from_process())
}
