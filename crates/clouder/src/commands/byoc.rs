//! `clouder byoc`: validate images, enroll remote container endpoints as capacity, and run
//! their lifecycle and heartbeats. Kubernetes holds the objects (and the token, in a Secret);
//! clouder's state keeps what was enrolled, with the token's hash only.

use super::{confirm, resolve_name};
use crate::cli::{
    Byoc, ByocClusterArgs, ByocControllerArgs, ByocNameArgs, ByocRegisterArgs, ByocRemoveArgs,
    ByocRotateArgs, ByocUpdateImageArgs, ByocValidateArgs, Global, ImageRules,
};
use crate::home::{Home, write_private};
use crate::output::{emit, table};
use crate::{Exit, Usage};
use anyhow::{Result, anyhow, bail};
use clouder_byoc::enroll::{self, EnrollError, Enrollment, Registration};
use clouder_byoc::heartbeat::{Controller, Settings};
use clouder_byoc::objects::Capability;
use clouder_byoc::oci::Credentials;
use clouder_byoc::trust::{Endpoint, TrustError};
use clouder_byoc::validate::{self, Access, Report, Rules, ValidateError, human, parse_size};
use clouder_state::{ByocRecord, StateStore};
use serde::Serialize;
use std::path::Path;
use std::time::Duration;

pub async fn run(home: &Home, g: &Global, command: Byoc) -> Result<()> {
    match command {
        Byoc::Validate(args) => validate_image(g, args).await,
        Byoc::Register(args) => register(home, g, args).await,
        Byoc::Ls(args) => ls(home, g, args).await,
        Byoc::Show(args) => show(home, g, args).await,
        Byoc::Cordon(args) => cordon(home, args, true).await,
        Byoc::Uncordon(args) => cordon(home, args, false).await,
        Byoc::RotateToken(args) => rotate_token(home, g, args).await,
        Byoc::UpdateImage(args) => update_image(home, g, args).await,
        Byoc::Remove(args) => remove(home, g, args).await,
        Byoc::Controller(args) => controller(home, g, args).await,
    }
}

/// Bad input is a usage error (exit 2); the rest fails the command (exit 1).
fn enroll_error(e: EnrollError) -> anyhow::Error {
    match e {
        EnrollError::Name(_) | EnrollError::Trust(TrustError::Endpoint { .. }) => {
            Usage(e.to_string()).into()
        }
        EnrollError::Trust(TrustError::Ca(reason)) => Usage(format!("--ca-file: {reason}")).into(),
        e => e.into(),
    }
}

fn rules(flags: &ImageRules) -> Result<(Rules, Access)> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let rules = Rules {
        platform: flags
            .platform
            .parse()
            .map_err(|e: String| Usage(format!("--platform: {e}")))?,
        max_size: flags
            .max_size
            .as_deref()
            .map(parse_size)
            .transpose()
            .map_err(|e| Usage(format!("--max-size: {e}")))?,
        required_labels: flags.require_labels.clone(),
        non_root: flags.non_root,
    };
    let access = Access {
        credentials: env("CLOUDER_REGISTRY_USERNAME").map(|username| Credentials {
            username,
            password: env("CLOUDER_REGISTRY_PASSWORD").unwrap_or_default(),
        }),
        insecure: flags.insecure_registry,
    };
    Ok((rules, access))
}

/// Reads and checks an image; a malformed reference is a usage error.
async fn check_image(image: &str, flags: &ImageRules) -> Result<Report> {
    let (rules, access) = rules(flags)?;
    validate::validate(image, &rules, &access)
        .await
        .map_err(|e| match e {
            ValidateError::Reference(e) => Usage(e.to_string()).into(),
            e => anyhow::Error::from(e),
        })
}

/// An image that must fit before it is used: the failures are the error.
async fn fitting_image(image: &str, flags: &ImageRules) -> Result<Report> {
    let report = check_image(image, flags).await?;
    if !report.fits() {
        let failures: Vec<String> = report
            .failures
            .iter()
            .map(|f| format!("{}: {}", f.rule, f.message))
            .collect();
        return Err(anyhow!(
            "image {image} does not fit:\n  {}",
            failures.join("\n  ")
        ));
    }
    Ok(report)
}

fn render_report(report: &Report) -> String {
    let i = &report.image;
    let list = |v: &[String]| {
        if v.is_empty() {
            "-".to_string()
        } else {
            v.join(" ")
        }
    };
    let mut out = format!(
        "Image:        {}\nDigest:       {}\nPlatform:     {}/{}{}\nEntrypoint:   {}\nCmd:          {}\nUser:         {}\nPorts:        {}\nSize:         {} compressed, {} layer(s)\n",
        i.reference,
        i.digest,
        i.os,
        i.architecture,
        i.variant
            .as_deref()
            .map(|v| format!("/{v}"))
            .unwrap_or_default(),
        list(&i.entrypoint),
        list(&i.cmd),
        if i.user.is_empty() { "(root)" } else { &i.user },
        list(&i.exposed_ports),
        human(i.compressed_size),
        i.layers,
    );
    if !i.platforms.is_empty() {
        out += &format!("Platforms:    {}\n", i.platforms.join(", "));
    }
    for (k, v) in &i.labels {
        out += &format!("Label:        {k}={v}\n");
    }
    if report.fits() {
        out += "\nOK: the image fits\n";
    } else {
        out += "\n";
        for f in &report.failures {
            out += &format!("FAIL {}: {}\n", f.rule, f.message);
        }
    }
    out
}

async fn validate_image(g: &Global, args: ByocValidateArgs) -> Result<()> {
    let report = check_image(&args.image, &args.rules).await?;
    emit(g.output, &report, || render_report(&report))?;
    if report.fits() {
        Ok(())
    } else {
        Err(Exit(1).into())
    }
}

/// A client for the cluster's API: `--kubeconfig`, else the cluster's own.
async fn kube_client(home: &Home, cluster: &str, flag: Option<&Path>) -> Result<kube::Client> {
    let path = super::kube::kubeconfig_for(home, cluster, flag)?;
    Ok(clouder_kube::connect(&path).await?)
}

/// Gives the token once: to a 0600 file, or printed.
fn hand_over(token: &str, file: Option<&Path>) -> Result<Option<String>> {
    match file {
        Some(path) => {
            write_private(path, format!("{token}\n").as_bytes())?;
            eprintln!(
                "token written to {} (mode 0600): give it to the endpoint; it is not shown again",
                path.display()
            );
            Ok(None)
        }
        None => {
            eprintln!("give this token to the endpoint; it is not shown again");
            Ok(Some(token.to_string()))
        }
    }
}

#[derive(Serialize)]
struct Registered<'a> {
    name: &'a str,
    node: String,
    endpoint: &'a str,
    insecure: bool,
    image: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
}

async fn register(home: &Home, g: &Global, args: ByocRegisterArgs) -> Result<()> {
    enroll::check_name(&args.name).map_err(enroll_error)?;
    let endpoint = Endpoint::parse(&args.endpoint, args.insecure)
        .map_err(|e| enroll_error(EnrollError::Trust(e)))?;
    let ca_pem = args
        .ca_file
        .as_ref()
        .map(|f| {
            std::fs::read_to_string(f).map_err(|e| Usage(format!("--ca-file {}: {e}", f.display())))
        })
        .transpose()?;
    let memory = parse_size(&args.memory).map_err(|e| Usage(format!("--memory: {e}")))?;
    let store = home.store()?;
    if store.byoc(&args.cluster, &args.name)?.is_some() {
        return Err(EnrollError::Duplicate(args.name).into());
    }
    let report = fitting_image(&args.image, &args.rules).await?;
    let client = kube_client(home, &args.cluster, args.kubeconfig.as_deref()).await?;
    let registration = Registration {
        name: args.name.clone(),
        endpoint,
        image: report.image.pinned.clone(),
        os: report.image.os.clone(),
        architecture: report.image.architecture.clone(),
        ca_pem,
        capability: Capability {
            cpu: args.cpu,
            memory,
            gpu: args.gpu,
            runtime: args.runtime,
            classes: args.classes,
            labels: args.labels.into_iter().collect(),
        },
    };
    let enrolled = enroll::register(&client, &registration)
        .await
        .map_err(enroll_error)?;
    let now = clouder_state::now();
    store.put_byoc(&ByocRecord {
        cluster: args.cluster.clone(),
        name: args.name.clone(),
        endpoint: enrolled.spec.endpoint.clone(),
        insecure: enrolled.spec.insecure,
        image: args.image.clone(),
        image_digest: report.image.digest.clone(),
        token_sha256: enrolled.token_sha256.clone(),
        capability: serde_json::to_value(&enrolled.spec.capability)?,
        enrolled_at: now,
        updated_at: now,
    })?;
    let shown = Registered {
        name: &args.name,
        node: clouder_byoc::objects::node_name(&args.name),
        endpoint: &enrolled.spec.endpoint,
        insecure: enrolled.spec.insecure,
        image: &enrolled.spec.image,
        token: hand_over(&enrolled.token, args.token_file.as_deref())?,
    };
    emit(g.output, &shown, || {
        let mut out = format!(
            "Enrolled {} as node {} ({}{})\nImage: {}\n",
            shown.name,
            shown.node,
            shown.endpoint,
            if shown.insecure {
                ", INSECURE: plain HTTP"
            } else {
                ""
            },
            shown.image
        );
        if let Some(token) = &shown.token {
            out += &format!("Token: {token}\n");
        }
        out
    })
}

fn state_of(e: &Enrollment) -> String {
    let mut state = e.status.state().to_string();
    if e.cordoned {
        state += ",Cordoned";
    }
    state
}

fn endpoint_of(e: &Enrollment) -> String {
    if e.spec.insecure {
        format!("{} (INSECURE)", e.spec.endpoint)
    } else {
        e.spec.endpoint.clone()
    }
}

async fn ls(home: &Home, g: &Global, args: ByocClusterArgs) -> Result<()> {
    let cluster = resolve_name(home, args.cluster)?;
    let client = kube_client(home, &cluster, args.kubeconfig.as_deref()).await?;
    let all = enroll::list(&client).await?;
    emit(g.output, &all, || {
        let rows: Vec<Vec<String>> = all
            .iter()
            .map(|e| {
                let c = &e.spec.capability;
                vec![
                    e.name.clone(),
                    endpoint_of(e),
                    state_of(e),
                    e.status.last_heartbeat.clone().unwrap_or("-".into()),
                    c.cpu.to_string(),
                    human(c.memory),
                    c.gpu.to_string(),
                    c.runtime.clone(),
                ]
            })
            .collect();
        table(
            &[
                "NAME",
                "ENDPOINT",
                "STATE",
                "LAST HEARTBEAT",
                "CPU",
                "MEMORY",
                "GPU",
                "RUNTIME",
            ],
            &rows,
        )
    })
}

#[derive(Serialize)]
struct Shown {
    #[serde(flatten)]
    enrollment: Enrollment,
    /// What clouder's state recorded (none when enrolled from elsewhere).
    record: Option<ByocRecord>,
}

async fn show(home: &Home, g: &Global, args: ByocNameArgs) -> Result<()> {
    let client = kube_client(home, &args.cluster, args.kubeconfig.as_deref()).await?;
    let enrollment = enroll::get(&client, &args.name)
        .await?
        .ok_or_else(|| EnrollError::NotFound(args.name.clone()))?;
    let shown = Shown {
        enrollment,
        record: home.store()?.byoc(&args.cluster, &args.name)?,
    };
    emit(g.output, &shown, || {
        let e = &shown.enrollment;
        let c = &e.spec.capability;
        let mut out = format!(
            "Name:            {}\nNode:            {}\nEndpoint:        {}\nImage:           {}\nState:           {}\nLast heartbeat:  {}\nMissed beats:    {}\nCapacity:        {} CPU, {}, {} GPU, runtime {}\n",
            e.name,
            e.node,
            endpoint_of(e),
            e.spec.image,
            state_of(e),
            e.status.last_heartbeat.as_deref().unwrap_or("never"),
            e.status.consecutive_misses,
            c.cpu,
            human(c.memory),
            c.gpu,
            c.runtime,
        );
        if !c.classes.is_empty() {
            out += &format!("Classes:         {}\n", c.classes.join(", "));
        }
        for condition in &e.status.conditions {
            out += &format!(
                "Condition:       {}={} ({}) {}\n",
                condition.type_, condition.status, condition.reason, condition.message
            );
        }
        if let Some(r) = &shown.record {
            out += &format!("Token SHA-256:   {}\n", r.token_sha256);
        }
        out
    })
}

async fn cordon(home: &Home, args: ByocNameArgs, cordoned: bool) -> Result<()> {
    let client = kube_client(home, &args.cluster, args.kubeconfig.as_deref()).await?;
    enroll::set_cordoned(&client, &args.name, cordoned).await?;
    eprintln!(
        "{} {}",
        clouder_byoc::objects::node_name(&args.name),
        if cordoned { "cordoned" } else { "uncordoned" }
    );
    Ok(())
}

/// Updates the state record, if clouder keeps one for this endpoint.
fn touch_record(
    home: &Home,
    cluster: &str,
    name: &str,
    change: impl FnOnce(&mut ByocRecord),
) -> Result<()> {
    let store = home.store()?;
    if let Some(mut record) = store.byoc(cluster, name)? {
        change(&mut record);
        record.updated_at = clouder_state::now();
        store.put_byoc(&record)?;
    }
    Ok(())
}

async fn rotate_token(home: &Home, g: &Global, args: ByocRotateArgs) -> Result<()> {
    let client = kube_client(home, &args.cluster, args.kubeconfig.as_deref()).await?;
    let token = enroll::rotate_token(&client, &args.name).await?;
    let hash = enroll::token_sha256(&token);
    touch_record(home, &args.cluster, &args.name, |r| {
        r.token_sha256 = hash.clone()
    })?;
    let shown = serde_json::json!({
        "name": args.name,
        "token": hand_over(&token, args.token_file.as_deref())?,
    });
    emit(g.output, &shown, || match shown["token"].as_str() {
        Some(t) => format!("Token: {t}\n"),
        None => String::new(),
    })
}

async fn update_image(home: &Home, g: &Global, args: ByocUpdateImageArgs) -> Result<()> {
    let report = fitting_image(&args.image, &args.rules).await?;
    let client = kube_client(home, &args.cluster, args.kubeconfig.as_deref()).await?;
    let i = &report.image;
    enroll::update_image(&client, &args.name, &i.pinned, &i.os, &i.architecture).await?;
    touch_record(home, &args.cluster, &args.name, |r| {
        r.image = args.image.clone();
        r.image_digest = report.image.digest.clone();
    })?;
    emit(g.output, &report.image, || {
        format!("{} now runs {}\n", args.name, report.image.pinned)
    })
}

async fn remove(home: &Home, g: &Global, args: ByocRemoveArgs) -> Result<()> {
    confirm(
        &format!(
            "Remove endpoint {} from cluster {}",
            args.name, args.cluster
        ),
        g.yes,
        "--yes",
    )?;
    let client = kube_client(home, &args.cluster, args.kubeconfig.as_deref()).await?;
    if enroll::get(&client, &args.name).await?.is_none() {
        // Already gone from the cluster: forget it here too.
        if home.store()?.delete_byoc(&args.cluster, &args.name)? {
            eprintln!("{} was no longer in the cluster; forgotten", args.name);
            return Ok(());
        }
        return Err(EnrollError::NotFound(args.name).into());
    }
    let wait = (!args.force).then(|| Duration::from_secs(args.wait));
    enroll::remove(&client, &args.name, wait).await?;
    home.store()?.delete_byoc(&args.cluster, &args.name)?;
    eprintln!("{} removed", args.name);
    Ok(())
}

async fn controller(home: &Home, g: &Global, args: ByocControllerArgs) -> Result<()> {
    // A round renews the virtual Nodes' Leases: one late round must not let them lapse.
    let lease = f64::from(clouder_byoc::objects::LEASE_DURATION_SECONDS);
    if args.interval + args.jitter > lease / 2.0 {
        bail!(Usage(format!(
            "--interval {} + --jitter {}: rounds must come within {} s, half the virtual Nodes' {lease} s Lease, or their Leases lapse",
            args.interval,
            args.jitter,
            lease / 2.0
        )));
    }
    let cluster = resolve_name(home, args.target.cluster.clone())?;
    let client = kube_client(home, &cluster, args.target.kubeconfig.as_deref()).await?;
    let seconds = |s: f64, flag: &str| {
        Duration::try_from_secs_f64(s)
            .map_err(|_| Usage(format!("{flag}: `{s}` is not a duration")))
    };
    let settings = Settings {
        interval: seconds(args.interval, "--interval")?,
        jitter: seconds(args.jitter, "--jitter")?,
        timeout: seconds(args.timeout, "--timeout")?,
        concurrency: args.concurrency,
        stale_after: args.stale_after,
        unreachable_after: args.unreachable_after.max(args.stale_after),
    };
    let mut controller = Controller::new(client, settings);
    if args.once {
        let seen = controller.tick().await?;
        return emit(g.output, &seen, || {
            let rows: Vec<Vec<String>> = seen
                .iter()
                .map(|o| {
                    vec![
                        o.name.clone(),
                        format!("{:?}", o.health),
                        o.misses.to_string(),
                        match &o.beat {
                            clouder_byoc::heartbeat::Beat::Alive => "alive".into(),
                            clouder_byoc::heartbeat::Beat::Missed(r) => r.clone(),
                        },
                        o.node_action.unwrap_or("-").to_string(),
                    ]
                })
                .collect();
            table(&["NAME", "HEALTH", "MISSES", "BEAT", "NODE"], &rows)
        });
    }
    eprintln!("heartbeat controller for {cluster}: Ctrl-C to stop");
    controller
        .run(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
    Ok(())
}
