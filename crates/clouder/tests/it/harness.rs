//! Starts the peers once per test binary and runs the real `clouder` binary against them.

use clouder_aws::{AwsCloud, AwsInventory, ConnectOptions, Scope};
use clouder_engine::{Inventory, Tagged};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

pub const REGION: &str = "us-east-1";
/// An image the moto server knows in every region.
pub const IMAGE: &str = "ami-785db401";

/// The moto server's endpoint; one per test process.
pub fn moto() -> &'static str {
    clouder_testenv::moto::endpoint()
}

/// A private CLOUDER_HOME and SSH key for one test.
pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("id_ed25519.pub");
        std::fs::write(&key, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBvI0r4fQ2ySbbbZqzvz1wq8l8sGm2lq3Qm4vT0zq2cB test@clouder\n").unwrap();
        Env { dir }
    }

    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    pub fn key(&self) -> PathBuf {
        self.dir.path().join("id_ed25519.pub")
    }

    /// `clouder ARGS` against moto, with extra environment.
    pub fn run_with(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = self.command(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("run clouder")
    }

    /// The `clouder ARGS` command against moto, stdin closed, not started yet.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_clouder"));
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("CLOUDER_HOME", self.home())
            .env("AWS_ENDPOINT_URL", moto())
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", REGION)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdin(Stdio::null());
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.run_with(args, &[])
    }

    /// Runs and insists on success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        self.ok_with(args, &[])
    }

    /// Runs with extra environment and insists on success; returns stdout.
    pub fn ok_with(&self, args: &[&str], env: &[(&str, &str)]) -> String {
        let out = self.run_with(args, env);
        assert!(
            out.status.success(),
            "clouder {args:?} failed:\n{}",
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// The arguments of `create NAME` with test defaults, output as JSON.
    pub fn create_args(&self, name: &str, workers: u32) -> Vec<String> {
        let key = self.key().display().to_string();
        let workers = workers.to_string();
        [
            "kubeadm",
            "create",
            name,
            "-w",
            &workers,
            "--admin-cidr",
            "203.0.113.7/32",
            "--image",
            IMAGE,
            "--ssh-public-key",
            &key,
            "-o",
            "json",
        ]
        .map(String::from)
        .to_vec()
    }

    /// `create NAME` with test defaults, as JSON.
    pub fn create(&self, name: &str, workers: u32, extra: &[&str]) -> serde_json::Value {
        let args = self.create_args(name, workers);
        let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
        args.extend_from_slice(extra);
        serde_json::from_str(&self.ok(&args)).unwrap()
    }
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// An SDK connection to moto, for checking the world from outside clouder.
/// The EC2 filter on the objects tagged as `cluster`'s.
pub fn cluster_filter(cluster: &str) -> aws_sdk_ec2::types::Filter {
    aws_sdk_ec2::types::Filter::builder()
        .name("tag:clouder.io/cluster")
        .values(cluster)
        .build()
}

pub async fn cloud() -> Arc<AwsCloud> {
    // SAFETY: set before any client reads them; every test sets the same values.
    unsafe {
        std::env::set_var("AWS_ENDPOINT_URL", moto());
        std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    }
    AwsCloud::connect(&ConnectOptions {
        region: Some(REGION.into()),
        profile: None,
    })
    .await
    .unwrap()
}

/// Every object carrying the cluster's tags, IAM path or load balancer names.
pub async fn tagged(cluster: &str) -> Vec<Tagged> {
    let inventory = AwsInventory::new(Scope::new(cloud().await, cluster));
    let mut all = inventory.tagged().await.unwrap();
    all.sort_by(|a, b| (&a.kind, &a.resource_id).cmp(&(&b.kind, &b.resource_id)));
    all
}

/// A TCP port that records whether anything connected: proof that no cloud call was made.
pub struct Tripwire {
    listener: TcpListener,
}

impl Tripwire {
    pub fn new() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        Tripwire { listener }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.listener.local_addr().unwrap())
    }

    pub fn touched(&self) -> bool {
        self.listener.accept().is_ok()
    }
}

pub fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, body).unwrap();
    path
}

/// The subscription every Azure test uses against the fake ARM server.
pub const SUBSCRIPTION: &str = "00000000-0000-0000-0000-0000000000a1";
pub const LOCATION: &str = "eastus";

/// A fake Azure Resource Manager in this test's runtime, answering polls at once.
pub async fn fake_arm() -> fake_arm::Server {
    fake_arm::Server::start(
        0,
        fake_arm::Config {
            op_retry_after_s: 0,
            ..Default::default()
        },
    )
    .await
    .expect("fake ARM starts")
}

/// `/subscriptions/SUB/resourceGroups/RG`, lower-cased as the fake keys ids.
pub fn group_key(group: &str) -> String {
    format!("/subscriptions/{SUBSCRIPTION}/resourcegroups/{group}").to_ascii_lowercase()
}

/// Ids of everything inside resource group `group` (not the group itself), lower-cased.
pub fn in_group(arm: &fake_arm::Server, group: &str) -> Vec<String> {
    let prefix = format!("{}/", group_key(group));
    arm.ids()
        .into_iter()
        .filter(|id| id.starts_with(&prefix))
        .collect()
}

impl Env {
    /// `clouder ARGS` against the fake ARM server at `endpoint`.
    pub fn run_azure(&self, endpoint: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut vars = vec![
            ("CLOUDER_AZURE_ARM_ENDPOINT", endpoint),
            ("CLOUDER_AZURE_TOKEN", "fake-token"),
            ("AZURE_SUBSCRIPTION_ID", SUBSCRIPTION),
        ];
        vars.extend_from_slice(env);
        self.run_with(args, &vars)
    }

    pub fn ok_azure(&self, endpoint: &str, args: &[&str]) -> String {
        let out = self.run_azure(endpoint, args, &[]);
        assert!(
            out.status.success(),
            "clouder {args:?} failed:\n{}",
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// The arguments of `create NAME --provider azure` with test defaults.
    pub fn azure_create_args(&self, name: &str, workers: u32, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = [
            "kubeadm",
            "create",
            name,
            "--provider",
            "azure",
            "-r",
            LOCATION,
            "-w",
            &workers.to_string(),
            "--admin-cidr",
            "203.0.113.7/32",
            "--ssh-public-key",
            self.key().to_str().unwrap(),
            "-o",
            "json",
        ]
        .map(String::from)
        .to_vec();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }

    /// `create NAME --provider azure` against `endpoint`, as JSON.
    pub fn create_azure(
        &self,
        endpoint: &str,
        name: &str,
        workers: u32,
        extra: &[&str],
    ) -> serde_json::Value {
        let args = self.azure_create_args(name, workers, extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        serde_json::from_str(&self.ok_azure(endpoint, &args)).unwrap()
    }
}
