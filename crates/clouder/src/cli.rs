//! The command tree. Each flag is defined once, with its help; `clouder k` is `clouder kubeadm`.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "clouder",
    version,
    about = "Stand up and run kubeadm Kubernetes clusters on AWS and Azure"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct Global {
    /// Output format.
    #[arg(short, long, global = true, value_enum, default_value_t = Format::Table)]
    pub output: Format,
    /// More logging (-v info, -vv debug, -vvv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Answer yes to every confirmation.
    #[arg(long, global = true)]
    pub yes: bool,
    /// Log line format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Keep clouder's state in an object store shared by a team: s3://BUCKET/KEY or
    /// azblob://ACCOUNT/CONTAINER/KEY (default: `clouder.state` in CLOUDER_HOME/clouder.yaml);
    /// `local` for the local state whatever CLOUDER_STATE or the config file say.
    #[arg(long, global = true, env = "CLOUDER_STATE")]
    pub state: Option<String>,
    /// How long to wait for another run's lock on a shared state, in seconds.
    #[arg(long, global = true, default_value_t = 60)]
    pub lock_timeout: u64,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Yaml,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

// Parsed once per process: boxing the big variants would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum Command {
    /// kubeadm clusters: create, plan, apply, terminate, inspect.
    #[command(alias = "k", subcommand)]
    Kubeadm(Kubeadm),
    /// Named cloud accounts (references only; credentials stay with the cloud's own tools).
    #[command(subcommand)]
    Ctx(Ctx),
    /// What a cluster costs: estimates from the plan, or from what exists.
    #[command(subcommand)]
    Cost(Cost),
    /// Run kubectl against a cluster: `clouder kubectl [NAME] ARGS…` (NAME defaults to the default cluster).
    #[command(
        after_help = "Examples:\n  clouder kubectl demo get nodes\n  clouder kubectl get pods -A   # the default cluster"
    )]
    Kubectl(PassThrough),
    /// Run helm against a cluster: `clouder helm NAME ARGS…`.
    #[command(after_help = "Example:\n  clouder helm demo list -A")]
    Helm(PassThrough),
    /// Shared state: copy it to another backend or a file and back, break a stale lock.
    #[command(subcommand)]
    State(StateCommand),
    /// Checkpoint running containers into OCI images, list them, restore them.
    #[command(subcommand)]
    Checkpoint(Checkpoint),
    /// A user's secrets, injected into their runtime pods as variables and files.
    #[command(subcommand)]
    Secrets(Secrets),
    /// Per-user folders on the cluster's shared filesystem.
    #[command(subcommand)]
    Storage(Storage),
    /// On a node: bind a user's folder into a running container, or take it out.
    #[command(subcommand)]
    NodeAgent(NodeAgent),
    /// Roll out the platform's services (a services file) wave by wave, behind health gates.
    #[command(subcommand)]
    Services(Services),
    /// Bring your own container: validate images, enroll remote container endpoints as capacity.
    #[command(subcommand)]
    Byoc(Byoc),
    /// Bring your own node: join a host you own to a cluster, or take it out again.
    #[command(subcommand)]
    Byon(Byon),
}

#[derive(Subcommand, Debug)]
pub enum Byon {
    /// Prepare a host over SSH and join it to the cluster as a worker.
    #[command(
        after_help = "Example:\n  clouder byon add demo --host admin@192.0.2.10:2222 --label gpu=a100 --taint dedicated=ml:NoSchedule -i id_ed25519"
    )]
    Add(ByonAddArgs),
    /// Drain a joined host, `kubeadm reset` it and delete its Node.
    #[command(after_help = "Example:\n  clouder byon remove demo gpu-box-1")]
    Remove(ByonRemoveArgs),
    /// The hosts joined with `byon add`.
    Ls(ByonClusterArgs),
}

#[derive(Args, Debug)]
pub struct ByonClusterArgs {
    pub cluster: Option<String>,
}

#[derive(Args, Debug)]
pub struct ByonAddArgs {
    pub cluster: Option<String>,
    /// The host: [USER@]ADDRESS[:PORT] (user default the cluster's admin user, port 22).
    #[arg(long)]
    pub host: String,
    /// Private key: a key name in ~/.ssh/ or a path (default the cluster's).
    #[arg(short = 'i', long)]
    pub key: Option<String>,
    /// Node label k=v (repeatable or comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub label: Vec<String>,
    /// Node taint key[=value]:Effect (repeatable).
    #[arg(long)]
    pub taint: Vec<String>,
    /// Where the host comes from, as its `clouder.io/provenance` label says: onprem (default),
    /// laptop (tainted non-production) or ssh.
    #[arg(long, default_value = "onprem")]
    pub provenance: String,
    /// Who owns the host (`clouder.io/owner`); default the login user.
    #[arg(long)]
    pub owner: Option<String>,
}

#[derive(Args, Debug)]
pub struct ByonRemoveArgs {
    pub cluster: String,
    /// The Node name `byon add` reported.
    pub node: String,
    /// Private key: a key name in ~/.ssh/ or a path (default the cluster's).
    #[arg(short = 'i', long)]
    pub key: Option<String>,
    /// Remove the Node even when the host cannot be reached to reset it, and drain it even
    /// when a beforeDrain checkpoint of one of its pods fails.
    #[arg(long)]
    pub force: bool,
    /// How long the drain may wait on PodDisruptionBudgets, in seconds.
    #[arg(long = "drain-timeout", default_value_t = 300)]
    pub drain_timeout_secs: u64,
    /// How beforeDrain checkpoints ask the kubelet.
    #[command(flatten)]
    pub kubelet: KubeletAccess,
}

#[derive(Subcommand, Debug)]
pub enum Services {
    /// Show, per release, its wave and what a deploy would change.
    #[command(after_help = "Example:\n  clouder services plan demo -f services.yaml")]
    Plan(ServicesArgs),
    /// Deploy wave by wave; a failing gate rolls its release back and stops the later waves.
    #[command(
        after_help = "Examples:\n  clouder services deploy demo -f services.yaml\n  clouder services deploy --kubeconfig ./kubeconfig -o json"
    )]
    Deploy(ServicesDeployArgs),
    /// Each release's deployed revision, status and health.
    #[command(after_help = "Example:\n  clouder services status demo -o json")]
    Status(ServicesArgs),
    /// Re-apply an earlier revision of a release (default: the one before the current).
    #[command(after_help = "Example:\n  clouder services rollback demo iam --to 3")]
    Rollback(ServicesRollbackArgs),
}

#[derive(Args, Debug)]
pub struct ServicesArgs {
    /// The cluster (default: the default cluster).
    pub cluster: Option<String>,
    /// The services file.
    #[arg(short = 'f', long = "file", default_value = "services.yaml")]
    pub file: PathBuf,
    /// Use this kubeconfig instead of the cluster's.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ServicesDeployArgs {
    #[command(flatten)]
    pub target: ServicesArgs,
    /// Releases of one wave deployed at once.
    #[arg(long, default_value_t = 4)]
    pub parallel: usize,
}

#[derive(Args, Debug)]
pub struct ServicesRollbackArgs {
    /// The cluster.
    pub cluster: String,
    /// The release.
    pub release: String,
    /// The revision to go back to.
    #[arg(long)]
    pub to: Option<u32>,
    /// Seconds to wait for its workloads to roll out.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
    /// Use this kubeconfig instead of the cluster's.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum Checkpoint {
    /// Checkpoint a running container into an OCI checkpoint image and store it.
    #[command(
        after_help = "Destinations (--to or CLOUDER_CHECKPOINT_TO):\n  HOST[:PORT]/REPO              an OCI registry (CLOUDER_REGISTRY_USERNAME/_PASSWORD)\n  /path or oci:/path            a local OCI image layout\n  s3://BUCKET[/PREFIX]          S3 (the AWS SDK's credentials)\n  azblob://ACCOUNT/CONTAINER    Azure Blob (AZURE_STORAGE_KEY)\n\nExamples:\n  clouder checkpoint create demo -n shop web-0 -c app --to registry.example.com/checkpoints\n  clouder checkpoint create demo -n shop web-0 --archive ./checkpoint.tar --keep 3"
    )]
    Create(CheckpointCreateArgs),
    /// Checkpoints in the catalogue, newest first.
    #[command(after_help = "Example:\n  clouder checkpoint ls demo -o json")]
    Ls(CheckpointLsArgs),
    /// One checkpoint's record.
    Show(CheckpointIdArgs),
    /// Delete a checkpoint's image from its backend and forget it.
    Rm(CheckpointIdArgs),
    /// Run a checkpoint again: a new pod whose container image is the checkpoint image.
    #[command(
        after_help = "Example:\n  clouder checkpoint restore demo shop.web-0.app.20261125t180812345z --name web-0-restored"
    )]
    Restore(CheckpointRestoreArgs),
    /// Run the CheckpointPolicy controller against a cluster, from here.
    #[command(
        after_help = "Policies select pods and say when to checkpoint them (schedule, idleFor) and where to\nstore the images; see `clouder checkpoint crd`. The controller runs until stopped.\n\nExamples:\n  clouder checkpoint crd | clouder kubectl demo apply -f -\n  clouder checkpoint controller demo\n  clouder checkpoint controller demo --once -o json"
    )]
    Controller(CheckpointControllerArgs),
    /// Print the CheckpointPolicy CustomResourceDefinition (YAML), to apply to a cluster.
    Crd,
}

#[derive(Args, Debug)]
pub struct CheckpointCreateArgs {
    /// The cluster.
    pub cluster: String,
    /// The pod.
    pub pod: String,
    /// The pod's namespace.
    #[arg(short, long, default_value = "default")]
    pub namespace: String,
    /// The container (default: the pod's only or first container).
    #[arg(short, long)]
    pub container: Option<String>,
    /// Where to store the image.
    #[arg(long, env = "CLOUDER_CHECKPOINT_TO")]
    pub to: String,
    /// Seconds the runtime may take to checkpoint.
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
    /// A label on the checkpoint, KEY=VALUE (repeatable).
    #[arg(long = "label", value_parser = parse_label)]
    pub labels: Vec<(String, String)>,
    /// Use this checkpoint archive (already taken) instead of asking the kubelet.
    #[arg(long)]
    pub archive: Option<PathBuf>,
    #[command(flatten)]
    pub node: NodeAccess,
    /// Keep at most N checkpoints of this container (older ones are deleted).
    #[arg(long)]
    pub keep: Option<usize>,
    /// Delete this container's checkpoints older than this many hours.
    #[arg(long)]
    pub max_age_hours: Option<u64>,
}

/// How the kubelet is asked for a checkpoint and its node reached for the archive.
#[derive(Args, Debug, Clone)]
pub struct NodeAccess {
    #[command(flatten)]
    pub kubelet: KubeletAccess,
    /// How to reach the node to fetch the archive.
    #[command(flatten)]
    pub ssh: SshFlags,
}

/// How the kubelet is asked for a checkpoint.
#[derive(Args, Debug, Clone, Default)]
pub struct KubeletAccess {
    /// Ask the kubelet on its node (the Node's address and kubelet port, the
    /// apiserver-kubelet-client certificate from `get-config`) instead of through the API
    /// server's node proxy.
    #[arg(long)]
    pub direct: bool,
    /// The CA that signed the kubelets' serving certificates (with --direct; default: the
    /// cluster CA of the kubeconfig).
    #[arg(long, requires = "direct")]
    pub kubelet_ca: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct CheckpointControllerArgs {
    /// The cluster.
    pub cluster: String,
    #[command(flatten)]
    pub node: NodeAccess,
    /// Seconds between looks at each policy (sooner when a schedule fires).
    #[arg(long, default_value_t = 60)]
    pub tick: u64,
    /// Seconds the runtime may take per checkpoint.
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
    /// Reconcile every policy once, report, and exit (e.g. from cron).
    #[arg(long)]
    pub once: bool,
}

fn parse_label(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("`{s}` is not KEY=VALUE")),
    }
}

#[derive(Args, Debug)]
pub struct CheckpointLsArgs {
    /// The cluster (default: the default cluster).
    pub cluster: Option<String>,
}

#[derive(Args, Debug)]
pub struct CheckpointIdArgs {
    /// The checkpoint's id (see `clouder checkpoint ls`).
    pub id: String,
}

#[derive(Args, Debug)]
pub struct CheckpointRestoreArgs {
    /// The cluster.
    pub cluster: String,
    /// The checkpoint's id.
    pub id: String,
    /// The new pod's name (default: the checkpointed pod's, with `-restored`).
    #[arg(long)]
    pub name: Option<String>,
    /// The node to restore on (default: the scheduler's choice; for a checkpoint the nodes
    /// cannot pull — local, S3, Blob — the checkpoint's own node if it takes pods, else the
    /// first that does, where the image is imported over SSH).
    #[arg(long)]
    pub node: Option<String>,
    /// Seconds to wait for the restored container to run.
    #[arg(long, default_value_t = 300)]
    pub wait: u64,
    /// How to log in to the node to import the image.
    #[command(flatten)]
    pub ssh: SshFlags,
}

#[derive(Args, Debug)]
pub struct PassThrough {
    /// [NAME] then the tool's own arguments, passed as they are.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
    pub args: Vec<String>,
}

#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum Kubeadm {
    /// Create a cluster's machines and network (converges if it exists).
    #[command(
        after_help = "Examples:\n  clouder kubeadm create demo -r us-east-1 -w 3 --admin-cidr 203.0.113.7/32\n  clouder kubeadm create -f cluster.yaml --dry-run"
    )]
    Create(CreateArgs),
    /// Converge a cluster to a spec file: create what is missing, fix drift, remove leftovers.
    #[command(after_help = "Example:\n  clouder kubeadm apply -f cluster.yaml --dry-run")]
    Apply(ApplyArgs),
    /// Show what apply would do, per resource.
    #[command(
        after_help = "Examples:\n  clouder kubeadm plan -f cluster.yaml\n  clouder kubeadm plan demo -o json"
    )]
    Plan(PlanArgs),
    /// Delete everything the cluster owns, and its local files.
    #[command(
        after_help = "Examples:\n  clouder kubeadm terminate demo --force\n  clouder kubeadm terminate old -r eu-west-1 --force   # sweep by tags, no local state"
    )]
    Terminate(TerminateArgs),
    /// Clusters known locally.
    #[command(
        after_help = "Examples:\n  clouder kubeadm ls\n  clouder kubeadm ls --details -o json"
    )]
    Ls(LsArgs),
    /// A cluster's state, resources and next steps.
    #[command(after_help = "Example:\n  clouder kubeadm info demo -o json")]
    Info(NameArg),
    /// Persist the default cluster.
    #[command(after_help = "Example:\n  clouder kubeadm set-default demo")]
    SetDefault(RequiredName),
    /// Select a cluster's kubeconfig.
    #[command(after_help = "Example:\n  eval \"$(clouder kubeadm use demo --print-export)\"")]
    Use(UseArgs),
    /// Print the JSON Schema of the cluster spec.
    Schema,
    /// Bootstrap Kubernetes on created machines.
    #[command(
        after_help = "Examples:\n  clouder kubeadm setup demo -u ubuntu -i id_ed25519 --k8s-version 1.32 --node-label team=data\n  terraform -chdir=infra output -json > out.json && clouder kubeadm setup demo --terraform-output out.json -i id_ed25519"
    )]
    Setup(SetupArgs),
    /// Fetch the kubeconfig and the kubelet client certificate.
    #[command(after_help = "Example:\n  clouder kubeadm get-config demo -u ubuntu -i id_ed25519")]
    GetConfig(SshTarget),
    /// Scale the workers; down drains the least-loaded first.
    #[command(
        after_help = "Examples:\n  clouder kubeadm scale demo -w 5\n  clouder kubeadm scale demo -w 2 --force"
    )]
    Scale(ScaleArgs),
    /// Delete NotReady workers and failed machines.
    #[command(after_help = "Example:\n  clouder kubeadm prune demo --force")]
    Prune(PruneArgs),
    /// Ingress check, then checkpoint/restore of a counter pod.
    #[command(
        after_help = "Examples:\n  clouder kubeadm smoke-test demo --to registry.example.com/clouder/checkpoints\n  clouder kubeadm smoke-test demo -u admin -i demo-key --no-cleanup -o json"
    )]
    SmokeTest(SmokeArgs),
    /// Install the NGINX ingress controller with a cloud load balancer (retired upstream in March
    /// 2026, Kubernetes ≤ 1.35: prefer Traefik).
    #[command(after_help = "Example:\n  clouder kubeadm enable-ingress-nginx demo")]
    EnableIngressNginx(KubeTarget),
    /// Install the Traefik ingress controller with a cloud load balancer.
    #[command(after_help = "Example:\n  clouder kubeadm enable-ingress-traefik demo")]
    EnableIngressTraefik(KubeTarget),
    /// Remove the NGINX ingress controller.
    #[command(after_help = "Example:\n  clouder kubeadm disable-ingress-nginx demo --force")]
    DisableIngressNginx(KubeTargetForce),
    /// Remove the Traefik ingress controller.
    #[command(after_help = "Example:\n  clouder kubeadm disable-ingress-traefik demo --force")]
    DisableIngressTraefik(KubeTargetForce),
    /// Upgrade kubelet, kubeadm and kubectl to the target version on all nodes.
    #[command(after_help = "Example:\n  clouder kubeadm upgrade-kubelet demo -u ubuntu")]
    UpgradeKubelet(UpgradeArgs),
    /// Record an existing cluster (not created by clouder) so addons, drains and services work on it.
    #[command(
        after_help = "Example:\n  clouder kubeadm adopt legacy --kubeconfig ~/.kube/legacy.yaml --provider aws -r eu-west-1"
    )]
    Adopt(AdoptArgs),
    /// Write the cluster's infrastructure as Terraform JSON (*.tf.json) into a directory.
    #[command(
        after_help = "Examples:\n  clouder kubeadm export-terraform -f cluster.yaml --dir infra/\n  clouder kubeadm export-terraform demo --dir infra/ && terraform -chdir=infra init"
    )]
    ExportTerraform(ExportTerraformArgs),
    /// Record a cluster in clouder's state: from a reference CLOUDER_HOME (kubeadm/NAME/kubeadm.json),
    /// or from infrastructure Terraform made (`terraform output -json` of an exported module).
    #[command(
        after_help = "Examples:\n  clouder kubeadm import legacy\n  terraform -chdir=infra output -json > out.json && clouder kubeadm import demo --terraform-output out.json"
    )]
    Import(ImportArgs),
}

#[derive(Args, Debug, Clone, Default)]
pub struct SpecFlags {
    /// Cloud provider.
    #[arg(long)]
    pub provider: Option<String>,
    /// Number of workers (the `workers` pool).
    #[arg(short = 'w', long)]
    pub workers: Option<u32>,
    /// Cloud region.
    #[arg(short = 'r', long)]
    pub region: Option<String>,
    /// Azure resource group.
    #[arg(short = 'g', long)]
    pub resource_group: Option<String>,
    /// Control-plane machine size.
    #[arg(long)]
    pub master_size: Option<String>,
    /// Worker machine size.
    #[arg(long)]
    pub node_size: Option<String>,
    /// OS disk size in GB (min 30).
    #[arg(long)]
    pub os_disk_size: Option<u32>,
    /// Login user on the machines.
    #[arg(long)]
    pub admin_user: Option<String>,
    /// Machine image: Ubuntu2204, Ubuntu2404, Debian12, or a cloud image id.
    #[arg(long)]
    pub image: Option<String>,
    /// Number of control-plane machines.
    #[arg(long)]
    pub control_planes: Option<u32>,
    /// Network allowed to reach SSH and the API server (repeatable). Required.
    #[arg(long = "admin-cidr", value_name = "CIDR")]
    pub admin_cidrs: Vec<String>,
    /// Kubernetes version (MAJOR.MINOR[.PATCH]).
    #[arg(long)]
    pub k8s_version: Option<String>,
    /// SSH public key to install on the machines.
    #[arg(long, value_name = "PATH")]
    pub ssh_public_key: Option<PathBuf>,
    /// Context (cloud account) to use.
    #[arg(long)]
    pub context: Option<String>,
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Cluster name (DNS-1123 label); optional with -f.
    pub name: Option<String>,
    /// Spec file; flags override its values.
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    #[command(flatten)]
    pub spec: SpecFlags,
    #[command(flatten)]
    pub run: RunFlags,
}

#[derive(Args, Debug)]
pub struct ApplyArgs {
    /// Spec file.
    #[arg(short = 'f', long = "file")]
    pub file: PathBuf,
    #[command(flatten)]
    pub run: RunFlags,
}

#[derive(Args, Debug, Clone)]
pub struct RunFlags {
    /// Show the plan and stop.
    #[arg(long)]
    pub dry_run: bool,
    /// Cloud calls in flight at once.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Break a lock left by a run that died.
    #[arg(long)]
    pub force_unlock: bool,
    /// With --dry-run: add the cost estimate of the cluster the plan converges to.
    #[arg(long, requires = "dry_run")]
    pub cost: bool,
    /// Set by commands that converge as one step of their own and report for themselves.
    #[arg(skip)]
    pub silent: bool,
    /// Set by commands that change only machines (scale, prune): the addons stay as they are.
    #[arg(skip)]
    pub machines_only: bool,
}

#[derive(Args, Debug)]
pub struct PlanArgs {
    /// Cluster name (its last applied spec); or use -f.
    pub name: Option<String>,
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Add the cost estimate of the cluster the plan converges to.
    #[arg(long)]
    pub cost: bool,
}

#[derive(Args, Debug)]
pub struct ExportTerraformArgs {
    /// Cluster name (its last applied spec); or use -f.
    pub name: Option<String>,
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// Directory to write the module into (created if missing). `-o` is the output format.
    #[arg(short = 'd', long = "dir", value_name = "DIR")]
    pub dir: PathBuf,
}

#[derive(Args, Debug)]
pub struct TerminateArgs {
    pub name: Option<String>,
    /// Do not ask for confirmation.
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Azure: delete the resource group too.
    #[arg(long)]
    pub delete_rg: bool,
    /// Region (Azure: location) to sweep when the cluster is not in local state.
    #[arg(short = 'r', long)]
    pub region: Option<String>,
    /// Cloud to sweep when the cluster is not in local state (default: the reference
    /// CLOUDER_HOME's `kubeadm.json`, the current context's, else aws).
    #[arg(long, value_parser = parse_provider)]
    pub provider: Option<clouder_spec::Provider>,
    /// Azure resource group to sweep when the cluster is not in local state (default
    /// `NAME-rg`, or the reference's `kubeadm.json`).
    #[arg(short = 'g', long)]
    pub resource_group: Option<String>,
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
}

#[derive(Args, Debug)]
pub struct LsArgs {
    /// Node counts and readiness.
    #[arg(long)]
    pub details: bool,
}

/// How to reach the machines over SSH.
#[derive(Args, Debug, Clone)]
pub struct SshFlags {
    /// Login user on the machines.
    #[arg(short = 'u', long)]
    pub admin_user: Option<String>,
    /// Key name in ~/.ssh/ (or a path).
    #[arg(short = 'i', long)]
    pub key: Option<String>,
}

#[derive(Args, Debug)]
pub struct SshTarget {
    pub name: Option<String>,
    #[command(flatten)]
    pub ssh: SshFlags,
}

/// A cluster whose Kubernetes API a command talks to.
#[derive(Args, Debug)]
pub struct KubeTarget {
    pub name: Option<String>,
    #[command(flatten)]
    pub ssh: SshFlags,
    /// Use this kubeconfig instead of the cluster's own.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// How long to wait for rollouts, in seconds.
    #[arg(long = "timeout", default_value_t = 300)]
    pub timeout_secs: u64,
}

#[derive(Args, Debug)]
pub struct KubeTargetForce {
    #[command(flatten)]
    pub target: KubeTarget,
    /// Do not ask for confirmation.
    #[arg(short = 'f', long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    #[command(flatten)]
    pub target: KubeTarget,
    /// Do not ask for confirmation.
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Machines that are no Node this many minutes after clouder last saw them are pruned too.
    #[arg(long = "unjoined-after", default_value_t = 20, value_name = "MINUTES")]
    pub unjoined_after_minutes: u32,
}

#[derive(Args, Debug)]
pub struct AdoptArgs {
    /// The name clouder will know it by.
    pub name: String,
    /// Kubeconfig of the existing cluster (copied under CLOUDER_HOME, mode 0600).
    #[arg(long, required = true)]
    pub kubeconfig: PathBuf,
    /// Where its nodes run: aws, azure or ssh (own hosts); picks the load-balancer wiring.
    #[arg(long, value_parser = parse_provider)]
    pub provider: Option<clouder_spec::Provider>,
    /// Its cloud region.
    #[arg(short = 'r', long)]
    pub region: Option<String>,
}

fn parse_provider(s: &str) -> Result<clouder_spec::Provider, String> {
    s.parse()
}

#[derive(Args, Debug)]
pub struct SetupArgs {
    pub name: Option<String>,
    #[command(flatten)]
    pub ssh: SshFlags,
    /// Kubernetes version to install.
    #[arg(long)]
    pub k8s_version: Option<String>,
    /// Worker label k=v (repeatable or comma-separated); default the three runtime labels.
    #[arg(long, value_delimiter = ',')]
    pub node_label: Vec<String>,
    /// Connect to the machines' `public` (default, or spec.ssh.address) or `private` addresses.
    #[arg(long)]
    pub address: Option<clouder_spec::AddressKind>,
    /// Machines Terraform made: the JSON of `terraform output -json` for the module
    /// `export-terraform` wrote, recorded first (as `import --terraform-output`; also with
    /// `--dry-run`, which changes nothing on the machines).
    #[arg(long, value_name = "FILE")]
    pub terraform_output: Option<PathBuf>,
    /// Show the machines and phases, and stop.
    #[arg(long)]
    pub dry_run: bool,
    /// Machines worked on at once.
    #[arg(long, default_value_t = 30)]
    pub concurrency: usize,
}

#[derive(Args, Debug)]
pub struct UpgradeArgs {
    pub name: Option<String>,
    #[command(flatten)]
    pub ssh: SshFlags,
    /// Version to upgrade to (one minor at most); default the spec's, which this then records.
    #[arg(long)]
    pub k8s_version: Option<String>,
    /// Take the version and the package sources from this spec (the cluster it names).
    #[arg(short = 'f', long, conflicts_with = "name")]
    pub file: Option<PathBuf>,
    /// Connect to the machines' `public` (default, or spec.ssh.address) or `private` addresses.
    #[arg(long)]
    pub address: Option<clouder_spec::AddressKind>,
    /// How long a node's drain may wait on PodDisruptionBudgets, in seconds.
    #[arg(long = "drain-timeout", default_value_t = 300)]
    pub drain_timeout_secs: u64,
}

#[derive(Args, Debug)]
pub struct ScaleArgs {
    pub name: Option<String>,
    /// Target number of workers.
    #[arg(short = 'w', long, required = true)]
    pub workers: u32,
    #[command(flatten)]
    pub ssh: SshFlags,
    /// OS disk size of new workers, in GB.
    #[arg(long)]
    pub os_disk_size_gb: Option<u32>,
    /// Label for new workers k=v (repeatable or comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub node_label: Vec<String>,
    /// Use this kubeconfig instead of the cluster's own (for the drain).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// How long a drain may wait on PodDisruptionBudgets, in seconds.
    #[arg(long = "drain-timeout", default_value_t = 300)]
    pub drain_timeout_secs: u64,
    /// Do not ask before removing workers, and drain them even when a beforeDrain checkpoint
    /// of one of their pods fails.
    #[arg(short = 'f', long)]
    pub force: bool,
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// How beforeDrain checkpoints ask the kubelet.
    #[command(flatten)]
    pub kubelet: KubeletAccess,
}

#[derive(Args, Debug)]
pub struct SmokeArgs {
    pub name: Option<String>,
    #[command(flatten)]
    pub ssh: SshFlags,
    /// Delete the test resources afterwards (default).
    #[arg(long, overrides_with = "no_cleanup")]
    pub cleanup: bool,
    /// Keep the test resources for inspection.
    #[arg(long)]
    pub no_cleanup: bool,
    /// The counter's image (a shell with `sleep`): offline clusters name a mirror.
    #[arg(long, env = "CLOUDER_SMOKE_IMAGE", default_value = "busybox:1.37")]
    pub image: String,
    /// Where to store the counter's checkpoint image, as `checkpoint create --to` takes it
    /// (default: a local directory of the cluster's, imported on the node over SSH).
    #[arg(long, env = "CLOUDER_CHECKPOINT_TO")]
    pub to: Option<String>,
    /// Seconds each step may take.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
}

#[derive(Args, Debug)]
pub struct NameArg {
    pub name: Option<String>,
}

#[derive(Args, Debug)]
pub struct RequiredName {
    pub name: String,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    pub name: String,
    /// The JSON of `terraform output -json` for a module `export-terraform` wrote.
    #[arg(long, value_name = "FILE")]
    pub terraform_output: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct UseArgs {
    pub name: Option<String>,
    #[command(flatten)]
    pub ssh: SshFlags,
    /// Print only `export KUBECONFIG=…`, for `eval`.
    #[arg(long)]
    pub print_export: bool,
}

#[derive(Subcommand, Debug)]
pub enum Cost {
    /// The cost of what exists of a cluster now, per resource, hourly and for 30 days.
    #[command(after_help = "Example:\n  clouder cost show demo -o json")]
    Show {
        name: Option<String>,
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
    },
    /// Update the local price cache from the providers' price APIs (AWS Price List Query API,
    /// which needs AWS credentials; Azure Retail Prices, public), or from saved responses.
    #[command(
        after_help = "Without options, current prices for every region of the table in use, from both APIs.\n\nExamples:\n  clouder cost refresh\n  clouder cost refresh --aws-region eu-west-1 --azure-region westeurope\n  aws pricing get-products --region us-east-1 --service-code AmazonEC2 \\\n    --filters Type=TERM_MATCH,Field=regionCode,Value=eu-west-1 Type=TERM_MATCH,Field=operatingSystem,Value=Linux > aws.json\n  curl -s \"https://prices.azure.com/api/retail/prices?\\$filter=serviceName%20eq%20'Virtual%20Machines'%20and%20armRegionName%20eq%20'eastus'\" > azure.json\n  clouder cost refresh --aws aws.json --azure azure.json"
    )]
    Refresh {
        /// A saved AWS Price List GetProducts response (repeatable).
        #[arg(long = "aws", value_name = "FILE")]
        aws: Vec<PathBuf>,
        /// A saved Azure Retail Prices page (repeatable).
        #[arg(long = "azure", value_name = "FILE")]
        azure: Vec<PathBuf>,
        /// Fetch this AWS region's prices from the AWS Price List Query API (repeatable).
        #[arg(long = "aws-region", value_name = "REGION")]
        aws_regions: Vec<String>,
        /// Fetch this Azure region's prices from the Azure Retail Prices API (repeatable).
        #[arg(long = "azure-region", value_name = "REGION")]
        azure_regions: Vec<String>,
    },
    /// The price table in use: its source and date.
    Table,
}

#[derive(Subcommand, Debug)]
pub enum Ctx {
    /// Add or replace a context.
    Add {
        name: String,
        #[arg(long)]
        provider: String,
        /// AWS shared-config profile.
        #[arg(long)]
        profile: Option<String>,
        /// AWS region or Azure location.
        #[arg(short = 'r', long, visible_alias = "location")]
        region: Option<String>,
        /// Azure subscription id.
        #[arg(long)]
        subscription: Option<String>,
        /// Azure tenant id.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// List contexts.
    Ls,
    /// Make a context the current one.
    Use { name: String },
    /// Remove a context.
    Rm { name: String },
    /// Show a context (default: the current one).
    Show { name: Option<String> },
}

#[derive(Subcommand, Debug)]
pub enum Byoc {
    /// Check an image in its registry (never pulling layers): exit 0 if it fits, 1 listing every
    /// failed rule, 2 for a malformed reference.
    #[command(
        after_help = "Registry credentials: CLOUDER_REGISTRY_USERNAME / CLOUDER_REGISTRY_PASSWORD.\n\nExamples:\n  clouder byoc validate ghcr.io/acme/runtime:1.4 --platform linux/arm64 --max-size 2GiB --non-root\n  clouder byoc validate localhost:5000/app:dev --insecure-registry --require-label org.opencontainers.image.source -o json"
    )]
    Validate(ByocValidateArgs),
    /// Enroll a remote container endpoint as capacity: trust, token, RemoteContainer, virtual Node.
    #[command(
        after_help = "The enrollment token is printed once (or written to --token-file, mode 0600): give it to the endpoint.\n\nExample:\n  clouder byoc register demo gpu-a --endpoint https://10.0.0.9:8443 --ca-file ca.pem \\\n    --image ghcr.io/acme/runtime:1.4 --cpu 16 --memory 64Gi --gpu 4 --class gpu"
    )]
    Register(ByocRegisterArgs),
    /// Enrolled endpoints with their state (Ready, Stale, Unreachable).
    Ls(ByocClusterArgs),
    /// One endpoint: spec, conditions, last heartbeat.
    Show(ByocNameArgs),
    /// Keep new work off an endpoint (its virtual Node is cordoned).
    Cordon(ByocNameArgs),
    /// Let work onto an endpoint again.
    Uncordon(ByocNameArgs),
    /// Replace an endpoint's token (the old one stops working at once).
    RotateToken(ByocRotateArgs),
    /// Point an endpoint at another image (validated and pinned by digest).
    UpdateImage(ByocUpdateImageArgs),
    /// Cordon, wait for the work on it to finish, then delete everything enrolled for it.
    Remove(ByocRemoveArgs),
    /// Run the heartbeat controller: probe endpoints, mark them Stale/Unreachable, cordon.
    Controller(ByocControllerArgs),
}

#[derive(Args, Debug, Clone)]
pub struct ImageRules {
    /// The platform the image must run on.
    #[arg(long, default_value = "linux/amd64")]
    pub platform: String,
    /// Largest compressed size (e.g. 2GiB, 500MB).
    #[arg(long)]
    pub max_size: Option<String>,
    /// A label the image must carry (repeatable).
    #[arg(long = "require-label", value_name = "KEY")]
    pub require_labels: Vec<String>,
    /// Refuse images that run as root.
    #[arg(long)]
    pub non_root: bool,
    /// Talk plain HTTP to the registry.
    #[arg(long)]
    pub insecure_registry: bool,
}

#[derive(Args, Debug)]
pub struct ByocValidateArgs {
    pub image: String,
    #[command(flatten)]
    pub rules: ImageRules,
}

#[derive(Args, Debug, Clone)]
pub struct ByocClusterArgs {
    /// The cluster (default: the default cluster).
    pub cluster: Option<String>,
    /// Use this kubeconfig instead of the cluster's.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ByocNameArgs {
    pub cluster: String,
    pub name: String,
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ByocRegisterArgs {
    pub cluster: String,
    /// The endpoint's name (its virtual Node is byoc-NAME).
    pub name: String,
    /// https://HOST:PORT
    #[arg(long)]
    pub endpoint: String,
    #[arg(long)]
    pub image: String,
    #[arg(long, default_value_t = 1)]
    pub cpu: u32,
    /// Memory (e.g. 8Gi).
    #[arg(long, default_value = "1Gi")]
    pub memory: String,
    #[arg(long, default_value_t = 0)]
    pub gpu: u32,
    /// The endpoint's container runtime.
    #[arg(long, default_value = "containerd")]
    pub runtime: String,
    /// A class of work it takes (repeatable).
    #[arg(long = "class")]
    pub classes: Vec<String>,
    /// A label for its virtual Node, KEY=VALUE (repeatable).
    #[arg(long = "label", value_parser = parse_label)]
    pub labels: Vec<(String, String)>,
    /// CA certificates (PEM) that sign the endpoint's certificate (default: system roots).
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// Allow a plain-HTTP endpoint (it is then marked insecure everywhere).
    #[arg(long)]
    pub insecure: bool,
    /// Write the token to this file (mode 0600) instead of printing it.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    #[command(flatten)]
    pub rules: ImageRules,
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ByocRotateArgs {
    pub cluster: String,
    pub name: String,
    /// Write the new token to this file (mode 0600) instead of printing it.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ByocUpdateImageArgs {
    pub cluster: String,
    pub name: String,
    pub image: String,
    #[command(flatten)]
    pub rules: ImageRules,
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ByocRemoveArgs {
    pub cluster: String,
    pub name: String,
    /// Do not wait for the work on it to finish.
    #[arg(long)]
    pub force: bool,
    /// Seconds to wait for the work on it to finish.
    #[arg(long, default_value_t = 600)]
    pub wait: u64,
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ByocControllerArgs {
    #[command(flatten)]
    pub target: ByocClusterArgs,
    /// Seconds between rounds (plus up to --jitter).
    #[arg(long, default_value_t = 10.0)]
    pub interval: f64,
    #[arg(long, default_value_t = 2.0)]
    pub jitter: f64,
    /// Seconds each probe may take.
    #[arg(long, default_value_t = 3.0)]
    pub timeout: f64,
    /// Probes in flight at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Missed beats before Stale.
    #[arg(long, default_value_t = 2)]
    pub stale_after: u32,
    /// Missed beats before Unreachable (and cordoned).
    #[arg(long, default_value_t = 5)]
    pub unreachable_after: u32,
    /// One round, print what it saw, and exit.
    #[arg(long)]
    pub once: bool,
}

/// Which cluster a user-data command talks to.
#[derive(Args, Debug)]
pub struct ClusterKube {
    /// The cluster.
    pub cluster: String,
    /// Use this kubeconfig instead of the cluster's own.
    #[arg(long, env = "CLOUDER_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum Secrets {
    /// Store a user's secret (the value from stdin unless a source is named, one trailing newline
    /// dropped; never from an argument). An unchanged value writes nothing.
    #[command(
        after_help = "Examples:\n  printf %s \"$TOKEN\" | clouder secrets set demo --user alice API_TOKEN\n  clouder secrets set demo --user alice DB_PASSWORD --from-aws-secret arn:aws:secretsmanager:eu-west-1:123456789012:secret:db\n  clouder secrets set demo --user alice STORAGE_KEY --from-azure-keyvault https://kv.vault.azure.net/secrets/storage"
    )]
    Set(SecretsSetArgs),
    /// A user's secrets: names, sources, versions, update times (never values).
    Ls(SecretsUserArgs),
    /// Remove a user's secret.
    Rm(SecretsRmArgs),
    /// Read every source again; store new versions and roll out the workloads that use them.
    #[command(
        after_help = "Examples:\n  clouder secrets sync demo\n  clouder secrets sync demo --user alice --interval 300"
    )]
    Sync(SecretsSyncArgs),
}

#[derive(Args, Debug)]
pub struct SecretsUserArgs {
    #[command(flatten)]
    pub target: ClusterKube,
    /// The user.
    #[arg(long)]
    pub user: String,
}

#[derive(Args, Debug)]
#[group(id = "source", multiple = false)]
pub struct SecretSourceFlags {
    /// Read the value from this file.
    #[arg(long, group = "source")]
    pub from_file: Option<PathBuf>,
    /// An AWS Secrets Manager secret (ARN or name).
    #[arg(long, group = "source")]
    pub from_aws_secret: Option<String>,
    /// An SSM Parameter Store parameter (name or ARN).
    #[arg(long, group = "source")]
    pub from_ssm: Option<String>,
    /// An Azure Key Vault secret URI.
    #[arg(long, group = "source")]
    pub from_azure_keyvault: Option<String>,
}

#[derive(Args, Debug)]
pub struct SecretsSetArgs {
    #[command(flatten)]
    pub user: SecretsUserArgs,
    /// The secret's name, which is the variable's name.
    pub name: String,
    #[command(flatten)]
    pub source: SecretSourceFlags,
}

#[derive(Args, Debug)]
pub struct SecretsRmArgs {
    #[command(flatten)]
    pub user: SecretsUserArgs,
    /// The secret's name.
    pub name: String,
}

#[derive(Args, Debug)]
pub struct SecretsSyncArgs {
    #[command(flatten)]
    pub target: ClusterKube,
    /// Only this user (default: every user with secrets).
    #[arg(long)]
    pub user: Option<String>,
    /// Keep syncing, every this many seconds.
    #[arg(long)]
    pub interval: Option<u64>,
}

#[derive(Subcommand, Debug)]
pub enum Storage {
    /// Per-user folders on the shared filesystem.
    #[command(subcommand)]
    User(StorageUser),
    /// Used and quota bytes per user.
    Usage(StorageRootArgs),
    /// The pod-spec patch a runtime pod of USER gets (folder, fsGroup).
    #[command(after_help = "Example:\n  clouder storage mount-spec demo alice -o yaml")]
    MountSpec(MountSpecArgs),
}

/// The cluster whose shared filesystem holds the folders.
#[derive(Args, Debug)]
pub struct StorageRootArgs {
    /// The cluster.
    pub cluster: String,
    /// Work here, on this mount of the shared filesystem (a node, or the NFS server); without
    /// it, on the node that has the filesystem, over SSH.
    #[arg(long, env = "CLOUDER_STORAGE_ROOT")]
    pub root: Option<PathBuf>,
    /// The runtime's group, which owns the folders.
    #[arg(long, default_value_t = 100)]
    pub fs_group: u32,
}

#[derive(Args, Debug)]
pub struct StorageUserArgs {
    #[command(flatten)]
    pub storage: StorageRootArgs,
    /// The user.
    pub user: String,
}

#[derive(Subcommand, Debug)]
pub enum StorageUser {
    /// Make a user's folder with a quota.
    #[command(
        after_help = "Example:\n  clouder storage user create demo alice --quota 10Gi --root /srv/userdata"
    )]
    Create(StorageQuotaArgs),
    /// Every user's folder.
    Ls(StorageRootArgs),
    /// One user's folder.
    Show(StorageUserArgs),
    /// Change a user's quota.
    Resize(StorageQuotaArgs),
    /// Remove a user's folder: kept for the grace period unless --purge.
    Rm(StorageRmArgs),
}

#[derive(Args, Debug)]
pub struct StorageQuotaArgs {
    #[command(flatten)]
    pub user: StorageUserArgs,
    /// The quota (e.g. 10Gi).
    #[arg(long, default_value = "10Gi")]
    pub quota: String,
}

#[derive(Args, Debug)]
pub struct StorageRmArgs {
    #[command(flatten)]
    pub user: StorageUserArgs,
    /// Delete now instead of keeping the folder for the grace period.
    #[arg(long)]
    pub purge: bool,
    /// Days to keep the folder before it is purged.
    #[arg(long, default_value_t = 7)]
    pub grace_days: u64,
}

#[derive(Args, Debug)]
pub struct MountSpecArgs {
    /// The cluster.
    pub cluster: String,
    /// The user.
    pub user: String,
    /// The container to patch.
    #[arg(long, default_value = "runtime")]
    pub container: String,
    /// The ReadWriteMany claim that holds the folders.
    #[arg(long, default_value = "clouder-userdata")]
    pub claim: String,
    /// Where the folder appears in the container.
    #[arg(long, default_value = "/home/user")]
    pub mount_path: String,
    /// The runtime's group.
    #[arg(long, default_value_t = 100)]
    pub fs_group: i64,
}

#[derive(Subcommand, Debug)]
pub enum NodeAgent {
    /// Bind a folder of the shared filesystem into a running container's mount namespace.
    #[command(
        after_help = "Example:\n  clouder node-agent attach --pid 4242 --source /mnt/userdata/users/alice --target /home/user"
    )]
    Attach(AttachArgs),
    /// Take an attached folder out of a running container.
    Detach(DetachArgs),
    /// The DaemonSet's loop: attach users' folders to the runtime pods assigned to them on this node.
    #[command(
        after_help = "A pod is assigned by its annotation clouder.io/user=USER; the agent records clouder.io/attached.\nExample:\n  clouder node-agent run --node \"$NODE_NAME\" --storage-root /mnt/clouder-userdata --mount-path /home/user"
    )]
    Run(AgentRunArgs),
}

#[derive(Args, Debug)]
pub struct NodeStorageRoot {
    /// The node's mount of the shared filesystem (it holds users/USER); sources must be under it.
    #[arg(
        long,
        env = "CLOUDER_STORAGE_ROOT",
        default_value = "/mnt/clouder-userdata"
    )]
    pub storage_root: PathBuf,
}

#[derive(Args, Debug)]
pub struct AgentRunArgs {
    /// This node's name.
    #[arg(long, env = "NODE_NAME")]
    pub node: String,
    #[command(flatten)]
    pub storage: NodeStorageRoot,
    /// Where a user's folder goes in the container (as a new pod's mount).
    #[arg(long, default_value = "/home/user")]
    pub mount_path: PathBuf,
    /// The container runtime's CRI socket.
    #[arg(long, default_value = "/run/containerd/containerd.sock")]
    pub cri_socket: PathBuf,
    /// A kubeconfig (default: the pod's service account).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// The `/proc` of the runtime's pid namespace (the node's: `/proc` with hostPID).
    #[arg(long, default_value = "/proc")]
    pub proc: PathBuf,
    /// Where the agent mounts each warm pod's secrets tmpfs, in its own container.
    #[arg(long, default_value = "/run/clouder-agent/secrets")]
    pub secrets_root: PathBuf,
}

#[derive(Args, Debug)]
pub struct AgentPolicyFlags {
    #[command(flatten)]
    pub storage: NodeStorageRoot,
    /// Targets must be under this path inside the container.
    #[arg(long, default_value = "/home")]
    pub mount_root: PathBuf,
    /// The process's cgroup must name this (a pod's container: kubepods); empty to skip.
    #[arg(long, default_value = "kubepods")]
    pub cgroup_marker: String,
    /// The pid of a container process on this node.
    #[arg(long)]
    pub pid: u32,
    /// Where the folder goes inside the container.
    #[arg(long)]
    pub target: PathBuf,
}

#[derive(Args, Debug)]
pub struct AttachArgs {
    #[command(flatten)]
    pub policy: AgentPolicyFlags,
    /// The folder to bind (under the storage root).
    #[arg(long)]
    pub source: PathBuf,
    /// Refuse when the folder uses more than this (e.g. 10Gi).
    #[arg(long)]
    pub quota: Option<String>,
}

#[derive(Args, Debug)]
pub struct DetachArgs {
    #[command(flatten)]
    pub policy: AgentPolicyFlags,
}

#[derive(Subcommand, Debug)]
pub enum StateCommand {
    /// Copy the current state (local, or --state) to a backend that holds none yet.
    #[command(
        after_help = "Examples:\n  clouder state migrate --to s3://team-state/clouder.db\n  clouder --state s3://old/clouder.db state migrate --to azblob://acct/state/clouder.db"
    )]
    Migrate {
        /// Where to: s3://BUCKET/KEY or azblob://ACCOUNT/CONTAINER/KEY.
        #[arg(long)]
        to: String,
    },
    /// Copy the shared state (--state) to a local file: the local state, unless --to names one.
    #[command(
        after_help = "Examples:\n  clouder --state azblob://acct/state/clouder.db state pull --to backup.db\n  clouder --state s3://team-state/clouder.db state pull --force"
    )]
    Pull {
        /// The file to write (default: CLOUDER_HOME/state.db).
        #[arg(long)]
        to: Option<PathBuf>,
        /// Replace a file that holds another state.
        #[arg(long)]
        force: bool,
    },
    /// Copy a local state file to the shared state (--state), under its lock.
    #[command(
        after_help = "Example:\n  clouder --state azblob://acct/state/clouder.db state push --from backup.db --force"
    )]
    Push {
        /// The file to read (default: CLOUDER_HOME/state.db).
        #[arg(long)]
        from: Option<PathBuf>,
        /// Replace a shared state that differs from the file.
        #[arg(long)]
        force: bool,
    },
    /// Break a lock left by a run that is gone (only the lock with this ID).
    #[command(
        after_help = "Example:\n  clouder --state s3://team-state/clouder.db state unlock --force 4f2a-1234"
    )]
    Unlock {
        /// The lock's ID, as the locked error shows it.
        id: String,
        /// Required: breaking a lock is deliberate.
        #[arg(long, required = true)]
        force: bool,
    },
}
