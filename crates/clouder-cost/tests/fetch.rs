//! Live price refresh against a local server replaying the price APIs' recorded pages (the
//! machines here reach no price API): every page is followed, the request carries what the API
//! expects (filters, protocol headers), paging gives the same prices as one whole page, and a
//! refusal is reported with the API's own words.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use clouder_cost::fetch;
use clouder_cost::refresh::{aws_machine_prices, azure_machine_prices};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// What the server saw: one entry per request.
type Seen = Arc<Mutex<Vec<Value>>>;
/// A recorded page's entries, split in two pages.
type Pages = Arc<(Vec<Value>, Vec<Value>)>;

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{address}")
}

/// The recorded Azure page split in two, the first linking to the second as the API does.
async fn azure_server(seen: Seen, fail: bool) -> String {
    let page: Value = serde_json::from_str(&fixture("azure-retail-prices.json")).unwrap();
    let items = page["Items"].as_array().unwrap().clone();
    let (first, second) = items.split_at(items.len() / 2);
    let pages = Arc::new((first.to_vec(), second.to_vec()));
    let base = Arc::new(Mutex::new(String::new()));
    let state = (seen, pages, base.clone());
    let router = Router::new()
        .route(
            "/api/retail/prices",
            get(
                move |State((seen, pages, base)): State<(Seen, Pages, Arc<Mutex<String>>)>,
                      Query(query): Query<HashMap<String, String>>| async move {
                    seen.lock().unwrap().push(json!(query));
                    if fail {
                        return (
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "upstream timeout".to_string(),
                        );
                    }
                    let filter = &query["$filter"];
                    let body = match query.get("$skip") {
                        None => json!({
                            "BillingCurrency": "USD", "Items": pages.0,
                            "NextPageLink": format!("{}/api/retail/prices?$filter={}&$skip=100",
                                base.lock().unwrap(), urlencode(filter)),
                            "Count": pages.0.len(),
                        }),
                        Some(_) => json!({
                            "BillingCurrency": "USD", "Items": pages.1,
                            "NextPageLink": null, "Count": pages.1.len(),
                        }),
                    };
                    (StatusCode::OK, body.to_string())
                },
            ),
        )
        .with_state(state);
    let address = serve(router).await;
    *base.lock().unwrap() = address.clone();
    address
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn azure_prices_are_read_from_every_page_of_the_retail_prices_api() {
    let seen = Seen::default();
    let base = azure_server(seen.clone(), false).await;
    let http = reqwest::Client::new();
    let prices = fetch::azure(&http, &format!("{base}/api/retail/prices"), "eastus")
        .await
        .unwrap();
    let (whole, _) = azure_machine_prices(&fixture("azure-retail-prices.json")).unwrap();
    assert!(!whole.is_empty());
    assert_eq!(prices, whole, "two pages give what the whole page gives");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(
        seen[0]["$filter"],
        "serviceName eq 'Virtual Machines' and armRegionName eq 'eastus' and priceType eq 'Consumption'"
    );
    assert_eq!(
        seen[1]["$skip"], "100",
        "the second request follows NextPageLink"
    );
}

#[tokio::test]
async fn an_azure_price_api_error_is_reported_with_its_status_and_words() {
    let base = azure_server(Seen::default(), true).await;
    let err = fetch::azure(
        &reqwest::Client::new(),
        &format!("{base}/api/retail/prices"),
        "eastus",
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("Azure Retail Prices API (eastus)")
            && err.contains("500")
            && err.contains("upstream timeout"),
        "{err}"
    );
}

/// The recorded GetProducts page split in two, linked by `NextToken`, over the JSON 1.1
/// protocol the SDK speaks; `deny` answers as AWS does to a principal without the permission.
async fn aws_server(seen: Seen, deny: bool) -> String {
    let page: Value = serde_json::from_str(&fixture("aws-get-products.json")).unwrap();
    let list = page["PriceList"].as_array().unwrap().clone();
    let (first, second) = list.split_at(list.len() / 2);
    let pages = Arc::new((first.to_vec(), second.to_vec()));
    let router = Router::new()
        .route(
            "/",
            post(
                move |State((seen, pages)): State<(Seen, Pages)>,
                      headers: HeaderMap,
                      body: String| async move {
                    let request: Value = serde_json::from_str(&body).unwrap();
                    seen.lock().unwrap().push(json!({
                        "target": headers["x-amz-target"].to_str().unwrap(),
                        "request": request,
                    }));
                    let reply = if deny {
                        let body = json!({"__type": "AccessDeniedException",
                            "Message": "User is not authorized to perform: pricing:GetProducts"});
                        (StatusCode::BAD_REQUEST, body)
                    } else if request.get("NextToken").is_none() {
                        (StatusCode::OK, json!({"FormatVersion": "aws_v1", "PriceList": pages.0, "NextToken": "page-2"}))
                    } else {
                        (StatusCode::OK, json!({"FormatVersion": "aws_v1", "PriceList": pages.1}))
                    };
                    (
                        reply.0,
                        [("content-type", "application/x-amz-json-1.1")],
                        reply.1.to_string(),
                    )
                },
            ),
        )
        .with_state((seen, pages));
    serve(router).await
}

fn pricing_client(base: &str) -> aws_sdk_pricing::Client {
    let config = aws_sdk_pricing::Config::builder()
        .behavior_version(aws_sdk_pricing::config::BehaviorVersion::latest())
        .region(aws_sdk_pricing::config::Region::new("us-east-1"))
        .endpoint_url(base)
        .credentials_provider(aws_sdk_pricing::config::Credentials::new(
            "AKIDTEST", "secret", None, None, "test",
        ))
        .build();
    aws_sdk_pricing::Client::from_conf(config)
}

#[tokio::test]
async fn aws_prices_are_read_from_every_page_of_get_products_for_one_region() {
    let seen = Seen::default();
    let base = aws_server(seen.clone(), false).await;
    let prices = fetch::aws(&pricing_client(&base), "us-east-1")
        .await
        .unwrap();
    let whole = aws_machine_prices(&fixture("aws-get-products.json")).unwrap();
    assert!(!whole.is_empty());
    assert_eq!(prices, whole, "two pages give what the whole page gives");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0]["target"], "AWSPriceListService.GetProducts");
    let request = &seen[0]["request"];
    assert_eq!(request["ServiceCode"], "AmazonEC2");
    let filters: Vec<(String, String)> = request["Filters"]
        .as_array()
        .unwrap()
        .iter()
        .inspect(|f| assert_eq!(f["Type"], "TERM_MATCH"))
        .map(|f| {
            (
                f["Field"].as_str().unwrap().into(),
                f["Value"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(
        filters.contains(&("regionCode".into(), "us-east-1".into())),
        "{filters:?}"
    );
    assert!(
        filters.contains(&("operatingSystem".into(), "Linux".into())),
        "{filters:?}"
    );
    assert_eq!(seen[1]["request"]["NextToken"], "page-2");
}

#[tokio::test]
async fn an_aws_refusal_is_reported_with_its_code() {
    let base = aws_server(Seen::default(), true).await;
    let err = fetch::aws(&pricing_client(&base), "us-east-1")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("AWS Price List API (GetProducts, us-east-1)")
            && err.contains("AccessDeniedException"),
        "{err}"
    );
}
