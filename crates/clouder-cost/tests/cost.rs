//! Estimates against hand-computed totals, unknown prices, and price-API responses parsed
//! offline. The API fixtures follow the documented response shapes of the AWS Price List Query
//! API (GetProducts) and the Azure Retail Prices API, with mixed-in entries that must be left out.

use clouder_cost::refresh::{aws_machine_prices, azure_machine_prices};
use clouder_cost::{PriceTable, estimate};
use clouder_engine::Billable;

fn machine(id: &str, size: &str, disk_gb: u32) -> (String, String, Vec<Billable>) {
    (
        id.into(),
        "aws_instance".into(),
        vec![
            Billable::Machine { size: size.into() },
            Billable::Disk {
                class: "gp3".into(),
                gb: disk_gb,
            },
            Billable::PublicIpv4,
        ],
    )
}

fn load_balancer() -> (String, String, Vec<Billable>) {
    (
        "api-load-balancer".into(),
        "aws_lb".into(),
        vec![
            Billable::LoadBalancer {
                class: "network".into(),
            },
            Billable::PublicIpv4,
        ],
    )
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn one_control_plane_two_workers_in_us_east_1() {
    let items = vec![
        machine("instance/control-plane-0", "t3.large", 100),
        machine("instance/workers-0", "t3.xlarge", 100),
        machine("instance/workers-1", "t3.xlarge", 100),
        load_balancer(),
    ];
    let e = estimate(
        &PriceTable::embedded(),
        "embedded",
        "aws",
        "us-east-1",
        &items,
    );
    // By hand: machines 0.0832 + 2 × 0.1664 = 0.416; disks 3 × 100 GB × 0.08 / 730 h;
    // four public IPv4 (3 machines, 1 NLB) × 0.005 = 0.02; NLB 0.0225.
    let hourly = 0.416 + 300.0 * 0.08 / 730.0 + 0.02 + 0.0225;
    assert!(close(e.hourly, hourly), "{} vs {hourly}", e.hourly);
    assert!(close(e.days30, hourly * 720.0));
    assert!((e.days30 - 353.7912).abs() < 1e-3, "{}", e.days30);
    assert!(e.complete);
    assert_eq!(e.lines.len(), 11);
    assert_eq!(e.table.date, "2025-06-01");
    assert!(
        e.footer().contains("embedded table dated 2025-06-01"),
        "{}",
        e.footer()
    );
}

#[test]
fn eu_west_1_prices_differ_from_us_east_1() {
    let items = vec![machine("instance/control-plane-0", "t3.large", 50)];
    let e = estimate(
        &PriceTable::embedded(),
        "embedded",
        "aws",
        "eu-west-1",
        &items,
    );
    let hourly = 0.0912 + 50.0 * 0.088 / 730.0 + 0.005;
    assert!(close(e.hourly, hourly), "{} vs {hourly}", e.hourly);
}

#[test]
fn azure_disks_bill_the_smallest_tier_that_holds_them() {
    let table = PriceTable::embedded();
    let disk = |gb| Billable::Disk {
        class: "Premium_LRS".into(),
        gb,
    };
    // 100 GB → P10 (128 GB) at 19.71 a month; 129 GB → P15 (256 GB) at 38.01.
    assert!(close(
        table.hourly("azure", "eastus", &disk(100)).unwrap(),
        19.71 / 730.0
    ));
    assert!(close(
        table.hourly("azure", "eastus", &disk(129)).unwrap(),
        38.01 / 730.0
    ));
    assert!(table.hourly("azure", "eastus", &disk(5000)).is_err());
}

#[test]
fn an_unknown_size_or_region_is_unknown_never_zero() {
    let items = vec![
        machine("instance/control-plane-0", "t3.large", 100),
        machine("instance/workers-0", "x9.mega", 100),
    ];
    let e = estimate(
        &PriceTable::embedded(),
        "embedded",
        "aws",
        "us-east-1",
        &items,
    );
    assert!(!e.complete);
    let unknown = e.lines.iter().find(|l| l.hourly.is_none()).unwrap();
    assert_eq!(
        unknown.item,
        Billable::Machine {
            size: "x9.mega".into()
        }
    );
    assert_eq!(unknown.days30, None);
    assert!(unknown.note.as_deref().unwrap().contains("x9.mega"));
    // The known lines still add up; the total says it is a lower bound.
    let known = 0.0832 + 200.0 * 0.08 / 730.0 + 0.01;
    assert!(close(e.hourly, known), "{} vs {known}", e.hourly);
    assert!(e.footer().contains("at least"), "{}", e.footer());
    assert!(e.footer().contains("UNKNOWN price"), "{}", e.footer());
    let rows = e.render();
    assert!(rows.iter().any(|r| r[3] == "unknown" && r[4] == "unknown"));
    let json = serde_json::to_value(&e).unwrap();
    assert_eq!(json["complete"], false);
    assert!(json["lines"][3]["hourly"].is_null());

    let elsewhere = estimate(
        &PriceTable::embedded(),
        "embedded",
        "aws",
        "ap-south-2",
        &items[..1],
    );
    assert!(!elsewhere.complete);
    assert_eq!(elsewhere.hourly, 0.0);
    assert_eq!(
        elsewhere.unknown,
        vec!["no prices for aws region ap-south-2".to_string()]
    );
}

#[test]
fn aws_get_products_response_yields_linux_shared_on_demand_prices() {
    let body = include_str!("fixtures/aws-get-products.json");
    let prices = aws_machine_prices(body).unwrap();
    // Windows, dedicated tenancy and unused-reservation entries are left out.
    assert_eq!(prices["us-east-1"].len(), 1);
    assert_eq!(prices["us-east-1"]["t3.large"], 0.0832);
    assert_eq!(prices["eu-west-1"]["m7i.large"], 0.1118);

    let table = PriceTable::embedded().with_machine_prices(
        "aws",
        prices,
        "AWS Price List API",
        "2026-11-25",
    );
    assert_eq!(table.date, "2026-11-25");
    let m7i = Billable::Machine {
        size: "m7i.large".into(),
    };
    assert_eq!(table.hourly("aws", "eu-west-1", &m7i), Ok(0.1118));
    // Prices the response did not mention stay.
    let t3 = Billable::Machine {
        size: "t3.xlarge".into(),
    };
    assert_eq!(table.hourly("aws", "eu-west-1", &t3), Ok(0.1824));
}

#[test]
fn azure_retail_prices_page_yields_pay_as_you_go_linux_prices_and_the_next_page() {
    let body = include_str!("fixtures/azure-retail-prices.json");
    let (prices, next) = azure_machine_prices(body).unwrap();
    // Windows, Spot and reservation items are left out.
    assert_eq!(prices["eastus"]["Standard_D4s_v5"], 0.192);
    assert_eq!(prices["westeurope"]["Standard_D4s_v5"], 0.23);
    assert_eq!(prices.values().map(|s| s.len()).sum::<usize>(), 2);
    assert!(next.unwrap().contains("$skip=100"));
}

#[test]
fn malformed_responses_are_errors_not_empty_tables() {
    assert!(aws_machine_prices("{\"FormatVersion\":\"aws_v1\"}").is_err());
    assert!(aws_machine_prices("<html>").is_err());
    assert!(azure_machine_prices("{\"Items\": 3}").is_err());
}

/// A cluster created with the defaults is priced in full, wherever the embedded table has prices
/// for its cloud: the default machine sizes of the spec are in every region of the table.
#[test]
fn the_default_machine_sizes_are_priced_in_every_region_of_the_embedded_table() {
    let table = PriceTable::embedded();
    for cloud in ["aws", "azure"] {
        let text = format!(
            "apiVersion: clouder.io/v1alpha1\nkind: Cluster\nmetadata: {{name: priced}}\nspec:\n  provider: {cloud}\n  nodePools: [{{name: workers, count: 1}}]\n"
        );
        let mut spec: clouder_spec::Cluster =
            clouder_spec::from_yaml("defaults.yaml", &text).unwrap();
        spec.apply_defaults();
        let sizes = [&spec.spec.control_plane.size, &spec.spec.node_pools[0].size];
        let regions = table.regions(cloud);
        assert!(!regions.is_empty());
        for region in &regions {
            for size in sizes {
                let machine = Billable::Machine { size: size.clone() };
                assert!(
                    table.hourly(cloud, region, &machine).is_ok(),
                    "{cloud} {region}: default size {size} has no price"
                );
            }
        }
    }
}
