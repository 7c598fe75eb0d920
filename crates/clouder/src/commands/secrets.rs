//! `clouder secrets set|ls|rm|sync`: a user's secrets as one Secret in their namespace. Values
//! come from stdin, a file or a secret store, never from an argument, and are never printed.

use super::{kube_client, userdata_error};
use crate::cli::{Global, Secrets, SecretsSetArgs, SecretsSyncArgs, SecretsUserArgs};
use crate::home::Home;
use crate::output;
use anyhow::Result;
use clouder_userdata::secrets::source::Source;
use clouder_userdata::secrets::store::{SecretStore, SyncReport};
use clouder_userdata::secrets::{SECRET_NAME, check_name};
use clouder_userdata::storage::{check_user, user_namespace};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams};
use std::io::IsTerminal;

pub async fn run(home: &Home, g: &Global, command: Secrets) -> Result<()> {
    match command {
        Secrets::Set(args) => set(home, g, args).await,
        Secrets::Ls(args) => ls(home, g, args).await,
        Secrets::Rm(args) => {
            let store = store(home, &args.user).await?;
            let removed = store.rm(&args.name).await.map_err(userdata_error)?;
            let value =
                serde_json::json!({"user": args.user.user, "name": args.name, "removed": removed});
            output::emit(g.output, &value, || match removed {
                true => format!("{} removed for {}\n", args.name, args.user.user),
                false => format!("{} had no secret {}\n", args.user.user, args.name),
            })
        }
        Secrets::Sync(args) => sync(home, g, args).await,
    }
}

async fn store(home: &Home, args: &SecretsUserArgs) -> Result<SecretStore> {
    check_user(&args.user).map_err(userdata_error)?;
    let client = kube_client(
        home,
        &args.target.cluster,
        args.target.kubeconfig.as_deref(),
    )
    .await?;
    Ok(SecretStore::new(client, user_namespace(&args.user)))
}

async fn set(home: &Home, g: &Global, args: SecretsSetArgs) -> Result<()> {
    // Every check on the input before anything is read or written.
    check_name(&args.name).map_err(userdata_error)?;
    let store = store(home, &args.user).await?;
    let flags = args.source;
    let source = match (
        flags.from_file,
        flags.from_aws_secret,
        flags.from_ssm,
        flags.from_azure_keyvault,
    ) {
        (Some(f), ..) => Source::File(f),
        (_, Some(arn), ..) => Source::AwsSecret(arn),
        (_, _, Some(p), _) => Source::Ssm(p),
        (.., Some(uri)) => Source::AzureKeyVault(uri),
        _ => Source::Stdin,
    };
    if source == Source::Stdin && std::io::stdin().is_terminal() {
        eprintln!("Value for {} (then Ctrl-D):", args.name);
    }
    let fetched = source
        .fetch(&mut std::io::stdin().lock())
        .await
        .map_err(userdata_error)?;
    let (outcome, rolled_out) = store
        .set(&args.name, &source, fetched)
        .await
        .map_err(userdata_error)?;
    let value = serde_json::json!({
        "user": args.user.user,
        "name": args.name,
        "source": source.label(),
        "outcome": outcome,
        "rolled_out": rolled_out,
    });
    output::emit(g.output, &value, || {
        let rolled = match rolled_out.is_empty() {
            true => String::new(),
            false => format!(" (rolled out {})", rolled_out.join(", ")),
        };
        format!(
            "{} {} for {}{rolled}\n",
            args.name,
            value["outcome"].as_str().unwrap_or(""),
            args.user.user
        )
    })
}

async fn ls(home: &Home, g: &Global, args: SecretsUserArgs) -> Result<()> {
    let entries = store(home, &args)
        .await?
        .ls()
        .await
        .map_err(userdata_error)?;
    output::emit(g.output, &entries, || {
        let rows: Vec<Vec<String>> = entries
            .iter()
            .map(|e| {
                vec![
                    e.name.clone(),
                    e.source.clone(),
                    e.version.clone(),
                    e.updated.clone(),
                ]
            })
            .collect();
        output::table(&["NAME", "SOURCE", "VERSION", "UPDATED"], &rows)
    })
}

async fn sync(home: &Home, g: &Global, args: SecretsSyncArgs) -> Result<()> {
    let client = kube_client(
        home,
        &args.target.cluster,
        args.target.kubeconfig.as_deref(),
    )
    .await?;
    loop {
        let namespaces = match &args.user {
            Some(user) => {
                check_user(user).map_err(userdata_error)?;
                vec![user_namespace(user)]
            }
            // Every namespace that has a user's Secret.
            None => Api::<Secret>::all(client.clone())
                .list(&ListParams::default().fields(&format!("metadata.name={SECRET_NAME}")))
                .await?
                .items
                .into_iter()
                .filter_map(|s| s.metadata.namespace)
                .collect(),
        };
        let mut reports: Vec<(String, SyncReport)> = Vec::new();
        for ns in namespaces {
            let report = SecretStore::new(client.clone(), &ns)
                .sync()
                .await
                .map_err(userdata_error)?;
            reports.push((ns, report));
        }
        let value: Vec<serde_json::Value> = reports
            .iter()
            .map(|(ns, r)| serde_json::json!({"namespace": ns, "updated": r.updated, "skipped": r.skipped, "rolled_out": r.rolled_out}))
            .collect();
        output::emit(g.output, &value, || {
            let rows: Vec<Vec<String>> = reports
                .iter()
                .map(|(ns, r)| vec![ns.clone(), r.updated.join(","), r.rolled_out.join(",")])
                .collect();
            output::table(&["NAMESPACE", "UPDATED", "ROLLED OUT"], &rows)
        })?;
        match args.interval {
            Some(seconds) => {
                tokio::time::sleep(std::time::Duration::from_secs(seconds.max(1))).await
            }
            None => return Ok(()),
        }
    }
}
