//! `cost show|refresh|table`, and the estimate `plan --cost` and `create --dry-run --cost` add.

use super::context;
use crate::cli::{Cost, Global};
use crate::home::{Home, write_private};
use crate::output::{emit, table};
use crate::progress::Progress;
use crate::provider;
use anyhow::{Context as _, Result};
use clouder_cost::{Estimate, PriceTable, estimate, fetch};
use clouder_engine::{Billable, Graph, Plan};
use serde::Serialize;
use std::path::PathBuf;

pub async fn run(home: &Home, g: &Global, command: Cost) -> Result<()> {
    match command {
        Cost::Show { name, concurrency } => show(home, g, name, concurrency).await,
        Cost::Refresh {
            aws,
            azure,
            aws_regions,
            azure_regions,
        } => {
            let sources = Sources {
                aws_files: aws,
                azure_files: azure,
                aws_regions,
                azure_regions,
            };
            refresh(home, g, sources).await
        }
        Cost::Table => {
            let (table, origin) = prices(home)?;
            let info = clouder_cost::TableInfo {
                origin,
                source: table.source,
                date: table.date,
            };
            emit(g.output, &info, || {
                format!(
                    "Prices: {} table dated {}\nSource: {}\n",
                    info.origin, info.date, info.source
                )
            })
        }
    }
}

fn cache(home: &Home) -> PathBuf {
    home.root.join("prices.json")
}

/// The refreshed cache if there is one, else the embedded table; with where it came from.
pub fn prices(home: &Home) -> Result<(PriceTable, String)> {
    let path = cache(home);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let shown = path.display().to_string();
            Ok((PriceTable::parse(&shown, &text)?, shown))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Ok((PriceTable::embedded(), "embedded".into()))
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// The cost of everything `graph` declares: the cluster a plan converges to.
pub fn of_graph(home: &Home, graph: &Graph, cloud: &str, region: &str) -> Result<Estimate> {
    let mut items: Vec<_> = graph
        .resources()
        .map(|r| (r.id().to_string(), r.kind().to_string(), r.billing()))
        .filter(|(_, _, b)| !b.is_empty())
        .collect();
    items.sort();
    let (table, origin) = prices(home)?;
    Ok(estimate(&table, &origin, cloud, region, &items))
}

/// With `--cost`: the estimate of the cluster `target`'s plan converges to.
pub fn when(wanted: bool, home: &Home, target: &provider::Target) -> Result<Option<Estimate>> {
    if !wanted {
        return Ok(None);
    }
    of_graph(
        home,
        &target.graph,
        target.cloud.name(),
        &target.cloud.region(),
    )
    .map(Some)
}

/// The estimate table, totals, the price table used and what is left out.
pub fn render(e: &Estimate) -> String {
    table(
        &["RESOURCE", "KIND", "BILLED FOR", "PER HOUR", "30 DAYS"],
        &e.render(),
    ) + &e.footer()
}

#[derive(Serialize)]
struct Shown<'a> {
    cluster: &'a str,
    #[serde(flatten)]
    estimate: &'a Estimate,
}

/// What exists of the cluster now, priced: the resources its plan finds, with their observed
/// machine sizes.
async fn show(home: &Home, g: &Global, name: Option<String>, concurrency: usize) -> Result<()> {
    let cluster = super::converge::named_or_file(home, name, None)?;
    let name = cluster.name().to_string();
    let store = home.store()?;
    let ctx = context(home, &store, cluster.spec.context.as_deref())?;
    let target = provider::connect(&cluster, ctx.as_ref(), false).await?;
    let progress = Progress::new(g.quiet || g.output != crate::cli::Format::Table);
    let planned = clouder_engine::plan(
        &target.graph,
        target.inventory.as_ref(),
        concurrency,
        &progress,
    )
    .await?;
    progress.finish();
    let items = existing(&target.graph, &planned);
    let (table, origin) = prices(home)?;
    let e = estimate(
        &table,
        &origin,
        target.cloud.name(),
        &target.cloud.region(),
        &items,
    );
    let out = Shown {
        cluster: &name,
        estimate: &e,
    };
    emit(g.output, &out, || {
        format!("Cluster {name}, as it exists now:\n") + &render(&e)
    })
}

/// The billables of the resources `plan` found, machine sizes as observed.
fn existing(graph: &Graph, plan: &Plan) -> Vec<(String, String, Vec<Billable>)> {
    plan.items
        .iter()
        .filter_map(|item| {
            let found = item.found.as_ref()?;
            let resource = graph.get(&item.id)?;
            let billables: Vec<Billable> = resource
                .billing()
                .into_iter()
                .map(|b| match (b, found.attr("size")) {
                    (Billable::Machine { .. }, Some(size)) if !size.is_empty() => {
                        Billable::Machine { size: size.into() }
                    }
                    (b, _) => b,
                })
                .collect();
            (!billables.is_empty()).then(|| (item.id.clone(), item.kind.clone(), billables))
        })
        .collect()
}

#[derive(Serialize)]
struct Refreshed {
    cache: String,
    date: String,
    aws_prices: usize,
    azure_prices: usize,
}

/// Where `cost refresh` takes prices from.
struct Sources {
    aws_files: Vec<PathBuf>,
    azure_files: Vec<PathBuf>,
    aws_regions: Vec<String>,
    azure_regions: Vec<String>,
}

const AWS_API: &str = "AWS Price List API (GetProducts)";
const AZURE_API: &str = "Azure Retail Prices API";

/// Machine prices from saved responses and the live APIs, laid over the table in use and
/// cached; nothing is written unless every source was read.
async fn refresh(home: &Home, g: &Global, mut sources: Sources) -> Result<()> {
    let (mut table, _) = prices(home)?;
    let nothing_named = sources.aws_files.is_empty()
        && sources.azure_files.is_empty()
        && sources.aws_regions.is_empty()
        && sources.azure_regions.is_empty();
    if nothing_named {
        sources.aws_regions = table.regions("aws");
        sources.azure_regions = table.regions("azure");
    }
    let read = |path: &PathBuf| {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
    };
    let date = today();
    let mut counts = (0, 0);
    let count = |prices: &clouder_cost::refresh::MachinePrices| {
        prices.values().map(|s| s.len()).sum::<usize>()
    };
    for path in &sources.aws_files {
        let prices = clouder_cost::refresh::aws_machine_prices(&read(path)?)
            .with_context(|| path.display().to_string())?;
        counts.0 += count(&prices);
        table = table.with_machine_prices("aws", prices, AWS_API, &date);
    }
    for path in &sources.azure_files {
        let (prices, _) = clouder_cost::refresh::azure_machine_prices(&read(path)?)
            .with_context(|| path.display().to_string())?;
        counts.1 += count(&prices);
        table = table.with_machine_prices("azure", prices, AZURE_API, &date);
    }
    let offline = |e: clouder_cost::refresh::RefreshError| {
        anyhow::anyhow!(
            "{e}\n(offline? save the API's response where it is reachable and give it with --aws FILE / --azure FILE)"
        )
    };
    if !sources.aws_regions.is_empty() {
        let client = fetch::aws_client().await;
        for region in &sources.aws_regions {
            let prices = fetch::aws(&client, region).await.map_err(offline)?;
            counts.0 += count(&prices);
            table = table.with_machine_prices("aws", prices, AWS_API, &date);
        }
    }
    if !sources.azure_regions.is_empty() {
        let (http, base) = fetch::azure_client();
        for region in &sources.azure_regions {
            let prices = fetch::azure(&http, &base, region).await.map_err(offline)?;
            counts.1 += count(&prices);
            table = table.with_machine_prices("azure", prices, AZURE_API, &date);
        }
    }
    crate::home::private_dir(&home.root)?;
    let path = cache(home);
    write_private(&path, serde_json::to_string_pretty(&table)?.as_bytes())?;
    let out = Refreshed {
        cache: path.display().to_string(),
        date,
        aws_prices: counts.0,
        azure_prices: counts.1,
    };
    emit(g.output, &out, || {
        format!(
            "Price cache {} updated ({} AWS and {} Azure machine prices, dated {}).\n",
            out.cache, out.aws_prices, out.azure_prices, out.date
        )
    })
}

/// Today's date (UTC), YYYY-MM-DD.
fn today() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%d").to_string()
}
