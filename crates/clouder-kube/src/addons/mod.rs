//! Addons clouder installs into a cluster: the cloud's storage and load-balancer integration,
//! ingress controllers and cert-manager. Each is a manifest in `addons/`, with images pinned per
//! Kubernetes minor, labelled so clouder can find and remove exactly what it installed.

pub mod pins;
pub mod webhook;

pub use pins::Pins;

use crate::apply::{Applied, Applier};
use crate::manifest::{ObjectRef, parse};
use crate::{Error, Result, wait};
use futures::future::try_join_all;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

pub const ADDON_LABEL: &str = "clouder.io/addon";
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const VERSION_ANNOTATION: &str = "clouder.io/addon-version";
pub const DEFAULT_CLASS: &str = "storageclass.kubernetes.io/is-default-class";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Addon {
    AwsEbsCsi,
    AwsEfsCsi,
    AwsLoadBalancerController,
    AzureCloudProvider,
    AzureDiskCsi,
    AzureFileCsi,
    IngressNginx,
    IngressTraefik,
    CertManager,
}

impl Addon {
    pub fn name(self) -> &'static str {
        match self {
            Addon::AwsEbsCsi => "aws-ebs-csi",
            Addon::AwsEfsCsi => "aws-efs-csi",
            Addon::AwsLoadBalancerController => "aws-load-balancer-controller",
            Addon::AzureCloudProvider => "azure-cloud-provider",
            Addon::AzureDiskCsi => "azure-disk-csi",
            Addon::AzureFileCsi => "azure-file-csi",
            Addon::IngressNginx => "ingress-nginx",
            Addon::IngressTraefik => "ingress-traefik",
            Addon::CertManager => "cert-manager",
        }
    }

    fn template(self) -> &'static str {
        match self {
            Addon::AwsEbsCsi => include_str!("../../addons/aws-ebs-csi.yaml"),
            Addon::AwsEfsCsi => include_str!("../../addons/aws-efs-csi.yaml"),
            Addon::AwsLoadBalancerController => {
                include_str!("../../addons/aws-load-balancer-controller.yaml")
            }
            Addon::AzureCloudProvider => include_str!("../../addons/azure-cloud-provider.yaml"),
            Addon::AzureDiskCsi => include_str!("../../addons/azure-disk-csi.yaml"),
            Addon::AzureFileCsi => include_str!("../../addons/azure-file-csi.yaml"),
            Addon::IngressNginx => include_str!("../../addons/ingress-nginx.yaml"),
            Addon::IngressTraefik => include_str!("../../addons/ingress-traefik.yaml"),
            Addon::CertManager => include_str!("../../addons/cert-manager.yaml"),
        }
    }

    /// The pinned version of this addon for the pins' minor, or why there is none.
    pub fn version(self, pins: &Pins, minor: u32) -> Result<&'static str> {
        let missing = |why: &str| Error::Refused(format!("{}: {why} 1.{minor}", self.name()));
        match self {
            Addon::AwsEbsCsi => Ok(pins.ebs_csi),
            Addon::AwsEfsCsi => Ok(pins.efs_csi),
            Addon::AwsLoadBalancerController => Ok(pins.aws_lbc),
            Addon::AzureCloudProvider => pins
                .azure_ccm
                .ok_or_else(|| missing("cloud-provider-azure has no release for Kubernetes")),
            Addon::AzureDiskCsi => Ok(pins.azure_disk_csi),
            Addon::AzureFileCsi => Ok(pins.azure_file_csi),
            Addon::IngressNginx => pins.ingress_nginx.ok_or_else(|| {
                missing("ingress-nginx is retired upstream (no release after March 2026; use ingress-traefik) and supports no Kubernetes")
            }),
            Addon::IngressTraefik => Ok(pins.traefik),
            Addon::CertManager => pins
                .cert_manager
                .ok_or_else(|| missing("no cert-manager release supports Kubernetes")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Cloud {
    Aws,
    Azure,
    /// Hosts of the user's own: no cloud integration.
    Ssh,
}

/// Which ClusterIssuer cert-manager gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Issuer {
    SelfSigned,
    Acme { server: String, email: String },
}

/// What the manifests are rendered for.
#[derive(Debug, Clone)]
pub struct Context {
    pub cluster: String,
    pub cloud: Cloud,
    pub region: String,
    /// Kubernetes minor version (e.g. 36 for 1.36): selects the pinned images.
    pub minor: u32,
    /// Azure: the cloud provider config naming the managed identity (no secret in it).
    pub azure_cloud_config: Option<Value>,
    /// AWS: the EFS file system `aws-efs` volumes are carved from (for the EFS addon).
    pub efs_file_system: Option<String>,
}

/// The cloud integration a cluster gets by default: storage and load balancing.
pub fn cloud_addons(cloud: Cloud) -> &'static [Addon] {
    match cloud {
        Cloud::Aws => &[Addon::AwsEbsCsi, Addon::AwsLoadBalancerController],
        Cloud::Azure => &[
            Addon::AzureCloudProvider,
            Addon::AzureDiskCsi,
            Addon::AzureFileCsi,
        ],
        Cloud::Ssh => &[],
    }
}

/// Load-balancer annotations for a controller's `LoadBalancer` Service on each cloud.
fn load_balancer_annotations(cloud: Cloud) -> Value {
    match cloud {
        // Served by the AWS Load Balancer Controller as an internet-facing NLB to pod IPs.
        Cloud::Aws => json!({
            "service.beta.kubernetes.io/aws-load-balancer-type": "external",
            "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type": "ip",
            "service.beta.kubernetes.io/aws-load-balancer-scheme": "internet-facing",
        }),
        Cloud::Azure => json!({
            "service.beta.kubernetes.io/azure-load-balancer-health-probe-request-path": "/healthz",
        }),
        Cloud::Ssh => json!({}),
    }
}

/// Fills a template's `${name}` variables (the same substitution as service manifests).
fn substitute(source: &str, template: &str, vars: &BTreeMap<&str, String>) -> Result<String> {
    let values = vars
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(v.clone())))
        .collect();
    crate::services::source::substitute(source, template, &values)
        .map_err(|e| Error::Refused(e.to_string()))
}

/// The objects of `addon` for `ctx`, labelled as clouder's.
pub fn render(addon: Addon, ctx: &Context) -> Result<Vec<DynamicObject>> {
    let pins = Pins::for_minor(ctx.minor)?;
    let version = addon.version(&pins, ctx.minor)?;
    let mut vars = pins.vars();
    vars.insert("cluster", ctx.cluster.clone());
    vars.insert("region", ctx.region.clone());
    if addon == Addon::AwsEfsCsi {
        let fs = ctx.efs_file_system.clone().ok_or_else(|| {
            Error::Refused(
                "the EFS addon needs the file system id (fs-…) to carve volumes from".into(),
            )
        })?;
        vars.insert("efs_file_system", fs);
    }
    let source = format!("addon {}", addon.name());
    let text = substitute(&source, addon.template(), &vars)?;
    let mut objects = parse(&source, &text)?;
    for obj in &mut objects {
        let object = ObjectRef::of(obj);
        let load_balancer = object.kind == "Service" && obj.data["spec"]["type"] == "LoadBalancer";
        let meta = &mut obj.metadata;
        let labels = meta.labels.get_or_insert_with(Default::default);
        labels.insert(ADDON_LABEL.into(), addon.name().into());
        labels.insert(MANAGED_BY.into(), "clouder".into());
        meta.annotations
            .get_or_insert_with(Default::default)
            .insert(VERSION_ANNOTATION.into(), version.into());
        if load_balancer {
            let extra = load_balancer_annotations(ctx.cloud);
            let annotations = meta.annotations.get_or_insert_with(Default::default);
            for (k, v) in extra.as_object().expect("object") {
                annotations.insert(k.clone(), v.as_str().unwrap_or_default().into());
            }
        }
        if object.kind == "Secret" && object.name == "azure-cloud-provider" {
            let config = ctx.azure_cloud_config.as_ref().ok_or_else(|| {
                Error::Refused("the Azure cloud provider needs the cluster's cloud config".into())
            })?;
            obj.data["stringData"]["cloud-config"] = config.to_string().into();
        }
    }
    Ok(objects)
}

/// The objects of `addon` as they would be applied to the cluster behind `applier`: rendered,
/// with its webhooks' certificates (those the cluster keeps, or new ones).
pub async fn rendered_for(
    applier: &Applier,
    addon: Addon,
    ctx: &Context,
) -> Result<Vec<DynamicObject>> {
    let mut objects = render(addon, ctx)?;
    webhook::fill(applier, &mut objects).await?;
    Ok(objects)
}

/// The ClusterIssuer named `name`.
pub fn issuer(name: &str, kind: &Issuer, ingress_class: &str) -> Result<Vec<DynamicObject>> {
    let mut vars = BTreeMap::from([
        ("issuer", name.to_string()),
        ("ingress_class", ingress_class.to_string()),
    ]);
    let template = match kind {
        Issuer::SelfSigned => include_str!("../../addons/issuer-self-signed.yaml"),
        Issuer::Acme { server, email } => {
            vars.insert("acme_server", server.clone());
            vars.insert("acme_email", email.clone());
            include_str!("../../addons/issuer-acme.yaml")
        }
    };
    parse(
        "cluster issuer",
        &substitute("cluster issuer", template, &vars)?,
    )
}

#[derive(Debug, Clone, Serialize)]
pub struct Installed {
    pub addon: Addon,
    pub applied: Vec<Applied>,
}

/// Applies `addons`, waits until their workloads have rolled out, and leaves exactly one default
/// StorageClass when one of them brings one.
pub async fn install(
    applier: &Applier,
    addons: &[Addon],
    ctx: &Context,
    timeout: Duration,
) -> Result<Vec<Installed>> {
    let mut rendered = Vec::new();
    for addon in addons {
        rendered.push((*addon, rendered_for(applier, *addon, ctx).await?));
    }
    let mut installed = Vec::new();
    for (addon, objects) in &rendered {
        installed.push(Installed {
            addon: *addon,
            applied: applier.apply(objects).await?,
        });
    }
    let objects: Vec<ObjectRef> = rendered
        .iter()
        .flat_map(|(_, objs)| objs.iter().map(ObjectRef::of))
        .collect();
    try_join_all(objects.iter().map(|o| wait::rollout(applier, o, timeout))).await?;
    if let Some(default) = objects.iter().find(|o| {
        o.kind == "StorageClass"
            && rendered.iter().any(|(_, objs)| {
                objs.iter().any(|obj| {
                    obj.metadata.name.as_deref() == Some(&o.name)
                        && obj
                            .metadata
                            .annotations
                            .as_ref()
                            .is_some_and(|a| a.get(DEFAULT_CLASS).is_some_and(|v| v == "true"))
                })
            })
    }) {
        make_sole_default(applier.client(), &default.name).await?;
    }
    Ok(installed)
}

/// Clears the default-class annotation on every StorageClass but `name`.
pub async fn make_sole_default(client: &kube::Client, name: &str) -> Result<()> {
    let classes = Api::<StorageClass>::all(client.clone());
    let list = classes
        .list(&ListParams::default())
        .await
        .map_err(Error::api("listing storage classes"))?;
    for class in list.items {
        let other = class.metadata.name.as_deref().unwrap_or_default();
        let is_default = class
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.get(DEFAULT_CLASS).is_some_and(|v| v == "true"));
        if other != name && is_default {
            let patch = json!({"metadata": {"annotations": {DEFAULT_CLASS: "false"}}});
            classes
                .patch(other, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(Error::api(format!(
                    "unsetting the default StorageClass {other}"
                )))?;
        }
    }
    Ok(())
}

/// Deletes what `addon` installed (found by its manifest; objects already gone are skipped).
pub async fn remove(applier: &Applier, addon: Addon, ctx: &Context) -> Result<Vec<ObjectRef>> {
    applier.delete(&render(addon, ctx)?).await
}
