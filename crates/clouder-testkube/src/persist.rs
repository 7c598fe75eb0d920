//! `serve --dir`: the server's identity (CA, serving certificate, tokens) and a snapshot of its
//! objects in the directory, so that a restarted server answers the same kubeconfig with the same
//! objects. Files are written 0600, atomically, shortly after changes and on shutdown.

use crate::App;
use crate::store::Store;
use crate::tls::Pems;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

const IDENTITY: &str = "identity.json";
const SNAPSHOT: &str = "objects.json";
/// Changes within this window are written together.
const DEBOUNCE: Duration = Duration::from_millis(100);

/// What a server needs to come back as itself.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Identity {
    pub tls: Pems,
    pub admin_token: String,
    pub reader_token: String,
}

/// Reading or writing the state directory failed.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a testkube state file: {message}")]
    Corrupt { path: String, message: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PersistError + '_ {
    move |source| PersistError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, PersistError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| PersistError::Corrupt {
                path: path.display().to_string(),
                message: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(path)(e)),
    }
}

/// Writes through a temporary file and a rename, so a crash leaves the old or the new file.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PersistError> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io(&tmp))?;
    f.write_all(bytes).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

pub fn load_identity(dir: &Path) -> Result<Option<Identity>, PersistError> {
    read_json(&dir.join(IDENTITY))
}

pub fn save_identity(dir: &Path, identity: &Identity) -> Result<(), PersistError> {
    let bytes = serde_json::to_vec_pretty(identity).expect("identities serialize");
    write_atomic(&dir.join(IDENTITY), &bytes)
}

/// Restores the saved objects into `store`; false when there is no snapshot yet.
pub fn restore(dir: &Path, store: &Store) -> Result<bool, PersistError> {
    let path = dir.join(SNAPSHOT);
    let Some(snapshot) = read_json::<serde_json::Value>(&path)? else {
        return Ok(false);
    };
    store
        .lock()
        .restore(&snapshot)
        .map_err(|message| PersistError::Corrupt {
            path: path.display().to_string(),
            message,
        })?;
    Ok(true)
}

/// Writes the snapshot now.
pub fn save(dir: &Path, store: &Store) -> Result<(), PersistError> {
    let bytes = serde_json::to_vec(&store.lock().snapshot()).expect("snapshots serialize");
    write_atomic(&dir.join(SNAPSHOT), &bytes)
}

/// Keeps the snapshot current: written a moment after each burst of changes.
pub fn spawn_writer(app: Arc<App>, dir: PathBuf) -> JoinHandle<()> {
    let mut rx = app.store.lock().events();
    tokio::spawn(async move {
        loop {
            if let Err(tokio::sync::broadcast::error::RecvError::Closed) = rx.recv().await {
                return;
            }
            tokio::time::sleep(DEBOUNCE).await;
            while rx.try_recv().is_ok() {}
            if let Err(e) = save(&dir, &app.store) {
                tracing::warn!("saving the snapshot: {e}");
            }
        }
    })
}
