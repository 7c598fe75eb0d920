//! `clouder storage`: per-user folders on the shared filesystem (run where it is mounted) and
//! the mount a runtime pod of a user gets.

use super::{confirm, userdata_error};
use crate::cli::{Global, MountSpecArgs, Storage, StorageRootArgs, StorageUser};
use crate::output;
use anyhow::Result;
use clouder_userdata::podspec::{RuntimeUser, runtime_pod_patch};
use clouder_userdata::storage::folders::{Folder, Folders};
use clouder_userdata::storage::{mount_spec, parse_size};

pub fn run(g: &Global, command: Storage) -> Result<()> {
    match command {
        Storage::User(user) => user_command(g, user),
        Storage::Usage(args) => {
            let folders = open(&args)?.ls().map_err(userdata_error)?;
            print_folders(g, &folders)
        }
        Storage::MountSpec(args) => print_mount_spec(g, args),
    }
}

fn open(args: &StorageRootArgs) -> Result<Folders> {
    Folders::open(&args.root, args.fs_group).map_err(userdata_error)
}

fn user_command(g: &Global, command: StorageUser) -> Result<()> {
    let folder = match command {
        StorageUser::Create(a) => {
            let quota = parse_size(&a.quota).map_err(userdata_error)?;
            open(&a.user.storage)?.create(&a.user.user, quota)
        }
        StorageUser::Resize(a) => {
            let quota = parse_size(&a.quota).map_err(userdata_error)?;
            open(&a.user.storage)?.resize(&a.user.user, quota)
        }
        StorageUser::Show(a) => open(&a.storage)?.show(&a.user),
        StorageUser::Ls(a) => {
            let folders = open(&a)?.ls().map_err(userdata_error)?;
            return print_folders(g, &folders);
        }
        StorageUser::Rm(a) => {
            let folders = open(&a.user.storage)?;
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
                .map_err(userdata_error)?;
            let expired = folders.purge_expired().map_err(userdata_error)?;
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
