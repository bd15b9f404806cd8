#![forbid(unsafe_code)]
//! The model-registry-operator binary: `run` (default), `aihub`, `crdgen` or `install`.
use clap::{Parser, Subcommand};
use model_registry_operator::{crdgen, run, settings::Settings, telemetry};

/// Kubernetes operator for Model Registry instances and model transfers.
///
/// Every setting is a global flag: it may precede `run` or follow it (as the manager
/// Deployments write them), with the same effect.
#[derive(Debug, Parser)]
#[command(name = "model-registry-operator", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    settings: Settings,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the controllers against the cluster of the current kubeconfig or service account.
    /// Settings may follow `run` (as the manager Deployments write them) or precede it.
    Run(Box<RunArgs>),
    /// Print the CustomResourceDefinitions as multi-document YAML, write them to a directory
    /// (--out-dir), or check committed files (--check --out-dir).
    Crdgen(crdgen::CrdgenArgs),
    /// Install (server-side apply) the CRDs on the current cluster, adapted to its version.
    Install,
    /// Run the OpenDataHub AIHub module controller: for the cluster-scoped AIHub `default-aihub`,
    /// deploy this operator (its ODH manifests, built into the binary) into the AIHub's
    /// applications namespace with the images from the RELATED_IMAGE_* variables, and report
    /// the module's status. Uses --leader-elect (Lease `aihub-controller-manager` in
    /// POD_NAMESPACE), the probe and metrics addresses and --log-format.
    Aihub,
    /// Run the Model Catalog controller alone (its own Deployment `catalog-controller-manager`,
    /// as the Go operator's `catalog` subcommand): for the Catalog `catalog` in
    /// REGISTRIES_NAMESPACE, deploy the catalog server and its PostgreSQL. Uses the same
    /// settings as `run`; the leader-election Lease defaults to `catalog.opendatahub.io`.
    Catalog,
}

/// The catalog controller's Lease when --leader-election-id is left at its default (the Go
/// operator's, cmd/catalog.go@08f64eb:133).
const CATALOG_LEADER_ELECTION_ID: &str = "catalog.opendatahub.io";

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Print the effective settings (flags, then environment, then defaults) as JSON and exit,
    /// to check what a Deployment's args and env amount to. Settings hold no secrets.
    #[arg(long = "print-settings")]
    print_settings: bool,
}

fn main() -> anyhow::Result<()> {
    // One TLS crypto provider for every client in the process, before any TLS is set up.
    rustls::crypto::aws_lc_rs::default_provider()
        .install_default()
        .map_err(|_| anyhow::anyhow!("a rustls crypto provider was already installed"))?;
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Crdgen(args)) => crdgen::run(&args),
        Some(Command::Install) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(async {
                let client = kube::Client::try_default().await?;
                model_registry_operator::install::install_crds(&client).await
            }),
        Some(Command::Aihub) => {
            let settings = cli.settings.normalized();
            telemetry::init(settings.log_format);
            let images = model_registry_operator::aihub::images_from_process_env();
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?
                .block_on(async move {
                    let client = kube::Client::try_default().await?;
                    model_registry_operator::aihub::run(client, settings, images, shutdown_signal())
                        .await
                })
        }
        Some(Command::Catalog) => {
            let mut settings =
                cli.settings
                    .normalized()
                    .with_api_audiences_resolved(std::path::Path::new(
                        model_registry_operator::settings::SERVICE_ACCOUNT_TOKEN_PATH,
                    ));
            if settings.leader_election_id == "model-registry-operator-lock" {
                settings.leader_election_id = CATALOG_LEADER_ELECTION_ID.into();
            }
            telemetry::init(settings.log_format);
            let options = run::RunOptions {
                controllers: run::Controllers::Catalog { settings: None },
                ..run::RunOptions::default()
            };
            run_operator(settings, options)
        }
        Some(Command::Run(run)) if run.print_settings => {
            println!(
                "{}",
                serde_json::to_string_pretty(&cli.settings.normalized())?
            );
            Ok(())
        }
        _ => {
            let settings =
                cli.settings
                    .normalized()
                    .with_api_audiences_resolved(std::path::Path::new(
                        model_registry_operator::settings::SERVICE_ACCOUNT_TOKEN_PATH,
                    ));
            telemetry::init(settings.log_format);
            run_operator(settings, run::RunOptions::default())
        }
    }
}

/// Runs the operator process with `options` until a signal or lost leadership.
fn run_operator(settings: Settings, options: run::RunOptions) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async move {
            let client = run::client(kube::Config::infer().await?)?;
            let stopped = run::run(client, settings, options, shutdown_signal()).await?;
            if stopped == run::Stopped::LostLeadership {
                // Exit non-zero so the pod restarts and rejoins the election cleanly.
                anyhow::bail!("lost leadership");
            }
            Ok(())
        })
}

/// SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received; shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupt received; shutting down"),
    }
}
