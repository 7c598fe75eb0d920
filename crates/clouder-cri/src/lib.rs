//! A CRI v1 client over the runtime's unix socket: the calls the kubelet makes to checkpoint a
//! container and to create a container from a checkpoint image.

use hyper_util::rt::TokioIo;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};

/// The generated CRI v1 messages and clients (`k8s.io/cri-api/pkg/apis/runtime/v1/api.proto`).
#[allow(clippy::all, missing_docs)]
pub mod api {
    tonic::include_proto!("runtime.v1");
}

use api::image_service_client::ImageServiceClient;
use api::runtime_service_client::RuntimeServiceClient;

#[derive(Debug, thiserror::Error)]
pub enum CriError {
    #[error("container runtime socket {socket}: {source}")]
    Connect {
        socket: PathBuf,
        #[source]
        source: tonic::transport::Error,
    },
    /// The runtime refused or failed a call; `message` is the runtime's own (e.g. CRIU's failure).
    #[error("CRI {call}: {message}")]
    Call {
        call: &'static str,
        code: tonic::Code,
        message: String,
    },
}

pub type Result<T> = std::result::Result<T, CriError>;

fn call_error(call: &'static str) -> impl FnOnce(tonic::Status) -> CriError {
    move |status| CriError::Call {
        call,
        code: status.code(),
        message: status.message().to_string(),
    }
}

/// A connection to one container runtime (containerd, CRI-O).
#[derive(Clone)]
pub struct Cri {
    runtime: RuntimeServiceClient<Channel>,
    images: ImageServiceClient<Channel>,
}

impl Cri {
    /// Connects to the runtime's unix socket, e.g. `/run/containerd/containerd.sock`.
    pub async fn connect(socket: &Path) -> Result<Self> {
        let path = socket.to_path_buf();
        // The URI is required by tonic but unused: every connection goes to the socket.
        let channel = Endpoint::from_static("http://cri.invalid")
            .connect_timeout(Duration::from_secs(5))
            .connect_with_connector(tower::service_fn(move |_| {
                let path = path.clone();
                async move {
                    Ok::<_, std::io::Error>(TokioIo::new(
                        tokio::net::UnixStream::connect(path).await?,
                    ))
                }
            }))
            .await
            .map_err(|source| CriError::Connect {
                socket: socket.to_path_buf(),
                source,
            })?;
        Ok(Cri {
            runtime: RuntimeServiceClient::new(channel.clone()),
            images: ImageServiceClient::new(channel),
        })
    }

    /// The runtime's name and version, e.g. `containerd v2.1.9`.
    pub async fn version(&self) -> Result<String> {
        let v = self
            .runtime
            .clone()
            .version(api::VersionRequest::default())
            .await
            .map_err(call_error("Version"))?
            .into_inner();
        Ok(format!("{} {}", v.runtime_name, v.runtime_version))
    }

    /// Writes a checkpoint archive of a running container to `location` (a path on the node).
    /// `timeout` of zero leaves the runtime's default.
    pub async fn checkpoint(
        &self,
        container_id: &str,
        location: &str,
        timeout: Duration,
    ) -> Result<()> {
        self.runtime
            .clone()
            .checkpoint_container(api::CheckpointContainerRequest {
                container_id: container_id.to_string(),
                location: location.to_string(),
                timeout: timeout.as_secs() as i64,
            })
            .await
            .map_err(call_error("CheckpointContainer"))?;
        Ok(())
    }

    /// Pulls an image (a checkpoint image too) and returns its image reference.
    pub async fn pull(&self, image: &str) -> Result<String> {
        Ok(self
            .images
            .clone()
            .pull_image(api::PullImageRequest {
                image: Some(image_spec(image)),
                ..Default::default()
            })
            .await
            .map_err(call_error("PullImage"))?
            .into_inner()
            .image_ref)
    }

    /// Whether the runtime holds `image` already (pulled or imported).
    pub async fn has_image(&self, image: &str) -> Result<bool> {
        Ok(self
            .images
            .clone()
            .image_status(api::ImageStatusRequest {
                image: Some(image_spec(image)),
                verbose: false,
            })
            .await
            .map_err(call_error("ImageStatus"))?
            .into_inner()
            .image
            .is_some())
    }

    /// Raw access to the runtime service, for calls this type does not wrap.
    pub fn runtime(&self) -> RuntimeServiceClient<Channel> {
        self.runtime.clone()
    }

    /// Creates a container in `sandbox` from `config` and starts it. When the image is a
    /// checkpoint image, the runtime restores the checkpointed process instead of starting anew.
    pub async fn create_and_start(
        &self,
        sandbox_id: &str,
        sandbox_config: &api::PodSandboxConfig,
        config: api::ContainerConfig,
    ) -> Result<String> {
        let mut runtime = self.runtime.clone();
        let id = runtime
            .create_container(api::CreateContainerRequest {
                pod_sandbox_id: sandbox_id.to_string(),
                config: Some(config),
                sandbox_config: Some(sandbox_config.clone()),
            })
            .await
            .map_err(call_error("CreateContainer"))?
            .into_inner()
            .container_id;
        runtime
            .start_container(api::StartContainerRequest {
                container_id: id.clone(),
            })
            .await
            .map_err(call_error("StartContainer"))?;
        Ok(id)
    }
}

/// An image spec naming `image` as the user wrote it.
pub fn image_spec(image: &str) -> api::ImageSpec {
    api::ImageSpec {
        image: image.to_string(),
        user_specified_image: image.to_string(),
        ..Default::default()
    }
}

/// The node's network (no CNI needed), and a pid namespace per container as the kubelet asks
/// unless the pod shares its process namespace: a restored process gets its own pids back.
pub fn node_network() -> api::NamespaceOption {
    api::NamespaceOption {
        network: api::NamespaceMode::Node as i32,
        pid: api::NamespaceMode::Container as i32,
        ..Default::default()
    }
}

/// A sandbox's Linux settings with [`node_network`] namespaces.
pub fn node_network_sandbox() -> api::LinuxPodSandboxConfig {
    api::LinuxPodSandboxConfig {
        security_context: Some(api::LinuxSandboxSecurityContext {
            namespace_options: Some(node_network()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A container's Linux settings with [`node_network`] namespaces.
pub fn node_network_container() -> api::LinuxContainerConfig {
    api::LinuxContainerConfig {
        security_context: Some(api::LinuxContainerSecurityContext {
            namespace_options: Some(node_network()),
            ..Default::default()
        }),
        ..Default::default()
    }
}
