//! Serving certificates for addons' admission webhooks. An addon's Secret annotated with
//! [`TLS_FOR`] gets a CA and a certificate for the named Service, made once and kept in the
//! cluster: a re-apply reads them back, so it changes nothing. Every webhook configuration of the
//! addon that calls that Service trusts the CA (`caBundle`).

use crate::apply::Applier;
use crate::manifest::ObjectRef;
use crate::{Error, Result};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use kube::api::DynamicObject;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use serde_json::json;

/// On a Secret: the Service (`NAME.NAMESPACE.svc`) whose serving certificate it holds.
pub const TLS_FOR: &str = "clouder.io/webhook-tls-for";

struct Tls {
    ca: String,
    cert: String,
    key: String,
}

/// A CA and a certificate for `service` (`NAME.NAMESPACE.svc`), valid for ten years, as the
/// upstream charts generate them.
fn generate(service: &str) -> Result<Tls> {
    let failed =
        |e: rcgen::Error| Error::Refused(format!("making a certificate for {service}: {e}"));
    let ten_years = time::Duration::days(3650);
    let now = time::OffsetDateTime::now_utc();
    let ca_key = KeyPair::generate().map_err(failed)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(failed)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, format!("{service} webhook CA"));
    (ca.not_before, ca.not_after) = (now, now + ten_years);
    let ca_cert = ca.self_signed(&ca_key).map_err(failed)?;
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().map_err(failed)?;
    let mut leaf = CertificateParams::new(vec![
        service.to_string(),
        format!("{service}.cluster.local"),
    ])
    .map_err(failed)?;
    leaf.distinguished_name.push(DnType::CommonName, service);
    (leaf.not_before, leaf.not_after) = (now, now + ten_years);
    let cert = leaf.signed_by(&key, &issuer).map_err(failed)?;
    Ok(Tls {
        ca: ca_cert.pem(),
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// The certificates the cluster holds in `secret` already, if complete.
async fn kept(applier: &Applier, secret: &DynamicObject) -> Result<Option<Tls>> {
    let Some(found) = applier.find(&ObjectRef::of(secret)).await? else {
        return Ok(None);
    };
    let field = |k: &str| -> Option<String> {
        let b64 = found.data["data"][k].as_str()?;
        String::from_utf8(STANDARD.decode(b64).ok()?).ok()
    };
    Ok(
        match (field("ca.crt"), field("tls.crt"), field("tls.key")) {
            (Some(ca), Some(cert), Some(key)) => Some(Tls { ca, cert, key }),
            _ => None,
        },
    )
}

/// Fills the webhook Secrets of `objects` and the `caBundle` of the webhooks that call them.
pub async fn fill(applier: &Applier, objects: &mut [DynamicObject]) -> Result<()> {
    let secrets: Vec<(usize, String)> = objects
        .iter()
        .enumerate()
        .filter_map(|(i, o)| {
            let service = o.metadata.annotations.as_ref()?.get(TLS_FOR)?;
            Some((i, service.clone()))
        })
        .collect();
    for (i, service) in secrets {
        let tls = match kept(applier, &objects[i]).await? {
            Some(tls) => tls,
            None => generate(&service)?,
        };
        objects[i].data["data"] = json!({
            "ca.crt": STANDARD.encode(&tls.ca),
            "tls.crt": STANDARD.encode(&tls.cert),
            "tls.key": STANDARD.encode(&tls.key),
        });
        let bundle = STANDARD.encode(&tls.ca);
        for o in objects.iter_mut() {
            let kind = ObjectRef::of(o).kind;
            if !kind.ends_with("WebhookConfiguration") {
                continue;
            }
            for hook in o.data["webhooks"].as_array_mut().into_iter().flatten() {
                let target = &hook["clientConfig"]["service"];
                let calls = format!(
                    "{}.{}.svc",
                    target["name"].as_str().unwrap_or_default(),
                    target["namespace"].as_str().unwrap_or_default()
                );
                if calls == service {
                    hook["clientConfig"]["caBundle"] = json!(bundle);
                }
            }
        }
    }
    Ok(())
}
