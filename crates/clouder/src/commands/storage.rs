//! `clouder storage`: per-user folders on the shared filesystem and the mount a runtime pod of a
//! user gets. With `--root` the folders are worked on here (a node or the NFS server that mounts
//! the filesystem); without, on the node that has it, over SSH (see
//! `clouder_userdata::storage::place` and `locate`).

use super::bootstrap::{connect_fleet, ssh_formation};
use super::{confirm, kube_client, userdata_error};
use crate::Usage;
use crate::cli::{Global, MountSpecArgs, Storage, StorageRootArgs, StorageUser};
use crate::home::Home;
use crate::output;
use anyhow::Result;
use clouder_spec::Cluster;
use clouder_state::StateStore;
use clouder_userdata::podspec::{RuntimeUser, runtime_pod_patch};
use clouder_userdata::storage::folders::{Folder, Folders};
use clouder_userdata::storage::locate::locate;
use clouder_userdata::storage::manifests::Backend;
use clouder_userdata::storage::place::{Local, Place, Remote};
use clouder_userdata::storage::{mount_spec, parse_size};
use std::path::PathBuf;

pub async fn run(home: &Home, g: &Global, command: Storage) -> Result<()> {
    match command {
        Storage::User(user) => user_command(home, g, user).await,
        Storage::Usage(args) => {
            let (place, root) = place(home, g, &args).await?;
            let folders = open(place.as_ref(), &root, &args).await?;
            print_folders(g, &folders.ls().await.map_err(userdata_error)?)
        }
        Storage::MountSpec(args) => print_mount_spec(g, args),
    }
}

/// Where the folders are worked on, and the storage root there.
async fn place(
    home: &Home,
    g: &Global,
    args: &StorageRootArgs,
) -> Result<(Box<dyn Place>, PathBuf)> {
    if let Some(root) = &args.root {
        return Ok((Box::new(Local), root.clone()));
    }
    let name = &args.cluster;
    let record = home.store()?.cluster(name)?.ok_or_else(|| {
        Usage(format!(
            "no cluster `{name}` in the state store; on a node that mounts the shared filesystem, give --root"
        ))
    })?;
    let cluster: Cluster = serde_json::from_value(record.spec)?;
    let storage = cluster.spec.storage.as_ref().ok_or_else(|| {
        Usage(format!(
            "cluster `{name}` has no `storage:` section in its spec"
        ))
    })?;
    let backend = Backend::from_spec(storage, cluster.spec.provider).map_err(userdata_error)?;
    let client = kube_client(home, name, None).await?;
    let at = locate(&client, &backend).await.map_err(userdata_error)?;
    let formation = ssh_formation(&cluster, None);
    let target = formation
        .targets
        .iter()
        .find(|t| t.host.address == at.address)
        .ok_or_else(|| {
            Usage(format!(
                "node {} ({}) holds the shared filesystem but is not one of `{name}`'s SSH hosts; \
                 run this there with --root {}",
                at.node,
                at.address,
                at.path.display()
            ))
        })?;
    let session = connect_fleet(home, g, &cluster, None)?
        .connect(&target.host)
        .await?;
    Ok((Box::new(Remote(session)), at.path))
}

async fn open<'a>(
    place: &'a dyn Place,
    root: &std::path::Path,
    args: &StorageRootArgs,
) -> Result<Folders<'a>> {
    Folders::open(place, root, args.fs_group)
        .await
        .map_err(userdata_error)
}

async fn user_command(home: &Home, g: &Global, command: StorageUser) -> Result<()> {
    let storage = match &command {
        StorageUser::Create(a) | StorageUser::Resize(a) => &a.user.storage,
        StorageUser::Show(a) => &a.storage,
        StorageUser::Ls(a) => a,
        StorageUser::Rm(a) => &a.user.storage,
    };
    let (place, root) = place(home, g, storage).await?;
    let folders = open(place.as_ref(), &root, storage).await?;
    let folder = match command {
        StorageUser::Create(a) => {
            let quota = parse_size(&a.quota).map_err(userdata_error)?;
            folders.create(&a.user.user, quota).await
        }
        StorageUser::Resize(a) => {
            let quota = parse_size(&a.quota).map_err(userdata_error)?;
            folders.resize(&a.user.user, quota).await
        }
        StorageUser::Show(a) => folders.show(&a.user).await,
        StorageUser::Ls(_) => {
            let all = folders.ls().await.map_err(userdata_error)?;
            return print_folders(g, &all);
        }
        StorageUser::Rm(a) => {
            if a.purge {
                confirm(
                    &format!("delete {}'s folder and everything in it now", a.user.user),
                    g.yes,
                    "--yes",
                )?;
            }
            let grace = std::time::Duration::from_secs(a.grace_days * 24 * 3600);
            let removed = folders
                .rm(&a.user.user, a.purge, grace)
                .await
                .map_err(userdata_error)?;
            let expired = folders.purge_expired().await.map_err(userdata_error)?;
            let value = serde_json::json!({"removed": removed, "purged_expired": expired});
            return output::emit(g.output, &value, || match &removed.purge_after {
                Some(t) => format!(
                    "{}'s folder kept at {} until {t}\n",
                    removed.user,
                    removed.path.display()
                ),
                None => format!("{}'s folder deleted\n", removed.user),
            });
        }
    }
    .map_err(userdata_error)?;
    print_folders(g, std::slice::from_ref(&folder))
}

fn print_folders(g: &Global, folders: &[Folder]) -> Result<()> {
    output::emit(g.output, &folders, || {
        let rows: Vec<Vec<String>> = folders
            .iter()
            .map(|f| {
                vec![
                    f.user.clone(),
                    f.used_bytes.to_string(),
                    f.quota_bytes.to_string(),
                    if f.over_quota { "OVER" } else { "ok" }.to_string(),
                    if f.enforced { "filesystem" } else { "scan" }.to_string(),
                ]
            })
            .collect();
        output::table(&["USER", "USED", "QUOTA", "STATUS", "QUOTA BY"], &rows)
    })
}

fn print_mount_spec(g: &Global, args: MountSpecArgs) -> Result<()> {
    let folder = mount_spec(&args.user, &args.claim, &args.mount_path, args.fs_group)
        .map_err(userdata_error)?;
    let patch = runtime_pod_patch(&RuntimeUser {
        container: &args.container,
        folder: Some(&folder),
        ..Default::default()
    });
    let value = serde_json::json!({"spec": patch.spec});
    // The patch is the point of this command: YAML unless JSON is asked for.
    let format = match g.output {
        crate::cli::Format::Json => crate::cli::Format::Json,
        _ => crate::cli::Format::Yaml,
    };
    output::emit(format, &value, String::new)
}
