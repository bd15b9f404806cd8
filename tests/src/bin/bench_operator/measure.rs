//! Measurements: the operator process (CPU, peak RSS, its own metrics), the API server's CPU
//! and request counters, and the machine's load.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use kube::Client;
use mro_tests::ports::free_port;

/// Clock ticks per second of `/proc/<pid>/stat` (`USER_HZ`, 100 on Linux).
const USER_HZ: f64 = 100.0;

/// The pid of a control-plane process started by `cluster.sh` (`<dir>/pids/<name>`).
pub fn pid_of(dir: &Path, name: &str) -> anyhow::Result<u32> {
    let f = dir.join("pids").join(name);
    let text = std::fs::read_to_string(&f).with_context(|| format!("read {}", f.display()))?;
    text.trim()
        .parse()
        .with_context(|| format!("{}: not a pid", f.display()))
}

/// User + system CPU seconds a process has used.
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("read /proc/{pid}/stat"))?;
    // Fields after the command name (which may contain spaces), from field 3 (state) on.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("unexpected /proc/<pid>/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<f64> {
        Ok(fields
            .get(i)
            .context("short /proc/<pid>/stat")?
            .parse::<f64>()?)
    };
    // utime and stime are fields 14 and 15, i.e. 11 and 12 after the state field.
    Ok((ticks(11)? + ticks(12)?) / USER_HZ)
}

/// The 1/5/15-minute load averages.
pub fn uptime() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Waits until the control plane is idle, at most 180 s: the API server nearly idle and hardly
/// any requests for two seconds in a row. The built-in controllers work through their backlog
/// at a capped request rate (cheap for the API server, so its CPU alone cannot tell), and a
/// phase must not start with the last one's leftovers.
pub async fn settle(admin: &Client, apiserver: u32) {
    let started = Instant::now();
    let mut quiet = 0;
    while started.elapsed() < Duration::from_secs(180) && quiet < 2 {
        let (Ok(cpu_before), Ok(before)) = (cpu_seconds(apiserver), Requests::scrape(admin).await)
        else {
            return;
        };
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (Ok(cpu_after), Ok(after)) = (cpu_seconds(apiserver), Requests::scrape(admin).await)
        else {
            return;
        };
        // The scrape itself is one request.
        let requests = after.since(&before).total() - 1.0;
        quiet = if cpu_after - cpu_before < 0.15 && requests < 5.0 {
            quiet + 1
        } else {
            0
        };
    }
    eprintln!("  settled in {:.1} s", started.elapsed().as_secs_f64());
}

/// `apiserver_request_total`, summed by verb and resource.
#[derive(Clone, Debug, Default)]
pub struct Requests(BTreeMap<(String, String), f64>);

fn label<'a>(line: &'a str, name: &str) -> &'a str {
    line.split(&format!("{name}=\""))
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or("")
}

impl Requests {
    pub async fn scrape(admin: &Client) -> anyhow::Result<Requests> {
        let req = http::Request::get("/metrics").body(Vec::new())?;
        let text = admin.request_text(req).await.context("GET /metrics")?;
        let mut counts = BTreeMap::new();
        for line in text
            .lines()
            .filter(|l| l.starts_with("apiserver_request_total{"))
        {
            let key = (
                label(line, "verb").to_string(),
                label(line, "resource").to_string(),
            );
            let value: f64 = line
                .rsplit(' ')
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0);
            *counts.entry(key).or_insert(0.0) += value;
        }
        Ok(Requests(counts))
    }

    pub fn since(&self, before: &Requests) -> Requests {
        Requests(
            self.0
                .iter()
                .map(|(k, v)| (k.clone(), v - before.0.get(k).copied().unwrap_or(0.0)))
                .filter(|(_, v)| *v > 0.0)
                .collect(),
        )
    }

    fn by_verb(&self) -> BTreeMap<&str, f64> {
        let mut m = BTreeMap::new();
        // Watches are long-running and counted when they end: left out.
        for ((verb, _), v) in self.0.iter().filter(|((verb, _), _)| verb != "WATCH") {
            *m.entry(verb.as_str()).or_insert(0.0) += v;
        }
        m
    }

    /// Requests of every verb but WATCH.
    pub fn total(&self) -> f64 {
        self.by_verb().values().sum()
    }

    /// `total (VERB n, …)`.
    pub fn summary(&self) -> String {
        let m = self.by_verb();
        let total: f64 = m.values().sum();
        let list: Vec<String> = m.iter().map(|(k, v)| format!("{k} {v:.0}")).collect();
        format!("{total:.0} ({})", list.join(", "))
    }

    /// One line per verb: counts by resource.
    pub fn detail(&self) -> String {
        let mut out = String::new();
        for verb in self.by_verb().keys() {
            let list: Vec<String> = self
                .0
                .iter()
                .filter(|((v, _), _)| v == verb)
                .map(|((_, r), n)| format!("{r} {n:.0}"))
                .collect();
            out.push_str(&format!("    {verb}: {}\n", list.join(", ")));
        }
        out
    }
}

/// The operator binary running as a process under the operator's identity.
pub struct OperatorProcess {
    child: tokio::process::Child,
    pid: u32,
    metrics_port: u16,
    log: PathBuf,
}

impl OperatorProcess {
    /// Starts the operator watching `namespace` and waits until it is ready.
    pub async fn start(
        bin: &Path,
        dir: &Path,
        namespace: &str,
        concurrency: usize,
    ) -> anyhow::Result<OperatorProcess> {
        let (health, metrics_port) = (free_port(), free_port());
        // Kept after the run (overwritten by the next one) for a look at what the operator did.
        let log = std::env::temp_dir().join("mro-bench-operator.log");
        let file =
            std::fs::File::create(&log).with_context(|| format!("create {}", log.display()))?;
        let child = tokio::process::Command::new(bin)
            .env_clear()
            .env("KUBECONFIG", dir.join("operator.kubeconfig"))
            .envs(crate::verbose().then_some((
                "RUST_LOG",
                "warn,model_registry_operator=debug,kube_runtime=debug",
            )))
            .args(["--watch-namespace", namespace])
            .args(["--max-concurrent-reconciles", &concurrency.to_string()])
            .args([
                "--health-probe-bind-address",
                &format!("127.0.0.1:{health}"),
            ])
            .args([
                "--metrics-bind-address",
                &format!("127.0.0.1:{metrics_port}"),
            ])
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("start {}", bin.display()))?;
        let pid = child.id().context("operator exited at once")?;
        let mut op = OperatorProcess {
            child,
            pid,
            metrics_port,
            log,
        };
        let url = format!("http://127.0.0.1:{health}/readyz");
        let started = Instant::now();
        loop {
            if let Some(status) = op.child.try_wait()? {
                bail!("the operator exited ({status}):\n{}", op.log_tail(40));
            }
            if reqwest::get(&url)
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                break;
            }
            if started.elapsed() > Duration::from_secs(60) {
                bail!("the operator is not ready after 60 s:\n{}", op.log_tail(40));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(op)
    }

    pub fn cpu_seconds(&self) -> anyhow::Result<f64> {
        cpu_seconds(self.pid)
    }

    /// Peak resident set size (`VmHWM`).
    pub fn peak_rss_bytes(&self) -> anyhow::Result<u64> {
        self.status_bytes("VmHWM:")
    }

    /// Resident set size now (`VmRSS`).
    pub fn rss_bytes(&self) -> anyhow::Result<u64> {
        self.status_bytes("VmRSS:")
    }

    fn status_bytes(&self, field: &str) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .with_context(|| format!("no {field} in /proc/<pid>/status"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()?;
        Ok(kib * 1024)
    }

    /// `model_registry_operator_reconciles_total` and `…_status_writes_total` by controller.
    pub async fn reconciles(&self) -> anyhow::Result<Vec<(String, f64)>> {
        let url = format!("http://127.0.0.1:{}/metrics", self.metrics_port);
        let text = reqwest::get(&url).await?.text().await?;
        Ok(text
            .lines()
            .filter(|l| {
                l.starts_with("model_registry_operator_reconciles_total{")
                    || l.starts_with("model_registry_operator_status_writes_total{")
            })
            .filter_map(|l| {
                let (name, value) = l.rsplit_once(' ')?;
                Some((
                    name.trim_start_matches("model_registry_operator_")
                        .to_string(),
                    value.parse().ok()?,
                ))
            })
            .collect())
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Log lines at WARN or ERROR level, and the first of them.
    pub fn log_problems(&self) -> (usize, Option<String>) {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let mut bad = text
            .lines()
            .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "));
        let first = bad.next().map(str::to_string);
        (first.iter().count() + bad.count(), first)
    }

    /// The last `n` lines of the operator's log.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// SIGTERM, then waits for a clean exit.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let ok = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()?
            .success();
        if !ok {
            bail!("cannot signal the operator");
        }
        let status = tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .context("the operator did not stop within 20 s of SIGTERM")??;
        if !status.success() {
            bail!("the operator exited with {status}:\n{}", self.log_tail(40));
        }
        Ok(())
    }
}
