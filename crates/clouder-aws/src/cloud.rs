//! The connection to one AWS account and region, and what every resource shares: clients with
//! call counting, the cluster's tags, a per-plan cache of tagged objects, error classification.

use crate::instrument::{CallCounter, Throttler};
use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use clouder_engine::calls::{CallStats, Calls};
use clouder_engine::{Error, Observed};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::OnceCell;

pub const CLUSTER_TAG: &str = "clouder.io/cluster";
pub const MANAGED_TAG: &str = "clouder.io/managed";
pub const RESOURCE_TAG: &str = "clouder.io/resource";

#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    pub region: Option<String>,
    /// A profile of the shared AWS config; credentials stay where the SDK finds them.
    pub profile: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(
        "no AWS credentials found ({0}); set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, \
         log in with `aws sso login`, or name a profile with `clouder ctx add NAME --provider aws --profile P`"
    )]
    NoCredentials(String),
    #[error("no AWS region: pass -r/--region, set spec.region, AWS_REGION, or a context region")]
    NoRegion,
}

/// Clients for one account and region.
#[derive(Debug)]
pub struct AwsCloud {
    pub ec2: aws_sdk_ec2::Client,
    pub elb: aws_sdk_elasticloadbalancingv2::Client,
    pub iam: aws_sdk_iam::Client,
    pub sts: aws_sdk_sts::Client,
    pub region: String,
    stats: Arc<CallStats>,
}

impl AwsCloud {
    /// Loads the SDK configuration and checks that credentials resolve, before any API call.
    pub async fn connect(options: &ConnectOptions) -> Result<Arc<Self>, ConnectError> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).retry_config(
            RetryConfig::standard()
                .with_max_attempts(8)
                .with_initial_backoff(Duration::from_millis(100))
                .with_max_backoff(Duration::from_secs(10)),
        );
        if let Some(region) = &options.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        if let Some(profile) = &options.profile {
            loader = loader.profile_name(profile);
        }
        if let Some(client) = Throttler::from_env() {
            loader = loader.http_client(client);
        }
        let config = loader.load().await;
        let region = config.region().ok_or(ConnectError::NoRegion)?.to_string();
        let provider = config
            .credentials_provider()
            .ok_or_else(|| ConnectError::NoCredentials("no provider configured".into()))?;
        use aws_credential_types::provider::ProvideCredentials;
        provider
            .provide_credentials()
            .await
            .map_err(|e| ConnectError::NoCredentials(e.to_string()))?;

        let stats = Arc::new(CallStats::default());
        let counter = CallCounter(stats.clone());
        Ok(Arc::new(AwsCloud {
            ec2: aws_sdk_ec2::Client::from_conf(
                aws_sdk_ec2::config::Builder::from(&config)
                    .interceptor(counter.clone())
                    .build(),
            ),
            elb: aws_sdk_elasticloadbalancingv2::Client::from_conf(
                aws_sdk_elasticloadbalancingv2::config::Builder::from(&config)
                    .interceptor(counter.clone())
                    .build(),
            ),
            iam: aws_sdk_iam::Client::from_conf(
                aws_sdk_iam::config::Builder::from(&config)
                    .interceptor(counter.clone())
                    .build(),
            ),
            sts: aws_sdk_sts::Client::from_conf(
                aws_sdk_sts::config::Builder::from(&config)
                    .interceptor(counter)
                    .build(),
            ),
            region,
            stats,
        }))
    }

    /// Clients that are never called, for rendering a region's graph without credentials
    /// (Terraform export, cost estimates).
    pub fn offline(region: &str) -> Arc<Self> {
        let config = aws_config::SdkConfig::builder()
            .region(aws_config::Region::new(region.to_string()))
            .behavior_version(BehaviorVersion::latest())
            .build();
        Arc::new(AwsCloud {
            ec2: aws_sdk_ec2::Client::new(&config),
            elb: aws_sdk_elasticloadbalancingv2::Client::new(&config),
            iam: aws_sdk_iam::Client::new(&config),
            sts: aws_sdk_sts::Client::new(&config),
            region: region.to_string(),
            stats: Arc::default(),
        })
    }

    /// API calls made so far through these clients.
    pub fn calls(&self) -> Calls {
        self.stats.snapshot()
    }

    /// The account the credentials belong to.
    pub async fn account_id(&self) -> Result<String, Error> {
        let out = self
            .sts
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| classify("reading the caller identity", e))?;
        Ok(out.account().unwrap_or_default().to_string())
    }
}

/// One cluster's view of the cloud: its name, tags and this plan's cache of tagged objects.
#[derive(Debug)]
pub struct Scope {
    pub cloud: Arc<AwsCloud>,
    pub cluster: String,
    cache: Mutex<HashMap<&'static str, Arc<OnceCell<Vec<Found>>>>>,
    pub(crate) image: OnceCell<String>,
    /// Distinguishes this run's idempotency tokens from earlier runs'.
    pub(crate) run_token: String,
}

/// An object seen in the cloud, with the graph id from its tag.
#[derive(Debug, Clone)]
pub struct Found {
    pub resource_id: Option<String>,
    pub observed: Observed,
}

impl Scope {
    pub fn new(cloud: Arc<AwsCloud>, cluster: &str) -> Arc<Self> {
        Arc::new(Scope {
            cloud,
            cluster: cluster.to_string(),
            cache: Mutex::default(),
            image: OnceCell::new(),
            run_token: format!("{:08x}", rand::random::<u32>()),
        })
    }

    /// Finds `id` among the objects of `kind`, listing that kind once per plan.
    pub async fn find<F, Fut>(
        &self,
        kind: &'static str,
        id: &str,
        list: F,
    ) -> Result<Option<Observed>, Error>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Vec<Found>, Error>>,
    {
        let all = self.found_all(kind, list).await?;
        Ok(all
            .iter()
            .find(|f| f.resource_id.as_deref() == Some(id))
            .map(|f| f.observed.clone()))
    }

    /// Every object of `kind`, listed once until [`Scope::refresh`]: a plan's finds and its
    /// orphan check share one describe call per kind.
    pub async fn found_all<F, Fut>(&self, kind: &'static str, list: F) -> Result<Vec<Found>, Error>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Vec<Found>, Error>>,
    {
        let cell = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(kind)
            .or_default()
            .clone();
        Ok(cell.get_or_try_init(list).await?.clone())
    }

    /// Forgets what was listed, so the next look sees the cloud as it is now.
    pub fn refresh(&self) {
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// `NAME-suffix`, the human name of an object.
    pub fn name(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.cluster)
    }

    /// The tags every object carries, as key/value pairs.
    pub fn tags(&self, resource_id: &str, name: &str) -> Vec<(String, String)> {
        vec![
            (CLUSTER_TAG.into(), self.cluster.clone()),
            (MANAGED_TAG.into(), "true".into()),
            (RESOURCE_TAG.into(), resource_id.into()),
            ("Name".into(), name.into()),
            (
                format!("kubernetes.io/cluster/{}", self.cluster),
                "owned".into(),
            ),
        ]
    }
}

/// Error codes that mean "try again later": throttling, capacity, eventual consistency.
const TRANSIENT_CODES: [&str; 11] = [
    "RequestLimitExceeded",
    "Throttling",
    "ThrottlingException",
    "InternalError",
    "ServiceUnavailable",
    "Unavailable",
    "InsufficientInstanceCapacity",
    "DependencyViolation",
    "ResourceInUse",
    "IncorrectState",
    "InvalidParameterValue.IamInstanceProfile",
];

pub fn is_not_found(code: Option<&str>) -> bool {
    code.is_some_and(|c| {
        c.ends_with(".NotFound")
            || c.ends_with("NotFound")
            || c == "NoSuchEntity"
            || c == "InvalidKeyPair.NotFound"
    })
}

/// Turns an SDK error into the engine's, deciding whether it is worth retrying.
pub fn classify<E, R>(what: &str, err: SdkError<E, R>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let code = err.code().map(str::to_string);
    let message = err.message().unwrap_or_default().to_string();
    let transient = match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(_) => code.as_deref().is_some_and(|c| {
            TRANSIENT_CODES.contains(&c)
                || is_not_found(Some(c))
                // IAM instance profiles take a while to be usable by EC2.
                || (c == "InvalidParameterValue" && message.contains("iamInstanceProfile"))
        }),
        _ => false,
    };
    let detail = DisplayErrorContext(&err).to_string();
    Error {
        message: format!("{what}: {detail}"),
        transient,
    }
}

/// `Ok(None)` for a not-found error, so finds and deletes are idempotent.
pub fn absent<T, E, R>(what: &str, result: Result<T, SdkError<E, R>>) -> Result<Option<T>, Error>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e) if is_not_found(e.code()) => Ok(None),
        Err(e) => Err(classify(what, e)),
    }
}
