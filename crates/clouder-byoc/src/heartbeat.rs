//! The heartbeat controller: probes every endpoint's health URL with its token, concurrently
//! within a bound and each within its own timeout (a slow endpoint holds one slot, never the
//! round), then writes what it saw: `Stale` after N misses, `Unreachable` after M with the
//! virtual Node cordoned, `Ready` (and uncordoned, unless a person cordoned it) when it answers.
//! A beat renews the virtual Node's Lease, as a kubelet renews its own; a missed one does not.
//! An endpoint given by host name is resolved again each round, and its egress policy follows
//! the addresses (written only when they changed).

use crate::enroll::{self, Enrollment};
use crate::objects::{self, Condition, NAMESPACE, RemoteContainerStatus};
use futures::StreamExt;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Node, Secret};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use serde::Serialize;
use serde_json::json;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// Resolves an endpoint's host (and port) to its addresses: the system resolver
/// ([`crate::trust::resolve`]) unless a caller brings its own.
pub type Resolver =
    Arc<dyn Fn(String, u16) -> BoxFuture<'static, std::io::Result<Vec<IpAddr>>> + Send + Sync>;

pub fn system_resolver() -> Resolver {
    Arc::new(|host, port| Box::pin(crate::trust::resolve(host, port)))
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub interval: Duration,
    /// Each round starts after `interval` plus a random part of this, so that many
    /// controllers (or restarts) do not probe in lockstep.
    pub jitter: Duration,
    /// Per probe: an endpoint that has not answered by then missed its beat.
    pub timeout: Duration,
    /// Probes in flight at once.
    pub concurrency: usize,
    /// Consecutive misses before `Stale`, and before `Unreachable` (and cordoned).
    pub stale_after: u32,
    pub unreachable_after: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            interval: Duration::from_secs(10),
            jitter: Duration::from_secs(2),
            timeout: Duration::from_secs(3),
            concurrency: 64,
            stale_after: 2,
            unreachable_after: 5,
        }
    }
}

/// One endpoint to probe.
#[derive(Clone)]
pub struct Target {
    pub name: String,
    pub url: String,
    pub token: String,
    pub client: reqwest::Client,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "beat", content = "reason", rename_all = "lowercase")]
pub enum Beat {
    Alive,
    Missed(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Health {
    Ready,
    Stale,
    Unreachable,
}

/// One probe, bounded by `timeout` whatever the endpoint does.
pub async fn probe(target: &Target, timeout: Duration) -> Beat {
    let request = target
        .client
        .get(&target.url)
        .bearer_auth(&target.token)
        .send();
    match tokio::time::timeout(timeout, request).await {
        Err(_) => Beat::Missed(format!("no answer within {timeout:?}")),
        // The client's own timeout may fire first: the same miss.
        Ok(Err(e)) if e.is_timeout() => Beat::Missed(format!("no answer within {timeout:?}")),
        Ok(Err(e)) => Beat::Missed(crate::oci::chain(&e)),
        Ok(Ok(r)) if r.status().is_success() => Beat::Alive,
        Ok(Ok(r)) if r.status().as_u16() == 401 || r.status().as_u16() == 403 => {
            Beat::Missed(format!("the endpoint refused the token ({})", r.status()))
        }
        Ok(Ok(r)) => Beat::Missed(format!("the endpoint answered {}", r.status())),
    }
}

/// Probes every target, at most `concurrency` at once; beats in the targets' order.
pub async fn round(targets: &[Target], concurrency: usize, timeout: Duration) -> Vec<Beat> {
    // Each probe owns its target (cheap: the client is shared), so the round's future is Send.
    let mut beats: Vec<(usize, Beat)> = futures::stream::iter(targets.iter().cloned().enumerate())
        .map(|(i, t)| async move { (i, probe(&t, timeout).await) })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    beats.sort_by_key(|(i, _)| *i);
    beats.into_iter().map(|(_, b)| b).collect()
}

/// Pure: consecutive misses and health after `beat`.
pub fn assess(misses: u32, beat: &Beat, settings: &Settings) -> (u32, Health) {
    let misses = match beat {
        Beat::Alive => 0,
        Beat::Missed(_) => misses.saturating_add(1),
    };
    let health = if misses == 0 {
        Health::Ready
    } else if misses >= settings.unreachable_after {
        Health::Unreachable
    } else if misses >= settings.stale_after {
        Health::Stale
    } else {
        // A single miss is not yet news: it stays Ready until N.
        Health::Ready
    };
    (misses, health)
}

/// Pure: the status after a beat; a condition keeps its transition time while it holds.
pub fn next_status(
    previous: &RemoteContainerStatus,
    beat: &Beat,
    misses: u32,
    health: Health,
    now: &str,
) -> RemoteContainerStatus {
    let message = match beat {
        Beat::Alive => "the endpoint answered its heartbeat".to_string(),
        Beat::Missed(reason) => format!("{misses} missed heartbeat(s): {reason}"),
    };
    let condition = |type_: &str, holds: bool, reason: &str| {
        let status = if holds { "True" } else { "False" };
        let since = previous
            .condition(type_)
            .filter(|c| c.status == status)
            .map_or(now.to_string(), |c| c.last_transition_time.clone());
        Condition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            message: message.clone(),
            last_transition_time: since,
        }
    };
    let reason = match (health, beat) {
        (Health::Ready, Beat::Alive) => "HeartbeatReceived",
        (Health::Ready, Beat::Missed(_)) => "HeartbeatMissed",
        (Health::Stale, _) => "HeartbeatsMissed",
        (Health::Unreachable, _) => "EndpointUnreachable",
    };
    RemoteContainerStatus {
        conditions: vec![
            condition("Ready", health == Health::Ready, reason),
            condition("Stale", health == Health::Stale, reason),
            condition("Unreachable", health == Health::Unreachable, reason),
        ],
        last_heartbeat: match beat {
            Beat::Alive => Some(now.to_string()),
            Beat::Missed(_) => previous.last_heartbeat.clone(),
        },
        consecutive_misses: misses,
    }
}

/// What one tick saw and did for one endpoint.
#[derive(Debug, Clone, Serialize)]
pub struct Observation {
    pub name: String,
    #[serde(flatten)]
    pub beat: Beat,
    pub misses: u32,
    pub health: Health,
    /// `cordoned` or `uncordoned` when the tick changed the virtual Node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_action: Option<&'static str>,
    /// The addresses the egress policy now allows, when the tick changed them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub egress: Option<Vec<IpAddr>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error(transparent)]
    Enroll(#[from] enroll::EnrollError),
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
}

/// The controller's state between ticks: one HTTP client per CA bundle.
pub struct Controller {
    client: kube::Client,
    settings: Settings,
    http: HashMap<Option<String>, reqwest::Client>,
    resolve: Resolver,
}

impl Controller {
    pub fn new(client: kube::Client, settings: Settings) -> Self {
        Controller {
            client,
            settings,
            http: HashMap::new(),
            resolve: system_resolver(),
        }
    }

    /// The same, resolving host names with `resolve`.
    pub fn with_resolver(mut self, resolve: Resolver) -> Self {
        self.resolve = resolve;
        self
    }

    /// The addresses each endpoint's egress policy allows now, by endpoint name.
    async fn allowed(&self) -> Result<HashMap<String, Vec<IpAddr>>, kube::Error> {
        let policies = Api::<NetworkPolicy>::namespaced(self.client.clone(), NAMESPACE);
        per_endpoint(policies, |p| Some(objects::policy_addresses(&p))).await
    }

    fn http_for(&mut self, ca: Option<&String>) -> Result<reqwest::Client, String> {
        if let Some(c) = self.http.get(&ca.cloned()) {
            return Ok(c.clone());
        }
        let c = crate::trust::client(ca.map(String::as_str), self.settings.timeout)
            .map_err(|e| e.to_string())?;
        self.http.insert(ca.cloned(), c.clone());
        Ok(c)
    }

    /// The tokens, by endpoint name, from the Secrets.
    async fn tokens(&self) -> Result<HashMap<String, String>, kube::Error> {
        let secrets = Api::<Secret>::namespaced(self.client.clone(), NAMESPACE);
        per_endpoint(secrets, |s| {
            String::from_utf8(s.data?.get("token")?.0.clone()).ok()
        })
        .await
    }

    /// One round: probe every endpoint, then record what was seen (by endpoint name).
    pub async fn tick(&mut self) -> Result<Vec<Observation>, ControllerError> {
        let enrolled = enroll::list(&self.client).await?;
        let tokens = self.tokens().await?;
        let mut allowed = self.allowed().await?;
        let mut targets = Vec::new();
        let mut beats: Vec<Option<Beat>> = Vec::new();
        for e in &enrolled {
            let url = format!("{}/healthz", e.spec.endpoint);
            match (
                tokens.get(&e.name),
                self.http_for(e.spec.ca_bundle.as_ref()),
            ) {
                (Some(token), Ok(client)) => {
                    targets.push(Target {
                        name: e.name.clone(),
                        url,
                        token: token.clone(),
                        client,
                    });
                    beats.push(None);
                }
                (None, _) => beats.push(Some(Beat::Missed("no token Secret".into()))),
                (_, Err(e)) => beats.push(Some(Beat::Missed(e))),
            }
        }
        let mut probed = round(&targets, self.settings.concurrency, self.settings.timeout)
            .await
            .into_iter();
        let beats: Vec<Beat> = beats
            .into_iter()
            .map(|b| b.unwrap_or_else(|| probed.next().expect("one beat per target")))
            .collect();
        let now = jiff::Timestamp::now()
            .round(jiff::Unit::Second)
            .unwrap()
            .to_string();
        // Owned by each write, so the controller's future stays Send.
        let (client, settings) = (self.client.clone(), self.settings.clone());
        let resolve = self.resolve.clone();
        let work: Vec<_> = enrolled
            .into_iter()
            .zip(beats)
            .map(|(e, beat)| {
                let allowed = allowed.remove(&e.name);
                (e, beat, allowed)
            })
            .collect();
        let mut seen = futures::stream::iter(work)
            .map(move |(e, beat, allowed)| {
                let egress = follow_egress(
                    client.clone(),
                    resolve.clone(),
                    settings.timeout,
                    e.clone(),
                    allowed,
                );
                let record = record(client.clone(), settings.clone(), e, beat, now.clone());
                async move {
                    let (observation, egress) = futures::join!(record, egress);
                    let mut observation = observation?;
                    observation.egress = egress?;
                    Ok::<_, ControllerError>(observation)
                }
            })
            .buffer_unordered(self.settings.concurrency.max(1))
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?;
        seen.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(seen)
    }

    /// Ticks until `shutdown` completes, `interval` plus jitter apart; a failed tick is logged
    /// and retried at the next one.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            match self.tick().await {
                Ok(seen) => {
                    for o in seen.iter().filter(|o| o.health != Health::Ready) {
                        tracing::warn!(endpoint = %o.name, misses = o.misses, health = ?o.health, "heartbeat missed");
                    }
                    tracing::info!(endpoints = seen.len(), "heartbeat round done");
                }
                Err(e) => tracing::error!("heartbeat round failed: {e}"),
            }
            let jitter = self.settings.jitter.mul_f64(rand::random::<f64>());
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(self.settings.interval + jitter) => {}
            }
        }
    }
}

/// The objects `api` holds for endpoints (labelled with their name), by endpoint name, as
/// `value` reads them.
async fn per_endpoint<K, T>(
    api: Api<K>,
    value: impl Fn(K) -> Option<T>,
) -> Result<HashMap<String, T>, kube::Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let list = api
        .list(&ListParams::default().labels(objects::BYOC_KEY))
        .await?;
    Ok(list
        .items
        .into_iter()
        .filter_map(|o| {
            let name = o.meta().labels.as_ref()?.get(objects::BYOC_KEY)?.clone();
            Some((name, value(o)?))
        })
        .collect())
}

/// Resolves an endpoint given by host name and re-applies its egress policy when the addresses
/// differ from what it allows (`allowed`); the new addresses when it did. An endpoint that does
/// not resolve this round (within `timeout`, like a probe) keeps the addresses it had.
async fn follow_egress(
    client: kube::Client,
    resolve: Resolver,
    timeout: Duration,
    e: Enrollment,
    allowed: Option<Vec<IpAddr>>,
) -> Result<Option<Vec<IpAddr>>, ControllerError> {
    let Ok(endpoint) = crate::trust::Endpoint::parse(&e.spec.endpoint, e.spec.insecure) else {
        return Ok(None);
    };
    if !endpoint.by_name() {
        return Ok(None);
    }
    let lookup = resolve(endpoint.host.clone(), endpoint.port);
    let addresses = match tokio::time::timeout(timeout, lookup).await {
        Ok(Ok(mut found)) if !found.is_empty() => {
            found.sort();
            found.dedup();
            found
        }
        _ => {
            tracing::warn!(endpoint = %e.name, host = %endpoint.host, "cannot resolve; egress unchanged");
            return Ok(None);
        }
    };
    if allowed.as_ref() == Some(&addresses) {
        return Ok(None);
    }
    enroll::apply_policy(&client, &e.name, &addresses, endpoint.port).await?;
    tracing::info!(endpoint = %e.name, ?addresses, "egress policy follows the endpoint's addresses");
    Ok(Some(addresses))
}

/// Writes the status, renews the Lease on a beat and, when health crossed a line, the virtual
/// Node.
async fn record(
    client: kube::Client,
    settings: Settings,
    e: Enrollment,
    beat: Beat,
    now: String,
) -> Result<Observation, ControllerError> {
    let now = now.as_str();
    let (misses, health) = assess(e.status.consecutive_misses, &beat, &settings);
    let before = e.status.state().to_string();
    let status = next_status(&e.status, &beat, misses, health, now);
    let rcs: Api<DynamicObject> = Api::all_with(client.clone(), &objects::api_resource());
    rcs.patch_status(
        &e.name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": status})),
    )
    .await?;
    let nodes: Api<Node> = Api::all(client.clone());
    let node = nodes.get_opt(&e.node).await?;
    let cordoned_by = node
        .as_ref()
        .and_then(|n| n.metadata.annotations.as_ref())
        .and_then(|a| a.get(objects::CORDONED_BY))
        .cloned();
    if let (Beat::Alive, Some(uid)) = (&beat, node.as_ref().and_then(|n| n.metadata.uid.as_deref()))
    {
        enroll::renew_lease(&client, &e.name, uid).await?;
    }
    let pp = PatchParams::default();
    let node_action = match health {
        Health::Unreachable if node.is_some() && !e.cordoned => {
            let cordon = json!({
                "metadata": {"annotations": {objects::CORDONED_BY: "heartbeat"}},
                "spec": {"unschedulable": true},
            });
            nodes.patch(&e.node, &pp, &Patch::Merge(cordon)).await?;
            Some("cordoned")
        }
        Health::Ready
            if e.cordoned && !e.spec.cordoned && cordoned_by.as_deref() == Some("heartbeat") =>
        {
            let uncordon = json!({
                "metadata": {"annotations": {objects::CORDONED_BY: null}},
                "spec": {"unschedulable": false},
            });
            nodes.patch(&e.node, &pp, &Patch::Merge(uncordon)).await?;
            Some("uncordoned")
        }
        _ => None,
    };
    let after = status.state();
    if node.is_some() && (before != after || beat == Beat::Alive) {
        // The Node's Ready condition follows the endpoint, as a kubelet's would.
        let (ready, reason) = match health {
            Health::Ready => ("True", "EndpointReady"),
            Health::Stale => ("Unknown", "HeartbeatsMissed"),
            Health::Unreachable => ("False", "EndpointUnreachable"),
        };
        let message = status
            .condition("Ready")
            .map(|c| c.message.clone())
            .unwrap_or_default();
        nodes
            .patch_status(
                &e.node,
                &pp,
                &Patch::Strategic(json!({
                    "status": {"conditions": [objects::node_ready(ready, reason, &message, now)]},
                })),
            )
            .await?;
    }
    Ok(Observation {
        name: e.name,
        beat,
        misses,
        health,
        node_action,
        egress: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn misses_make_it_stale_then_unreachable_and_a_beat_resets() {
        let s = Settings {
            stale_after: 2,
            unreachable_after: 4,
            ..Settings::default()
        };
        let miss = Beat::Missed("x".into());
        let mut misses = 0;
        let mut seen = Vec::new();
        for _ in 0..5 {
            let (m, h) = assess(misses, &miss, &s);
            misses = m;
            seen.push(h);
        }
        use Health::*;
        assert_eq!(seen, [Ready, Stale, Stale, Unreachable, Unreachable]);
        assert_eq!(assess(misses, &Beat::Alive, &s), (0, Ready));
    }

    #[test]
    fn a_condition_keeps_its_transition_time_while_it_holds() {
        let first = next_status(&Default::default(), &Beat::Alive, 0, Health::Ready, "t1");
        let second = next_status(&first, &Beat::Alive, 0, Health::Ready, "t2");
        assert_eq!(
            second.condition("Ready").unwrap().last_transition_time,
            "t1"
        );
        assert_eq!(second.last_heartbeat.as_deref(), Some("t2"));
        let missed = Beat::Missed("timeout".into());
        let stale = next_status(&second, &missed, 2, Health::Stale, "t3");
        assert_eq!(stale.state(), "Stale");
        assert_eq!(stale.condition("Ready").unwrap().last_transition_time, "t3");
        assert_eq!(
            stale.condition("Unreachable").unwrap().last_transition_time,
            "t1"
        );
        assert_eq!(stale.last_heartbeat.as_deref(), Some("t2"));
        assert_eq!(
            stale.condition("Stale").unwrap().message,
            "2 missed heartbeat(s): timeout"
        );
    }
}
