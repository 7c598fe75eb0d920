//! The resources, their long-running operations, and ARM's rules over them.

use crate::kinds::{self, Kind, RESOURCE_GROUP};
use crate::{Config, Stats, error};

/// A refused request: ARM's error answer, boxed so results stay small.
type Refusal = Box<Response>;

fn refuse(status: StatusCode, code: &str, message: impl Into<String>) -> Refusal {
    Box::new(error(status, code, message))
}
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

pub struct Request<'a> {
    pub method: Method,
    pub path: String,
    pub api_version: Option<String>,
    pub body: &'a [u8],
    /// `http://host:port`, for the operation URLs handed out.
    pub base: String,
    pub config: &'a Config,
}

struct Entry {
    /// As first written, e.g. `/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v`.
    id: String,
    kind: Kind,
    body: Value,
    /// The operation still running on it, if any.
    pending: Option<String>,
    created: bool,
}

struct Operation {
    target: String,
    polls_left: u32,
    done_at: Instant,
}

#[derive(Default)]
pub struct Store {
    /// By lower-cased id: ARM ids are case-insensitive.
    entries: BTreeMap<String, Entry>,
    operations: HashMap<String, Operation>,
    next_address: u32,
    pub stats: Stats,
}

/// What a path names.
enum Target {
    ResourceGroups,
    Collection {
        rg: String,
        ty: String,
        parent: Option<String>,
    },
    Item {
        rg: String,
        ty: String,
        parent: Option<String>,
    },
    Operation(String),
    /// `Location` polling of a resource group's deletion.
    OperationResult(String),
}

type Reply = Result<Response, Refusal>;

fn not_found(id: &str, rg: &str) -> Refusal {
    let short = id.split("/providers/").nth(1).unwrap_or(id);
    refuse(
        StatusCode::NOT_FOUND,
        "ResourceNotFound",
        format!(
            "The Resource '{short}' under resource group '{rg}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"
        ),
    )
}

fn rg_not_found(rg: &str) -> Refusal {
    refuse(
        StatusCode::NOT_FOUND,
        "ResourceGroupNotFound",
        format!("Resource group '{rg}' could not be found."),
    )
}

fn bad(code: &str, message: impl Into<String>) -> Refusal {
    refuse(StatusCode::BAD_REQUEST, code, message)
}

fn parse(path: &str) -> Option<Target> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let is = |i: usize, word: &str| segs.get(i).is_some_and(|s| s.eq_ignore_ascii_case(word));
    if !is(0, "subscriptions") {
        return None;
    }
    match segs.len() {
        3 if is(2, "resourcegroups") => Some(Target::ResourceGroups),
        4 if is(2, "operationresults") => Some(Target::OperationResult(segs[3].into())),
        4 if is(2, "resourcegroups") => Some(Target::Item {
            rg: segs[3].into(),
            ty: RESOURCE_GROUP.ty.into(),
            parent: None,
        }),
        8 if is(2, "providers") && is(4, "locations") && is(6, "operations") => {
            Some(Target::Operation(segs[7].into()))
        }
        7..=10 if is(2, "resourcegroups") && is(4, "providers") => {
            let rg = segs[3].to_string();
            let (ns, ty) = (segs[5], segs[6]);
            let parent_prefix = segs[..8.min(segs.len())].join("/");
            Some(match segs.len() {
                7 => Target::Collection {
                    rg,
                    ty: format!("{ns}/{ty}"),
                    parent: None,
                },
                8 => Target::Item {
                    rg,
                    ty: format!("{ns}/{ty}"),
                    parent: None,
                },
                9 => Target::Collection {
                    rg,
                    ty: format!("{ns}/{ty}/{}", segs[8]),
                    parent: Some(format!("/{parent_prefix}")),
                },
                _ => Target::Item {
                    rg,
                    ty: format!("{ns}/{ty}/{}", segs[8]),
                    parent: Some(format!("/{parent_prefix}")),
                },
            })
        }
        _ => None,
    }
}

fn rg_id(path: &str) -> String {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    format!("/{}", segs[..4].join("/"))
}

/// Every `{"id": ...}` reference under `properties`, and the keys of `identity.userAssignedIdentities`.
fn references(body: &Value) -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(id)) = m.get("id") {
                    out.push(id.clone());
                }
                m.iter()
                    .filter(|(k, _)| *k != "id")
                    .for_each(|(_, v)| walk(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Some(p) = body.get("properties") {
        walk(p, &mut out);
    }
    if let Some(Value::Object(ids)) = body.pointer("/identity/userAssignedIdentities") {
        out.extend(ids.keys().cloned());
    }
    out
}

fn under(id: &str, prefix: &str) -> bool {
    let (id, prefix) = (id.to_ascii_lowercase(), prefix.to_ascii_lowercase());
    id == prefix || id.starts_with(&format!("{prefix}/"))
}

impl Store {
    pub fn ids(&self) -> Vec<String> {
        self.entries.keys().cloned().collect()
    }

    /// Finishes the operations whose time is up.
    fn settle(&mut self) {
        let now = Instant::now();
        let done: Vec<String> = self
            .operations
            .iter()
            .filter(|(_, op)| op.done_at <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in done {
            self.finish(&id);
        }
    }

    fn finish(&mut self, op: &str) {
        if let Some(op) = self.operations.remove(op)
            && let Some(e) = self.entries.get_mut(&op.target)
        {
            e.pending = None;
        }
    }

    pub fn handle(&mut self, r: Request<'_>) -> Response {
        self.settle();
        let reply = match parse(&r.path) {
            None => Err(refuse(
                StatusCode::NOT_FOUND,
                "InvalidResourceType",
                format!("The path '{}' is not served by this fake ARM.", r.path),
            )),
            Some(Target::Operation(id)) => Ok(self.poll(&id, r.config)),
            Some(Target::OperationResult(id)) => Ok(self.poll_result(&id, r.config)),
            Some(Target::ResourceGroups) => Ok(self.list(|e| e.kind == RESOURCE_GROUP)),
            Some(Target::Collection { rg, ty, parent }) => self.collection(&r, &rg, &ty, parent),
            Some(Target::Item { rg, ty, parent }) => self.item(&r, &rg, &ty, parent),
        };
        reply.unwrap_or_else(|e| *e)
    }

    fn kind(r: &Request<'_>, ty: &str) -> Result<Kind, Refusal> {
        let kind = kinds::by_type(ty).ok_or_else(|| {
            bad(
                "InvalidResourceType",
                format!("The resource type '{ty}' could not be found."),
            )
        })?;
        match r.api_version.as_deref() {
            None => Err(bad(
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            )),
            Some(v) if v != kind.api_version => Err(bad(
                if kind == RESOURCE_GROUP {
                    "InvalidApiVersionParameter"
                } else {
                    "NoRegisteredProviderFound"
                },
                format!(
                    "No registered resource provider found for API version '{v}' and type '{}'. The supported api-versions are '{}'.",
                    kind.ty, kind.api_version
                ),
            )),
            Some(_) => Ok(kind),
        }
    }

    fn has_rg(&self, rg: &str) -> bool {
        self.entries.values().any(|e| {
            e.kind == RESOURCE_GROUP
                && e.id
                    .rsplit('/')
                    .next()
                    .is_some_and(|n| n.eq_ignore_ascii_case(rg))
        })
    }

    fn list(&self, keep: impl Fn(&Entry) -> bool) -> Response {
        let value: Vec<Value> = self
            .entries
            .values()
            .filter(|e| keep(e))
            .map(|e| self.render(e))
            .collect();
        axum::Json(json!({ "value": value })).into_response()
    }

    fn collection(&self, r: &Request<'_>, rg: &str, ty: &str, parent: Option<String>) -> Reply {
        let kind = Self::kind(r, ty)?;
        if r.method != Method::GET {
            return Err(refuse(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "collections are read-only",
            ));
        }
        if !self.has_rg(rg) {
            return Err(rg_not_found(rg));
        }
        if let Some(parent) = &parent
            && !self.entries.contains_key(&parent.to_ascii_lowercase())
        {
            return Err(not_found(parent, rg));
        }
        let prefix = r.path.trim_end_matches('/').to_ascii_lowercase();
        let rg_prefix = rg_id(&r.path).to_ascii_lowercase();
        Ok(self.list(|e| {
            e.kind == kind
                && match &parent {
                    Some(_) => e.id.to_ascii_lowercase().starts_with(&format!("{prefix}/")),
                    None => {
                        e.id.to_ascii_lowercase()
                            .starts_with(&format!("{rg_prefix}/"))
                    }
                }
        }))
    }

    fn item(&mut self, r: &Request<'_>, rg: &str, ty: &str, parent: Option<String>) -> Reply {
        let kind = Self::kind(r, ty)?;
        let id = r.path.trim_end_matches('/').to_string();
        let key = id.to_ascii_lowercase();
        if kind != RESOURCE_GROUP && !self.has_rg(rg) {
            return Err(rg_not_found(rg));
        }
        match r.method {
            Method::GET => match self.entries.get(&key) {
                Some(e) => Ok(axum::Json(self.render(e)).into_response()),
                None if kind == RESOURCE_GROUP => Err(rg_not_found(rg)),
                None => Err(not_found(&id, rg)),
            },
            Method::PUT => {
                if let Some(parent) = &parent
                    && !self.entries.contains_key(&parent.to_ascii_lowercase())
                {
                    return Err(refuse(
                        StatusCode::NOT_FOUND,
                        "ParentResourceNotFound",
                        format!(
                            "Can not perform requested operation on nested resource. Parent resource '{parent}' not found."
                        ),
                    ));
                }
                let body: Value = serde_json::from_slice(r.body).map_err(|e| {
                    bad(
                        "InvalidRequestContent",
                        format!(
                            "The request content was invalid and could not be deserialized: {e}"
                        ),
                    )
                })?;
                if !body.is_object() {
                    return Err(bad(
                        "InvalidRequestContent",
                        "The request content must be a JSON object.",
                    ));
                }
                self.put(r, kind, id, body)
            }
            Method::DELETE => self.delete(r, kind, &id, rg),
            _ => Err(refuse(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "unsupported method",
            )),
        }
    }

    fn put(&mut self, r: &Request<'_>, kind: Kind, id: String, mut body: Value) -> Reply {
        let key = id.to_ascii_lowercase();
        if let Some(existing) = self.entries.get(&key)
            && existing.pending.is_some()
        {
            return Err(refuse(
                StatusCode::CONFLICT,
                "AnotherOperationInProgress",
                format!(
                    "Another operation on this or dependent resource is in progress. Resource {id} is busy."
                ),
            ));
        }
        let tracked = !matches!(
            kind.ty,
            "Microsoft.Network/virtualNetworks/subnets" | "Microsoft.Authorization/roleAssignments"
        );
        if tracked
            && body
                .get("location")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
        {
            return Err(bad(
                "LocationRequired",
                "The location property is required for this definition.",
            ));
        }
        let name = id.rsplit('/').next().unwrap_or_default().to_string();
        let obj = body.as_object_mut().expect("checked object");
        obj.insert("id".into(), id.clone().into());
        obj.insert("name".into(), name.clone().into());
        obj.insert("type".into(), kind.ty.into());
        let props = obj
            .entry("properties")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .ok_or_else(|| bad("InvalidRequestContent", "properties must be an object"))?;
        props.remove("provisioningState");
        // Named sub-resources (rules, probes, IP configurations) get their ids.
        for (collection, items) in props.iter_mut() {
            if collection == "subnets" {
                continue;
            }
            if let Value::Array(items) = items {
                for item in items.iter_mut().filter_map(Value::as_object_mut) {
                    if let Some(n) = item.get("name").and_then(Value::as_str) {
                        let sub = format!("{id}/{collection}/{n}");
                        item.insert("id".into(), sub.into());
                    }
                }
            }
        }
        self.check_references(&id, &body)?;
        self.specific(kind, &id, &mut body)?;

        let created = !self.entries.contains_key(&key);
        let pending = kind
            .long_running
            .then(|| self.start_operation(&key, r.config));
        if kind.ty == "Microsoft.Network/virtualNetworks" {
            self.replace_subnets(&id, &mut body)?;
        }
        self.entries.insert(
            key.clone(),
            Entry {
                id: id.clone(),
                kind,
                body,
                pending: pending.clone(),
                created,
            },
        );
        let status = if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        let mut response = (status, axum::Json(self.render(&self.entries[&key]))).into_response();
        if let Some(op) = pending {
            let url = self.operation_url(r, &id, &op, kind);
            let h = response.headers_mut();
            h.insert(
                "azure-asyncoperation",
                HeaderValue::from_str(&url).expect("ascii url"),
            );
            h.insert("retry-after", HeaderValue::from(r.config.op_retry_after_s));
        }
        Ok(response)
    }

    /// Rules of one type: identities get principals, addresses are assigned, ...
    fn specific(&mut self, kind: Kind, id: &str, body: &mut Value) -> Result<(), Refusal> {
        let key = id.to_ascii_lowercase();
        let old = self.entries.get(&key).map(|e| e.body.clone());
        let keep = |pointer: &str| old.as_ref().and_then(|o| o.pointer(pointer)).cloned();
        match kind.ty {
            "Microsoft.ManagedIdentity/userAssignedIdentities" => {
                let props = body["properties"].as_object_mut().expect("object");
                for field in ["principalId", "clientId", "tenantId"] {
                    let value = keep(&format!("/properties/{field}"))
                        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string().into());
                    props.insert(field.into(), value);
                }
            }
            "Microsoft.Network/publicIPAddresses" => {
                let address = keep("/properties/ipAddress").unwrap_or_else(|| {
                    self.next_address += 1;
                    format!(
                        "20.0.{}.{}",
                        self.next_address / 250,
                        self.next_address % 250 + 1
                    )
                    .into()
                });
                body["properties"]["ipAddress"] = address;
            }
            "Microsoft.Network/networkInterfaces" => {
                let configs = body["properties"]["ipConfigurations"].as_array_mut();
                if configs.as_ref().is_none_or(|c| c.is_empty()) {
                    return Err(bad(
                        "InvalidRequestFormat",
                        "A network interface needs at least one IP configuration.",
                    ));
                }
                for (i, c) in configs.into_iter().flatten().enumerate() {
                    if c.pointer("/properties/subnet/id").is_none() {
                        return Err(bad(
                            "InvalidRequestFormat",
                            format!("ipConfigurations[{i}] has no subnet"),
                        ));
                    }
                    let address = keep(&format!(
                        "/properties/ipConfigurations/{i}/properties/privateIPAddress"
                    ))
                    .unwrap_or_else(|| {
                        self.next_address += 1;
                        format!(
                            "10.0.{}.{}",
                            self.next_address / 250,
                            self.next_address % 250 + 4
                        )
                        .into()
                    });
                    c["properties"]["privateIPAddress"] = address;
                }
            }
            "Microsoft.Compute/virtualMachines" => self.virtual_machine(id, body, old.as_ref())?,
            "Microsoft.Authorization/roleAssignments" => {
                self.role_assignment(id, body, old.as_ref())?
            }
            _ => {}
        }
        Ok(())
    }

    fn virtual_machine(
        &mut self,
        id: &str,
        body: &mut Value,
        old: Option<&Value>,
    ) -> Result<(), Refusal> {
        let size = body
            .pointer("/properties/hardwareProfile/vmSize")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !(size.starts_with("Standard_") || size.starts_with("Basic_")) {
            return Err(bad(
                "InvalidParameter",
                format!("The value '{size}' provided for the VM size is not valid."),
            ));
        }
        let nics = body
            .pointer("/properties/networkProfile/networkInterfaces")
            .and_then(Value::as_array);
        if nics.is_none_or(|n| n.is_empty()) {
            return Err(bad(
                "InvalidParameter",
                "At least one network interface is required.",
            ));
        }
        let os = body
            .pointer("/properties/osProfile")
            .cloned()
            .unwrap_or_default();
        if os
            .get("adminUsername")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err(bad(
                "InvalidParameter",
                "Required parameter 'adminUsername' is missing (null).",
            ));
        }
        let no_password = os.pointer("/linuxConfiguration/disablePasswordAuthentication")
            == Some(&Value::Bool(true));
        let keys = os
            .pointer("/linuxConfiguration/ssh/publicKeys")
            .and_then(Value::as_array);
        if no_password && keys.is_none_or(|k| k.is_empty()) {
            return Err(bad(
                "InvalidParameter",
                "Authentication using either SSH or by user name and password must be enabled in Linux profile.",
            ));
        }
        let disk = match old
            .and_then(|o| o.pointer("/properties/storageProfile/osDisk/managedDisk/id"))
        {
            Some(d) => d.as_str().unwrap_or_default().to_string(),
            None => {
                let rg = rg_id(id);
                let name = format!(
                    "{}_OsDisk_1_{}",
                    id.rsplit('/').next().unwrap_or_default(),
                    uuid::Uuid::new_v4().simple()
                );
                let disk_id = format!("{rg}/providers/Microsoft.Compute/disks/{name}");
                let size = body
                    .pointer("/properties/storageProfile/osDisk/diskSizeGB")
                    .cloned()
                    .unwrap_or(json!(30));
                let location = body["location"].clone();
                let disk = kinds::by_type("Microsoft.Compute/disks").expect("known");
                self.entries.insert(
                    disk_id.to_ascii_lowercase(),
                    Entry {
                        id: disk_id.clone(),
                        kind: disk,
                        body: json!({ "id": disk_id, "name": name, "type": disk.ty, "location": location, "properties": { "diskSizeGB": size, "osType": "Linux" } }),
                        pending: None,
                        created: true,
                    },
                );
                disk_id
            }
        };
        body["properties"]["storageProfile"]["osDisk"]["managedDisk"]["id"] = disk.clone().into();
        body["properties"]["storageProfile"]["osDisk"]["name"] =
            disk.rsplit('/').next().unwrap_or_default().into();
        body["properties"]["vmId"] = old
            .and_then(|o| o.pointer("/properties/vmId").cloned())
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string().into());
        Ok(())
    }

    fn role_assignment(
        &self,
        id: &str,
        body: &mut Value,
        old: Option<&Value>,
    ) -> Result<(), Refusal> {
        let name = id.rsplit('/').next().unwrap_or_default();
        if uuid::Uuid::parse_str(name).is_err() {
            return Err(bad(
                "InvalidRoleAssignmentId",
                format!(
                    "The role assignment ID '{name}' is not valid. The role assignment ID must be a GUID."
                ),
            ));
        }
        let field = |v: &Value, f: &str| {
            v.pointer(&format!("/properties/{f}"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_ascii_lowercase()
        };
        let (principal, role) = (field(body, "principalId"), field(body, "roleDefinitionId"));
        let known = self.entries.values().any(|e| {
            e.kind.ty == "Microsoft.ManagedIdentity/userAssignedIdentities"
                && field(&e.body, "principalId") == principal
        });
        if !known {
            return Err(bad(
                "PrincipalNotFound",
                format!("Principal {principal} does not exist in the directory."),
            ));
        }
        let scope = rg_id(id);
        if let Some(old) = old
            && (field(old, "principalId") != principal || field(old, "roleDefinitionId") != role)
        {
            return Err(refuse(
                StatusCode::CONFLICT,
                "RoleAssignmentUpdateNotPermitted",
                "Tenant ID, application ID, principal ID, and scope are not allowed to be updated.",
            ));
        }
        let duplicate = self.entries.values().any(|e| {
            e.kind == body_kind(body)
                && !e.id.eq_ignore_ascii_case(id)
                && field(&e.body, "principalId") == principal
                && field(&e.body, "roleDefinitionId") == role
                && field(&e.body, "scope") == scope.to_ascii_lowercase()
        });
        if duplicate {
            return Err(refuse(
                StatusCode::CONFLICT,
                "RoleAssignmentExists",
                "The role assignment already exists.",
            ));
        }
        body["properties"]["scope"] = scope.into();
        Ok(())
    }

    /// Every reference must name something that exists, be provisioned, and (for public IPs
    /// and NICs) not already serve another resource.
    fn check_references(&self, id: &str, body: &Value) -> Result<(), Refusal> {
        for reference in references(body) {
            if under(&reference, id) {
                // One of its own sub-resources: must be in this very body.
                let rest = &reference[id.len()..];
                if !sub_resource_exists(body, rest) {
                    return Err(invalid_reference(&reference, id));
                }
                continue;
            }
            let target = self
                .entries
                .values()
                .filter(|e| under(&reference, &e.id))
                .max_by_key(|e| e.id.len())
                .ok_or_else(|| invalid_reference(&reference, id))?;
            let rest = &reference[target.id.len()..];
            if !rest.is_empty() && !sub_resource_exists(&target.body, rest) {
                return Err(invalid_reference(&reference, id));
            }
            if target.pending.is_some() {
                return Err(bad(
                    "ReferencedResourceNotProvisioned",
                    format!(
                        "Cannot proceed with operation because resource {} used by resource {id} is not in Succeeded state. Resource is in Updating state.",
                        target.id
                    ),
                ));
            }
            if target.kind.exclusive
                && let Some(other) = self
                    .referrers(&target.id)
                    .into_iter()
                    .find(|r| !r.eq_ignore_ascii_case(id))
            {
                let code = if target.kind.ty.ends_with("publicIPAddresses") {
                    "PublicIPAddressInUse"
                } else {
                    "NicInUse"
                };
                return Err(bad(
                    code,
                    format!(
                        "Resource {} is already in use by {other} and cannot be referenced by {id}.",
                        target.id
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Ids of the resources (other than itself and its children) that refer to `id` or its parts.
    fn referrers(&self, id: &str) -> Vec<String> {
        self.entries
            .values()
            .filter(|e| !under(&e.id, id))
            .filter(|e| references(&e.body).iter().any(|r| under(r, id)))
            .map(|e| e.id.clone())
            .collect()
    }

    /// A VNet's PUT states its subnets: listed ones are upserted, others deleted (if unused).
    fn replace_subnets(&mut self, vnet: &str, body: &mut Value) -> Result<(), Refusal> {
        let wanted = body["properties"]
            .as_object_mut()
            .and_then(|p| p.remove("subnets"));
        let wanted: Vec<Value> = wanted
            .and_then(|w| w.as_array().cloned())
            .unwrap_or_default();
        let subnet = kinds::by_type("Microsoft.Network/virtualNetworks/subnets").expect("known");
        let names: Vec<String> = wanted
            .iter()
            .filter_map(|s| s["name"].as_str().map(str::to_ascii_lowercase))
            .collect();
        let existing: Vec<String> = self
            .entries
            .values()
            .filter(|e| e.kind == subnet && under(&e.id, vnet))
            .map(|e| e.id.clone())
            .collect();
        for old in existing {
            let name = old
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase();
            if !names.contains(&name) {
                if let Some(user) = self.referrers(&old).first() {
                    return Err(in_use("InUseSubnetCannotBeDeleted", &old, user));
                }
                self.entries.remove(&old.to_ascii_lowercase());
            }
        }
        for s in wanted {
            let name = s["name"].as_str().unwrap_or_default();
            let id = format!("{vnet}/subnets/{name}");
            let mut s = s.clone();
            s["id"] = id.clone().into();
            s["type"] = subnet.ty.into();
            self.entries.insert(
                id.to_ascii_lowercase(),
                Entry {
                    id,
                    kind: subnet,
                    body: s,
                    pending: None,
                    created: true,
                },
            );
        }
        Ok(())
    }

    fn delete(&mut self, r: &Request<'_>, kind: Kind, id: &str, rg: &str) -> Reply {
        let key = id.to_ascii_lowercase();
        let Some(entry) = self.entries.get(&key) else {
            return if kind == RESOURCE_GROUP {
                Err(rg_not_found(rg))
            } else {
                Ok(StatusCode::NO_CONTENT.into_response())
            };
        };
        if entry.pending.is_some() {
            return Err(refuse(
                StatusCode::CONFLICT,
                "AnotherOperationInProgress",
                format!(
                    "Another operation on this or dependent resource is in progress. Resource {id} is busy."
                ),
            ));
        }
        let id = entry.id.clone();
        if kind != RESOURCE_GROUP
            && let Some(user) = self.referrers(&id).first()
        {
            let code = kind.in_use_code.unwrap_or("InUseResourceCannotBeDeleted");
            return Err(in_use(code, &id, user));
        }
        // The resource and everything under it (a VNet's subnets, a group's resources).
        let gone: Vec<String> = self
            .entries
            .keys()
            .filter(|k| under(k, &key))
            .cloned()
            .collect();
        let mut removed = Vec::new();
        for k in gone {
            if let Some(e) = self.entries.remove(&k) {
                removed.push(e);
            }
        }
        // A VM takes its OS disk along when asked to.
        for e in &removed {
            if e.kind.ty == "Microsoft.Compute/virtualMachines"
                && e.body
                    .pointer("/properties/storageProfile/osDisk/deleteOption")
                    .and_then(Value::as_str)
                    == Some("Delete")
                && let Some(disk) = e
                    .body
                    .pointer("/properties/storageProfile/osDisk/managedDisk/id")
                    .and_then(Value::as_str)
            {
                self.entries.remove(&disk.to_ascii_lowercase());
            }
        }
        if !kind.long_running && kind != RESOURCE_GROUP {
            return Ok(StatusCode::OK.into_response());
        }
        let op = self.start_operation("", r.config);
        let mut response = StatusCode::ACCEPTED.into_response();
        let h = response.headers_mut();
        if kind == RESOURCE_GROUP {
            // ResourceGroups_Delete answers 202 with a Location to poll (resources.json).
            let sub = id.split('/').nth(2).unwrap_or_default();
            let url = format!(
                "{}/subscriptions/{sub}/operationresults/{op}?api-version={}",
                r.base, kind.api_version
            );
            h.insert("location", HeaderValue::from_str(&url).expect("ascii"));
        } else {
            let url = self.operation_url(r, &id, &op, kind);
            h.insert("location", HeaderValue::from_str(&url).expect("ascii"));
            h.insert(
                "azure-asyncoperation",
                HeaderValue::from_str(&url).expect("ascii"),
            );
        }
        h.insert("retry-after", HeaderValue::from(r.config.op_retry_after_s));
        Ok(response)
    }

    fn start_operation(&mut self, target: &str, config: &Config) -> String {
        let op = uuid::Uuid::new_v4().to_string();
        self.operations.insert(
            op.clone(),
            Operation {
                target: target.to_string(),
                polls_left: config.polls.max(1),
                done_at: Instant::now() + Duration::from_millis(config.op_ms),
            },
        );
        op
    }

    fn operation_url(&self, r: &Request<'_>, id: &str, op: &str, kind: Kind) -> String {
        let sub = id.split('/').nth(2).unwrap_or_default();
        let ns = kind.ty.split('/').next().unwrap_or_default();
        format!(
            "{}/subscriptions/{sub}/providers/{ns}/locations/fake/operations/{op}?api-version={}",
            r.base, kind.api_version
        )
    }

    /// An operation's status, as `Azure-AsyncOperation` (and `Location`) polling sees it.
    fn poll(&mut self, id: &str, config: &Config) -> Response {
        let status = match self.operations.get_mut(id) {
            None => "Succeeded",
            Some(op) => {
                op.polls_left = op.polls_left.saturating_sub(1);
                if op.polls_left == 0 {
                    self.finish(id);
                    "Succeeded"
                } else {
                    "InProgress"
                }
            }
        };
        let mut response = axum::Json(json!({ "name": id, "status": status })).into_response();
        if status == "InProgress" {
            response
                .headers_mut()
                .insert("retry-after", HeaderValue::from(config.op_retry_after_s));
        }
        response
    }

    /// `Location` polling: 202 while the operation runs, 200 once it is done.
    fn poll_result(&mut self, id: &str, config: &Config) -> Response {
        self.poll(id, config);
        if !self.operations.contains_key(id) {
            return StatusCode::OK.into_response();
        }
        let mut response = StatusCode::ACCEPTED.into_response();
        response
            .headers_mut()
            .insert("retry-after", HeaderValue::from(config.op_retry_after_s));
        response
    }

    pub fn render_id(&self, id: &str) -> Option<Value> {
        self.entries
            .get(&id.to_ascii_lowercase())
            .map(|e| self.render(e))
    }

    /// The body a GET returns: as written, plus state and back-references ARM computes.
    fn render(&self, e: &Entry) -> Value {
        let mut body = e.body.clone();
        let state = match (
            &e.pending,
            e.created,
            e.kind.ty.starts_with("Microsoft.Compute"),
        ) {
            (None, ..) => "Succeeded",
            (Some(_), true, true) => "Creating",
            (Some(_), ..) => "Updating",
        };
        if e.kind != RESOURCE_GROUP && e.kind.ty != "Microsoft.Authorization/roleAssignments" {
            body["properties"]["provisioningState"] = state.into();
        } else if e.kind == RESOURCE_GROUP {
            body["properties"]["provisioningState"] = "Succeeded".into();
        }
        let users = || -> Vec<Value> {
            self.entries
                .values()
                .filter(|o| !under(&o.id, &e.id))
                .flat_map(|o| {
                    references(&o.body)
                        .into_iter()
                        .filter(|r| under(r, &e.id))
                        .map(move |_| o)
                })
                .map(|o| json!({ "id": o.id }))
                .collect()
        };
        match e.kind.ty {
            "Microsoft.Network/virtualNetworks" => {
                let subnets: Vec<Value> = self
                    .entries
                    .values()
                    .filter(|s| s.kind.ty.ends_with("/subnets") && under(&s.id, &e.id))
                    .map(|s| self.render(s))
                    .collect();
                body["properties"]["subnets"] = subnets.into();
            }
            "Microsoft.Network/virtualNetworks/subnets" => {
                body["properties"]["ipConfigurations"] = users().into()
            }
            "Microsoft.Network/publicIPAddresses" => {
                if let Some(user) = users().into_iter().next() {
                    body["properties"]["ipConfiguration"] = user;
                }
            }
            "Microsoft.Network/networkInterfaces" => {
                if let Some(vm) = users().into_iter().next() {
                    body["properties"]["virtualMachine"] = vm;
                }
            }
            _ => {}
        }
        body
    }
}

fn body_kind(_: &Value) -> Kind {
    kinds::by_type("Microsoft.Authorization/roleAssignments").expect("known")
}

fn in_use(code: &str, id: &str, user: &str) -> Refusal {
    let name = id.rsplit('/').next().unwrap_or_default();
    bad(
        code,
        format!(
            "Resource {name} ({id}) is in use by {user} and cannot be deleted. In order to delete it, delete or detach the resources that use it first."
        ),
    )
}

fn invalid_reference(reference: &str, id: &str) -> Refusal {
    bad(
        "InvalidResourceReference",
        format!(
            "Resource {reference} referenced by resource {id} was not found. Please make sure that the referenced resource exists, and that both resources are in the same region."
        ),
    )
}

/// `/collection/name` inside `body.properties`, e.g. a load balancer's `/probes/api`.
fn sub_resource_exists(body: &Value, rest: &str) -> bool {
    let parts: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let [collection, name] = parts.as_slice() else {
        return false;
    };
    body.pointer(&format!("/properties/{collection}"))
        .and_then(Value::as_array)
        .is_some_and(|items| {
            items.iter().any(|i| {
                i["name"]
                    .as_str()
                    .is_some_and(|n| n.eq_ignore_ascii_case(name))
            })
        })
}
