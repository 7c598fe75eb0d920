//! Where a shared state lives, as users write it: `s3://BUCKET/KEY` or
//! `azblob://ACCOUNT/CONTAINER/KEY`.

use crate::azblob::BlobStore;
use crate::s3::S3Store;
use crate::shared_key::BlobAccount;
use crate::{Backend, StoreError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    S3 {
        bucket: String,
        key: String,
    },
    AzBlob {
        account: String,
        container: String,
        key: String,
    },
}

pub const FORMS: &str = "s3://BUCKET/KEY or azblob://ACCOUNT/CONTAINER/KEY";

impl Location {
    /// The location `url` names; the error says which forms there are.
    pub fn parse(url: &str) -> Result<Location, String> {
        let bad = || format!("{url}: expected {FORMS}");
        let nonempty = |parts: &[&str]| parts.iter().all(|p| !p.is_empty());
        if let Some(rest) = url.strip_prefix("s3://") {
            return match rest.split_once('/') {
                Some((bucket, key)) if nonempty(&[bucket, key]) => Ok(Location::S3 {
                    bucket: bucket.into(),
                    key: key.into(),
                }),
                _ => Err(bad()),
            };
        }
        if let Some(rest) = url.strip_prefix("azblob://") {
            let parts: Vec<&str> = rest.splitn(3, '/').collect();
            return match parts[..] {
                [account, container, key] if nonempty(&parts) => Ok(Location::AzBlob {
                    account: account.into(),
                    container: container.into(),
                    key: key.into(),
                }),
                _ => Err(bad()),
            };
        }
        Err(bad())
    }

    /// The state object's key (in its bucket or container).
    pub fn key(&self) -> &str {
        match self {
            Location::S3 { key, .. } | Location::AzBlob { key, .. } => key,
        }
    }

    /// The lock's key, beside the state.
    pub fn lock_key(&self) -> String {
        format!("{}.lock", self.key())
    }

    /// A file name for a local working copy of this state.
    pub fn file_name(&self) -> String {
        let name = match self {
            Location::S3 { bucket, key } => format!("{bucket}-{key}"),
            Location::AzBlob {
                account,
                container,
                key,
            } => format!("{account}-{container}-{key}"),
        };
        format!("{}.db", name.replace('/', "_"))
    }

    /// A client of the store this location is in: the AWS SDK's usual credentials for S3;
    /// `AZURE_STORAGE_KEY` (and `AZURE_STORAGE_BLOB_ENDPOINT`) for Azure Blob.
    pub async fn connect(&self) -> Result<Box<dyn Backend>, StoreError> {
        Ok(match self {
            Location::S3 { bucket, .. } => Box::new(S3Store::connect(bucket).await),
            Location::AzBlob {
                account, container, ..
            } => {
                let account = BlobAccount::from_env(account)
                    .map_err(|e| StoreError::Other(format!("{self}: {e}")))?;
                Box::new(BlobStore::new(account, container))
            }
        })
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::S3 { bucket, key } => write!(f, "s3://{bucket}/{key}"),
            Location::AzBlob {
                account,
                container,
                key,
            } => write!(f, "azblob://{account}/{container}/{key}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Location;

    #[test]
    fn state_urls_are_checked() {
        let l = Location::parse("s3://team-state/clusters/prod.db").unwrap();
        assert_eq!(
            l,
            Location::S3 {
                bucket: "team-state".into(),
                key: "clusters/prod.db".into()
            }
        );
        let l = Location::parse("azblob://acct/state/clusters/prod.db").unwrap();
        assert_eq!(
            l,
            Location::AzBlob {
                account: "acct".into(),
                container: "state".into(),
                key: "clusters/prod.db".into()
            }
        );
        assert_eq!(l.to_string(), "azblob://acct/state/clusters/prod.db");
        assert_eq!(l.lock_key(), "clusters/prod.db.lock");
        assert_eq!(l.file_name(), "acct-state-clusters_prod.db.db");
        for bad in [
            "s3://bucket",
            "s3:///key",
            "file:///tmp/x",
            "azblob://acct/c",
            "azblob://acct//k",
            "azblob:///c/k",
        ] {
            let err = Location::parse(bad).unwrap_err();
            assert!(
                err.contains("azblob://ACCOUNT/CONTAINER/KEY"),
                "{bad}: {err}"
            );
        }
    }
}
