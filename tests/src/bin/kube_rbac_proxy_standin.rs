//! The kube-rbac-proxy stand-in as a container's program (image `mro.local/kube-rbac-proxy:dev`):
//! what it does and does not do is in [`mro_tests::rbac_proxy_standin`]. Exits 1 naming the
//! problem on a command line or file it cannot take.
#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parsed = match mro_tests::rbac_proxy_standin::parse(&args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("kube-rbac-proxy stand-in: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kube-rbac-proxy stand-in: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(mro_tests::rbac_proxy_standin::run(parsed)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kube-rbac-proxy stand-in: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
