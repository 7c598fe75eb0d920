//! Storage backends against real peers: docker-registry (with and without authentication), a
//! local OCI layout, S3 on the moto server and Azure Blob on Azurite. Each stores a blob once:
//! a second push of the same image uploads nothing. Failures say which backend and why, and
//! leave nothing in the catalogue.

mod support;

use clouder_checkpoint::backend::{
    AccountKey, AzureBlob, Backend, BackendError, Credentials, LocalDir, Registry, S3,
};
use clouder_checkpoint::catalogue::{self, Retention};
use clouder_checkpoint::{CheckpointImage, push};
use clouder_state::{SqliteStore, StateStore};
use std::collections::BTreeMap;
use support::{AZURITE_ACCOUNT, AZURITE_KEY, RegistryPeer, azurite, fake_archive, free_port, moto};

const AT: &str = "2026-11-25T18:05:00.123456789Z";

fn image(dir: &std::path::Path, name: &str, at: &str) -> CheckpointImage {
    CheckpointImage::from_archive(&fake_archive(dir, name, 1 << 20, at), Some("node-1")).unwrap()
}

/// Pushes `image` twice under two tags: the second push finds every blob and uploads none.
async fn push_twice(backend: &dyn Backend, image: &CheckpointImage) {
    let first = push(backend, &image.oci, "first").await.unwrap();
    assert_eq!(
        first.uploaded,
        [
            image.layer.digest.clone(),
            image.oci.blobs[1].0.digest.clone()
        ]
    );
    assert!(first.skipped.is_empty());
    assert_eq!(
        first.bytes_uploaded,
        image.oci.blobs.iter().map(|(b, _)| b.size).sum::<u64>()
    );
    let second = push(backend, &image.oci, "second").await.unwrap();
    assert!(
        second.uploaded.is_empty(),
        "nothing uploaded twice: {second:?}"
    );
    assert_eq!(second.skipped.len(), 2);
    assert_eq!(second.manifest_digest, first.manifest_digest);
}

#[tokio::test]
async fn registry_uploads_each_blob_once_and_serves_the_image_back() {
    let registry = RegistryPeer::start(None);
    let dir = tempfile::tempdir().unwrap();
    let image = image(dir.path(), "a.tar", AT);
    let backend = Registry::new(&format!("{}/checkpoints/app", registry.host()), None).unwrap();
    push_twice(&backend, &image).await;

    // The registry's own access log: two blob uploads in all, one per blob.
    assert_eq!(
        registry.requests("PUT", "/v2/checkpoints/app/blobs/uploads/"),
        2
    );
    assert_eq!(
        registry.requests("HEAD", "/v2/checkpoints/app/blobs/sha256:"),
        4
    );
    assert_eq!(
        registry.requests("PUT", "/v2/checkpoints/app/manifests/"),
        2
    );

    // What a runtime pulls is what was built: the manifest by tag, the layer byte for byte.
    let http = reqwest::Client::new();
    let manifest = http
        .get(format!(
            "http://{}/v2/checkpoints/app/manifests/second",
            registry.host()
        ))
        .header("Accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .unwrap();
    assert_eq!(
        manifest.headers()["docker-content-digest"],
        image.oci.manifest.digest.as_str()
    );
    assert_eq!(manifest.bytes().await.unwrap(), image.oci.manifest_json);
    let layer = http
        .get(format!(
            "http://{}/v2/checkpoints/app/blobs/{}",
            registry.host(),
            image.layer.digest
        ))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(layer, std::fs::read(dir.path().join("a.tar")).unwrap());

    backend.delete("first").await.unwrap();
    let err = backend.delete("first").await.unwrap_err();
    assert!(matches!(err, BackendError::NotFound { .. }), "{err:?}");
}

#[tokio::test]
async fn registry_authentication_is_required_and_checked() {
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    let registry = RegistryPeer::start(Some(&format!("ci:{hash}\n")));
    let dir = tempfile::tempdir().unwrap();
    let image = image(dir.path(), "a.tar", AT);
    let repo = format!("{}/checkpoints/app", registry.host());
    let credentials = |password: &str| {
        Some(Credentials {
            username: "ci".into(),
            password: password.into(),
        })
    };

    let good = Registry::new(&repo, credentials("s3cret")).unwrap();
    assert_eq!(
        push(&good, &image.oci, "1").await.unwrap().uploaded.len(),
        2
    );

    let wrong = Registry::new(&repo, credentials("guess")).unwrap();
    let err = push(&wrong, &image.oci, "2").await.unwrap_err();
    assert!(matches!(err, BackendError::Auth { .. }), "{err:?}");
    assert!(
        err.to_string().starts_with(&format!(
            "{repo} refused the credentials: checking a blob: 401"
        )),
        "{err}"
    );
    assert!(
        !err.to_string().contains("guess"),
        "no password in errors: {err}"
    );

    let anonymous = Registry::new(&repo, None).unwrap();
    let err = push(&anonymous, &image.oci, "3").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{repo} refused the credentials: the registry requires credentials and none were given"
        )
    );
}

#[tokio::test]
async fn an_unreachable_registry_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let repo = format!("127.0.0.1:{}/checkpoints/app", free_port());
    let err = push(
        &Registry::new(&repo, None).unwrap(),
        &image(dir.path(), "a.tar", AT).oci,
        "1",
    )
    .await
    .unwrap_err();
    assert!(matches!(err, BackendError::Unreachable { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with(&format!("{repo} is unreachable: ")),
        "{err}"
    );
    assert!(err.to_string().contains("Connection refused"), "{err}");
}

#[tokio::test]
async fn a_local_directory_is_an_oci_image_layout() {
    let dir = tempfile::tempdir().unwrap();
    let image = image(dir.path(), "a.tar", AT);
    let layout = dir.path().join("layout");
    let backend = LocalDir::new(&layout);
    push_twice(&backend, &image).await;

    assert_eq!(
        std::fs::read_to_string(layout.join("oci-layout")).unwrap(),
        r#"{"imageLayoutVersion":"1.0.0"}"#
    );
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let tags: Vec<_> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["annotations"]["org.opencontainers.image.ref.name"].clone())
        .collect();
    assert_eq!(tags, ["first", "second"]);
    for (blob, _) in image.oci.blobs.iter().chain(
        [(
            image.oci.manifest.clone(),
            clouder_checkpoint::image::Content::Bytes(Default::default()),
        )]
        .iter(),
    ) {
        let path = layout
            .join("blobs/sha256")
            .join(blob.digest.trim_start_matches("sha256:"));
        let (digest, size) = clouder_checkpoint::image::sha256_file(&path).unwrap();
        assert_eq!(
            (digest, size),
            (blob.digest.clone(), blob.size),
            "{}",
            path.display()
        );
    }

    backend.delete("first").await.unwrap();
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
    assert!(matches!(
        backend.delete("first").await.unwrap_err(),
        BackendError::NotFound { .. }
    ));
}

fn s3_config(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::SdkConfig::builder()
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(
                aws_credential_types::Credentials::new("testing", "testing", None, None, "test"),
            ),
        )
        .behavior_version(aws_config::BehaviorVersion::latest())
        .build()
}

/// A new bucket on moto named `PREFIX<port>`, with the SDK's configuration and client for it.
async fn moto_bucket(prefix: &str) -> (aws_config::SdkConfig, aws_sdk_s3::Client, String) {
    let config = s3_config(&moto());
    let bucket = format!("{prefix}{}", free_port());
    let client = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .build(),
    );
    client.create_bucket().bucket(&bucket).send().await.unwrap();
    (config, client, bucket)
}

#[tokio::test]
async fn s3_on_moto_stores_blobs_once() {
    let (config, client, bucket) = moto_bucket("ckpt-").await;
    let dir = tempfile::tempdir().unwrap();
    let image = image(dir.path(), "a.tar", AT);
    let backend = S3::with_config(&format!("s3://{bucket}/prod"), &config).unwrap();
    push_twice(&backend, &image).await;

    let keys: Vec<_> = client
        .list_objects_v2()
        .bucket(&bucket)
        .send()
        .await
        .unwrap()
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .collect();
    let hex = |d: &str| d.trim_start_matches("sha256:").to_string();
    let mut expected = vec![
        format!("prod/blobs/sha256/{}", hex(&image.layer.digest)),
        format!("prod/blobs/sha256/{}", hex(&image.oci.blobs[1].0.digest)),
        format!("prod/blobs/sha256/{}", hex(&image.oci.manifest.digest)),
        "prod/manifests/first".to_string(),
        "prod/manifests/second".to_string(),
    ];
    expected.sort();
    let mut keys = keys;
    keys.sort();
    assert_eq!(keys, expected);
    let layer = client
        .get_object()
        .bucket(&bucket)
        .key(
            expected
                .iter()
                .find(|k| k.ends_with(&hex(&image.layer.digest)))
                .unwrap()
                .clone(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        layer.body.collect().await.unwrap().into_bytes(),
        std::fs::read(dir.path().join("a.tar")).unwrap()
    );

    backend.delete("first").await.unwrap();
    assert!(matches!(
        backend.delete("first").await.unwrap_err(),
        BackendError::NotFound { .. }
    ));

    let missing =
        S3::with_config(&format!("s3://no-such-bucket-{}", free_port()), &config).unwrap();
    let err = push(&missing, &image.oci, "x").await.unwrap_err();
    assert!(err.to_string().contains("NoSuchBucket"), "{err}");
}

#[tokio::test]
async fn azure_blob_on_azurite_stores_blobs_once_and_checks_the_key() {
    let endpoint = azurite();
    let container = format!("ckpt-{}", free_port());
    let key = AccountKey::from_base64(AZURITE_KEY).unwrap();
    let backend = AzureBlob::new(&endpoint, AZURITE_ACCOUNT, key, &container, "prod");
    backend.ensure_container().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let image = image(dir.path(), "a.tar", AT);
    push_twice(&backend, &image).await;

    // Read back anonymously is refused; through the API with the key it is the archive.
    let layer_url = format!(
        "{endpoint}/{container}/prod/blobs/sha256/{}",
        image.layer.digest.trim_start_matches("sha256:")
    );
    let anonymous = reqwest::get(&layer_url).await.unwrap();
    assert!(
        anonymous.status().is_client_error(),
        "{}",
        anonymous.status()
    );
    assert!(backend.has_blob(&image.layer.digest).await.unwrap());

    backend.delete("first").await.unwrap();
    assert!(matches!(
        backend.delete("first").await.unwrap_err(),
        BackendError::NotFound { .. }
    ));

    let wrong = AzureBlob::new(
        &endpoint,
        AZURITE_ACCOUNT,
        AccountKey::from_base64("d3Jvbmcga2V5").unwrap(),
        &container,
        "prod",
    );
    let err = push(&wrong, &image.oci, "x").await.unwrap_err();
    assert!(matches!(err, BackendError::Auth { .. }), "{err:?}");
    assert!(err.to_string().contains("403"), "{err}");
}

#[tokio::test]
async fn the_catalogue_records_only_complete_images_and_applies_retention() {
    let dir = tempfile::tempdir().unwrap();
    let state = SqliteStore::in_memory().unwrap();
    let keep_two = Retention {
        keep: Some(2),
        max_age: None,
    };

    // A failed push leaves no record.
    let unreachable =
        Registry::new(&format!("127.0.0.1:{}/checkpoints", free_port()), None).unwrap();
    let first = image(dir.path(), "1.tar", "2026-11-25T18:01:00Z");
    let err = catalogue::store(
        &state,
        &unreachable,
        &first,
        "prod",
        BTreeMap::new(),
        None,
        keep_two,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("is unreachable"), "{err}");
    assert!(
        state.checkpoints("prod").unwrap().is_empty(),
        "nothing half-written"
    );

    let backend = LocalDir::new(dir.path().join("layout"));
    let mut ids = Vec::new();
    for (n, at) in [
        "2026-11-25T18:01:00Z",
        "2026-11-25T18:02:00Z",
        "2026-11-25T18:03:00Z",
    ]
    .iter()
    .enumerate()
    {
        let labels = BTreeMap::from([("reason".to_string(), "test".to_string())]);
        let (record, report, dropped) = catalogue::store(
            &state,
            &backend,
            &image(dir.path(), &format!("{n}.tar"), at),
            "prod",
            labels,
            None,
            keep_two,
        )
        .await
        .unwrap();
        assert_eq!(record.reference, report.reference);
        assert_eq!(
            (
                record.namespace.as_str(),
                record.pod.as_str(),
                record.container.as_str()
            ),
            ("shop", "web-0", "app")
        );
        ids.push(record.id);
        assert_eq!(
            dropped.len(),
            usize::from(n == 2),
            "the third checkpoint drops the first: {dropped:?}"
        );
    }
    assert_eq!(ids[0], "shop.web-0.app.20261125t180100000z");
    let kept: Vec<_> = state
        .checkpoints("prod")
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(kept, [ids[2].clone(), ids[1].clone()]);
    let index = std::fs::read_to_string(dir.path().join("layout/index.json")).unwrap();
    assert!(
        !index.contains(&ids[0]) && index.contains(&ids[1]) && index.contains(&ids[2]),
        "{index}"
    );

    let removed = catalogue::remove(&state, &backend, &ids[1]).await.unwrap();
    assert_eq!(removed.id, ids[1]);
    let err = catalogue::remove(&state, &backend, &ids[1])
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "no checkpoint {} in the catalogue (see `clouder checkpoint ls`)",
            ids[1]
        )
    );
}

/// A file of `size` bytes that differ from part to part, and its blob.
fn large_layer(
    dir: &std::path::Path,
    size: usize,
) -> (clouder_checkpoint::image::Blob, std::path::PathBuf) {
    let path = dir.join("large.tar");
    let bytes: Vec<u8> = (0..size).map(|i| (i / 4099 % 251) as u8).collect();
    std::fs::write(&path, &bytes).unwrap();
    let blob = clouder_checkpoint::image::layer_of(&path).unwrap();
    (blob, path)
}

/// The blob as it was stored, read back through the backend.
async fn read_back(backend: &dyn Backend, digest: &str) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut reader = backend.open_blob(digest).await.unwrap();
    tokio::io::AsyncReadExt::read_to_end(&mut reader, &mut bytes)
        .await
        .unwrap();
    bytes
}

/// Large blobs go to S3 as multipart uploads (here 3 parts of moto's minimum 5 MiB); an
/// interrupted one is aborted: no object, no pending upload.
#[tokio::test]
async fn s3_uploads_large_blobs_in_parts_and_aborts_an_interrupted_upload() {
    use clouder_checkpoint::backend::Parts;
    let (config, client, bucket) = moto_bucket("ckpt-parts-").await;
    let parts = Parts {
        size: 5 << 20,
        concurrency: 2,
    };
    let backend = S3::with_config(&format!("s3://{bucket}/prod"), &config)
        .unwrap()
        .with_parts(parts);
    let dir = tempfile::tempdir().unwrap();
    let (blob, path) = large_layer(dir.path(), (12 << 20) + 12345);
    let content = clouder_checkpoint::image::Content::File(path.clone());
    backend.put_blob(&blob, &content).await.unwrap();
    let key = format!(
        "prod/blobs/sha256/{}",
        blob.digest.trim_start_matches("sha256:")
    );
    let head = client
        .head_object()
        .bucket(&bucket)
        .key(&key)
        .send()
        .await
        .unwrap();
    assert!(
        head.e_tag().unwrap().ends_with("-3\""),
        "a multipart object of 3 parts: {:?}",
        head.e_tag()
    );
    assert_eq!(head.content_length(), Some(blob.size as i64));
    assert_eq!(
        read_back(&backend, &blob.digest).await,
        std::fs::read(&path).unwrap()
    );

    // The file ends before its blob does (a cut-off archive): a part fails, the upload is
    // aborted, and nothing of it is left.
    let short = clouder_checkpoint::image::Blob {
        digest: format!("sha256:{}", "ab".repeat(32)),
        size: blob.size + (5 << 20),
        media_type: blob.media_type.clone(),
    };
    let err = backend.put_blob(&short, &content).await.unwrap_err();
    assert!(err.to_string().contains("reading part 3"), "{err}");
    assert!(!backend.has_blob(&short.digest).await.unwrap());
    let pending = client
        .list_multipart_uploads()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    assert!(pending.uploads().is_empty(), "{:?}", pending.uploads());
}

/// Large blobs go to Azure Blob as blocks committed by a block list; an interrupted upload's
/// blocks are discarded: no blob, committed or not.
#[tokio::test]
async fn azure_uploads_large_blobs_in_blocks_and_discards_an_interrupted_upload() {
    use clouder_checkpoint::backend::Parts;
    let endpoint = azurite();
    let container = format!("ckpt-blocks-{}", free_port());
    let account = || {
        clouder_remote::shared_key::BlobAccount::new(
            &endpoint,
            AZURITE_ACCOUNT,
            AccountKey::from_base64(AZURITE_KEY).unwrap(),
        )
    };
    let backend = AzureBlob::in_account(account(), &container, "prod").with_parts(Parts {
        size: 1 << 20,
        concurrency: 3,
    });
    backend.ensure_container().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (blob, path) = large_layer(dir.path(), (3 << 20) + 777);
    let content = clouder_checkpoint::image::Content::File(path.clone());
    backend.put_blob(&blob, &content).await.unwrap();
    assert_eq!(
        read_back(&backend, &blob.digest).await,
        std::fs::read(&path).unwrap()
    );
    let name = |digest: &str| format!("prod/blobs/sha256/{}", digest.trim_start_matches("sha256:"));
    // Azure's own view: four blocks in all (committed or not), so none is left uncommitted.
    let get = |url: String| {
        let account = account();
        async move {
            let mut request = reqwest::Client::new()
                .get(&url)
                .header("x-ms-version", "2021-08-06")
                .build()
                .unwrap();
            account.sign(&mut request);
            let response = reqwest::Client::new().execute(request).await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    let blob_url = account().url(&format!("{container}/{}", name(&blob.digest)));
    let (status, list) = get(format!("{blob_url}?comp=blocklist&blocklisttype=all")).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list.matches("<Block>").count(), 4, "{list}");

    // Cut off at block 4: the three blocks written are discarded with the upload.
    let short = clouder_checkpoint::image::Blob {
        digest: format!("sha256:{}", "cd".repeat(32)),
        size: blob.size + (1 << 20),
        media_type: blob.media_type.clone(),
    };
    let err = backend.put_blob(&short, &content).await.unwrap_err();
    assert!(err.to_string().contains("block"), "{err}");
    assert!(!backend.has_blob(&short.digest).await.unwrap());
    let listing = account().url(&format!(
        "{container}?restype=container&comp=list&include=uncommittedblobs&prefix=prod/blobs/"
    ));
    let (status, listed) = get(listing).await;
    assert_eq!(status, 200, "{listed}");
    assert!(
        !listed.contains(short.digest.trim_start_matches("sha256:")),
        "no blob, committed or not: {listed}"
    );
    assert!(
        listed.contains(blob.digest.trim_start_matches("sha256:")),
        "{listed}"
    );
}

/// Local directory, S3 and Azure Blob give a stored image back as an OCI image archive: the
/// layout's files, each blob whole under its digest; an unknown tag is "not found".
#[tokio::test]
async fn images_are_read_back_as_oci_archives_from_every_backend_nodes_do_not_pull_from() {
    use sha2::Digest as _;
    let dir = tempfile::tempdir().unwrap();
    let image = image(dir.path(), "a.tar", AT);
    let (config, _client, bucket) = moto_bucket("ckpt-read-").await;
    let container = format!("ckpt-read-{}", free_port());
    let key = AccountKey::from_base64(AZURITE_KEY).unwrap();
    let azure = AzureBlob::new(&azurite(), AZURITE_ACCOUNT, key, &container, "prod");
    azure.ensure_container().await.unwrap();
    let backends: Vec<Box<dyn Backend>> = vec![
        Box::new(LocalDir::new(dir.path().join("layout"))),
        Box::new(S3::with_config(&format!("s3://{bucket}/prod"), &config).unwrap()),
        Box::new(azure),
    ];
    for backend in &backends {
        assert!(!backend.pulled_by_nodes());
        push(backend.as_ref(), &image.oci, "first").await.unwrap();
        let mut archive = Vec::new();
        let written = clouder_checkpoint::archive::write(backend.as_ref(), "first", &mut archive)
            .await
            .unwrap();
        assert_eq!(written, archive.len() as u64);
        let mut files = BTreeMap::new();
        for entry in tar::Archive::new(archive.as_slice()).entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().display().to_string();
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
            files.insert(path, bytes);
        }
        let hex = |d: &str| d.trim_start_matches("sha256:").to_string();
        let mut expected = vec!["index.json".to_string(), "oci-layout".to_string()];
        expected.extend(
            [
                &image.oci.manifest.digest,
                &image.layer.digest,
                &image.oci.blobs[1].0.digest,
            ]
            .map(|d| format!("blobs/sha256/{}", hex(d))),
        );
        expected.sort();
        assert_eq!(
            files.keys().cloned().collect::<Vec<_>>(),
            expected,
            "{}",
            backend.location()
        );
        for (path, bytes) in &files {
            if let Some(digest) = path.strip_prefix("blobs/sha256/") {
                assert_eq!(hex::encode(sha2::Sha256::digest(bytes)), digest, "{path}");
            }
        }
        let index: serde_json::Value = serde_json::from_slice(&files["index.json"]).unwrap();
        assert_eq!(
            index["manifests"][0]["digest"],
            image.oci.manifest.digest.as_str()
        );
        assert_eq!(
            index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
            "first"
        );
        let missing = clouder_checkpoint::archive::write(backend.as_ref(), "nope", &mut Vec::new())
            .await
            .unwrap_err();
        assert!(
            matches!(
                missing,
                clouder_checkpoint::archive::ArchiveError::Backend(BackendError::NotFound { .. })
            ),
            "{}: {missing:?}",
            backend.location()
        );
    }
}
