//! Many hosts at once: connect (pinning host keys), run the same work on each in parallel with a
//! bound, and report every host's outcome — one failure never hides the others' state.

use crate::ssh::{Host, Session, SshError};
use crate::watch::{Unwatched, Watch};
use futures::StreamExt;
use russh::keys::PrivateKey;
use serde::Serialize;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where pinned host keys live (the state store in the binary; memory in tests).
pub trait KeyPins: Send + Sync {
    fn pinned(&self, address: &str) -> Option<String>;
    fn pin(&self, address: &str, fingerprint: &str);
}

/// Pins kept in memory.
#[derive(Default)]
pub struct MemoryPins(pub Mutex<HashMap<String, String>>);

impl KeyPins for MemoryPins {
    fn pinned(&self, address: &str) -> Option<String> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(address)
            .cloned()
    }
    fn pin(&self, address: &str, fingerprint: &str) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(address.to_string(), fingerprint.to_string());
    }
}

/// One host's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct HostReport<T> {
    pub host: String,
    pub result: Result<T, String>,
    pub elapsed: Duration,
}

pub struct Fleet {
    pub key: Arc<PrivateKey>,
    pub pins: Arc<dyn KeyPins>,
    /// Hosts worked on at once.
    pub parallelism: usize,
    /// How long connecting may take.
    pub connect_timeout: Duration,
    /// How long one command may run: package installs on a slow mirror take minutes.
    pub command_timeout: Duration,
    /// Connection attempts per host (transient network errors only).
    pub attempts: u32,
    /// Told what every host is doing.
    pub watch: Arc<dyn Watch>,
}

impl Fleet {
    pub fn new(key: Arc<PrivateKey>, pins: Arc<dyn KeyPins>) -> Self {
        Fleet {
            key,
            pins,
            parallelism: 30,
            connect_timeout: Duration::from_secs(30),
            command_timeout: Duration::from_secs(20 * 60),
            attempts: 3,
            watch: Arc::new(Unwatched),
        }
    }

    /// Connects with the pinned key, pinning it on first contact.
    pub async fn connect(&self, host: &Host) -> Result<Session, SshError> {
        let mut attempt = 0;
        loop {
            let expected = self.pins.pinned(&host.address);
            let connecting = Session::connect(
                host,
                self.key.clone(),
                expected.clone(),
                self.connect_timeout,
            );
            match connecting.await {
                Ok(mut session) => {
                    session.watch = self.watch.clone();
                    session.timeout = self.command_timeout;
                    if expected.is_none() {
                        self.pins.pin(&host.address, &session.host_key);
                    }
                    return Ok(session);
                }
                Err(e) if e.is_transient() && attempt + 1 < self.attempts => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Runs `work` on every host (connected first), at most `parallelism` at once, in host order.
    pub async fn each<T, F, Fut>(&self, hosts: &[Host], work: F) -> Vec<HostReport<T>>
    where
        F: Fn(Session) -> Fut,
        Fut: Future<Output = Result<T, String>>,
    {
        let work = &work;
        futures::stream::iter(hosts.iter().map(|host| async move {
            let start = Instant::now();
            let result = match self.connect(host).await {
                Ok(session) => work(session).await,
                Err(e) => Err(e.to_string()),
            };
            HostReport {
                host: host.label(),
                result,
                elapsed: start.elapsed(),
            }
        }))
        .buffered(self.parallelism.max(1))
        .collect()
        .await
    }
}
