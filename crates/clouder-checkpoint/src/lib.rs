//! Checkpoint and restore of running containers.
//!
//! The kubelet (or [`cri`] directly) asks the container runtime for a checkpoint archive; [`image`]
//! turns the archive into an OCI checkpoint image that containerd ≥ 2.1 and CRI-O restore from;
//! [`backend`] stores images in an OCI registry, a local directory (an OCI image layout), S3 or
//! Azure Blob, uploading a blob only when the backend does not hold it yet.

pub mod archive;
pub mod backend;
pub mod catalogue;
pub mod image;
pub mod kubelet;
pub mod pod;
pub mod policy;
#[doc(hidden)]
pub mod testing;

pub use backend::{Backend, BackendError, PushReport, push};
/// The CRI client lives in its own crate (the kubelet stand-in uses it too).
pub use clouder_cri as cri;
pub use image::{CheckpointImage, ImageError, Metadata, OciImage};
