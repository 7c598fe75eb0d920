//! Watches every SDK call: counts calls (mutating ones drive fault injection), notices
//! throttling, and — for tests and benchmarks — makes the network worse on purpose:
//! `CLOUDER_FAULT_THROTTLE=K` answers every K-th request with a throttling error before it leaves
//! the process (the SDK's retry path, for real), `CLOUDER_FAULT_LATENCY_MS=N` adds a cloud's round
//! trip to every request (a local emulator answers in microseconds).

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeDeserializationInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse, Metadata};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::ConfigBag;
use clouder_engine::calls::CallStats;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub const THROTTLE_ENV: &str = "CLOUDER_FAULT_THROTTLE";
pub const LATENCY_ENV: &str = "CLOUDER_FAULT_LATENCY_MS";

/// Read calls; everything else changes the world.
fn is_mutating(operation: &str) -> bool {
    !["Describe", "Get", "List"]
        .iter()
        .any(|p| operation.starts_with(p))
}

const THROTTLE_CODES: [&str; 4] = [
    "RequestLimitExceeded",
    "Throttling",
    "ThrottlingException",
    "SlowDown",
];

#[derive(Debug, Clone)]
pub struct CallCounter(pub Arc<CallStats>);

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "clouder-call-counter"
    }

    fn read_before_deserialization(
        &self,
        context: &BeforeDeserializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let response = context.response();
        let status = response.status().as_u16();
        let body = response
            .body()
            .bytes()
            .map(String::from_utf8_lossy)
            .unwrap_or_default();
        if status == 429
            || status == 503
            || THROTTLE_CODES
                .iter()
                .any(|c| body.contains(&format!("<Code>{c}</Code>")))
        {
            self.0.record_throttled();
        }
        Ok(())
    }

    fn read_after_execution(
        &self,
        _: &FinalizerInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(meta) = cfg.load::<Metadata>() {
            self.0.record(meta.name(), is_mutating(meta.name()));
        }
        Ok(())
    }
}

/// Wraps the SDK's HTTP client to make the network worse on purpose, for tests and benchmarks:
/// every `throttle_every`-th request is refused as throttled, and every request waits `latency`
/// first (a cloud's round trip, which a local emulator does not have).
#[derive(Debug)]
pub struct Throttler {
    inner: SharedHttpClient,
    every: Option<u64>,
    latency: Option<std::time::Duration>,
    seen: Arc<AtomicU64>,
}

impl Throttler {
    /// From `CLOUDER_FAULT_THROTTLE` (a number ≥ 2) and `CLOUDER_FAULT_LATENCY_MS`, if either is set.
    pub fn from_env() -> Option<SharedHttpClient> {
        let number = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
        let every = number(THROTTLE_ENV).filter(|&k| k >= 2);
        let latency = number(LATENCY_ENV)
            .filter(|&ms| ms > 0)
            .map(std::time::Duration::from_millis);
        if every.is_none() && latency.is_none() {
            return None;
        }
        let inner = aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::AwsLc,
            ))
            .build_https();
        Some(SharedHttpClient::new(Throttler {
            inner,
            every,
            latency,
            seen: Arc::default(),
        }))
    }
}

impl HttpClient for Throttler {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(ThrottlingConnector {
            inner: self.inner.http_connector(settings, components),
            every: self.every,
            latency: self.latency,
            seen: self.seen.clone(),
        })
    }
}

#[derive(Debug)]
struct ThrottlingConnector {
    inner: SharedHttpConnector,
    every: Option<u64>,
    latency: Option<std::time::Duration>,
    seen: Arc<AtomicU64>,
}

impl HttpConnector for ThrottlingConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let n = self.seen.fetch_add(1, Ordering::SeqCst) + 1;
        if !self.every.is_some_and(|every| n.is_multiple_of(every)) {
            let Some(latency) = self.latency else {
                return self.inner.call(request);
            };
            let inner = self.inner.clone();
            return HttpConnectorFuture::new(async move {
                tokio::time::sleep(latency).await;
                inner.call(request).await
            });
        }
        // EC2 speaks its own error dialect; IAM, ELBv2 and STS the query one.
        let ec2 = request
            .body()
            .bytes()
            .is_some_and(|b| String::from_utf8_lossy(b).contains("Version=2016-11-15"));
        let (status, body) = if ec2 {
            (
                503,
                "<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>injected</RequestID></Response>",
            )
        } else {
            (
                400,
                "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>injected</RequestId></ErrorResponse>",
            )
        };
        let mut response = HttpResponse::new(
            status.try_into().expect("valid status"),
            SdkBody::from(body),
        );
        response.headers_mut().insert("content-type", "text/xml");
        HttpConnectorFuture::ready(Ok(response))
    }
}
