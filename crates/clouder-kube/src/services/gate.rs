//! Health gates: every workload of a release rolled out (as `kubectl rollout status` decides),
//! then the optional condition, all within the gate's timeout. `health` asks the same without
//! waiting.

use crate::Result;
use crate::apply::Applier;
use crate::manifest::ObjectRef;
use crate::services::file::Gate;
use crate::wait::{self, Progress};
use kube::api::DynamicObject;
use serde_json::Value;

fn workloads(objects: &[DynamicObject]) -> impl Iterator<Item = ObjectRef> + '_ {
    objects
        .iter()
        .map(ObjectRef::of)
        .filter(|o| ["Deployment", "DaemonSet", "StatefulSet"].contains(&o.kind.as_str()))
}

/// Waits until the release is healthy: its workloads and the condition, side by side, each within
/// the gate's timeout. The error is the wait's own (which object, what state, its last event).
pub async fn pass(
    applier: &Applier,
    gate: &Gate,
    namespace: &str,
    objects: &[DynamicObject],
) -> Result<()> {
    let rollouts = futures::future::try_join_all(
        workloads(objects).map(|o| async move { wait::rollout(applier, &o, gate.timeout).await }),
    );
    let condition = async {
        let Some(c) = &gate.condition else {
            return Ok(());
        };
        let object = ObjectRef::new(
            &c.api_version,
            &c.kind,
            Some(c.namespace.as_deref().unwrap_or(namespace)),
            &c.name,
        );
        wait::until(applier, &object, gate.timeout, |v| {
            wait::condition(v, &c.type_)
        })
        .await
        .map(|_| ())
    };
    futures::future::try_join(rollouts, condition).await?;
    Ok(())
}

/// `None` when every workload has rolled out; otherwise the first that has not, and why.
pub async fn health(applier: &Applier, objects: &[DynamicObject]) -> Result<Option<String>> {
    for o in workloads(objects) {
        let check: fn(&Value) -> Progress = match o.kind.as_str() {
            "Deployment" => wait::deployment,
            "DaemonSet" => wait::daemon_set,
            _ => wait::stateful_set,
        };
        let found = applier.find(&o).await?;
        let progress = match found {
            None => Progress::Pending("missing".into()),
            Some(f) => check(&serde_json::to_value(&f).expect("objects serialise")),
        };
        match progress {
            Progress::Done => {}
            Progress::Pending(why) | Progress::Failed(why) => {
                return Ok(Some(format!("{o}: {why}")));
            }
        }
    }
    Ok(None)
}
