//! One module per group of commands; shared helpers for names, confirmation and state.

mod bootstrap;
mod byoc;
mod byon;
mod checkpoint;
mod converge;
mod cost;
mod ctx;
mod inspect;
mod kube;
mod kubeconfig;
mod node_agent;
mod passthrough;
mod prune;
mod scale;
mod secrets;
mod services;
mod setup;
mod smoke;
mod storage;
mod terminate;
mod terraform;
mod upgrade;

use crate::Usage;
use crate::cli::{Cli, Command, Global, Kubeadm, StateCommand};
use crate::home::Home;
use anyhow::Result;
use clouder_state::{Context, StateStore};
use std::io::IsTerminal;
use std::path::Path;

pub async fn run(mut cli: Cli) -> Result<()> {
    let mut home = Home::from_env();
    // The shared state: --state, else CLOUDER_STATE, else the config file's; `local` is the
    // local state whatever the others say.
    if cli.global.state.is_none() {
        cli.global.state = home.state_url()?;
    }
    if cli.global.state.as_deref() == Some(LOCAL_STATE) {
        cli.global.state = None;
    }
    let g = &cli.global;
    // Breaking a lock must not wait for that lock; pull and push handle the shared state whole.
    let whole = matches!(
        cli.command,
        Command::State(
            StateCommand::Unlock { .. } | StateCommand::Pull { .. } | StateCommand::Push { .. }
        )
    );
    let (Some(url), false) = (&g.state, whole) else {
        return dispatch(&home, g, cli.command).await;
    };
    let session = crate::remote_state::Session::open(
        &mut home,
        url,
        &running_command(),
        std::time::Duration::from_secs(g.lock_timeout),
    )
    .await?;
    // Progress is written back even when the command failed: a re-run resumes from it.
    let result = dispatch(&home, g, cli.command).await;
    let closed = session.close().await;
    result.and(closed)
}

/// `--state local`: the local SQLite state, even when CLOUDER_STATE or the config names another.
const LOCAL_STATE: &str = "local";

/// What this process runs, for the lock's holder record: `clouder kubeadm create demo`.
fn running_command() -> String {
    let command: Vec<String> = std::env::args().skip(1).take(3).collect();
    format!("clouder {}", command.join(" "))
}

async fn state(home: &Home, g: &Global, command: StateCommand) -> Result<()> {
    use crate::remote_state::{self, Copied};
    let shared = |what: &str| {
        g.state.clone().ok_or_else(|| {
            Usage(format!(
                "state {what}: name the shared state with --state URL (or CLOUDER_STATE, or clouder.state in clouder.yaml)"
            ))
        })
    };
    let said = |copied: &Copied, from: &str, to: &str| match copied {
        Copied::Written => format!("State copied from {from} to {to}.\n"),
        Copied::Updated => format!("State copied from {from} to {to}, bringing it up to date.\n"),
        Copied::Replaced => {
            format!("State copied from {from} to {to}, replacing what was there.\n")
        }
        Copied::Unchanged => format!("{to} already holds the state of {from}; nothing copied.\n"),
    };
    match command {
        StateCommand::Migrate { to } => {
            remote_state::migrate(home, &to).await?;
            let out = serde_json::json!({"from": home.state_db, "to": to});
            crate::output::emit(g.output, &out, || format!("State copied to {to}.\n"))
        }
        StateCommand::Pull { to, force } => {
            let url = shared("pull")?;
            let file = to.unwrap_or_else(|| home.state_db.clone());
            let copied = remote_state::pull(&url, &file, force).await?;
            let out = serde_json::json!({"from": url, "to": file, "result": copied});
            crate::output::emit(g.output, &out, || {
                said(&copied, &url, &file.display().to_string())
            })
        }
        StateCommand::Push { from, force } => {
            let url = shared("push")?;
            let file = from.unwrap_or_else(|| home.state_db.clone());
            let timeout = std::time::Duration::from_secs(g.lock_timeout);
            let copied =
                remote_state::push(&url, &file, force, &running_command(), timeout).await?;
            let out = serde_json::json!({"from": file, "to": url, "result": copied});
            crate::output::emit(g.output, &out, || {
                said(&copied, &file.display().to_string(), &url)
            })
        }
        StateCommand::Unlock { id, .. } => {
            let url = shared("unlock")?;
            let holder = remote_state::force_unlock(&url, &id).await?;
            let out = serde_json::json!({"unlocked": holder.id});
            crate::output::emit(g.output, &out, || {
                format!("Broke the lock held by {holder}.\n")
            })
        }
    }
}

async fn dispatch(home: &Home, g: &Global, command: Command) -> Result<()> {
    match command {
        Command::Kubeadm(k) => match k {
            Kubeadm::Create(args) => converge::create(home, g, args).await,
            Kubeadm::Apply(args) => converge::apply(home, g, args).await,
            Kubeadm::Plan(args) => converge::plan(home, g, args).await,
            Kubeadm::Terminate(args) => terminate::terminate(home, g, args).await,
            Kubeadm::Ls(args) => inspect::ls(home, g, args).await,
            Kubeadm::Info(args) => inspect::info(home, g, args.name).await,
            Kubeadm::SetDefault(args) => inspect::set_default(home, g, &args.name),
            Kubeadm::Use(args) => inspect::use_cluster(home, g, args),
            Kubeadm::Schema => inspect::schema(),
            Kubeadm::ExportTerraform(args) => terraform::export(home, g, args),
            Kubeadm::Import(args) => match &args.terraform_output {
                Some(file) => terraform::import(home, g, &args.name, file),
                None => inspect::import(home, g, &args.name),
            },
            Kubeadm::Adopt(args) => kube::adopt(home, g, args).await,
            Kubeadm::Scale(args) => scale::scale(home, g, args).await,
            Kubeadm::Setup(a) => setup::setup(home, g, a).await,
            Kubeadm::GetConfig(a) => kubeconfig::get_config(home, g, a).await,
            Kubeadm::Prune(a) => prune::prune(home, g, a).await,
            Kubeadm::SmokeTest(a) => smoke::smoke_test(home, g, a).await,
            Kubeadm::EnableIngressNginx(a) => {
                kube::enable_ingress(home, g, a, clouder_kube::addons::Addon::IngressNginx).await
            }
            Kubeadm::EnableIngressTraefik(a) => {
                kube::enable_ingress(home, g, a, clouder_kube::addons::Addon::IngressTraefik).await
            }
            Kubeadm::DisableIngressNginx(a) => {
                kube::disable_ingress(home, g, a, clouder_kube::addons::Addon::IngressNginx).await
            }
            Kubeadm::DisableIngressTraefik(a) => {
                kube::disable_ingress(home, g, a, clouder_kube::addons::Addon::IngressTraefik).await
            }
            Kubeadm::UpgradeKubelet(a) => upgrade::upgrade_kubelet(home, g, a).await,
        },
        Command::Cost(c) => cost::run(home, g, c).await,
        Command::Ctx(c) => ctx::run(home, g, c),
        Command::Kubectl(p) => passthrough::run(home, &passthrough::KUBECTL, &p.args),
        Command::Helm(p) => passthrough::run(home, &passthrough::HELM, &p.args),
        Command::Checkpoint(c) => checkpoint::run(home, g, c).await,
        Command::State(c) => state(home, g, c).await,
        Command::Services(s) => services::run(home, g, s).await,
        Command::Byoc(c) => byoc::run(home, g, c).await,
        Command::Byon(c) => byon::run(home, g, c).await,
        Command::Secrets(c) => secrets::run(home, g, c).await,
        Command::Storage(c) => storage::run(home, g, c).await,
        Command::NodeAgent(c) => node_agent::run(c).await,
    }
}

/// The cluster a command is about: the one named, or the default.
pub fn resolve_name(home: &Home, name: Option<String>) -> Result<String> {
    match name.or(home.default_cluster()?) {
        Some(name) => Ok(name),
        None => Err(Usage(
            "no cluster named and no default set (clouder kubeadm set-default NAME)".into(),
        )
        .into()),
    }
}

/// Asks before a destructive step. `--yes`/`--force` answer for the user; without them and
/// without a terminal, refuses (exit 2) and names the flag.
pub fn confirm(question: &str, answered: bool, flag: &str) -> Result<()> {
    if answered {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(Usage(format!(
            "{question}: refusing without confirmation; pass {flag} to go ahead"
        ))
        .into());
    }
    eprint!("{question} [y/N] ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(Usage("cancelled".into()).into())
    }
}

/// The context to use: the one named, else the current one.
pub fn context(
    home: &Home,
    store: &dyn StateStore,
    named: Option<&str>,
) -> Result<Option<Context>> {
    let name = match named {
        Some(n) => Some(n.to_string()),
        None => home.current_context()?,
    };
    match name {
        None => Ok(None),
        Some(n) => match store.context(&n)? {
            Some(c) => Ok(Some(c)),
            None => Err(Usage(format!("no context `{n}` (see `clouder ctx ls`)")).into()),
        },
    }
}

/// A client for `cluster`'s API server, from `kubeconfig` or the cluster's own.
pub async fn kube_client(
    home: &Home,
    cluster: &str,
    kubeconfig: Option<&Path>,
) -> Result<::kube::Client> {
    Ok(clouder_kube::connect(&kube::kubeconfig_for(home, cluster, kubeconfig)?).await?)
}

/// User-data errors at the edge: bad input and refusals exit 2, the rest 1.
pub fn userdata_error(e: clouder_userdata::Error) -> anyhow::Error {
    match e {
        clouder_userdata::Error::Invalid(_) | clouder_userdata::Error::Refused(_) => {
            Usage(e.to_string()).into()
        }
        e => e.into(),
    }
}
