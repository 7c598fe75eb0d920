//! Integration tests: pod specs (golden), secrets on clouder-testkube with sources on moto and
//! the fake Key Vault, the node agent in real mount namespaces, folders, quotas and manifests.

mod agent;
mod cri;
mod podspec;
mod secrets;
mod storage;
mod support;
