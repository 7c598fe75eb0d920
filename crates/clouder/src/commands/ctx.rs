//! `clouder ctx`: named cloud accounts. A context stores references (profile, region, account
//! id once seen); credentials stay where the cloud SDK finds them.

use crate::Usage;
use crate::cli::{Ctx, Global};
use crate::home::Home;
use crate::output::{emit, table};
use anyhow::{Result, bail};
use clouder_spec::Provider;
use clouder_state::{Context, StateStore};

pub fn run(home: &Home, g: &Global, command: Ctx) -> Result<()> {
    let store = home.store()?;
    match command {
        Ctx::Add {
            name,
            provider,
            profile,
            region,
            subscription,
            tenant,
        } => {
            let provider: Provider = provider.parse().map_err(Usage)?;
            clouder_spec::dns_label(&name, 63).map_err(|e| Usage(format!("context name: {e}")))?;
            match provider {
                Provider::Azure => {
                    if profile.is_some() {
                        bail!(Usage("--profile applies to --provider aws only".into()));
                    }
                    for (flag, id) in [("--subscription", &subscription), ("--tenant", &tenant)] {
                        if let Some(id) = id
                            && uuid_like(id).is_err()
                        {
                            bail!(Usage(format!(
                                "{flag} {id}: expected a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)"
                            )));
                        }
                    }
                    if subscription.is_none() {
                        bail!(Usage("an Azure context needs --subscription ID".into()));
                    }
                }
                _ if subscription.is_some() || tenant.is_some() => {
                    bail!(Usage(
                        "--subscription and --tenant apply to --provider azure only".into()
                    ));
                }
                _ => {}
            }
            let ctx = Context {
                name: name.clone(),
                provider: provider.as_str().into(),
                profile,
                region,
                account: subscription,
                tenant,
            };
            store.put_context(&ctx)?;
            if home.current_context()?.is_none() {
                home.set_current_context(Some(&name))?;
            }
            emit(g.output, &ctx, || format!("Context {name} saved.\n"))
        }
        Ctx::Ls => {
            let current = home.current_context()?;
            let all = store.contexts()?;
            emit(g.output, &all, || {
                let rows: Vec<Vec<String>> = all
                    .iter()
                    .map(|c| {
                        vec![
                            if current.as_deref() == Some(c.name.as_str()) {
                                "*".into()
                            } else {
                                String::new()
                            },
                            c.name.clone(),
                            c.provider.clone(),
                            c.profile.clone().unwrap_or_default(),
                            c.region.clone().unwrap_or_default(),
                            c.account.clone().unwrap_or_default(),
                        ]
                    })
                    .collect();
                table(
                    &[
                        "CURRENT", "NAME", "PROVIDER", "PROFILE", "REGION", "ACCOUNT",
                    ],
                    &rows,
                )
            })
        }
        Ctx::Use { name } => {
            existing(&store, &name)?;
            home.set_current_context(Some(&name))?;
            emit(g.output, &serde_json::json!({ "current": name }), || {
                format!("Current context: {name}\n")
            })
        }
        Ctx::Rm { name } => {
            if !store.delete_context(&name)? {
                return Err(Usage(format!("no context `{name}`")).into());
            }
            if home.current_context()?.as_deref() == Some(name.as_str()) {
                home.set_current_context(None)?;
            }
            emit(g.output, &serde_json::json!({ "removed": name }), || {
                format!("Context {name} removed.\n")
            })
        }
        Ctx::Show { name } => {
            let name = match name.or(home.current_context()?) {
                Some(n) => n,
                None => {
                    return Err(Usage(
                        "no context named and none current (clouder ctx use NAME)".into(),
                    )
                    .into());
                }
            };
            let ctx = existing(&store, &name)?;
            emit(g.output, &ctx, || {
                format!(
                    "Name:     {}\nProvider: {}\nProfile:  {}\nRegion:   {}\nAccount:  {}\nTenant:   {}\n",
                    ctx.name,
                    ctx.provider,
                    ctx.profile.as_deref().unwrap_or("-"),
                    ctx.region.as_deref().unwrap_or("-"),
                    ctx.account.as_deref().unwrap_or("(not seen yet)"),
                    ctx.tenant.as_deref().unwrap_or("-")
                )
            })
        }
    }
}

/// An Azure subscription or tenant id: 8-4-4-4-12 hex digits.
fn uuid_like(id: &str) -> Result<(), ()> {
    let groups: Vec<&str> = id.split('-').collect();
    let lengths = [8, 4, 4, 4, 12];
    let ok = groups.len() == 5
        && groups
            .iter()
            .zip(lengths)
            .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()));
    if ok { Ok(()) } else { Err(()) }
}

fn existing(store: &dyn StateStore, name: &str) -> Result<Context> {
    store
        .context(name)?
        .ok_or_else(|| Usage(format!("no context `{name}` (see `clouder ctx ls`)")).into())
}
