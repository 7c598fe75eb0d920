//! Enrolling an endpoint and its lifecycle in the cluster: trust first, then a token only the
//! Secret and the endpoint hold, the egress policy, the virtual Node and the `RemoteContainer`.
//! A registration that fails half-way takes back what it made; `remove` leaves nothing behind.

use crate::objects::{self, NAMESPACE, RemoteContainerSpec, RemoteContainerStatus};
use crate::trust::{self, Endpoint, TrustError};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod, Secret};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use serde::Serialize;
use serde_json::json;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    #[error(
        "`{0}` is not a valid name: 1-57 lowercase letters, digits and '-', starting and ending with a letter or digit"
    )]
    Name(String),
    #[error("an endpoint named {0} is already enrolled in this cluster")]
    Duplicate(String),
    #[error("no endpoint named {0} is enrolled in this cluster")]
    NotFound(String),
    #[error(transparent)]
    Trust(#[from] TrustError),
    #[error("{pods} pod(s) still run on {node} ({names}): wait for them or remove with --force")]
    Busy {
        node: String,
        pods: usize,
        names: String,
    },
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Install(#[from] clouder_kube::Error),
}

pub type Result<T> = std::result::Result<T, EnrollError>;

/// What `register` needs: everything already validated by the caller except trust.
#[derive(Debug, Clone)]
pub struct Registration {
    pub name: String,
    pub endpoint: Endpoint,
    /// The image pinned by digest, and its platform.
    pub image: String,
    pub os: String,
    pub architecture: String,
    pub ca_pem: Option<String>,
    pub capability: objects::Capability,
}

/// What `register` made. The token is shown once and never kept by clouder.
pub struct Enrolled {
    pub token: String,
    pub token_sha256: String,
    pub spec: RemoteContainerSpec,
}

/// An enrolled endpoint as the cluster shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Enrollment {
    pub name: String,
    pub node: String,
    pub spec: RemoteContainerSpec,
    pub status: RemoteContainerStatus,
    /// The virtual Node is cordoned (by a person or by the heartbeat controller).
    pub cordoned: bool,
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, short enough for `byoc-NAME` and `byoc-NAME-token`.
pub fn check_name(name: &str) -> Result<()> {
    let ok = (1..=57).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(EnrollError::Name(name.to_string()))
    }
}

/// A fresh enrollment token: 32 random bytes, URL-safe base64.
pub fn new_token() -> String {
    use base64::Engine;
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Hex SHA-256 of a token: what clouder's state keeps.
pub fn token_sha256(token: &str) -> String {
    hex::encode(crate::oci::sha256(token.as_bytes()))
}

fn rc_api(client: &kube::Client) -> Api<DynamicObject> {
    Api::all_with(client.clone(), &objects::api_resource())
}

fn now() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .unwrap()
        .to_string()
}

/// What clouder writes with server-side apply (the egress policy, the Lease): one field
/// manager at registration and in the controller, so that neither conflicts with the other.
fn apply_params() -> PatchParams {
    PatchParams::apply("clouder-byoc")
}

/// Creates or updates the egress policy for `addresses` (server-side apply).
pub async fn apply_policy(
    client: &kube::Client,
    name: &str,
    addresses: &[std::net::IpAddr],
    port: u16,
) -> Result<NetworkPolicy> {
    let policy = objects::network_policy(name, addresses, port);
    Ok(Api::<NetworkPolicy>::namespaced(client.clone(), NAMESPACE)
        .patch(
            &objects::policy_name(name),
            &apply_params(),
            &Patch::Apply(&policy),
        )
        .await?)
}

/// Renews (or makes) the virtual Node's Lease: held by the Node, owned by it, renewed now.
pub async fn renew_lease(client: &kube::Client, name: &str, node_uid: &str) -> Result<Lease> {
    let renew = serde_json::to_value(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
        jiff::Timestamp::now(),
    ))
    .expect("a timestamp serialises");
    let lease = objects::node_lease(name, node_uid, renew.as_str().unwrap_or_default());
    Ok(
        Api::<Lease>::namespaced(client.clone(), objects::LEASE_NAMESPACE)
            .patch(
                &objects::node_name(name),
                &apply_params(),
                &Patch::Apply(&lease),
            )
            .await?,
    )
}

/// Installs the CRD and the namespace (server-side apply, idempotent) and waits for the CRD
/// to be established.
pub async fn install(client: &kube::Client) -> Result<()> {
    let dynamic = |v: serde_json::Value| -> DynamicObject {
        serde_json::from_value(v).expect("the objects built here are valid")
    };
    let objects = [
        dynamic(serde_json::to_value(objects::crd()).expect("serialisable")),
        dynamic(serde_json::to_value(objects::namespace()).expect("serialisable")),
    ];
    clouder_kube::Applier::new(client.clone())
        .apply(&objects)
        .await?;
    Ok(())
}

/// Enrolls an endpoint: verifies trust, then creates the Secret, NetworkPolicy, virtual Node and
/// `RemoteContainer`. On any failure, what was created is deleted again.
pub async fn register(client: &kube::Client, reg: &Registration) -> Result<Enrolled> {
    check_name(&reg.name)?;
    let http = trust::client(reg.ca_pem.as_deref(), Duration::from_secs(10))?;
    trust::verify(&http, &reg.endpoint).await?;
    let addresses = reg.endpoint.addresses().await?;
    install(client).await?;
    if get(client, &reg.name).await?.is_some()
        || Api::<Node>::all(client.clone())
            .get_opt(&objects::node_name(&reg.name))
            .await?
            .is_some()
    {
        return Err(EnrollError::Duplicate(reg.name.clone()));
    }
    let token = new_token();
    let spec = RemoteContainerSpec {
        endpoint: reg.endpoint.url.clone(),
        insecure: reg.endpoint.insecure,
        image: reg.image.clone(),
        ca_bundle: reg.ca_pem.clone(),
        token_secret: objects::secret_name(&reg.name),
        os: reg.os.clone(),
        architecture: reg.architecture.clone(),
        capability: reg.capability.clone(),
        cordoned: false,
    };
    let created = create_all(client, reg, &spec, &token, &addresses).await;
    if let Err(e) = created {
        // Best effort: the first error is the one to report.
        let _ = delete_all(client, &reg.name).await;
        return Err(e);
    }
    Ok(Enrolled {
        token_sha256: token_sha256(&token),
        token,
        spec,
    })
}

async fn create_all(
    client: &kube::Client,
    reg: &Registration,
    spec: &RemoteContainerSpec,
    token: &str,
    addresses: &[std::net::IpAddr],
) -> Result<()> {
    let pp = PostParams {
        field_manager: Some("clouder".into()),
        ..Default::default()
    };
    Api::<Secret>::namespaced(client.clone(), NAMESPACE)
        .create(&pp, &objects::token_secret(&reg.name, token))
        .await?;
    apply_policy(client, &reg.name, addresses, reg.endpoint.port).await?;
    let node = Api::<Node>::all(client.clone())
        .create(&pp, &objects::virtual_node(&reg.name, spec, &now()))
        .await?;
    renew_lease(
        client,
        &reg.name,
        node.metadata.uid.as_deref().unwrap_or_default(),
    )
    .await?;
    let object: DynamicObject =
        serde_json::from_value(objects::remote_container(&reg.name, spec)).expect("valid object");
    rc_api(client).create(&pp, &object).await?;
    Ok(())
}

/// Deletes every object of an endpoint; those already gone are fine.
async fn delete_all(client: &kube::Client, name: &str) -> Result<()> {
    let c = || client.clone();
    let node = objects::node_name(name);
    delete(
        Api::<Secret>::namespaced(c(), NAMESPACE),
        &objects::secret_name(name),
    )
    .await?;
    delete(
        Api::<NetworkPolicy>::namespaced(c(), NAMESPACE),
        &objects::policy_name(name),
    )
    .await?;
    // The Lease would follow its Node (owner reference); deleted here so nothing is left behind
    // when remove returns.
    delete(
        Api::<Lease>::namespaced(c(), objects::LEASE_NAMESPACE),
        &node,
    )
    .await?;
    delete(Api::<Node>::all(c()), &node).await?;
    delete(rc_api(client), name).await?;
    Ok(())
}

/// Deletes one object; one already gone is fine.
async fn delete<K>(api: Api<K>, name: &str) -> Result<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &DeleteParams::default()).await {
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        other => other.map(drop).map_err(Into::into),
    }
}

fn enrollment(object: DynamicObject, node: Option<&Node>) -> Option<Enrollment> {
    let name = object.metadata.name.clone()?;
    let spec = serde_json::from_value(object.data.get("spec")?.clone()).ok()?;
    let status = object
        .data
        .get("status")
        .and_then(|s| serde_json::from_value(s.clone()).ok())
        .unwrap_or_default();
    Some(Enrollment {
        node: objects::node_name(&name),
        name,
        spec,
        status,
        cordoned: node
            .and_then(|n| n.spec.as_ref())
            .and_then(|s| s.unschedulable)
            .unwrap_or(false),
    })
}

/// One endpoint, if enrolled.
pub async fn get(client: &kube::Client, name: &str) -> Result<Option<Enrollment>> {
    let Some(object) = rc_api(client).get_opt(name).await? else {
        return Ok(None);
    };
    let node = Api::<Node>::all(client.clone())
        .get_opt(&objects::node_name(name))
        .await?;
    Ok(enrollment(object, node.as_ref()))
}

async fn require(client: &kube::Client, name: &str) -> Result<Enrollment> {
    get(client, name)
        .await?
        .ok_or_else(|| EnrollError::NotFound(name.to_string()))
}

/// Every enrolled endpoint, by name. None when the CRD is not installed.
pub async fn list(client: &kube::Client) -> Result<Vec<Enrollment>> {
    let objects = match rc_api(client).list(&ListParams::default()).await {
        Ok(list) => list.items,
        Err(kube::Error::Api(e)) if e.code == 404 => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let nodes = Api::<Node>::all(client.clone())
        .list(&ListParams::default().labels(objects::BYOC_KEY))
        .await?
        .items;
    let mut all: Vec<Enrollment> = objects
        .into_iter()
        .filter_map(|o| {
            let node_name = objects::node_name(o.metadata.name.as_deref()?);
            let node = nodes
                .iter()
                .find(|n| n.metadata.name.as_deref() == Some(node_name.as_str()));
            enrollment(o, node)
        })
        .collect();
    all.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(all)
}

/// Cordons (or uncordons) by a person: the Node's `unschedulable` and the resource's
/// `spec.cordoned`, which the heartbeat controller respects.
pub async fn set_cordoned(client: &kube::Client, name: &str, cordoned: bool) -> Result<()> {
    require(client, name).await?;
    let pp = PatchParams::default();
    rc_api(client)
        .patch(
            name,
            &pp,
            &Patch::Merge(json!({"spec": {"cordoned": cordoned}})),
        )
        .await?;
    let annotations = if cordoned {
        json!({objects::CORDONED_BY: "user"})
    } else {
        json!({objects::CORDONED_BY: null})
    };
    Api::<Node>::all(client.clone())
        .patch(
            &objects::node_name(name),
            &pp,
            &Patch::Merge(json!({
                "metadata": {"annotations": annotations},
                "spec": {"unschedulable": cordoned},
            })),
        )
        .await?;
    Ok(())
}

/// A new token replaces the old one at once; returns it (shown once).
pub async fn rotate_token(client: &kube::Client, name: &str) -> Result<String> {
    let enrolled = require(client, name).await?;
    use base64::Engine;
    let token = new_token();
    let encoded = base64::engine::general_purpose::STANDARD.encode(&token);
    Api::<Secret>::namespaced(client.clone(), NAMESPACE)
        .patch(
            &enrolled.spec.token_secret,
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"token": encoded}})),
        )
        .await?;
    Ok(token)
}

/// Points the endpoint at another image (already validated and pinned) of `os`/`architecture`:
/// the resource's spec, and the virtual Node's annotation, platform labels and nodeInfo.
pub async fn update_image(
    client: &kube::Client,
    name: &str,
    pinned: &str,
    os: &str,
    architecture: &str,
) -> Result<()> {
    require(client, name).await?;
    let pp = PatchParams::default();
    rc_api(client)
        .patch(
            name,
            &pp,
            &Patch::Merge(
                json!({"spec": {"image": pinned, "os": os, "architecture": architecture}}),
            ),
        )
        .await?;
    let nodes = Api::<Node>::all(client.clone());
    let node = objects::node_name(name);
    nodes
        .patch(
            &node,
            &pp,
            &Patch::Merge(json!({"metadata": {
                "annotations": {"clouder.io/image": pinned},
                "labels": objects::platform_labels(os, architecture),
            }})),
        )
        .await?;
    nodes
        .patch_status(
            &node,
            &pp,
            &Patch::Merge(json!({"status": {"nodeInfo": {
                "architecture": architecture, "operatingSystem": os, "osImage": pinned,
            }}})),
        )
        .await?;
    Ok(())
}

/// Pods bound to the endpoint's virtual Node that have not finished.
pub async fn work_on(client: &kube::Client, name: &str) -> Result<Vec<String>> {
    let node = objects::node_name(name);
    let pods = Api::<Pod>::all(client.clone())
        .list(&ListParams::default().fields(&format!("spec.nodeName={node}")))
        .await?;
    Ok(pods
        .items
        .into_iter()
        .filter(|p| {
            let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
            !matches!(phase, Some("Succeeded" | "Failed"))
        })
        .map(|p| {
            format!(
                "{}/{}",
                p.metadata.namespace.unwrap_or_default(),
                p.metadata.name.unwrap_or_default()
            )
        })
        .collect())
}

/// Cordons, waits up to `wait` for the work on it to finish (`None`: do not wait, `--force`),
/// then deletes the token Secret, the policy, the virtual Node and the resource.
pub async fn remove(client: &kube::Client, name: &str, wait: Option<Duration>) -> Result<()> {
    set_cordoned(client, name, true).await?;
    if let Some(wait) = wait {
        let deadline = Instant::now() + wait;
        loop {
            let running = work_on(client, name).await?;
            if running.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                return Err(EnrollError::Busy {
                    node: objects::node_name(name),
                    pods: running.len(),
                    names: running.join(", "),
                });
            }
            tokio::time::sleep(Duration::from_millis(500).min(wait)).await;
        }
    }
    delete_all(client, name).await
}
