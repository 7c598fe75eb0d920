//! SSH sessions on russh. Host keys are pinned: the caller passes the fingerprint it expects (from
//! the cloud, or recorded on first contact) and a different key is a hard error naming both.

use russh::ChannelMsg;
use russh::client::{self, Handle, Handler};
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Where and as whom to log in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    pub address: String,
    pub port: u16,
    pub user: String,
}

impl Host {
    pub fn new(address: &str, user: &str) -> Self {
        Host {
            address: address.to_string(),
            port: 22,
            user: user.to_string(),
        }
    }

    /// `user@address:port`, as errors and logs name it.
    pub fn label(&self) -> String {
        format!("{}@{}:{}", self.user, self.address, self.port)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("{host}: cannot connect: {reason}")]
    Connect { host: String, reason: String },
    #[error(
        "{host}: HOST KEY MISMATCH: expected {expected}, the host presented {actual}; \
         refusing to connect (if the machine was rebuilt, forget its key and retry)"
    )]
    HostKeyMismatch {
        host: String,
        expected: String,
        actual: String,
    },
    #[error("{host}: the key was refused for user {user}")]
    Auth { host: String, user: String },
    #[error("{host}: timed out after {seconds}s {what}")]
    Timeout {
        host: String,
        what: String,
        seconds: u64,
    },
    #[error("{host}: ssh: {reason}")]
    Protocol { host: String, reason: String },
    #[error("{host}: reading the private key {path}: {reason}")]
    Key {
        host: String,
        path: String,
        reason: String,
    },
}

impl SshError {
    /// Worth another try: the network, not the configuration, failed.
    pub fn is_transient(&self) -> bool {
        matches!(self, SshError::Connect { .. } | SshError::Timeout { .. })
    }
}

/// What a command printed and how it ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    pub status: u32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn ok(&self) -> bool {
        self.status == 0
    }
}

/// Checks the server's key against the pin and remembers what it saw.
struct Pin {
    expected: Option<String>,
    seen: Arc<Mutex<Option<String>>>,
}

impl Handler for Pin {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let PublicKeyOrCertificate::PublicKey { key, .. } = key else {
            return Ok(false);
        };
        let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
        let accepted = self.expected.as_ref().is_none_or(|e| *e == fingerprint);
        *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = Some(fingerprint);
        Ok(accepted)
    }
}

/// One authenticated connection; commands run on channels multiplexed over it.
pub struct Session {
    handle: Handle<Pin>,
    host: Host,
    /// SHA256 fingerprint of the host key, to record when it was not pinned yet.
    pub host_key: String,
    /// How long one command may run (the connect timeout until the caller says otherwise).
    pub timeout: Duration,
    /// sshd refuses channels past `MaxSessions` (10 by default) on one connection.
    channels: tokio::sync::Semaphore,
    /// Told about this host's steps and script output.
    pub watch: Arc<dyn crate::watch::Watch>,
}

/// Channels open at once on one connection, under sshd's default `MaxSessions` of 10.
const MAX_CHANNELS: usize = 8;

/// Loads an OpenSSH private key (unencrypted; use an agent for passphrases).
pub fn load_key(path: &std::path::Path) -> Result<Arc<PrivateKey>, SshError> {
    russh::keys::load_secret_key(path, None)
        .map(Arc::new)
        .map_err(|e| SshError::Key {
            host: String::new(),
            path: path.display().to_string(),
            reason: e.to_string(),
        })
}

impl Session {
    /// Connects, checks the host key against `expected` (TOFU when `None`) and authenticates.
    pub async fn connect(
        host: &Host,
        key: Arc<PrivateKey>,
        expected: Option<String>,
        timeout: Duration,
    ) -> Result<Session, SshError> {
        let label = host.label();
        let config = Arc::new(client::Config {
            inactivity_timeout: Some(Duration::from_secs(600)),
            keepalive_interval: Some(Duration::from_secs(30)),
            ..Default::default()
        });
        let seen = Arc::new(Mutex::new(None));
        let pin = Pin {
            expected: expected.clone(),
            seen: seen.clone(),
        };
        let connecting = client::connect(config, (host.address.as_str(), host.port), pin);
        let mut handle = match tokio::time::timeout(timeout, connecting).await {
            Err(_) => {
                return Err(SshError::Timeout {
                    host: label,
                    what: "connecting".into(),
                    seconds: timeout.as_secs(),
                });
            }
            Ok(Ok(handle)) => handle,
            Ok(Err(err)) => {
                let actual = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
                return Err(match (expected, actual, err) {
                    (Some(expected), Some(actual), _) if expected != actual => {
                        SshError::HostKeyMismatch {
                            host: label,
                            expected,
                            actual,
                        }
                    }
                    (_, _, russh::Error::IO(e)) => SshError::Connect {
                        host: label,
                        reason: e.to_string(),
                    },
                    (_, _, e) => SshError::Protocol {
                        host: label,
                        reason: e.to_string(),
                    },
                });
            }
        };
        let host_key = seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or_default();
        let hash = handle
            .best_supported_rsa_hash()
            .await
            .ok()
            .flatten()
            .flatten();
        let auth = handle
            .authenticate_publickey(&host.user, PrivateKeyWithHashAlg::new(key, hash))
            .await
            .map_err(|e| SshError::Protocol {
                host: label.clone(),
                reason: e.to_string(),
            })?;
        if !auth.success() {
            return Err(SshError::Auth {
                host: label,
                user: host.user.clone(),
            });
        }
        Ok(Session {
            handle,
            host: host.clone(),
            host_key,
            timeout,
            channels: tokio::sync::Semaphore::new(MAX_CHANNELS),
            watch: Arc::new(crate::watch::Unwatched),
        })
    }

    pub fn host(&self) -> &Host {
        &self.host
    }

    /// Runs `command` (through `sudo -n` when not root), feeding `stdin` if given.
    pub async fn run(&self, command: &str, stdin: Option<&[u8]>) -> Result<Output, SshError> {
        let mut stdout = Vec::new();
        let (status, stderr) = self
            .exec(command, stdin.unwrap_or_default(), &mut stdout)
            .await?;
        Ok(Output {
            status,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr,
        })
    }

    /// Streams the file at `path` on the host into `to` as it arrives (never whole in memory);
    /// returns how `cat` ended (its stderr says why it failed).
    pub async fn download<W>(&self, path: &str, to: &mut W) -> Result<Output, SshError>
    where
        W: tokio::io::AsyncWrite + Unpin,
    {
        let command = format!("cat -- {}", crate::shell::quote(path));
        let (status, stderr) = self.exec(&command, &[][..], to).await?;
        Ok(Output {
            status,
            stdout: String::new(),
            stderr,
        })
    }

    /// Runs `command` with `from` streamed to its stdin as it is read (never whole in memory),
    /// e.g. an image archive into `ctr images import -`; returns how it ended and what it printed.
    pub async fn upload<R>(&self, command: &str, from: R) -> Result<Output, SshError>
    where
        R: tokio::io::AsyncRead + Unpin,
    {
        let mut stdout = Vec::new();
        let (status, stderr) = self.exec(command, from, &mut stdout).await?;
        Ok(Output {
            status,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr,
        })
    }

    /// Runs `command` on a channel of its own, feeding it `stdin` while writing its stdout to
    /// `stdout` as it comes; returns its exit status and stderr.
    async fn exec<R, W>(
        &self,
        command: &str,
        stdin: R,
        stdout: &mut W,
    ) -> Result<(u32, String), SshError>
    where
        R: tokio::io::AsyncRead + Unpin,
        W: tokio::io::AsyncWrite + Unpin,
    {
        use tokio::io::AsyncWriteExt as _;
        let label = self.host.label();
        let proto = |e: russh::Error| SshError::Protocol {
            host: label.clone(),
            reason: e.to_string(),
        };
        let command = if self.host.user == "root" {
            command.to_string()
        } else {
            format!("sudo -n -- {command}")
        };
        let work = async {
            let _slot = self
                .channels
                .acquire()
                .await
                .map_err(|e| SshError::Protocol {
                    host: label.clone(),
                    reason: e.to_string(),
                })?;
            let channel = self.handle.channel_open_session().await.map_err(proto)?;
            channel
                .exec(true, command.as_bytes())
                .await
                .map_err(proto)?;
            // Fed and read at once: a command may print while it reads, or stop reading early.
            let (mut read, write) = channel.split();
            let feed = async {
                write.data(stdin).await?;
                write.eof().await
            };
            let (mut status, mut stderr) = (0, Vec::new());
            let written = |e: std::io::Error| SshError::Protocol {
                host: label.clone(),
                reason: format!("writing what `{command}` printed: {e}"),
            };
            let drain = async {
                while let Some(msg) = read.wait().await {
                    match msg {
                        ChannelMsg::Data { data } => {
                            stdout.write_all(&data).await.map_err(written)?
                        }
                        ChannelMsg::ExtendedData { data, .. } => stderr.extend_from_slice(&data),
                        ChannelMsg::ExitStatus { exit_status } => status = exit_status,
                        _ => {}
                    }
                }
                stdout.flush().await.map_err(written)
            };
            let (fed, drained) = tokio::join!(feed, drain);
            drained?;
            // A command that exited before reading all its input says why in its status.
            if status == 0 {
                fed.map_err(proto)?;
            }
            Ok((status, String::from_utf8_lossy(&stderr).into_owned()))
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .unwrap_or_else(|_| {
                Err(SshError::Timeout {
                    host: self.host.label(),
                    what: format!("running `{command}`"),
                    seconds: self.timeout.as_secs(),
                })
            })
    }

    /// Runs a bash script sent on stdin, so nothing of it lands in process lists or shell history.
    /// Runs a bash script fed on stdin (so no value in it shows in a process list); its output
    /// goes to the watcher.
    pub async fn script(&self, script: &str) -> Result<Output, SshError> {
        let out = self.run("bash -s", Some(script.as_bytes())).await?;
        self.watch.output(&self.host.label(), &out);
        Ok(out)
    }

    /// Runs `work` as the step `name`, telling the watcher when it starts and how it ends.
    pub async fn step<T, E>(
        &self,
        name: &str,
        work: impl std::future::Future<Output = Result<(T, crate::watch::Ended), E>>,
    ) -> Result<T, E> {
        let label = self.host.label();
        let start = std::time::Instant::now();
        self.watch.started(&label, name);
        let result = work.await;
        let ended = match &result {
            Ok((_, ended)) => *ended,
            Err(_) => crate::watch::Ended::Failed,
        };
        self.watch.ended(&label, name, ended, start.elapsed());
        result.map(|(value, _)| value)
    }

    pub async fn close(self) {
        let _ = self
            .handle
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
    }
}
