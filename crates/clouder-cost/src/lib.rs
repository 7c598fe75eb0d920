//! What a cluster costs, from the same graph apply executes: every resource says what it is
//! billed for ([`clouder_engine::Billable`]), a dated price table prices it by provider and
//! region. A price the table lacks is reported as unknown, never counted as zero.
//!
//! The embedded table (`prices.json`) names its source and date; `clouder cost refresh`
//! writes a newer one from the providers' public price APIs (see [`refresh`]).

pub mod fetch;
pub mod refresh;

use clouder_engine::Billable;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Hours a GB-month price is spread over (AWS and Azure bill storage by 730-hour months).
pub const HOURS_PER_MONTH: f64 = 730.0;
/// The estimate's period: 30 days.
pub const HOURS_PER_30_DAYS: f64 = 720.0;

const EMBEDDED: &str = include_str!("prices.json");

/// What the estimate leaves out, printed with every estimate.
pub const ASSUMPTIONS: &[&str] = &[
    "on-demand list prices; no discounts, savings plans or reserved capacity",
    "data transfer out (egress) and load-balancer capacity units (LCU) not included",
    "no NAT gateway: nodes reach the internet through their public IPv4 address",
    "GB-month prices spread over 730 hours; 30 days = 720 hours",
];

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RegionPrices {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub machine_hour: BTreeMap<String, f64>,
    /// Per GB-month, by disk class (AWS EBS).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub disk_gb_month: BTreeMap<String, f64>,
    /// (tier size in GB, price per month), ascending, by disk class (Azure managed disks bill
    /// the smallest tier that holds the disk).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub disk_tier_month: BTreeMap<String, Vec<(u32, f64)>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub load_balancer_hour: BTreeMap<String, f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_ipv4_hour: Option<f64>,
}

/// Prices by cloud and region, with where they came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriceTable {
    pub source: String,
    /// When the prices were read (YYYY-MM-DD).
    pub date: String,
    pub currency: String,
    pub clouds: BTreeMap<String, BTreeMap<String, RegionPrices>>,
}

#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("price table {path}: {message}")]
    Invalid { path: String, message: String },
}

impl PriceTable {
    /// The table built into this binary.
    pub fn embedded() -> Self {
        serde_json::from_str(EMBEDDED).expect("the embedded price table parses")
    }

    /// A table written by `cost refresh`.
    pub fn parse(path: &str, text: &str) -> Result<Self, TableError> {
        serde_json::from_str(text).map_err(|e| TableError::Invalid {
            path: path.to_string(),
            message: e.to_string(),
        })
    }

    /// The regions this table prices for `cloud`.
    pub fn regions(&self, cloud: &str) -> Vec<String> {
        self.clouds
            .get(cloud)
            .map(|regions| regions.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn region(&self, cloud: &str, region: &str) -> Option<&RegionPrices> {
        self.clouds.get(cloud)?.get(region)
    }

    /// The hourly price of one billable, or why there is none.
    pub fn hourly(&self, cloud: &str, region: &str, item: &Billable) -> Result<f64, String> {
        let Some(p) = self.region(cloud, region) else {
            return Err(format!("no prices for {cloud} region {region}"));
        };
        let missing = |what: &str| format!("no price for {what} in {cloud} {region}");
        match item {
            Billable::Machine { size } => p
                .machine_hour
                .get(size)
                .copied()
                .ok_or_else(|| missing(&format!("machine size {size}"))),
            Billable::Disk { class, gb } => {
                if let Some(per_gb) = p.disk_gb_month.get(class) {
                    return Ok(per_gb * f64::from(*gb) / HOURS_PER_MONTH);
                }
                let tiers = p
                    .disk_tier_month
                    .get(class)
                    .ok_or_else(|| missing(&format!("disk class {class}")))?;
                tiers
                    .iter()
                    .find(|(size, _)| size >= gb)
                    .map(|(_, month)| month / HOURS_PER_MONTH)
                    .ok_or_else(|| missing(&format!("a {class} disk of {gb} GB")))
            }
            Billable::LoadBalancer { class } => p
                .load_balancer_hour
                .get(class)
                .copied()
                .ok_or_else(|| missing(&format!("{class} load balancer"))),
            Billable::PublicIpv4 => p.public_ipv4_hour.ok_or_else(|| missing("public IPv4")),
        }
    }
}

/// Which table an estimate used.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableInfo {
    /// `embedded` or the cache file's path.
    pub origin: String,
    pub source: String,
    pub date: String,
}

/// One priced line: a resource's billable.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Line {
    pub resource: String,
    pub kind: String,
    pub item: Billable,
    /// `None`: unknown (see `note`); never zero by default.
    pub hourly: Option<f64>,
    pub days30: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Line {
    /// Short text of what is billed: `t3.large`, `gp3 100 GB`, `network load balancer`.
    pub fn describe(&self) -> String {
        match &self.item {
            Billable::Machine { size } => format!("machine {size}"),
            Billable::Disk { class, gb } => format!("disk {class} {gb} GB"),
            Billable::LoadBalancer { class } => format!("{class} load balancer"),
            Billable::PublicIpv4 => "public IPv4 address".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Estimate {
    pub provider: String,
    pub region: String,
    pub currency: String,
    pub table: TableInfo,
    pub lines: Vec<Line>,
    /// Sums of the known lines.
    pub hourly: f64,
    pub days30: f64,
    /// False when some line's price is unknown: the totals are then lower bounds.
    pub complete: bool,
    pub unknown: Vec<String>,
    pub assumptions: Vec<String>,
}

/// Prices `items` — (resource id, kind, what it is billed for) — for `cloud` and `region`.
pub fn estimate(
    table: &PriceTable,
    origin: &str,
    cloud: &str,
    region: &str,
    items: &[(String, String, Vec<Billable>)],
) -> Estimate {
    let mut lines = Vec::new();
    let mut unknown = Vec::new();
    for (resource, kind, billables) in items {
        for item in billables {
            let (hourly, note) = match table.hourly(cloud, region, item) {
                Ok(h) => (Some(h), None),
                Err(why) => {
                    if !unknown.contains(&why) {
                        unknown.push(why.clone());
                    }
                    (None, Some(format!("unknown: {why}")))
                }
            };
            lines.push(Line {
                resource: resource.clone(),
                kind: kind.clone(),
                item: item.clone(),
                hourly,
                days30: hourly.map(|h| h * HOURS_PER_30_DAYS),
                note,
            });
        }
    }
    let hourly: f64 = lines.iter().filter_map(|l| l.hourly).sum();
    Estimate {
        provider: cloud.to_string(),
        region: region.to_string(),
        currency: table.currency.clone(),
        table: TableInfo {
            origin: origin.to_string(),
            source: table.source.clone(),
            date: table.date.clone(),
        },
        complete: unknown.is_empty(),
        unknown,
        lines,
        hourly,
        days30: hourly * HOURS_PER_30_DAYS,
        assumptions: ASSUMPTIONS.iter().map(|a| a.to_string()).collect(),
    }
}

impl Estimate {
    /// The table view: one row per line, then totals, the table used and the assumptions.
    pub fn render(&self) -> Vec<Vec<String>> {
        let money = |v: Option<f64>, places: usize| match v {
            Some(v) => format!("{v:.places$}"),
            None => "unknown".into(),
        };
        self.lines
            .iter()
            .map(|l| {
                vec![
                    l.resource.clone(),
                    l.kind.clone(),
                    l.describe(),
                    money(l.hourly, 4),
                    money(l.days30, 2),
                ]
            })
            .collect()
    }

    /// Totals, the price table used and what is left out, as text under the table.
    pub fn footer(&self) -> String {
        let bound = if self.complete { "" } else { "at least " };
        let mut text = format!(
            "Total ({} {}): {bound}{:.4} {cur}/hour, {bound}{:.2} {cur} per 30 days\n",
            self.provider,
            self.region,
            self.hourly,
            self.days30,
            cur = self.currency
        );
        for why in &self.unknown {
            text += &format!("UNKNOWN price, not counted: {why}\n");
        }
        text += &format!(
            "Prices: {} table dated {} ({})\n",
            self.table.origin, self.table.date, self.table.source
        );
        text += &format!("Not included: {}\n", self.assumptions.join("; "));
        text
    }
}
