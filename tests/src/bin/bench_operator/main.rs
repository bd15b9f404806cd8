//! `make bench-operator`: the operator under load, against an API-server floor measured in the
//! same run on the same control plane.
//!
//! A private local control plane (etcd, kube-apiserver, kube-controller-manager) is started and
//! the operator binary (release build) runs as a process under exactly the shipped RBAC
//! (`config/rbac`, the operator's static-token identity), watching one namespace. Two phases:
//!
//! 1. `BENCH_REGISTRIES` (default 200) ModelRegistry CRs (PostgreSQL, kube-rbac-proxy with TLS
//!    Secrets: ServiceAccount, Service, Role, Deployment, proxy ConfigMap, auth-delegator
//!    ClusterRoleBinding each) are created; done when every child exists and every status carries
//!    the `Available` condition.
//! 2. `BENCH_TRANSFERS` (default 200) ModelTransfer CRs (S3 → OCI, registering in one of the
//!    registries: ServiceAccount, metadata ConfigMap, registry-access RoleBinding, Job each) are
//!    created; done when every child exists and every status has a `jobName` and phase Pending
//!    or Running. No kubelet runs, so the Jobs' pods never start; that is not waited for.
//!
//! The floor, first, in another namespace of the same control plane: the same CRs are created
//! and the same children (built with the operator's own pure build functions, so kinds and sizes
//! match) are created directly with a plain client, followed by one status write per CR with the
//! status the operator computes. Same concurrency budget: the operator runs with
//! `--max-concurrent-reconciles N`, the floor with N pipelines (one per CR: create, children,
//! status), and CRs are created N at a time in both runs. N is `BENCH_CONCURRENCY`, by default
//! the operator's default. The floor's namespace is deleted before the operator's run, so both
//! start on a cluster of the same size (and the Service IP range, 254 addresses, suffices).
//! The floor creates children with plain POSTs; `BENCH_FLOOR_WRITES=apply` makes it use
//! server-side apply like the operator, which separates what apply itself costs the API server
//! from the operator's overhead (the target is judged against whichever floor ran). The floor
//! writes children and statuses under the operator's identity, as the operator does (RBAC
//! checks included); `BENCH_FLOOR_IDENTITY=admin` makes it write them as cluster-admin.
//!
//! Completion is observed the same way for both: watches on every child kind and on the CRs.
//! Between phases the control plane settles (the deployment and job controllers finish their
//! work). Reported per phase: time, ratio to the floor, API requests by verb and per CR, CPU
//! seconds of the operator and the API server; overall: the operator's peak RSS (`VmHWM`) and
//! memory per object (peak minus the idle operator's RSS before the first phase, divided by the
//! CRs).
//!
//! Targets: operator time ≤ 1.2 × floor (both phases together); peak RSS ≤ 64 MiB. The exit
//! status is non-zero when a target is missed. `BENCH_OPERATOR_BIN` names a prebuilt release
//! binary (else it is built); `BENCH_TIMEOUT_SECS` (default 600) bounds each phase.
#![forbid(unsafe_code)]

mod fixtures;
mod floor;
mod measure;
mod track;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use kube::Client;
use mro_tests::cluster::{self, Flavour};

const MIB: f64 = 1024.0 * 1024.0;
const TARGET_RATIO: f64 = 1.2;
const TARGET_RSS_MIB: f64 = 64.0;
const MAX_REGISTRIES: usize = 250;

/// Benchmark parameters from the environment.
pub struct Params {
    pub registries: usize,
    pub transfers: usize,
    pub concurrency: usize,
    pub timeout: Duration,
    pub floor_writes: floor::Writes,
    pub floor_identity: floor::Identity,
}

fn env_number(name: &str, default: usize) -> anyhow::Result<usize> {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .with_context(|| format!("{name}: expected a non-negative integer, got {v:?}")),
        Err(_) => Ok(default),
    }
}

/// The operator's default `--max-concurrent-reconciles`.
fn default_concurrency() -> usize {
    usize::from(fixtures::settings().max_concurrent_reconciles).max(1)
}

impl Params {
    fn from_env() -> anyhow::Result<Params> {
        let p = Params {
            registries: env_number("BENCH_REGISTRIES", 200)?,
            transfers: env_number("BENCH_TRANSFERS", 200)?,
            concurrency: env_number("BENCH_CONCURRENCY", default_concurrency())?.max(1),
            timeout: Duration::from_secs(env_number("BENCH_TIMEOUT_SECS", 600)? as u64),
            floor_writes: match std::env::var("BENCH_FLOOR_WRITES").as_deref() {
                Err(_) | Ok("create") => floor::Writes::Create,
                Ok("apply") => floor::Writes::Apply,
                Ok(other) => bail!("BENCH_FLOOR_WRITES: expected create or apply, got {other:?}"),
            },
            floor_identity: match std::env::var("BENCH_FLOOR_IDENTITY").as_deref() {
                Err(_) | Ok("operator") => floor::Identity::Operator,
                Ok("admin") => floor::Identity::Admin,
                Ok(other) => {
                    bail!("BENCH_FLOOR_IDENTITY: expected operator or admin, got {other:?}")
                }
            },
        };
        if p.concurrency > usize::from(u16::MAX) {
            bail!("BENCH_CONCURRENCY: at most {}", u16::MAX);
        }
        if p.registries > MAX_REGISTRIES {
            bail!(
                "BENCH_REGISTRIES: at most {MAX_REGISTRIES} (each registry has a ClusterIP Service; the local control plane's Service range has 254 addresses)"
            );
        }
        if p.transfers > 0 && p.registries == 0 {
            bail!(
                "BENCH_TRANSFERS: transfers register in the benchmark's registries; set BENCH_REGISTRIES ≥ 1"
            );
        }
        Ok(p)
    }
}

/// `BENCH_VERBOSE=1`: API requests by resource after each phase, and the operator's debug log.
fn verbose() -> bool {
    std::env::var("BENCH_VERBOSE").is_ok_and(|v| v == "1")
}

fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let passed = rt.block_on(bench())?;
    if !passed {
        std::process::exit(1);
    }
    Ok(())
}

/// One phase's measurement in one run.
#[derive(Clone, Debug, Default)]
pub struct PhaseResult {
    pub seconds: f64,
    pub requests: measure::Requests,
    pub apiserver_cpu: f64,
    pub operator_cpu: f64,
}

async fn bench() -> anyhow::Result<bool> {
    let params = Params::from_env()?;
    eprintln!("building model-registry-operator (release)…");
    let bin = operator_binary().await?;
    eprintln!("operator: {}", bin.display());
    eprintln!("starting a private control plane…");
    let cluster = cluster::private(Flavour::Vanilla).await;
    let admin = cluster.admin_client();
    mro_tests::operator::install_rbac(&admin).await?;
    let floor_writer = match params.floor_identity {
        floor::Identity::Operator => cluster.operator_client(),
        floor::Identity::Admin => admin.clone(),
    };
    let dir = cluster.dir().context("a harness-started control plane")?;
    let apiserver = measure::pid_of(dir, "kube-apiserver")?;
    let floor_ns = cluster.namespace("bench-floor").await?;
    let op_ns = cluster.namespace("bench-operator").await?;
    for ns in [&floor_ns, &op_ns] {
        fixtures::prerequisites(&admin, ns).await?;
    }
    let load = measure::uptime();
    eprintln!("load before the runs: {load}");

    let operator = measure::OperatorProcess::start(&bin, dir, &op_ns, params.concurrency).await?;
    let idle_rss = operator.rss_bytes()? as f64 / MIB;

    // The floor first; its objects are removed before the operator's run, so both start on a
    // cluster of the same size.
    let mut floor_results = Vec::new();
    let mut op_results = Vec::new();
    for phase in fixtures::Phase::ALL {
        let count = phase.count(&params);
        if count == 0 {
            floor_results.push(PhaseResult::default());
            continue;
        }
        eprintln!("floor: {} {}…", count, phase.kind());
        let r = run_phase(
            &admin,
            apiserver,
            None,
            &params,
            phase,
            &floor_ns,
            Some(&floor_writer),
        )
        .await?;
        eprintln!("  {:.2} s", r.seconds);
        if verbose() {
            eprint!("{}", r.requests.detail());
        }
        floor_results.push(r);
        measure::settle(&admin, apiserver).await;
    }
    eprintln!("removing the floor's objects…");
    let started = Instant::now();
    fixtures::remove_namespace(&admin, &floor_ns).await?;
    eprintln!("  removed in {:.1} s", started.elapsed().as_secs_f64());
    measure::settle(&admin, apiserver).await;
    for phase in fixtures::Phase::ALL {
        let count = phase.count(&params);
        if count == 0 {
            op_results.push(PhaseResult::default());
            continue;
        }
        eprintln!("operator: {} {}…", count, phase.kind());
        let r = run_phase(
            &admin,
            apiserver,
            Some(&operator),
            &params,
            phase,
            &op_ns,
            None,
        )
        .await;
        let r = match r {
            Ok(r) => r,
            Err(e) => {
                eprintln!("operator log (last lines):\n{}", operator.log_tail(40));
                return Err(e);
            }
        };
        eprintln!("  {:.2} s", r.seconds);
        if verbose() {
            eprint!("{}", r.requests.detail());
        }
        op_results.push(r);
        measure::settle(&admin, apiserver).await;
    }
    let reconciles = operator.reconciles().await.unwrap_or_default();
    let (problems, first_problem) = operator.log_problems();
    eprintln!(
        "operator log: {} ({problems} warnings/errors{})",
        operator.log_path().display(),
        first_problem
            .map(|l| format!(", first: {l}"))
            .unwrap_or_default()
    );
    let rss = operator.peak_rss_bytes()? as f64 / MIB;
    operator.stop().await?;
    let load_after = measure::uptime();

    Ok(report(
        &params,
        &floor_results,
        &op_results,
        (idle_rss, rss),
        &reconciles,
        (&load, &load_after),
    ))
}

async fn run_phase(
    admin: &Client,
    apiserver: u32,
    operator: Option<&measure::OperatorProcess>,
    params: &Params,
    phase: fixtures::Phase,
    ns: &str,
    floor_writer: Option<&Client>,
) -> anyhow::Result<PhaseResult> {
    let prefix = if floor_writer.is_some() {
        "floor"
    } else {
        "op"
    };
    let plan = fixtures::plan(phase, params, ns, prefix)?;
    let tracker = track::Tracker::start(admin, ns, &plan).await?;
    let requests_before = measure::Requests::scrape(admin).await?;
    let api_cpu = measure::cpu_seconds(apiserver)?;
    let op_cpu = operator.map(|o| o.cpu_seconds()).transpose()?;
    let started = Instant::now();
    tracker.set_start(started);
    if let Some(writer) = floor_writer {
        floor::run(
            admin,
            writer,
            &plan,
            params.concurrency,
            params.floor_writes,
        )
        .await?;
    } else {
        fixtures::create_parents(admin, &plan, params.concurrency).await?;
    }
    let seconds = tracker.wait(params.timeout).await?;
    let requests = measure::Requests::scrape(admin)
        .await?
        .since(&requests_before);
    Ok(PhaseResult {
        seconds,
        requests,
        apiserver_cpu: measure::cpu_seconds(apiserver)? - api_cpu,
        operator_cpu: match (operator, op_cpu) {
            (Some(o), Some(before)) => o.cpu_seconds()? - before,
            _ => 0.0,
        },
    })
}

fn report(
    params: &Params,
    floor: &[PhaseResult],
    op: &[PhaseResult],
    (idle_rss_mib, rss_mib): (f64, f64),
    reconciles: &[(String, f64)],
    load: (&str, &str),
) -> bool {
    let total = |rs: &[PhaseResult]| rs.iter().map(|r| r.seconds).sum::<f64>();
    let (floor_total, op_total) = (total(floor), total(op));
    let ratio = if floor_total > 0.0 {
        op_total / floor_total
    } else {
        0.0
    };
    let time_ok = ratio <= TARGET_RATIO;
    let rss_ok = rss_mib <= TARGET_RSS_MIB;
    let mark = |ok: bool| if ok { "ok" } else { "MISSED" };
    println!();
    println!(
        "model-registry-operator (release) on a local control plane: {} ModelRegistry, {} ModelTransfer, concurrency {}",
        params.registries, params.transfers, params.concurrency
    );
    println!(
        "floor writes: {}, as {}",
        params.floor_writes.describe(),
        params.floor_identity.describe()
    );
    println!("load: before {}; after {}", load.0, load.1);
    println!();
    println!(
        "| phase | floor s | operator s | ratio | API requests floor → operator | per CR floor → operator | API server CPU s floor → operator | operator CPU s |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (i, phase) in fixtures::Phase::ALL.iter().enumerate() {
        let (f, o) = (&floor[i], &op[i]);
        if phase.count(params) == 0 {
            continue;
        }
        let n = phase.count(params) as f64;
        println!(
            "| {} × {} | {:.2} | {:.2} | {:.2} | {} → {} | {:.1} → {:.1} | {:.1} → {:.1} | {:.1} |",
            phase.count(params),
            phase.kind(),
            f.seconds,
            o.seconds,
            o.seconds / f.seconds.max(1e-9),
            f.requests.summary(),
            o.requests.summary(),
            f.requests.total() / n,
            o.requests.total() / n,
            f.apiserver_cpu,
            o.apiserver_cpu,
            o.operator_cpu,
        );
    }
    println!();
    println!("| target | measured | limit | |");
    println!("|---|---|---|---|");
    println!(
        "| time (all phases) | {op_total:.2} s vs floor {floor_total:.2} s = {ratio:.2}× | ≤ {TARGET_RATIO}× | {} |",
        mark(time_ok)
    );
    println!(
        "| operator peak RSS (VmHWM) | {rss_mib:.1} MiB | ≤ {TARGET_RSS_MIB} MiB | {} |",
        mark(rss_ok)
    );
    let objects = (params.registries + params.transfers).max(1) as f64;
    println!(
        "| memory per CR (peak − idle {idle_rss_mib:.1} MiB, / {objects:.0}) | {:.1} KiB | | |",
        (rss_mib - idle_rss_mib) * 1024.0 / objects
    );
    if !reconciles.is_empty() {
        let list: Vec<String> = reconciles
            .iter()
            .map(|(c, n)| format!("{c} {n:.0}"))
            .collect();
        println!();
        println!("operator reconciles: {}", list.join(", "));
    }
    time_ok && rss_ok
}

/// The release operator binary: `BENCH_OPERATOR_BIN`, else built with cargo.
async fn operator_binary() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("BENCH_OPERATOR_BIN") {
        return Ok(PathBuf::from(p));
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = tokio::process::Command::new(cargo)
        .current_dir(mro_tests::tools::repo_root())
        .args([
            "build",
            "--release",
            "-p",
            "model-registry-operator",
            "--bin",
            "model-registry-operator",
            "--message-format=json-render-diagnostics",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .context("run cargo build --release -p model-registry-operator")?;
    if !out.status.success() {
        bail!(
            "cargo build --release -p model-registry-operator failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| {
            v["reason"] == "compiler-artifact" && v["target"]["name"] == "model-registry-operator"
        })
        .find_map(|v| v["executable"].as_str().map(PathBuf::from))
        .context("cargo did not report the model-registry-operator executable")
}
