//! Reading the providers' public price API responses into a [`PriceTable`]:
//!
//! - AWS Price List Query API, `GetProducts` for `AmazonEC2` (e.g. `aws pricing get-products
//!   --region us-east-1 --service-code AmazonEC2 --filters Type=TERM_MATCH,Field=operatingSystem,Value=Linux …`):
//!   `PriceList` holds one JSON document per product, as a string.
//! - Azure Retail Prices API (`https://prices.azure.com/api/retail/prices?$filter=serviceName eq
//!   'Virtual Machines' and armRegionName eq 'eastus'`): `Items`, paged by `NextPageLink`.
//!
//! Only Linux, shared-tenancy, on-demand (pay-as-you-go) machine prices are taken.

use crate::PriceTable;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// Machine prices per hour, by region and size.
pub type MachinePrices = BTreeMap<String, BTreeMap<String, f64>>;

#[derive(Debug, thiserror::Error)]
#[error("{what}: {message}")]
pub struct RefreshError {
    pub what: String,
    pub message: String,
}

pub(crate) fn bad(what: &str, message: impl Into<String>) -> RefreshError {
    RefreshError {
        what: what.to_string(),
        message: message.into(),
    }
}

/// On-demand Linux hourly prices from an AWS `GetProducts` response body.
pub fn aws_machine_prices(body: &str) -> Result<MachinePrices, RefreshError> {
    let response: Value =
        serde_json::from_str(body).map_err(|e| bad(AWS_RESPONSE, e.to_string()))?;
    let list = response["PriceList"]
        .as_array()
        .ok_or_else(|| bad(AWS_RESPONSE, "no PriceList array"))?;
    let mut prices = MachinePrices::new();
    for entry in list {
        // The API returns each product as a JSON string; the bulk files as objects.
        let product: Value = match entry {
            Value::String(text) => aws_product(text)?,
            other => other.clone(),
        };
        add_aws_product(&mut prices, &product);
    }
    Ok(prices)
}

const AWS_RESPONSE: &str = "AWS GetProducts response";

/// One product of a `GetProducts` page, which the API sends as a JSON string.
pub(crate) fn aws_product(text: &str) -> Result<Value, RefreshError> {
    serde_json::from_str(text).map_err(|e| bad(AWS_RESPONSE, e.to_string()))
}

/// Adds `product`'s hourly price when it is a Linux, shared-tenancy, on-demand machine.
pub(crate) fn add_aws_product(prices: &mut MachinePrices, product: &Value) {
    let a = &product["product"]["attributes"];
    let linux_shared = a["operatingSystem"] == "Linux"
        && a["tenancy"] == "Shared"
        && a["preInstalledSw"] == "NA"
        && a["capacitystatus"] == "Used"
        && a["licenseModel"] == "No License required";
    let (Some(size), Some(region)) = (a["instanceType"].as_str(), a["regionCode"].as_str()) else {
        return;
    };
    if !linux_shared {
        return;
    }
    let hourly = product["terms"]["OnDemand"]
        .as_object()
        .into_iter()
        .flat_map(|terms| terms.values())
        .filter_map(|term| term["priceDimensions"].as_object())
        .flat_map(|dims| dims.values())
        .filter(|dim| dim["unit"] == "Hrs")
        .filter_map(|dim| dim["pricePerUnit"]["USD"].as_str()?.parse::<f64>().ok())
        .find(|price| *price > 0.0);
    if let Some(hourly) = hourly {
        prices
            .entry(region.to_string())
            .or_default()
            .insert(size.to_string(), hourly);
    }
}

/// Lays `more` over `prices`.
pub(crate) fn merge(prices: &mut MachinePrices, more: MachinePrices) {
    for (region, sizes) in more {
        prices.entry(region).or_default().extend(sizes);
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AzureItem {
    currency_code: String,
    retail_price: f64,
    arm_region_name: String,
    arm_sku_name: String,
    product_name: String,
    sku_name: String,
    service_name: String,
    unit_of_measure: String,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AzurePage {
    items: Vec<AzureItem>,
    next_page_link: Option<String>,
}

/// Pay-as-you-go Linux hourly prices from one Azure Retail Prices page, and the next page's
/// link if any.
pub fn azure_machine_prices(body: &str) -> Result<(MachinePrices, Option<String>), RefreshError> {
    let page: AzurePage = serde_json::from_str(body)
        .map_err(|e| bad("Azure Retail Prices response", e.to_string()))?;
    let mut prices = MachinePrices::new();
    for item in page.items {
        let linux_on_demand = item.service_name == "Virtual Machines"
            && item.kind == "Consumption"
            && item.unit_of_measure == "1 Hour"
            && item.currency_code == "USD"
            && !item.product_name.contains("Windows")
            && !item.sku_name.contains("Spot")
            && !item.sku_name.contains("Low Priority");
        if linux_on_demand && item.retail_price > 0.0 {
            prices
                .entry(item.arm_region_name)
                .or_default()
                .insert(item.arm_sku_name, item.retail_price);
        }
    }
    Ok((prices, page.next_page_link))
}

impl PriceTable {
    /// This table with `prices` laid over `cloud`'s machine prices, re-dated and re-sourced.
    pub fn with_machine_prices(
        mut self,
        cloud: &str,
        prices: MachinePrices,
        source: &str,
        date: &str,
    ) -> Self {
        let regions = self.clouds.entry(cloud.to_string()).or_default();
        for (region, sizes) in prices {
            regions
                .entry(region)
                .or_default()
                .machine_hour
                .extend(sizes);
        }
        self.source = format!("{source}; other prices from: {}", self.source);
        self.date = date.to_string();
        self
    }
}
