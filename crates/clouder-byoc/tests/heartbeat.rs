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
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::json;
use std::time::Duration;

const IMAGE: &str =
    "reg.example/app@sha256:0000000000000000000000000000000000000000000000000000000000000001";

async fn enrol(client: &kube::Client, name: &str, endpoint: &Endpoint, ca: &Ca) {
    enrol_at(client, name, &endpoint.url, endpoint, ca).await;
}

/// Enrols `endpoint` under the URL `url` (its own, or one naming its host differently).
async fn enrol_at(client: &kube::Client, name: &str, url: &str, endpoint: &Endpoint, ca: &Ca) {
    let reg = Registration {
        name: name.into(),
        endpoint: Url::parse(url, false).unwrap(),
        image: IMAGE.into(),
        os: "linux".into(),
        architecture: "amd64".into(),
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

/// The project's API server, a client of it, and the CA the endpoints' certificates come from.
async fn cluster() -> (TestKube, kube::Client, Ca) {
    support::tls_provider();
    let kube = TestKube::start().await.unwrap();
    let client = kube.client().await.unwrap();
    (kube, client, Ca::new("byoc-ca"))
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
    let (_kube, client, ca) = cluster().await;
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
    let (_kube, client, ca) = cluster().await;
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
    let (_kube, client, ca) = cluster().await;
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
    let (_kube, client, ca) = cluster().await;
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

async fn lease(client: &kube::Client, name: &str) -> Lease {
    Api::<Lease>::namespaced(client.clone(), objects::LEASE_NAMESPACE)
        .get(&objects::node_name(name))
        .await
        .unwrap()
}

fn renewed(lease: &Lease) -> jiff::Timestamp {
    lease.spec.as_ref().unwrap().renew_time.as_ref().unwrap().0
}

#[tokio::test]
async fn a_beat_renews_the_node_lease_and_a_stopped_endpoint_does_not() {
    let (_kube, client, ca) = cluster().await;
    let mut endpoint = Endpoint::start(Some(ca.server()), "").await;
    enrol(&client, "leased", &endpoint, &ca).await;
    let mut controller = Controller::new(client.clone(), settings());
    let registered = renewed(&lease(&client, "leased").await);

    controller.tick().await.unwrap();
    let first = lease(&client, "leased").await;
    assert!(renewed(&first) > registered, "a beat renews the Lease");
    let spec = first.spec.as_ref().unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("byoc-leased"));
    assert_eq!(spec.lease_duration_seconds, Some(40));
    controller.tick().await.unwrap();
    let second = renewed(&lease(&client, "leased").await);
    assert!(second > renewed(&first));

    // Stopped: one miss, then Stale, then Unreachable; the Lease is left to expire.
    endpoint.stop();
    let held = lease(&client, "leased").await;
    for health in [Health::Ready, Health::Stale, Health::Unreachable] {
        let seen = controller.tick().await.unwrap();
        assert_eq!(seen[0].health, health);
        let now = lease(&client, "leased").await;
        assert_eq!(renewed(&now), second, "no renewal while {health:?}");
        assert_eq!(
            now.metadata.resource_version, held.metadata.resource_version,
            "no write at all"
        );
    }

    // Back: renewed again.
    endpoint.restart().await;
    controller.tick().await.unwrap();
    assert!(renewed(&lease(&client, "leased").await) > second);

    // The Lease goes with its Node.
    enroll::remove(&client, "leased", None).await.unwrap();
    let leases = Api::<Lease>::namespaced(client.clone(), objects::LEASE_NAMESPACE);
    assert!(leases.get_opt("byoc-leased").await.unwrap().is_none());
}

/// The ipBlock CIDRs of the endpoint's egress rule, and the policy's resourceVersion.
async fn egress(client: &kube::Client, name: &str) -> (Vec<String>, String) {
    let policy = Api::<NetworkPolicy>::namespaced(client.clone(), objects::NAMESPACE)
        .get(&objects::policy_name(name))
        .await
        .unwrap();
    let policy_json = serde_json::to_value(&policy).unwrap();
    let cidrs = policy_json["spec"]["egress"][0]["to"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["ipBlock"]["cidr"].as_str().unwrap().to_string())
        .collect();
    (cidrs, policy.metadata.resource_version.unwrap())
}

#[tokio::test]
async fn an_endpoint_given_by_name_has_its_egress_follow_its_addresses() {
    use std::net::IpAddr;
    use std::sync::{Arc, Mutex};
    let (_kube, client, ca) = cluster().await;
    let endpoint = Endpoint::start(Some(ca.server()), "").await;
    let by_name = format!("https://localhost:{}", endpoint.port);
    enrol_at(&client, "named", &by_name, &endpoint, &ca).await;
    let at_registration = egress(&client, "named").await;
    let resolved = clouder_byoc::trust::resolve("localhost".into(), endpoint.port)
        .await
        .unwrap();
    let expected: Vec<String> = resolved
        .iter()
        .map(|ip| format!("{ip}/{}", if ip.is_ipv4() { 32 } else { 128 }))
        .collect();
    assert_eq!(at_registration.0, expected);

    // The system resolver gives the same addresses: nothing is written.
    let mut controller = Controller::new(client.clone(), settings());
    let seen = controller.tick().await.unwrap();
    assert_eq!(
        (seen[0].beat.clone(), seen[0].egress.clone()),
        (Beat::Alive, None)
    );
    assert_eq!(egress(&client, "named").await, at_registration);

    // The name moves (answers the test controls, as a DNS change would give).
    let answers: Arc<Mutex<std::io::Result<Vec<IpAddr>>>> = Arc::new(Mutex::new(Ok(resolved)));
    let asked = Arc::new(Mutex::new(Vec::new()));
    let (a, q) = (answers.clone(), asked.clone());
    let mut controller = Controller::new(client.clone(), settings()).with_resolver(Arc::new(
        move |host: String, port: u16| {
            q.lock().unwrap().push((host, port));
            let answer = match &*a.lock().unwrap() {
                Ok(found) => Ok(found.clone()),
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                    // A resolver that never answers.
                    return Box::pin(std::future::pending());
                }
                Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
            };
            Box::pin(async move { answer })
        },
    ));
    let moved: Vec<IpAddr> = vec!["192.0.2.7".parse().unwrap(), "127.0.0.1".parse().unwrap()];
    *answers.lock().unwrap() = Ok(moved);
    let seen = controller.tick().await.unwrap();
    assert_eq!(
        seen[0].egress,
        Some(vec![
            "127.0.0.1".parse().unwrap(),
            "192.0.2.7".parse().unwrap()
        ])
    );
    let updated = egress(&client, "named").await;
    assert_eq!(updated.0, ["127.0.0.1/32", "192.0.2.7/32"]);
    assert_ne!(updated.1, at_registration.1, "written");
    assert_eq!(
        asked.lock().unwrap().as_slice(),
        [("localhost".to_string(), endpoint.port)]
    );

    // Unchanged next round: no write (same resourceVersion); the DNS rule is still there.
    let seen = controller.tick().await.unwrap();
    assert_eq!(seen[0].egress, None);
    assert_eq!(egress(&client, "named").await, updated);
    // A failed lookup keeps what the policy allows.
    *answers.lock().unwrap() = Err(std::io::Error::other("SERVFAIL"));
    controller.tick().await.unwrap();
    assert_eq!(egress(&client, "named").await, updated);
    // So does one that does not answer: the round goes on after the probe timeout (1 s).
    *answers.lock().unwrap() = Err(std::io::ErrorKind::TimedOut.into());
    let seen = tokio::time::timeout(Duration::from_secs(30), controller.tick())
        .await
        .expect("the round does not wait for a resolver that never answers")
        .unwrap();
    assert_eq!(
        (seen[0].beat.clone(), seen[0].egress.clone()),
        (Beat::Alive, None)
    );
    assert_eq!(egress(&client, "named").await, updated);
    let policy = Api::<NetworkPolicy>::namespaced(client.clone(), objects::NAMESPACE)
        .get(&objects::policy_name("named"))
        .await
        .unwrap();
    let dns = &serde_json::to_value(&policy).unwrap()["spec"]["egress"][1];
    assert_eq!(
        dns["to"][0]["podSelector"]["matchLabels"]["k8s-app"],
        "kube-dns"
    );

    // An endpoint given by address is never resolved.
    let other = Endpoint::start(Some(ca.server()), "").await;
    enrol(&client, "literal", &other, &ca).await;
    asked.lock().unwrap().clear();
    controller.tick().await.unwrap();
    assert_eq!(asked.lock().unwrap().len(), 1, "only the named one");
}
