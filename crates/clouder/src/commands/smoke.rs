//! `clouder kubeadm smoke-test NAME`: what a user expects of a working cluster, checked for real
//! in a namespace of its own:
//! - **ingress**: the ingress controller clouder enabled has rolled out and its load balancer's
//!   address answers HTTP (any status: the default backend's 404 is an answer). A cluster
//!   without one is reported as such, not failed.
//! - **checkpoint/restore**: a counter pod runs; it is checkpointed (the `checkpoint create`
//!   path), deleted, restored (the `checkpoint restore` path), and must count on from the value
//!   in its checkpoint — proof that the process's memory survived.
//!
//! Every step is reported with its time (`-o json` too); the namespace and the checkpoint are
//! removed afterwards unless `--no-cleanup`.

use super::checkpoint::{self, take};
use crate::cli::{Global, SmokeArgs};
use crate::home::Home;
use crate::output;
use anyhow::{Result, anyhow};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams};
use serde::Serialize;
use std::time::{Duration, Instant};

/// The counter: one number a line, five a second, from memory (a shell variable).
pub const COUNTER: &str = "i=0; while :; do echo $i; i=$((i+1)); sleep 0.2; done";
/// Counts to see before checkpointing: a restart from zero cannot pass for a restore.
const WARM_UP: usize = 10;
/// For tests of the verdict: the "restored" pod is started from the counter's own image instead
/// of the checkpoint, as a runtime that cannot restore would do; its memory does not survive.
pub const FAULT_FRESH_RESTORE: &str = "CLOUDER_FAULT_FRESH_RESTORE";

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Passed,
    Skipped,
    Failed,
}

#[derive(Debug, Serialize)]
pub struct Step {
    pub name: &'static str,
    pub outcome: Outcome,
    pub seconds: f64,
    pub detail: String,
}

/// What the counter printed around its checkpoint and after its restore.
#[derive(Debug, Default, Serialize)]
pub struct Counter {
    pub image: String,
    pub node: Option<String>,
    /// The last count read from the pod's log just before the checkpoint was asked for.
    pub before_checkpoint: Option<u64>,
    /// The last count in the checkpoint's container log.
    pub checkpointed: Option<u64>,
    pub checkpoint: Option<String>,
    pub restored_node: Option<String>,
    /// The image the restored container came from, and the bytes imported on its node when
    /// the checkpoint is kept where nodes cannot pull from.
    pub restored_image: Option<String>,
    pub imported_bytes: Option<u64>,
    /// The first counts the restored process printed.
    pub restored: Vec<u64>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub cluster: String,
    pub namespace: String,
    pub passed: bool,
    pub steps: Vec<Step>,
    pub counter: Counter,
    pub cleaned_up: bool,
}

/// Pure: whether the restored counter continued from its checkpoint. The process's count when
/// it was dumped lies between `before` (the last count seen before asking for the checkpoint)
/// and `checkpointed` (the last in the archive's log, which the runtime copies after the dump,
/// while the container runs on): the restored process counts on from there, so its first count
/// is above `before` and at most one past `checkpointed`. A process that lost its memory starts
/// again from zero.
pub fn verdict(
    before: u64,
    checkpointed: u64,
    restored: &[u64],
) -> std::result::Result<String, String> {
    let Some(&first) = restored.first() else {
        return Err("the restored counter printed nothing".into());
    };
    if first <= before {
        return Err(format!(
            "the restored counter started at {first}, but it had counted to {before} before its checkpoint (the checkpoint holds {checkpointed}): the process's memory did not survive the restore"
        ));
    }
    if first > checkpointed + 1 {
        return Err(format!(
            "the restored counter started at {first}, past the checkpointed {checkpointed}: it is not the checkpointed process"
        ));
    }
    if let Some(w) = restored.windows(2).find(|w| w[1] != w[0] + 1) {
        return Err(format!(
            "the restored counter does not count on: {} then {}",
            w[0], w[1]
        ));
    }
    Ok(format!(
        "counted to {before} before the checkpoint ({checkpointed} in it), restored counting {}",
        restored
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// Pure: the counts in a log (`--timestamps` lines), printed at or after `since` when given.
pub fn counts(log: &str, since: Option<jiff::Timestamp>) -> Vec<u64> {
    log.lines()
        .filter_map(|line| {
            let (time, value) = line.split_once(' ')?;
            let time: jiff::Timestamp = time.parse().ok()?;
            let value = value.trim().parse().ok()?;
            since.is_none_or(|s| time >= s).then_some(value)
        })
        .collect()
}

/// Pure: the ingress verdict from what clouder's ingress addons installed: the controllers'
/// workloads (name, desired, ready) and their load balancers' addresses.
pub fn ingress_state(
    workloads: &[(String, i32, i32)],
    addresses: &[String],
) -> std::result::Result<Option<String>, String> {
    if workloads.is_empty() {
        return Ok(None);
    }
    if let Some((name, desired, ready)) = workloads.iter().find(|(_, d, r)| r < d || *d == 0) {
        return Err(format!(
            "ingress controller {name} has not rolled out: {ready} of {desired} ready"
        ));
    }
    addresses
        .first()
        .cloned()
        .map(Some)
        .ok_or_else(|| "the ingress controller's load balancer has no address yet".to_string())
}

/// Pure: `HOST[:PORT]` of a Service's load balancer, at its `http` port (80 left out).
pub fn load_balancer_addresses(s: &Service) -> Vec<String> {
    let ports = s
        .spec
        .as_ref()
        .and_then(|s| s.ports.clone())
        .unwrap_or_default();
    let port = ports
        .iter()
        .find(|p| p.name.as_deref() == Some("http"))
        .or(ports.first())
        .map_or(80, |p| p.port);
    let lb = s
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|l| l.ingress.clone());
    lb.unwrap_or_default()
        .into_iter()
        .filter_map(|i| i.hostname.or(i.ip))
        .map(|host| {
            if port == 80 {
                host
            } else {
                format!("{host}:{port}")
            }
        })
        .collect()
}

struct Run<'a> {
    home: &'a Home,
    g: &'a Global,
    args: &'a SmokeArgs,
    /// Where the counter's checkpoint image goes.
    to: String,
    cluster: String,
    namespace: String,
    client: kube::Client,
    steps: Vec<Step>,
    counter: Counter,
    timeout: Duration,
}

impl Run<'_> {
    /// Runs one step, recording its outcome and time; a failure ends the test.
    async fn step<T>(
        &mut self,
        name: &'static str,
        work: impl AsyncFnOnce(&mut Self) -> std::result::Result<(Outcome, String, T), String>,
    ) -> Option<T> {
        let started = Instant::now();
        let result = work(self).await;
        let seconds = started.elapsed().as_secs_f64();
        match result {
            Ok((outcome, detail, value)) => {
                self.steps.push(Step {
                    name,
                    outcome,
                    seconds,
                    detail,
                });
                Some(value)
            }
            Err(detail) => {
                self.steps.push(Step {
                    name,
                    outcome: Outcome::Failed,
                    seconds,
                    detail,
                });
                None
            }
        }
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Waits for `probe` to give a value, up to the test's timeout.
    async fn wait<T>(
        &self,
        what: &str,
        mut probe: impl AsyncFnMut() -> std::result::Result<Option<T>, String>,
    ) -> std::result::Result<T, String> {
        let deadline = Instant::now() + self.timeout;
        let mut last = String::new();
        loop {
            match probe().await {
                Ok(Some(v)) => return Ok(v),
                Ok(None) => {}
                Err(e) => last = e,
            }
            if Instant::now() > deadline {
                let why = if last.is_empty() {
                    String::new()
                } else {
                    format!(": {last}")
                };
                return Err(format!(
                    "{what} did not happen within {:?}{why}",
                    self.timeout
                ));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The counts pod `name` printed (since `since`), through the API server's `pods/log`.
    async fn counts_of(
        &self,
        name: &str,
        since: Option<jiff::Timestamp>,
    ) -> std::result::Result<Vec<u64>, String> {
        let params = LogParams {
            timestamps: true,
            ..Default::default()
        };
        let log = self
            .pods()
            .logs(name, &params)
            .await
            .map_err(|e| e.to_string())?;
        Ok(counts(&log, since))
    }

    async fn running(&self, name: &str) -> std::result::Result<String, String> {
        self.wait(&format!("pod {name} running"), async || {
            let pod = self.pods().get(name).await.map_err(|e| e.to_string())?;
            match checkpoint::take::target(&pod, None) {
                Ok(t) => Ok(Some(t.node)),
                Err(e) => Err(e),
            }
        })
        .await
    }

    async fn ingress(&mut self) {
        self.step("ingress", async |run: &mut Self| {
            let client = run.client.clone();
            let addons = ListParams::default().labels(&format!(
                "{} in (ingress-nginx,ingress-traefik)",
                clouder_kube::addons::ADDON_LABEL
            ));
            let err = |e: kube::Error| e.to_string();
            let mut workloads = Vec::new();
            for d in Api::<Deployment>::all(client.clone()).list(&addons).await.map_err(err)? {
                let status = d.status.unwrap_or_default();
                let desired = d.spec.replicas.unwrap_or(1);
                workloads.push((d.metadata.name.unwrap_or_default(), desired, status.ready_replicas.unwrap_or(0)));
            }
            for d in Api::<DaemonSet>::all(client.clone()).list(&addons).await.map_err(err)? {
                let status = d.status.unwrap_or_default();
                workloads.push((d.metadata.name.unwrap_or_default(), status.desired_number_scheduled, status.number_ready));
            }
            let mut addresses = Vec::new();
            for s in Api::<Service>::all(client).list(&addons).await.map_err(err)? {
                addresses.extend(load_balancer_addresses(&s));
            }
            let Some(address) = ingress_state(&workloads, &addresses)? else {
                return Ok((
                    Outcome::Skipped,
                    format!("the cluster has no ingress controller (clouder kubeadm enable-ingress-traefik {})", run.cluster),
                    (),
                ));
            };
            let url = format!("http://{address}/");
            let answer = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .map_err(|e| e.to_string())?
                .get(&url)
                .send()
                .await
                .map_err(|e| format!("the ingress load balancer {url} does not answer: {e}"))?;
            Ok((Outcome::Passed, format!("{url} answered HTTP {}", answer.status().as_u16()), ()))
        })
        .await;
    }

    fn counter_pod(&self, name: &str, image: &str) -> Result<Pod> {
        Ok(serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": self.namespace, "labels": {"app.kubernetes.io/name": "clouder-smoke-counter"}},
            "spec": {"restartPolicy": "Never", "containers": [{
                "name": "counter", "image": image, "command": ["/bin/sh", "-c", COUNTER],
            }]},
        }))?)
    }

    /// Checkpoint/restore of the counter; false when a step failed.
    async fn counter(&mut self) -> bool {
        let image = self.args.image.clone();
        self.counter.image = image.clone();
        let counting = self
            .step("counter-runs", async |run: &mut Self| {
                let pod = run
                    .counter_pod("counter", &image)
                    .map_err(|e| e.to_string())?;
                run.pods()
                    .create(&PostParams::default(), &pod)
                    .await
                    .map_err(|e| e.to_string())?;
                let node = run.running("counter").await?;
                let seen = run
                    .wait(&format!("{WARM_UP} counts"), async || {
                        let c = run.counts_of("counter", None).await?;
                        Ok((c.len() >= WARM_UP).then_some(c))
                    })
                    .await?;
                run.counter.node = Some(node.clone());
                Ok((
                    Outcome::Passed,
                    format!("counting on {node}: {}", seen.len()),
                    (),
                ))
            })
            .await;
        if counting.is_none() {
            return false;
        }
        let taken = self
            .step("checkpoint", async |run: &mut Self| {
                let request = take::Request {
                    cluster: run.cluster.clone(),
                    namespace: run.namespace.clone(),
                    pod: "counter".into(),
                    container: Some("counter".into()),
                    to: run.to.clone(),
                    timeout: run.timeout.as_secs(),
                    labels: [("clouder.io/smoke-test".to_string(), run.namespace.clone())].into(),
                    retention: Default::default(),
                    archive: None,
                    access: crate::cli::NodeAccess {
                        kubelet: Default::default(),
                        ssh: run.args.ssh.clone(),
                    },
                };
                let before = run.counts_of("counter", None).await?.last().copied();
                run.counter.before_checkpoint = before;
                let taken = take::take(run.home, run.g, &run.client, &request)
                    .await
                    .map_err(|e| format!("{e:#}"))?;
                let checkpointed = taken
                    .last_output
                    .as_deref()
                    .and_then(|l| l.trim().parse::<u64>().ok())
                    .ok_or("the checkpoint's container log holds no count")?;
                run.counter.checkpointed = Some(checkpointed);
                run.counter.checkpoint = Some(taken.checkpoint.id.clone());
                Ok((
                    Outcome::Passed,
                    format!(
                        "{} at count {checkpointed}, {} bytes stored",
                        taken.checkpoint.id, taken.uploaded_bytes
                    ),
                    taken.checkpoint,
                ))
            })
            .await;
        let Some(record) = taken else {
            return false;
        };
        let deleted = self
            .step("delete", async |run: &mut Self| {
                run.pods()
                    .delete("counter", &DeleteParams::default())
                    .await
                    .map_err(|e| e.to_string())?;
                run.wait("pod counter gone", async || {
                    Ok(run
                        .pods()
                        .get_opt("counter")
                        .await
                        .map_err(|e| e.to_string())?
                        .is_none()
                        .then_some(()))
                })
                .await?;
                Ok((
                    Outcome::Passed,
                    "the checkpointed pod is gone".into(),
                    jiff::Timestamp::now(),
                ))
            })
            .await;
        let Some(since) = deleted else {
            return false;
        };
        let restored = self
            .step("restore", async |run: &mut Self| {
                let name = "counter-restored";
                if std::env::var_os(FAULT_FRESH_RESTORE).is_some() {
                    let pod = run
                        .counter_pod(name, &run.args.image)
                        .map_err(|e| e.to_string())?;
                    run.pods()
                        .create(&PostParams::default(), &pod)
                        .await
                        .map_err(|e| e.to_string())?;
                } else {
                    let to = checkpoint::RestoreTarget {
                        home: run.home,
                        g: run.g,
                        client: &run.client,
                        ssh: &run.args.ssh,
                    };
                    let done = checkpoint::restore_pod(&to, &record, name, None, run.timeout)
                        .await
                        .map_err(|e| format!("{e:#}"))?;
                    run.counter.restored_image = Some(done.image);
                    run.counter.imported_bytes = done.imported_bytes;
                }
                let node = run.running(name).await?;
                run.counter.restored_node = Some(node.clone());
                let how = match run.counter.imported_bytes {
                    Some(bytes) => format!(" (its image imported there, {bytes} bytes)"),
                    None => String::new(),
                };
                Ok((Outcome::Passed, format!("{name} runs on {node}{how}"), ()))
            })
            .await;
        if restored.is_none() {
            return false;
        }
        self.step("memory-survived", async |run: &mut Self| {
            let restored = run
                .wait("three counts from the restored counter", async || {
                    let c = run.counts_of("counter-restored", Some(since)).await?;
                    Ok((c.len() >= 3).then_some(c))
                })
                .await?;
            run.counter.restored = restored.iter().take(10).copied().collect();
            let checkpointed = run.counter.checkpointed.unwrap_or_default();
            let before = run.counter.before_checkpoint.unwrap_or_default();
            Ok((
                Outcome::Passed,
                verdict(before, checkpointed, &run.counter.restored)?,
                (),
            ))
        })
        .await
        .is_some()
    }

    async fn cleanup(&mut self) -> bool {
        if self.args.no_cleanup {
            return false;
        }
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        if let Err(e) = namespaces
            .delete(&self.namespace, &DeleteParams::default())
            .await
        {
            tracing::warn!("deleting namespace {}: {e}", self.namespace);
        }
        if let Some(id) = &self.counter.checkpoint
            && let Err(e) = checkpoint::forget(self.home, id).await
        {
            tracing::warn!("removing checkpoint {id}: {e:#}");
        }
        true
    }
}

/// Where the counter's checkpoint goes without `--to`: a local directory of the cluster's
/// (`CLOUDER_HOME/kubeadm/NAME/checkpoints`, private), from which restore imports the image on
/// the node over SSH. It needs no registry or cloud storage, works offline, and is the path
/// every non-registry backend takes. A cluster whose nodes clouder cannot log in to (adopted,
/// or unknown) has no such path: there it says what to give, before any call.
fn default_destination(home: &Home, cluster: &str) -> Result<String> {
    use clouder_state::StateStore as _;
    let reachable = home
        .store()?
        .cluster(cluster)?
        .is_some_and(|r| r.status != super::kube::ADOPTED);
    if !reachable {
        return Err(crate::Usage(format!(
            "smoke-test {cluster} restores the counter from its checkpoint image, and clouder \
             cannot log in to this cluster's nodes to import it there (it did not create or set \
             it up): store it where the nodes pull images from with --to HOST[:PORT]/REPO (a \
             registry) or CLOUDER_CHECKPOINT_TO; nothing was created"
        ))
        .into());
    }
    let dir = std::path::absolute(home.cluster_dir(cluster).join("checkpoints"))?;
    crate::home::private_dir(&dir)?;
    Ok(dir.display().to_string())
}

pub async fn smoke_test(home: &Home, g: &Global, args: SmokeArgs) -> Result<()> {
    let cluster = super::resolve_name(home, args.name.clone())?;
    let to = match args.to.clone() {
        Some(to) => to,
        None => default_destination(home, &cluster)?,
    };
    let client = super::kube_client(home, &cluster, None).await?;
    let namespace = format!(
        "clouder-smoke-{:x}{:x}",
        jiff::Timestamp::now().as_millisecond(),
        std::process::id()
    );
    let ns: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": namespace}}))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .map_err(|e| anyhow!("creating namespace {namespace} in cluster {cluster}: {e}"))?;
    let mut run = Run {
        home,
        g,
        args: &args,
        to,
        cluster,
        namespace,
        client,
        steps: Vec::new(),
        counter: Counter::default(),
        timeout: Duration::from_secs(args.timeout),
    };
    run.ingress().await;
    let passed = run.steps.iter().all(|s| s.outcome != Outcome::Failed) & run.counter().await;
    let cleaned_up = run.cleanup().await;
    let report = Report {
        cluster: run.cluster,
        namespace: run.namespace,
        passed,
        steps: run.steps,
        counter: run.counter,
        cleaned_up,
    };
    output::emit(g.output, &report, || {
        let rows: Vec<Vec<String>> = report
            .steps
            .iter()
            .map(|s| {
                let outcome = serde_json::to_value(s.outcome).unwrap_or_default();
                vec![
                    s.name.to_string(),
                    outcome.as_str().unwrap_or_default().to_string(),
                    format!("{:.1}s", s.seconds),
                    s.detail.clone(),
                ]
            })
            .collect();
        let kept = if report.cleaned_up { "" } else { " (kept)" };
        format!(
            "smoke test of {} in namespace {}{kept}:\n{}",
            report.cluster,
            report.namespace,
            output::table(&["STEP", "OUTCOME", "TIME", "DETAIL"], &rows)
        )
    })?;
    match report.steps.iter().find(|s| s.outcome == Outcome::Failed) {
        Some(s) => Err(anyhow!(
            "smoke test of {} failed at {}: {}",
            report.cluster,
            s.name,
            s.detail
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_survived_only_when_the_count_goes_on() {
        assert_eq!(
            verdict(39, 41, &[42, 43, 44]).unwrap(),
            "counted to 39 before the checkpoint (41 in it), restored counting 42, 43, 44"
        );
        assert!(
            verdict(39, 41, &[40, 41, 42]).is_ok(),
            "counts copied into the archive after the dump"
        );
        assert_eq!(
            verdict(39, 41, &[0, 1, 2]).unwrap_err(),
            "the restored counter started at 0, but it had counted to 39 before its checkpoint (the checkpoint holds 41): the process's memory did not survive the restore"
        );
        assert!(
            verdict(39, 41, &[90, 91])
                .unwrap_err()
                .contains("not the checkpointed process")
        );
        assert!(
            verdict(39, 41, &[42, 44])
                .unwrap_err()
                .contains("does not count on: 42 then 44")
        );
        assert!(verdict(39, 41, &[]).is_err());
        assert!(
            verdict(39, 41, &[39, 40]).is_err(),
            "not past what it had counted before"
        );
    }

    #[test]
    fn counts_come_from_timestamped_lines() {
        let log = "2026-11-26T03:00:00.1Z 7\n2026-11-26T03:00:05.0Z 8\nnot a count\n2026-11-26T03:00:06Z 9\n";
        assert_eq!(counts(log, None), [7, 8, 9]);
        let since = "2026-11-26T03:00:05Z".parse().unwrap();
        assert_eq!(counts(log, Some(since)), [8, 9]);
    }

    #[test]
    fn load_balancers_are_reached_at_their_http_port() {
        let service = |ports: serde_json::Value| -> Service {
            serde_json::from_value(serde_json::json!({
                "spec": {"type": "LoadBalancer", "ports": ports},
                "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}, {"hostname": "lb.example.com"}]}},
            }))
            .unwrap()
        };
        let web = serde_json::json!([{"name": "https", "port": 443}, {"name": "http", "port": 80}]);
        assert_eq!(
            load_balancer_addresses(&service(web)),
            ["203.0.113.9", "lb.example.com"]
        );
        let odd = serde_json::json!([{"name": "web", "port": 8080}]);
        assert_eq!(
            load_balancer_addresses(&service(odd))[0],
            "203.0.113.9:8080"
        );
        let none: Service =
            serde_json::from_value(serde_json::json!({"spec": {"type": "ClusterIP"}})).unwrap();
        assert!(load_balancer_addresses(&none).is_empty());
    }

    #[test]
    fn ingress_is_judged_from_its_controllers_and_load_balancers() {
        let ready = [("ingress-nginx-controller".to_string(), 1, 1)];
        assert_eq!(
            ingress_state(&[], &[]),
            Ok(None),
            "no controller: nothing to check"
        );
        assert_eq!(
            ingress_state(&ready, &["203.0.113.9".into()]),
            Ok(Some("203.0.113.9".into()))
        );
        assert_eq!(
            ingress_state(&[("ingress-nginx-controller".to_string(), 2, 1)], &[]),
            Err(
                "ingress controller ingress-nginx-controller has not rolled out: 1 of 2 ready"
                    .into()
            )
        );
        assert_eq!(
            ingress_state(&ready, &[]),
            Err("the ingress controller's load balancer has no address yet".into())
        );
    }
}
