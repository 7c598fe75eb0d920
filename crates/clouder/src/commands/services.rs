//! `clouder services plan|deploy|status|rollback`: the ordered rollout of a services file's
//! releases (clouder-kube's `services`), against a cluster's kubeconfig or `--kubeconfig FILE`.

use super::kube::kubeconfig_for;
use super::resolve_name;
use crate::Usage;
use crate::cli::{
    Format, Global, Services, ServicesArgs, ServicesDeployArgs, ServicesRollbackArgs,
};
use crate::home::Home;
use crate::output;
use anyhow::{Result, anyhow, bail};
use clouder_kube::Applier;
use clouder_kube::services::{self, DeployOutcome, Event, Options, helm::HelmBinary};
use std::path::PathBuf;
use std::time::Duration;

pub async fn run(home: &Home, g: &Global, command: Services) -> Result<()> {
    match command {
        Services::Plan(args) => plan(home, g, args).await,
        Services::Deploy(args) => deploy(home, g, args).await,
        Services::Status(args) => status(home, g, args).await,
        Services::Rollback(args) => rollback(home, g, args).await,
    }
}

/// Bad input is a usage error (exit 2); the rest fails the command (exit 1).
fn lift(e: services::Error) -> anyhow::Error {
    match e {
        services::Error::Invalid(errors) => errors.into(),
        services::Error::Kube(e) => e.into(),
    }
}

/// A client for the cluster: `--kubeconfig FILE` (then the cluster's name is optional), else the
/// named (or default) cluster's own kubeconfig.
async fn applier(
    home: &Home,
    cluster: Option<String>,
    kubeconfig: Option<PathBuf>,
) -> Result<Applier> {
    let path = match (cluster, kubeconfig) {
        (None, Some(file)) if file.exists() => file,
        (None, Some(file)) => bail!(Usage(format!("no kubeconfig at {}", file.display()))),
        (cluster, flag) => kubeconfig_for(home, &resolve_name(home, cluster)?, flag.as_deref())?,
    };
    Ok(Applier::new(clouder_kube::connect(&path).await?))
}

/// The checked services file and the cluster to roll it out to, its releases rendered.
async fn prepared(
    home: &Home,
    args: ServicesArgs,
) -> Result<(Applier, services::Services, Vec<services::Rendered>)> {
    let file = services::file::load(&args.file)?;
    let applier = applier(home, args.cluster, args.kubeconfig).await?;
    let rendered = services::prepare(&applier, &file, &HelmBinary::default())
        .await
        .map_err(lift)?;
    Ok((applier, file, rendered))
}

async fn plan(home: &Home, g: &Global, args: ServicesArgs) -> Result<()> {
    let (applier, _, rendered) = prepared(home, args).await?;
    let plans = services::plan(&applier, &rendered).await.map_err(lift)?;
    output::emit(g.output, &plans, || {
        let rows: Vec<Vec<String>> = plans
            .iter()
            .flat_map(|p| {
                p.changes.iter().map(|c| {
                    vec![
                        p.wave.to_string(),
                        p.name.clone(),
                        p.version.clone(),
                        revision(p.revision),
                        c.action.to_string(),
                        c.object.clone(),
                    ]
                })
            })
            .collect();
        output::table(
            &["WAVE", "RELEASE", "VERSION", "DEPLOYED", "ACTION", "OBJECT"],
            &rows,
        )
    })
}

fn revision(r: Option<u32>) -> String {
    r.map_or("-".into(), |r| r.to_string())
}

async fn deploy(home: &Home, g: &Global, args: ServicesDeployArgs) -> Result<()> {
    let (applier, _, rendered) = prepared(home, args.target).await?;
    let quiet = g.quiet || g.output != Format::Table;
    let observe = |e: &Event| {
        if quiet {
            return;
        }
        match e {
            Event::Wave(w) => eprintln!("wave {w}"),
            Event::Applying(r) => eprintln!("  {r}: applying"),
            Event::Healthy(r) => eprintln!("  {r}: healthy"),
            Event::Failed { release, reason } => eprintln!("  {release}: failed: {reason}"),
            Event::RolledBack { release, to } => match to {
                Some(n) => eprintln!("  {release}: rolled back to revision {n}"),
                None => eprintln!("  {release}: removed (it had no earlier revision)"),
            },
        }
    };
    let options = Options {
        parallelism: args.parallel,
    };
    let reports = services::deploy(&applier, &rendered, &options, &observe)
        .await
        .map_err(lift)?;
    output::emit(g.output, &reports, || {
        let rows: Vec<Vec<String>> = reports
            .iter()
            .map(|r| {
                let (result, rev, detail) = match &r.outcome {
                    DeployOutcome::Deployed { revision } => {
                        ("deployed", Some(*revision), String::new())
                    }
                    DeployOutcome::Unchanged {
                        revision,
                        configured,
                    } => (
                        "unchanged",
                        Some(*revision),
                        if *configured > 0 {
                            format!("{configured} drifted objects restored")
                        } else {
                            String::new()
                        },
                    ),
                    DeployOutcome::Failed {
                        reason,
                        rolled_back_to,
                    } => ("failed", *rolled_back_to, reason.clone()),
                    DeployOutcome::Skipped { reason } => ("skipped", None, reason.clone()),
                };
                vec![
                    r.wave.to_string(),
                    r.name.clone(),
                    r.namespace.clone(),
                    r.version.clone(),
                    result.to_string(),
                    revision(rev),
                    detail,
                ]
            })
            .collect();
        output::table(
            &[
                "WAVE",
                "RELEASE",
                "NAMESPACE",
                "VERSION",
                "RESULT",
                "REVISION",
                "DETAIL",
            ],
            &rows,
        )
    })?;
    let failed: Vec<String> = reports
        .iter()
        .filter_map(|r| match &r.outcome {
            DeployOutcome::Failed { reason, .. } => Some(format!("{}: {reason}", r.name)),
            _ => None,
        })
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(anyhow!("the rollout stopped: {}", failed.join("; ")))
    }
}

async fn status(home: &Home, g: &Global, args: ServicesArgs) -> Result<()> {
    let file = services::file::load(&args.file)?;
    let applier = applier(home, args.cluster, args.kubeconfig).await?;
    let statuses = services::status(&applier, &file).await.map_err(lift)?;
    output::emit(g.output, &statuses, || {
        let rows: Vec<Vec<String>> = statuses
            .iter()
            .map(|s| {
                vec![
                    s.wave.to_string(),
                    s.name.clone(),
                    s.namespace.clone(),
                    revision(s.revision),
                    s.version.clone().unwrap_or_else(|| "-".into()),
                    s.status.clone(),
                    s.health.clone(),
                ]
            })
            .collect();
        output::table(
            &[
                "WAVE",
                "RELEASE",
                "NAMESPACE",
                "REVISION",
                "VERSION",
                "STATUS",
                "HEALTH",
            ],
            &rows,
        )
    })
}

async fn rollback(home: &Home, g: &Global, args: ServicesRollbackArgs) -> Result<()> {
    let applier = applier(home, Some(args.cluster), args.kubeconfig).await?;
    let report = services::rollback(
        &applier,
        &args.release,
        args.to,
        Duration::from_secs(args.timeout),
    )
    .await
    .map_err(lift)?;
    output::emit(g.output, &report, || {
        let mut text = format!(
            "{} ({}): revision {} now runs revision {}'s objects\n",
            report.name, report.namespace, report.revision, report.to
        );
        for d in &report.deleted {
            text += &format!("  deleted {d}\n");
        }
        text
    })
}
