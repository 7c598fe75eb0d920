//! Before a cluster's machines go: delete what makes the cloud hold resources outside the graph
//! (load balancers of `LoadBalancer` Services, disks of PersistentVolumeClaims) and wait until the
//! cluster has let them go.

use crate::{Error, Result};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Service};
use kube::api::{Api, DeleteParams, ListParams};
use serde::Serialize;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Released {
    /// `namespace/name` of each LoadBalancer Service deleted.
    pub load_balancers: Vec<String>,
    /// `namespace/name` of each claim deleted.
    pub claims: Vec<String>,
    /// What was still there at the deadline (the cloud may still hold it).
    pub pending: Vec<String>,
}

fn key(meta: &kube::api::ObjectMeta) -> String {
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    )
}

/// Deletes every LoadBalancer Service and PersistentVolumeClaim, then waits up to `timeout` for
/// them and the volumes bound to them to be gone.
pub async fn release_cloud_resources(client: &kube::Client, timeout: Duration) -> Result<Released> {
    let mut released = Released::default();
    let services = Api::<Service>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(Error::api("listing services"))?;
    for svc in services.items {
        if svc.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer") {
            let ns = svc.metadata.namespace.clone().unwrap_or_default();
            delete::<Service>(
                client,
                &ns,
                svc.metadata.name.as_deref().unwrap_or_default(),
            )
            .await?;
            released.load_balancers.push(key(&svc.metadata));
        }
    }
    let claims = Api::<PersistentVolumeClaim>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(Error::api("listing persistent volume claims"))?;
    let mut volumes = Vec::new();
    for pvc in claims.items {
        let ns = pvc.metadata.namespace.clone().unwrap_or_default();
        if let Some(v) = pvc.spec.as_ref().and_then(|s| s.volume_name.clone()) {
            volumes.push(v);
        }
        delete::<PersistentVolumeClaim>(
            client,
            &ns,
            pvc.metadata.name.as_deref().unwrap_or_default(),
        )
        .await?;
        released.claims.push(key(&pvc.metadata));
    }

    let start = Instant::now();
    loop {
        let mut pending = Vec::new();
        for name in &released.load_balancers {
            let (ns, n) = name.split_once('/').expect("namespace/name");
            if exists(Api::<Service>::namespaced(client.clone(), ns), n).await? {
                pending.push(format!("Service {name}"));
            }
        }
        for name in &released.claims {
            let (ns, n) = name.split_once('/').expect("namespace/name");
            if exists(
                Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns),
                n,
            )
            .await?
            {
                pending.push(format!("PersistentVolumeClaim {name}"));
            }
        }
        for v in &volumes {
            if exists(Api::<PersistentVolume>::all(client.clone()), v).await? {
                pending.push(format!("PersistentVolume {v}"));
            }
        }
        if pending.is_empty() || start.elapsed() >= timeout {
            released.pending = pending;
            return Ok(released);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn delete<K>(client: &kube::Client, ns: &str, name: &str) -> Result<()>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    match Api::<K>::namespaced(client.clone(), ns)
        .delete(name, &DeleteParams::default())
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(Error::api(format!("deleting {ns}/{name}"))(e)),
    }
}

async fn exists<K>(api: Api<K>, name: &str) -> Result<bool>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.get_opt(name)
        .await
        .map(|o| o.is_some())
        .map_err(Error::api(format!("reading {name}")))
}
