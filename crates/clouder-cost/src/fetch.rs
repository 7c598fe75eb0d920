//! Current machine prices straight from the providers' price APIs (`clouder cost refresh`
//! without saved files):
//!
//! - AWS Price List Query API, `GetProducts` for `AmazonEC2` filtered to one region's Linux,
//!   shared-tenancy machines, paged by `NextToken`. It needs AWS credentials (any principal
//!   allowed `pricing:GetProducts`), is served from us-east-1, and its address follows the SDK's
//!   settings (`AWS_ENDPOINT_URL_PRICING`, `AWS_ENDPOINT_URL`).
//! - Azure Retail Prices API, public and unauthenticated, paged by `NextPageLink`
//!   (`CLOUDER_AZURE_PRICES_URL` replaces its address).

use crate::refresh::{
    MachinePrices, RefreshError, add_aws_product, aws_product, azure_machine_prices, bad, merge,
};
use aws_sdk_pricing::error::DisplayErrorContext;
use aws_sdk_pricing::types::{Filter, FilterType};

pub const AZURE_RETAIL_PRICES: &str = "https://prices.azure.com/api/retail/prices";

/// A bound on pages per region, so a server that keeps linking pages cannot hold us forever.
const MAX_PAGES: usize = 2000;

/// A client of the AWS Price List Query API in us-east-1, with the SDK's usual credentials.
pub async fn aws_client() -> aws_sdk_pricing::Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .load()
        .await;
    aws_sdk_pricing::Client::new(&config)
}

/// A client for the Azure Retail Prices API and its address.
pub fn azure_client() -> (reqwest::Client, String) {
    let base = std::env::var("CLOUDER_AZURE_PRICES_URL")
        .unwrap_or_else(|_| AZURE_RETAIL_PRICES.to_string());
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .unwrap_or_default();
    (http, base)
}

/// On-demand Linux hourly prices of `region`'s EC2 machines, every page of them.
pub async fn aws(
    client: &aws_sdk_pricing::Client,
    region: &str,
) -> Result<MachinePrices, RefreshError> {
    let what = format!("AWS Price List API (GetProducts, {region})");
    let filters = [
        ("regionCode", region),
        ("operatingSystem", "Linux"),
        ("tenancy", "Shared"),
        ("preInstalledSw", "NA"),
        ("capacitystatus", "Used"),
    ]
    .into_iter()
    .map(|(field, value)| {
        Filter::builder()
            .r#type(FilterType::TermMatch)
            .field(field)
            .value(value)
            .build()
            .map_err(|e| bad(&what, e.to_string()))
    })
    .collect::<Result<Vec<_>, _>>()?;
    let mut prices = MachinePrices::new();
    let mut token = None;
    for _ in 0..MAX_PAGES {
        let page = client
            .get_products()
            .service_code("AmazonEC2")
            .format_version("aws_v1")
            .set_filters(Some(filters.clone()))
            .max_results(100)
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| bad(&what, DisplayErrorContext(&e).to_string()))?;
        for text in page.price_list() {
            add_aws_product(&mut prices, &aws_product(text)?);
        }
        token = page.next_token;
        if token.is_none() {
            return Ok(prices);
        }
    }
    Err(bad(&what, format!("more than {MAX_PAGES} pages")))
}

/// Pay-as-you-go Linux hourly prices of `region`'s virtual machines, every page of them.
pub async fn azure(
    http: &reqwest::Client,
    base: &str,
    region: &str,
) -> Result<MachinePrices, RefreshError> {
    let what = format!("Azure Retail Prices API ({region})");
    let filter = format!(
        "serviceName eq 'Virtual Machines' and armRegionName eq '{region}' and priceType eq 'Consumption'"
    );
    let mut url = reqwest::Url::parse_with_params(base, [("$filter", filter)])
        .map_err(|e| bad(&what, format!("{base}: {e}")))?;
    let mut prices = MachinePrices::new();
    for _ in 0..MAX_PAGES {
        let response = http
            .get(url.clone())
            .send()
            .await
            .map_err(|e| bad(&what, format!("{url}: {e}")))?;
        let status = response.status();
        let body = response
            .text()
            .await
            .map_err(|e| bad(&what, format!("{url}: {e}")))?;
        if !status.is_success() {
            let start: String = body.chars().take(300).collect();
            return Err(bad(&what, format!("{url} answered {status}: {start}")));
        }
        let (page, next) = azure_machine_prices(&body)?;
        merge(&mut prices, page);
        match next {
            Some(next) => {
                url = reqwest::Url::parse(&next)
                    .map_err(|e| bad(&what, format!("next page link {next}: {e}")))?
            }
            None => return Ok(prices),
        }
    }
    Err(bad(&what, format!("more than {MAX_PAGES} pages")))
}
