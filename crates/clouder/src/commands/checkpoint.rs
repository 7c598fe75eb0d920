//! `clouder checkpoint`: checkpoint a running container into an OCI checkpoint image, keep a
//! catalogue of them with retention, and restore one as a new pod.

use crate::Usage;
use crate::cli::{
    Checkpoint, CheckpointCreateArgs, CheckpointIdArgs, CheckpointLsArgs, CheckpointRestoreArgs,
    Global,
};
use crate::home::Home;
use crate::output;
use anyhow::{Context as _, Result, anyhow};
use clouder_checkpoint::catalogue::{self, Retention};
use clouder_checkpoint::{CheckpointImage, backend, kubelet};
use clouder_state::{CheckpointRecord, StateStore};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use std::time::{Duration, Instant};

pub async fn run(home: &Home, g: &Global, command: Checkpoint) -> Result<()> {
    match command {
        Checkpoint::Create(args) => create(home, g, args).await,
        Checkpoint::Ls(args) => ls(home, g, args),
        Checkpoint::Show(args) => show(home, g, args),
        Checkpoint::Rm(args) => rm(home, g, args).await,
        Checkpoint::Restore(args) => restore(home, g, args).await,
    }
}

async fn kube_client(home: &Home, cluster: &str) -> Result<kube::Client> {
    let path = home.kubeconfig(cluster);
    if !path.exists() {
        return Err(Usage(format!(
            "cluster {cluster} has no kubeconfig at {} (clouder kubeadm get-config {cluster})",
            path.display()
        ))
        .into());
    }
    // The AWS SDK brings a second TLS backend; kube's client needs one chosen.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let kubeconfig = kube::config::Kubeconfig::read_from(&path)?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
    Ok(kube::Client::try_from(config)?)
}

/// The container to checkpoint and the node it runs on.
#[derive(Debug, PartialEq)]
struct Target {
    container: String,
    node: String,
}

/// Pure: checks that `pod` has the container (default: its first) and that it runs on a node.
fn target(pod: &Pod, container: Option<&str>) -> std::result::Result<Target, String> {
    let name = format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or_default()
    );
    let spec = pod.spec.as_ref().ok_or(format!("pod {name} has no spec"))?;
    let names: Vec<&str> = spec.containers.iter().map(|c| c.name.as_str()).collect();
    let container = match container {
        Some(c) if names.contains(&c) => c.to_string(),
        Some(c) => {
            return Err(format!(
                "pod {name} has no container {c} (it has: {})",
                names.join(", ")
            ));
        }
        None => names
            .first()
            .ok_or(format!("pod {name} has no containers"))?
            .to_string(),
    };
    let status = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|all| all.iter().find(|s| s.name == container));
    let state = status.and_then(|s| s.state.as_ref());
    if state.and_then(|s| s.running.as_ref()).is_none() {
        let why = match state {
            Some(s) if s.waiting.is_some() => {
                let reason = s.waiting.as_ref().and_then(|w| w.reason.clone());
                format!("waiting: {}", reason.unwrap_or_default())
            }
            Some(s) if s.terminated.is_some() => "terminated".to_string(),
            _ => "no status yet".to_string(),
        };
        return Err(format!(
            "container {container} of pod {name} is not running ({why}): only running containers can be checkpointed"
        ));
    }
    let node = spec
        .node_name
        .clone()
        .ok_or(format!("pod {name} is not scheduled on a node"))?;
    Ok(Target { container, node })
}

async fn create(home: &Home, g: &Global, args: CheckpointCreateArgs) -> Result<()> {
    let client = kube_client(home, &args.cluster).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &args.namespace);
    let pod = pods.get_opt(&args.pod).await?.ok_or_else(|| {
        anyhow!(
            "pod {}/{} not found in cluster {}",
            args.namespace,
            args.pod,
            args.cluster
        )
    })?;
    let target = target(&pod, args.container.as_deref()).map_err(|e| anyhow!(e))?;
    let started = Instant::now();
    let archive = match &args.archive {
        Some(path) => path.clone(),
        None => {
            let on_node = checkpoint_on_node(&client, &args, &target).await?;
            return Err(anyhow!(
                "the kubelet wrote {on_node} on node {}; fetching archives from nodes over SSH is not wired into `checkpoint create` yet: copy it here and pass --archive",
                target.node
            ));
        }
    };
    let node = target.node.clone();
    let image =
        tokio::task::spawn_blocking(move || CheckpointImage::from_archive(&archive, Some(&node)))
            .await??;
    let m = &image.metadata;
    let archived = (
        m.namespace.as_deref(),
        m.pod.as_deref(),
        m.container.as_str(),
    );
    let asked = (
        args.namespace.as_str(),
        args.pod.as_str(),
        target.container.as_str(),
    );
    if archived.0.is_some_and(|n| n != asked.0)
        || archived.1.is_some_and(|p| p != asked.1)
        || archived.2 != asked.2
    {
        return Err(Usage(format!(
            "the archive is a checkpoint of {}/{}/{}, not of {}/{}/{}",
            archived.0.unwrap_or("?"),
            archived.1.unwrap_or("?"),
            archived.2,
            asked.0,
            asked.1,
            asked.2
        ))
        .into());
    }
    let store = home.store()?;
    let backend = backend::open(&args.to).await?;
    let retention = Retention {
        keep: args.keep,
        max_age: args.max_age_hours.map(|h| Duration::from_secs(h * 3600)),
    };
    let labels = args.labels.into_iter().collect();
    let (record, report, dropped) = catalogue::store(
        &store,
        backend.as_ref(),
        &image,
        &args.cluster,
        labels,
        retention,
    )
    .await?;
    #[derive(serde::Serialize)]
    struct Created<'a> {
        checkpoint: &'a CheckpointRecord,
        uploaded_bytes: u64,
        reused_blobs: usize,
        dropped: &'a [String],
        seconds: f64,
    }
    let created = Created {
        checkpoint: &record,
        uploaded_bytes: report.bytes_uploaded,
        reused_blobs: report.skipped.len(),
        dropped: &dropped,
        seconds: started.elapsed().as_secs_f64(),
    };
    output::emit(g.output, &created, || {
        let mut text = format!(
            "checkpoint {} stored as {} ({} bytes uploaded, {} blobs already there) in {:.1}s\n",
            record.id,
            record.reference,
            report.bytes_uploaded,
            report.skipped.len(),
            created.seconds
        );
        for id in &dropped {
            text += &format!("retention dropped {id}\n");
        }
        text
    })
}

/// Asks the pod's kubelet, through the API server's node proxy, to checkpoint the container.
async fn checkpoint_on_node(
    client: &kube::Client,
    args: &CheckpointCreateArgs,
    target: &Target,
) -> Result<String> {
    let path = format!(
        "/api/v1/nodes/{}/proxy/checkpoint/{}/{}/{}?timeout={}",
        target.node, args.namespace, args.pod, target.container, args.timeout
    );
    let request = http::Request::post(&path).body(Vec::new())?;
    let endpoint = format!("node {} (through the API server)", target.node);
    let (status, body) = match client.request_text(request).await {
        Ok(body) => (200, body),
        Err(kube::Error::Api(e)) => (e.code, e.message),
        Err(e) => return Err(e.into()),
    };
    let paths = kubelet::classify(&endpoint, status, body.trim())?;
    paths
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("{endpoint} answered without an archive path"))
}

fn ls(home: &Home, g: &Global, args: CheckpointLsArgs) -> Result<()> {
    let cluster = super::resolve_name(home, args.cluster)?;
    let records = home.store()?.checkpoints(&cluster)?;
    output::emit(g.output, &records, || {
        let rows: Vec<Vec<String>> = records
            .iter()
            .map(|r| {
                vec![
                    r.id.clone(),
                    format!("{}/{}", r.namespace, r.pod),
                    r.container.clone(),
                    r.node.clone().unwrap_or_default(),
                    format!("{:.1} MiB", r.size as f64 / (1 << 20) as f64),
                    r.backend.clone(),
                ]
            })
            .collect();
        output::table(
            &["ID", "POD", "CONTAINER", "NODE", "SIZE", "BACKEND"],
            &rows,
        )
    })
}

fn record(home: &Home, id: &str) -> Result<CheckpointRecord> {
    home.store()?
        .checkpoint(id)?
        .ok_or_else(|| anyhow!(catalogue::CatalogueError::Unknown(id.to_string())))
}

fn show(home: &Home, g: &Global, args: CheckpointIdArgs) -> Result<()> {
    let r = record(home, &args.id)?;
    output::emit(g.output, &r, || {
        let labels: Vec<String> = r.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!(
            "id:        {}\ncluster:   {}\npod:       {}/{}\ncontainer: {}\nnode:      {}\nimage:     {}\nstored:    {}\nreference: {}\ndigest:    {}\nsize:      {} bytes\nlabels:    {}\n",
            r.id,
            r.cluster,
            r.namespace,
            r.pod,
            r.container,
            r.node.as_deref().unwrap_or("-"),
            r.image,
            r.backend,
            r.reference,
            r.manifest_digest,
            r.size,
            labels.join(", ")
        )
    })
}

async fn rm(home: &Home, g: &Global, args: CheckpointIdArgs) -> Result<()> {
    let r = record(home, &args.id)?;
    let backend = backend::open(&r.backend).await?;
    let removed = catalogue::remove(&home.store()?, backend.as_ref(), &r.id).await?;
    output::emit(g.output, &removed, || format!("removed {}\n", removed.id))
}

async fn restore(home: &Home, g: &Global, args: CheckpointRestoreArgs) -> Result<()> {
    let r = record(home, &args.id)?;
    if r.cluster != args.cluster {
        return Err(Usage(format!(
            "checkpoint {} belongs to cluster {}, not {}",
            r.id, r.cluster, args.cluster
        ))
        .into());
    }
    let client = kube_client(home, &args.cluster).await?;
    let name = args.name.unwrap_or_else(|| format!("{}-restored", r.pod));
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {
            "name": name,
            "namespace": r.namespace,
            "labels": {"clouder.io/restored-from": r.pod},
            "annotations": {"clouder.io/checkpoint": r.id},
        },
        "spec": {
            "nodeName": args.node,
            "containers": [{"name": r.container, "image": r.reference}],
        },
    }))?;
    let pods: Api<Pod> = Api::namespaced(client, &r.namespace);
    let started = Instant::now();
    pods.create(&PostParams::default(), &pod)
        .await
        .with_context(|| format!("creating pod {}/{name}", r.namespace))?;
    let deadline = started + Duration::from_secs(args.wait);
    let mut last = String::from("no status yet");
    loop {
        if let Some(pod) = pods.get_opt(&name).await? {
            match target(&pod, Some(&r.container)) {
                Ok(t) => {
                    #[derive(serde::Serialize)]
                    struct Restored {
                        pod: String,
                        node: String,
                        checkpoint: String,
                        seconds: f64,
                    }
                    let done = Restored {
                        pod: format!("{}/{name}", r.namespace),
                        node: t.node,
                        checkpoint: r.id.clone(),
                        seconds: started.elapsed().as_secs_f64(),
                    };
                    return output::emit(g.output, &done, || {
                        format!(
                            "restored {} as pod {} on {} in {:.1}s\n",
                            done.checkpoint, done.pod, done.node, done.seconds
                        )
                    });
                }
                Err(why) => last = why,
            }
        }
        if Instant::now() > deadline {
            return Err(anyhow!(
                "pod {}/{name} did not run within {}s: {last}",
                r.namespace,
                args.wait
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(state: serde_json::Value, node: Option<&str>) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-0", "namespace": "shop"},
            "spec": {"nodeName": node, "containers": [{"name": "app"}, {"name": "sidecar"}]},
            "status": {"containerStatuses": [{"name": "app", "state": state, "ready": true, "restartCount": 0, "image": "i", "imageID": "i"}]},
        }))
        .unwrap()
    }

    #[test]
    fn the_target_is_a_running_container_on_a_node() {
        let running = serde_json::json!({"running": {}});
        let node = Target {
            container: "app".into(),
            node: "w-0".into(),
        };
        assert_eq!(target(&pod(running.clone(), Some("w-0")), None), Ok(node));
        assert_eq!(
            target(&pod(running.clone(), Some("w-0")), Some("db")),
            Err("pod shop/web-0 has no container db (it has: app, sidecar)".into())
        );
        assert_eq!(
            target(&pod(running.clone(), Some("w-0")), Some("sidecar")),
            Err("container sidecar of pod shop/web-0 is not running (no status yet): only running containers can be checkpointed".into())
        );
        let waiting = serde_json::json!({"waiting": {"reason": "CrashLoopBackOff"}});
        assert_eq!(
            target(&pod(waiting, Some("w-0")), None),
            Err("container app of pod shop/web-0 is not running (waiting: CrashLoopBackOff): only running containers can be checkpointed".into())
        );
        assert_eq!(
            target(&pod(running, None), None),
            Err("pod shop/web-0 is not scheduled on a node".into())
        );
    }
}
