//! The shared client against a real docker-registry: open, basic (htpasswd) and bearer-token
//! (`auth: token`, with the JWT token-service fixture) modes; reads, writes and what it asks.

use clouder_oci::{Credentials, Error, IMAGE_MANIFEST, Registry, Scope, sha256_digest};
use clouder_testenv::RegistryPeer;
use clouder_testenv::token::{TokenRegistry, USER};
use reqwest::{Method, StatusCode, header};

fn user(name: &str, password: &str) -> Option<Credentials> {
    Some(Credentials {
        username: name.into(),
        password: password.into(),
    })
}

/// Uploads `content` as a blob (POST, then a monolithic PUT) and a manifest naming it as its
/// config, tagged `tag`. `stream` sends the blob as a body that cannot be repeated.
async fn push(registry: &Registry, repo: &str, content: &'static [u8], tag: &str, stream: bool) {
    let scope = Scope::push(repo);
    let digest = sha256_digest(content);
    let started = registry
        .send(
            &scope,
            registry.request(Method::POST, &format!("{repo}/blobs/uploads/")),
        )
        .await
        .unwrap();
    let location = started.headers()[header::LOCATION].to_str().unwrap();
    let sep = if location.contains('?') { '&' } else { '?' };
    let body = if stream {
        reqwest::Body::wrap_stream(futures_once(content))
    } else {
        reqwest::Body::from(content)
    };
    let upload = registry
        .request(Method::PUT, &format!("{location}{sep}digest={digest}"))
        .header(header::CONTENT_LENGTH, content.len())
        .body(body);
    registry.send(&scope, upload).await.unwrap();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest, "size": content.len()},
        "layers": [],
    });
    let put = registry
        .request(Method::PUT, &format!("{repo}/manifests/{tag}"))
        .header(
            header::CONTENT_TYPE,
            "application/vnd.oci.image.manifest.v1+json",
        )
        .body(manifest.to_string());
    registry.send(&scope, put).await.unwrap();
}

fn futures_once(
    content: &'static [u8],
) -> impl futures::Stream<Item = std::io::Result<&'static [u8]>> + Send + 'static {
    futures::stream::once(async move { Ok(content) })
}

/// `GET /v2/` requests in the registry's access log: the client's authorization probes.
fn probes(peer: &RegistryPeer) -> usize {
    peer.log().matches("\"GET /v2/ HTTP").count()
}

#[tokio::test]
async fn an_open_registry_reads_and_writes_without_authorization() {
    let peer = RegistryPeer::start(None);
    let registry = Registry::new(&peer.host(), None, true);
    push(&registry, "open/app", b"{\"os\":\"linux\"}", "v1", true).await;

    let manifest = registry
        .manifest("open/app", "v1", IMAGE_MANIFEST)
        .await
        .unwrap();
    assert_eq!(manifest.digest, sha256_digest(&manifest.body));
    // By digest it is the same, and checked against it.
    let again = registry
        .manifest("open/app", &manifest.digest, IMAGE_MANIFEST)
        .await
        .unwrap();
    assert_eq!(again.body, manifest.body);
    assert_eq!(
        registry
            .resolve("open/app", "v1", IMAGE_MANIFEST)
            .await
            .unwrap(),
        Some(manifest.digest.clone())
    );
    assert_eq!(
        registry
            .resolve("open/app", "v2", IMAGE_MANIFEST)
            .await
            .unwrap(),
        None
    );
    let config = sha256_digest(b"{\"os\":\"linux\"}");
    assert_eq!(
        registry.blob("open/app", &config).await.unwrap().as_ref(),
        b"{\"os\":\"linux\"}"
    );
    let scope = Scope::pull("open/app");
    assert!(
        registry
            .has_blob(&scope, "open/app", &config)
            .await
            .unwrap()
    );
    let missing = sha256_digest(b"missing");
    assert!(
        !registry
            .has_blob(&scope, "open/app", &missing)
            .await
            .unwrap()
    );
    match registry.blob("open/app", &missing).await.unwrap_err() {
        Error::Status { status, .. } => assert_eq!(status, StatusCode::NOT_FOUND),
        e => panic!("{e:?}"),
    }
    assert_eq!(
        probes(&peer),
        0,
        "no probe: every request could be repeated"
    );
}

#[tokio::test]
async fn basic_credentials_answer_an_htpasswd_registry() {
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    let peer = RegistryPeer::start(Some(&format!("ci:{hash}\n")));
    let good = Registry::new(&peer.host(), user("ci", "s3cret"), true);
    push(&good, "private/app", b"{\"a\":1}", "v1", true).await;
    let manifest = good
        .manifest("private/app", "v1", IMAGE_MANIFEST)
        .await
        .unwrap();
    assert!(!manifest.body.is_empty());
    assert_eq!(probes(&peer), 0, "the upload's POST settled authorization");

    // A streamed body cannot be sent twice: a fresh client settles authorization first.
    let fresh = Registry::new(&peer.host(), user("ci", "s3cret"), true);
    let body: &'static [u8] = manifest.body.to_vec().leak();
    let put = fresh
        .request(Method::PUT, "private/app/manifests/v2")
        .header(
            header::CONTENT_TYPE,
            "application/vnd.oci.image.manifest.v1+json",
        )
        .body(reqwest::Body::wrap_stream(futures_once(body)));
    fresh.send(&Scope::push("private/app"), put).await.unwrap();
    assert_eq!(probes(&peer), 1);
    assert_eq!(
        good.resolve("private/app", "v2", IMAGE_MANIFEST)
            .await
            .unwrap(),
        Some(manifest.digest)
    );

    let anonymous = Registry::new(&peer.host(), None, true);
    let err = anonymous
        .manifest("private/app", "v1", IMAGE_MANIFEST)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::CredentialsRequired), "{err:?}");

    let wrong = Registry::new(&peer.host(), user("ci", "guess"), true);
    let err = wrong
        .manifest("private/app", "v1", IMAGE_MANIFEST)
        .await
        .unwrap_err();
    match &err {
        Error::Refused { status, .. } => assert_eq!(*status, StatusCode::UNAUTHORIZED),
        e => panic!("{e:?}"),
    }
    assert!(!format!("{err} {err:?}").contains("guess"), "no password");
}

#[tokio::test]
async fn bearer_tokens_are_asked_once_per_scope_and_cached() {
    let peer = TokenRegistry::start().await;
    let host = peer.registry.host();
    let ci = Registry::new(&host, user(USER.0, USER.1), true);
    push(&ci, "private/app", b"{\"b\":2}", "v1", false).await;
    push(&ci, "public/app", b"{\"c\":3}", "v1", true).await;
    let scopes: Vec<String> = peer
        .asked
        .lock()
        .unwrap()
        .iter()
        .map(|(q, with_credentials)| {
            assert!(*with_credentials);
            q["scope"].clone()
        })
        .collect();
    assert_eq!(
        scopes,
        [
            "repository:private/app:pull,push",
            "repository:public/app:pull,push"
        ],
        "one token per scope for the whole upload"
    );

    // Reading asks for a pull token, once for the manifest and the blob.
    ci.manifest("private/app", "v1", IMAGE_MANIFEST)
        .await
        .unwrap();
    ci.blob("private/app", &sha256_digest(b"{\"b\":2}"))
        .await
        .unwrap();
    assert_eq!(peer.asked.lock().unwrap().len(), 3);
    assert_eq!(
        peer.asked.lock().unwrap()[2].0["scope"],
        "repository:private/app:pull"
    );

    // Anonymous: a pull token for a public repository; the token service refuses a private one.
    let anonymous = Registry::new(&host, None, true);
    let manifest = anonymous
        .manifest("public/app", "v1", IMAGE_MANIFEST)
        .await
        .unwrap();
    assert!(!manifest.body.is_empty());
    assert!(!peer.asked.lock().unwrap()[3].1, "asked anonymously");
    let err = anonymous
        .manifest("private/app", "v1", IMAGE_MANIFEST)
        .await
        .unwrap_err();
    match err {
        Error::Auth(reason) => assert!(reason.contains("token service"), "{reason}"),
        e => panic!("{e:?}"),
    }
    // And an anonymous pull token does not let anyone push.
    let scope = Scope::push("public/app");
    let err = anonymous
        .send(
            &scope,
            anonymous.request(Method::POST, "public/app/blobs/uploads/"),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Refused { status, .. } if status == StatusCode::UNAUTHORIZED),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_unreachable_registry_and_plain_http_rules() {
    let port = clouder_testenv::registry::free_port();
    let registry = Registry::new(&format!("127.0.0.1:{port}"), None, true);
    let err = registry
        .manifest("x/y", "v1", IMAGE_MANIFEST)
        .await
        .unwrap_err();
    match err {
        Error::Unreachable(reason) => assert!(reason.contains("onnection refused"), "{reason}"),
        e => panic!("{e:?}"),
    }
    assert!(clouder_oci::is_local("localhost:5000"));
    assert!(clouder_oci::is_local("127.0.0.1"));
    assert!(clouder_oci::is_local("[::1]:5000"));
    assert!(!clouder_oci::is_local("localhost.example.com"));
    assert_eq!(
        Registry::new("registry.example:5000", None, false).url("a/manifests/v1"),
        "https://registry.example:5000/v2/a/manifests/v1"
    );
    assert_eq!(
        Registry::new("docker.io", None, false).url(""),
        "https://registry-1.docker.io/v2/"
    );
    assert_eq!(
        Registry::new("localhost:5000", None, true).url("/v2/a/blobs/uploads/x?s=1"),
        "http://localhost:5000/v2/a/blobs/uploads/x?s=1"
    );
}
