//! The built-in resource types this server serves, generated from `k8s-openapi`'s `Resource` constants.

use k8s_openapi::api::{
    admissionregistration::v1 as admission, apps::v1 as apps, batch::v1 as batch,
    coordination::v1 as coordination, core::v1 as core, discovery::v1 as discovery,
    events::v1 as events, networking::v1 as networking, policy::v1 as policy, rbac::v1 as rbac,
    scheduling::v1 as scheduling, storage::v1 as storage,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions;
use k8s_openapi::{ClusterResourceScope, NamespaceResourceScope, Resource};
use serde_json::{Value, json};

/// What a resource type looks like to discovery and to the request handlers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceType {
    pub group: String,
    pub version: String,
    pub kind: String,
    /// Plural, as in the URL (`pods`).
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    /// Has a `status` subresource: the main resource's writes leave `status` alone.
    pub status: bool,
    /// Has a `scale` subresource (`autoscaling/v1` Scale over `spec.replicas`).
    pub scale: bool,
    /// Pods only: the `policy/v1` eviction subresource.
    pub eviction: bool,
    /// Served because a CustomResourceDefinition says so.
    pub custom: bool,
    /// A custom resource's `additionalPrinterColumns` (empty: the server's default, Age).
    pub printer_columns: Vec<PrinterColumn>,
}

/// One of a CRD version's `additionalPrinterColumns`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrinterColumn {
    pub name: String,
    /// `string`, `integer`, `number`, `boolean` or `date`.
    pub kind: String,
    pub json_path: String,
    pub priority: u8,
}

impl ResourceType {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Namespaces cannot be deleted as a collection, as on the real server.
    pub fn delete_collection(&self) -> bool {
        !(self.group.is_empty() && self.plural == "namespaces")
    }

    /// The discovery entries: the resource itself and its subresources.
    pub fn discovery(&self) -> Vec<Value> {
        let mut verbs = vec![
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ];
        if !self.delete_collection() {
            verbs.retain(|v| *v != "deletecollection");
        }
        let mut main = json!({
            "name": self.plural, "singularName": self.singular, "namespaced": self.namespaced,
            "kind": self.kind, "verbs": verbs,
        });
        if !self.short_names.is_empty() {
            main["shortNames"] = json!(self.short_names);
        }
        let mut out = vec![main];
        let sub = |name: &str, verbs: &[&str]| json!({"name": format!("{}/{name}", self.plural), "singularName": "", "namespaced": self.namespaced, "kind": self.kind, "verbs": verbs});
        if self.eviction {
            let mut e = sub("eviction", &["create"]);
            e["group"] = json!("policy");
            e["version"] = json!("v1");
            e["kind"] = json!("Eviction");
            out.push(e);
        }
        if self.scale {
            let mut s = sub("scale", &["get", "patch", "update"]);
            s["group"] = json!("autoscaling");
            s["version"] = json!("v1");
            s["kind"] = json!("Scale");
            out.push(s);
        }
        if self.status {
            out.push(sub("status", &["get", "patch", "update"]));
        }
        out
    }
}

/// Whether a `k8s-openapi` scope type is namespaced.
trait ScopeInfo {
    const NAMESPACED: bool;
}
impl ScopeInfo for NamespaceResourceScope {
    const NAMESPACED: bool = true;
}
impl ScopeInfo for ClusterResourceScope {
    const NAMESPACED: bool = false;
}

fn of<R>(short_names: &[&'static str], status: bool) -> ResourceType
where
    R: Resource,
    R::Scope: ScopeInfo,
{
    ResourceType {
        group: R::GROUP.to_string(),
        version: R::VERSION.to_string(),
        kind: R::KIND.to_string(),
        plural: R::URL_PATH_SEGMENT.to_string(),
        singular: R::KIND.to_lowercase(),
        namespaced: <R::Scope as ScopeInfo>::NAMESPACED,
        short_names: short_names.iter().map(|s| s.to_string()).collect(),
        status,
        scale: false,
        eviction: false,
        custom: false,
        printer_columns: Vec::new(),
    }
}

/// Every built-in resource type, in discovery order within each group-version.
pub fn builtin() -> Vec<ResourceType> {
    let scalable = |mut r: ResourceType| {
        r.scale = true;
        r
    };
    let mut pods = of::<core::Pod>(&["po"], true);
    pods.eviction = true;
    vec![
        of::<core::ConfigMap>(&["cm"], false),
        of::<core::Endpoints>(&["ep"], false),
        of::<core::Event>(&["ev"], false),
        of::<core::LimitRange>(&["limits"], false),
        of::<core::Namespace>(&["ns"], true),
        of::<core::Node>(&["no"], true),
        of::<core::PersistentVolumeClaim>(&["pvc"], true),
        of::<core::PersistentVolume>(&["pv"], true),
        pods,
        scalable(of::<core::ReplicationController>(&["rc"], true)),
        of::<core::ResourceQuota>(&["quota"], true),
        of::<core::Secret>(&[], false),
        of::<core::ServiceAccount>(&["sa"], false),
        of::<core::Service>(&["svc"], true),
        of::<apps::ControllerRevision>(&[], false),
        of::<apps::DaemonSet>(&["ds"], true),
        scalable(of::<apps::Deployment>(&["deploy"], true)),
        scalable(of::<apps::ReplicaSet>(&["rs"], true)),
        scalable(of::<apps::StatefulSet>(&["sts"], true)),
        of::<batch::CronJob>(&["cj"], true),
        of::<batch::Job>(&[], true),
        of::<policy::PodDisruptionBudget>(&["pdb"], true),
        of::<networking::IngressClass>(&[], false),
        of::<networking::Ingress>(&["ing"], true),
        of::<networking::NetworkPolicy>(&["netpol"], false),
        of::<storage::CSIDriver>(&[], false),
        of::<storage::StorageClass>(&["sc"], false),
        of::<rbac::ClusterRoleBinding>(&[], false),
        of::<rbac::ClusterRole>(&[], false),
        of::<rbac::RoleBinding>(&[], false),
        of::<rbac::Role>(&[], false),
        of::<coordination::Lease>(&[], false),
        of::<discovery::EndpointSlice>(&[], false),
        of::<events::Event>(&["ev"], false),
        of::<scheduling::PriorityClass>(&["pc"], false),
        of::<admission::MutatingWebhookConfiguration>(&[], false),
        of::<admission::ValidatingWebhookConfiguration>(&[], false),
        of::<apiextensions::CustomResourceDefinition>(&["crd", "crds"], true),
    ]
}

/// The `(group, version)` pairs served, in the order `/apis` lists them (core first).
pub fn group_versions(types: &[ResourceType]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for t in types {
        let gv = (t.group.clone(), t.version.clone());
        if !out.contains(&gv) {
            out.push(gv);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_types_carry_the_real_names_and_scopes() {
        let all = builtin();
        let find = |p: &str| {
            all.iter()
                .find(|t| t.plural == p)
                .unwrap_or_else(|| panic!("{p} missing"))
        };
        assert_eq!(find("deployments").api_version(), "apps/v1");
        assert!(find("pods").namespaced);
        assert!(!find("nodes").namespaced);
        assert_eq!(find("endpoints").singular, "endpoints");
        assert_eq!(
            find("customresourcedefinitions").group,
            "apiextensions.k8s.io"
        );
        let names: Vec<String> = find("deployments")
            .discovery()
            .iter()
            .map(|d| d["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            names,
            ["deployments", "deployments/scale", "deployments/status"]
        );
    }
}
