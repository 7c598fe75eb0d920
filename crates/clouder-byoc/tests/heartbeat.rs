//! The heartbeat controller against real HTTPS endpoints (a CA made here) and the project's API
//! server: healthy, slow, stopped, restarted; a rotated token the endpoint refuses; a CA that
//! does not sign the endpoint.

mod support;

use clouder_byoc::enroll::{self, Registration};
use clouder_byoc::heartbeat::{Beat, Controller, Health, Observation, Settings};
use clouder_byoc::objects::{self, Capability};
use clouder_byoc::trust::Endpoint as Url;
use clouder_testenv::endpoint::{Ca, Endpoint};
use clouder_testkube::TestKube;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::json;
use std::time::Duration;

const IMAGE: &str =
    "reg.example/app@sha256:0000000000000000000000000000000000000000000000000000000000000001";

async fn enrol(client: &kube::Client, name: &str, endpoint: &Endpoint, ca: &Ca) {
    let reg = Registration {
        name: name.into(),
        endpoint: Url::parse(&endpoint.url, false).unwrap(),
        image: IMAGE.into(),
        ca_pem: Some(ca.pem.clone()),
        capability: Capability {
            cpu: 2,
            memory: 4 << 30,
            runtime: "containerd".into(),
            ..Default::default()
        },
    };
    let enrolled = enroll::register(client, &reg).await.unwrap();
    // The token is given to the endpoint once.
    endpoint.set_token(&enrolled.token);
}

fn settings() -> Settings {
    Settings {
        // Roomy: a healthy endpoint must answer within it even on a loaded machine.
        timeout: Duration::from_secs(1),
        concurrency: 4,
        stale_after: 2,
        unreachable_after: 3,
        ..Settings::default()
    }
}

fn by_name<'a>(seen: &'a [Observation], name: &str) -> &'a Observation {
    seen.iter().find(|o| o.name == name).unwrap()
}

fn summary(seen: &[Observation]) -> Vec<(String, Health, u32)> {
    seen.iter()
        .map(|o| (o.name.clone(), o.health, o.misses))
        .collect()
}

async fn node(client: &kube::Client, name: &str) -> Node {
    Api::<Node>::all(client.clone())
        .get(&objects::node_name(name))
        .await
        .unwrap()
}

fn unschedulable(node: &Node) -> bool {
    node.spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false)
}

fn node_ready(node: &Node) -> String {
    node.status
        .as_ref()
        .unwrap()
        .conditions
        .as_ref()
        .unwrap()
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap()
        .status
        .clone()
}

#[tokio::test]
async fn misses_go_stale_then_unreachable_and_recovery_uncordons() {
    support::tls_provider();
    let kube = TestKube::start().await.unwrap();
    let client = kube.client().await.unwrap();
    let ca = Ca::new("byoc-ca");
    let healthy = Endpoint::start(Some(ca.server()), "").await;
    let slow = Endpoint::start(Some(ca.server()), "").await;
    let mut down = Endpoint::start(Some(ca.server()), "").await;
    enrol(&client, "healthy", &healthy, &ca).await;
    enrol(&client, "slow", &slow, &ca).await;
    enrol(&client, "down", &down, &ca).await;
    let mut controller = Controller::new(client.clone(), settings());

    let seen = controller.tick().await.unwrap();
    assert!(seen.iter().all(|o| o.beat == Beat::Alive), "{seen:?}");
    assert_eq!(node_ready(&node(&client, "down").await), "True");

    // One answers far later than the timeout, one is gone.
    slow.set_delay(Duration::from_secs(30));
    down.stop();
    let seen = controller.tick().await.unwrap();
    assert_eq!(
        summary(&seen),
        [
            ("down".into(), Health::Ready, 1),
            ("healthy".into(), Health::Ready, 0),
            ("slow".into(), Health::Ready, 1)
        ]
    );
    // The slow one missed by timeout in the same round the others answered.
    assert_eq!(
        by_name(&seen, "slow").beat,
        Beat::Missed("no answer within 1s".into())
    );
    assert_eq!(by_name(&seen, "healthy").beat, Beat::Alive);

    let seen = controller.tick().await.unwrap();
    assert_eq!(by_name(&seen, "down").health, Health::Stale);
    assert_eq!(by_name(&seen, "slow").health, Health::Stale);
    let rc = enroll::get(&client, "down").await.unwrap().unwrap();
    assert_eq!(rc.status.state(), "Stale");
    assert_eq!(rc.status.consecutive_misses, 2);
    assert!(
        rc.status.last_heartbeat.is_some(),
        "the first beat is remembered"
    );
    assert!(
        !unschedulable(&node(&client, "down").await),
        "stale is not cordoned yet"
    );
    assert_eq!(node_ready(&node(&client, "down").await), "Unknown");

    let seen = controller.tick().await.unwrap();
    for name in ["down", "slow"] {
        let o = by_name(&seen, name);
        assert_eq!(
            (o.health, o.node_action),
            (Health::Unreachable, Some("cordoned")),
            "{name}"
        );
        let n = node(&client, name).await;
        assert!(unschedulable(&n));
        assert_eq!(
            n.metadata.annotations.unwrap()["clouder.io/cordoned-by"],
            "heartbeat"
        );
        assert_eq!(
            enroll::get(&client, name)
                .await
                .unwrap()
                .unwrap()
                .status
                .state(),
            "Unreachable"
        );
    }
    assert_eq!(by_name(&seen, "healthy").health, Health::Ready);
    // Cordoned once, not again.
    let seen = controller.tick().await.unwrap();
    assert_eq!(by_name(&seen, "down").node_action, None);

    // Back: restarted on the same port, and no longer slow.
    down.restart().await;
    slow.set_delay(Duration::ZERO);
    let seen = controller.tick().await.unwrap();
    for name in ["down", "slow"] {
        let o = by_name(&seen, name);
        assert_eq!(
            (o.health, o.misses, o.node_action),
            (Health::Ready, 0, Some("uncordoned")),
            "{name}"
        );
        let n = node(&client, name).await;
        assert!(!unschedulable(&n));
        assert!(
            n.metadata
                .annotations
                .as_ref()
                .unwrap()
                .get("clouder.io/cordoned-by")
                .is_none()
        );
        assert_eq!(node_ready(&n), "True");
    }
    let rc = enroll::get(&client, "down").await.unwrap().unwrap();
    assert_eq!(rc.status.state(), "Ready");
    assert_eq!(rc.status.condition("Unreachable").unwrap().status, "False");
    // Six rounds, each answered with the token; refused once: registration's check, tokenless.
    let count = |c: &std::sync::atomic::AtomicUsize| c.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(count(&healthy.behaviour.accepted), 6);
    assert_eq!(count(&healthy.behaviour.refused), 1);
}

#[tokio::test]
async fn a_person_s_cordon_survives_recovery() {
    support::tls_provider();
    let kube = TestKube::start().await.unwrap();
    let client = kube.client().await.unwrap();
    let ca = Ca::new("byoc-ca");
    let mut endpoint = Endpoint::start(Some(ca.server()), "").await;
    enrol(&client, "kept", &endpoint, &ca).await;
    let mut controller = Controller::new(
        client.clone(),
        Settings {
            stale_after: 1,
            unreachable_after: 1,
            ..settings()
        },
    );
    enroll::set_cordoned(&client, "kept", true).await.unwrap();
    endpoint.stop();
    let seen = controller.tick().await.unwrap();
    assert_eq!(
        (seen[0].health, seen[0].node_action),
        (Health::Unreachable, None)
    );
    endpoint.restart().await;
    let seen = controller.tick().await.unwrap();
    assert_eq!((seen[0].health, seen[0].node_action), (Health::Ready, None));
    assert!(unschedulable(&node(&client, "kept").await));
}

#[tokio::test]
async fn a_wrong_token_or_a_wrong_ca_is_a_missed_beat() {
    support::tls_provider();
    let kube = TestKube::start().await.unwrap();
    let client = kube.client().await.unwrap();
    let ca = Ca::new("byoc-ca");
    let endpoint = Endpoint::start(Some(ca.server()), "").await;
    let other = Endpoint::start(Some(ca.server()), "").await;
    enrol(&client, "rotated", &endpoint, &ca).await;
    enrol(&client, "mistrusted", &other, &ca).await;
    let mut controller = Controller::new(client.clone(), settings());

    // The token is rotated, but the endpoint was not given the new one: it refuses.
    enroll::rotate_token(&client, "rotated").await.unwrap();
    // The resource now names a CA that did not sign the endpoint.
    let rcs: Api<DynamicObject> = Api::all_with(client.clone(), &objects::api_resource());
    rcs.patch(
        "mistrusted",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"caBundle": Ca::new("stranger").pem}})),
    )
    .await
    .unwrap();

    // (Registration's trust check was refused once already: it had no token.)
    let refused = || {
        endpoint
            .behaviour
            .refused
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let before = refused();
    let seen = controller.tick().await.unwrap();
    assert_eq!(
        by_name(&seen, "rotated").beat,
        Beat::Missed("the endpoint refused the token (401 Unauthorized)".into())
    );
    assert_eq!(refused(), before + 1);
    let Beat::Missed(reason) = &by_name(&seen, "mistrusted").beat else {
        panic!("a wrong CA must not be trusted");
    };
    assert!(reason.contains("certificate"), "{reason}");
    assert_eq!(
        other
            .behaviour
            .accepted
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
}

#[tokio::test]
async fn the_controller_runs_rounds_until_told_to_stop() {
    support::tls_provider();
    let kube = TestKube::start().await.unwrap();
    let client = kube.client().await.unwrap();
    let ca = Ca::new("byoc-ca");
    let endpoint = Endpoint::start(Some(ca.server()), "").await;
    enrol(&client, "looped", &endpoint, &ca).await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let controller = Controller::new(
        client.clone(),
        Settings {
            interval: Duration::from_millis(50),
            jitter: Duration::from_millis(50),
            ..settings()
        },
    );
    let running = tokio::spawn(controller.run(async {
        let _ = stopped.await;
    }));
    let accepted = || {
        endpoint
            .behaviour
            .accepted
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    // Several rounds go by on their own.
    for _ in 0..200 {
        if accepted() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(accepted() >= 3, "rounds: {}", accepted());
    let rc = enroll::get(&client, "looped").await.unwrap().unwrap();
    assert_eq!(rc.status.state(), "Ready");
    stop.send(()).unwrap();
    running.await.unwrap();
    let after = accepted();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(accepted(), after, "no round after the stop");
}
