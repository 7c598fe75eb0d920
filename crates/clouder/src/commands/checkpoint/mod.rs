//! `clouder checkpoint`: checkpoint a running container into an OCI checkpoint image, keep a
//! catalogue of them with retention, and restore one as a new pod.

use crate::Usage;
use crate::cli::{
    Checkpoint, CheckpointCreateArgs, CheckpointIdArgs, CheckpointLsArgs, CheckpointRestoreArgs,
    Global, SshFlags,
};
use crate::home::Home;
use crate::output;
use anyhow::{Context as _, Result, anyhow};
use clouder_checkpoint::backend;
use clouder_checkpoint::catalogue::{self, Retention};
use clouder_checkpoint::pod::{self, PodRecord};
use clouder_checkpoint::policy::CheckpointPolicy;
use clouder_state::{CheckpointRecord, StateStore};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use std::time::{Duration, Instant};
use take::target;

mod controller;
pub mod drain;
mod node;
pub mod place;
pub mod take;

pub async fn run(home: &Home, g: &Global, command: Checkpoint) -> Result<()> {
    match command {
        Checkpoint::Create(args) => create(home, g, args).await,
        Checkpoint::Ls(args) => ls(home, g, args),
        Checkpoint::Show(args) => show(home, g, args),
        Checkpoint::Rm(args) => rm(home, g, args).await,
        Checkpoint::Restore(args) => restore(home, g, args).await,
        Checkpoint::Controller(args) => controller::run(home, g, args).await,
        Checkpoint::Crd => {
            let crd = <CheckpointPolicy as kube::CustomResourceExt>::crd();
            print!("{}", serde_yaml_ng::to_string(&crd)?);
            Ok(())
        }
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

async fn create(home: &Home, g: &Global, args: CheckpointCreateArgs) -> Result<()> {
    let client = kube_client(home, &args.cluster).await?;
    let request = take::Request {
        cluster: args.cluster,
        namespace: args.namespace,
        pod: args.pod,
        container: args.container,
        to: args.to,
        timeout: args.timeout,
        labels: args.labels.into_iter().collect(),
        retention: Retention {
            keep: args.keep,
            max_age: args.max_age_hours.map(|h| Duration::from_secs(h * 3600)),
        },
        archive: args.archive,
        access: args.node,
    };
    let taken = take::take(home, g, &client, &request).await?;
    output::emit(g.output, &taken, || {
        let record = &taken.checkpoint;
        let mut text = format!(
            "checkpoint {} stored as {} ({} bytes uploaded, {} blobs already there) in {:.1}s\n",
            record.id, record.reference, taken.uploaded_bytes, taken.reused_blobs, taken.seconds
        );
        for id in &taken.dropped {
            text += &format!("retention dropped {id}\n");
        }
        text
    })
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
    let removed = forget(home, &args.id).await?;
    output::emit(g.output, &removed, || format!("removed {}\n", removed.id))
}

/// Deletes a checkpoint's image from its backend and its record from the catalogue.
pub async fn forget(home: &Home, id: &str) -> Result<CheckpointRecord> {
    let r = record(home, id)?;
    let backend = backend::open(&r.backend).await?;
    Ok(catalogue::remove(&home.store()?, backend.as_ref(), &r.id).await?)
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
    let wait = Duration::from_secs(args.wait);
    let to = RestoreTarget {
        home,
        g,
        client: &client,
        ssh: &args.ssh,
    };
    let done = restore_pod(&to, &r, &name, args.node, wait).await?;
    output::emit(g.output, &done, || {
        let mut text = format!(
            "restored {} as pod {} on {} in {:.1}s\n",
            done.checkpoint, done.pod, done.node, done.seconds
        );
        if !done.dropped_env.is_empty() {
            text += &format!(
                "recreated without the literal values of {} (never recorded; the restored process keeps its own)\n",
                done.dropped_env.join(", ")
            );
        }
        text
    })
}

#[derive(Debug, serde::Serialize)]
pub struct Restored {
    pub pod: String,
    pub node: String,
    pub checkpoint: String,
    /// `CONTAINER/NAME` of the env vars recreated without their literal values (never kept):
    /// the restored process has them, other containers start without them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dropped_env: Vec<String>,
    /// The image the container was created from: the registry's, or the one imported on the node.
    pub image: String,
    /// Bytes streamed to the node when the image was imported there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub imported_bytes: Option<u64>,
    pub seconds: f64,
}

/// Where and how a checkpoint is restored.
pub struct RestoreTarget<'a> {
    pub home: &'a Home,
    pub g: &'a Global,
    pub client: &'a kube::Client,
    /// How nodes are logged in to, to import images from backends they cannot pull from.
    pub ssh: &'a SshFlags,
}

/// Creates pod `name` whose container image is the checkpoint image — pulled from its registry,
/// or imported on the node first (see [`place`]) — on `node` or where it goes, and waits until
/// its container runs.
pub async fn restore_pod(
    to: &RestoreTarget<'_>,
    r: &CheckpointRecord,
    name: &str,
    node: Option<String>,
    wait: Duration,
) -> Result<Restored> {
    let started = Instant::now();
    let placed = place::place(to.home, to.g, to.client, r, node, to.ssh).await?;
    let recorded: Option<PodRecord> = r
        .pod_spec
        .clone()
        .map(serde_json::from_value)
        .transpose()
        .with_context(|| format!("checkpoint {}: the recorded pod does not parse", r.id))?;
    let pod = pod::restored(
        recorded.as_ref(),
        &pod::Restore {
            name,
            namespace: &r.namespace,
            pod: &r.pod,
            container: &r.container,
            checkpoint: &r.id,
            image: &placed.image,
            pull_policy: placed.pull_policy,
            node: placed.node.as_deref(),
        },
    );
    let pods: Api<Pod> = Api::namespaced(to.client.clone(), &r.namespace);
    pods.create(&PostParams::default(), &pod)
        .await
        .with_context(|| format!("creating pod {}/{name}", r.namespace))?;
    let deadline = started + wait;
    let mut last = String::from("no status yet");
    loop {
        if let Some(pod) = pods.get_opt(name).await? {
            match target(&pod, Some(&r.container)) {
                Ok(t) => {
                    return Ok(Restored {
                        pod: format!("{}/{name}", r.namespace),
                        node: t.node,
                        checkpoint: r.id.clone(),
                        dropped_env: recorded.map(|p| p.dropped_env).unwrap_or_default(),
                        image: placed.image,
                        imported_bytes: placed.imported_bytes,
                        seconds: started.elapsed().as_secs_f64(),
                    });
                }
                Err(why) => last = why,
            }
        }
        if Instant::now() > deadline {
            return Err(anyhow!(
                "pod {}/{name} did not run within {}s: {last}",
                r.namespace,
                wait.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
