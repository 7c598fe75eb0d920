//! Azure Blob blobs over the REST API: conditional writes (`If-None-Match: *`, `If-Match: ETAG`;
//! Azure answers 412 ConditionNotMet, or 409 BlobAlreadyExists) and the lock as a blob lease.
//!
//! The lock is an infinite lease on the blob `KEY.lock`, its lease ID the holder's ID, and the
//! holder's record in that blob's metadata, written right after the lease is taken. A release
//! gives the lease back and leaves the record (the lease state, not the record, says whether the
//! lock is held); a reader checks the record against the lease before naming the holder.
//! `unlock --force ID` releases the lease under that ID, which only its holder's ID can do.

use crate::lock::{Holder, Locking, not_that_one};
use crate::shared_key::{BlobAccount, error_code};
use crate::{Expect, ObjectStore, StoreError, Versioned, error_chain};
use async_trait::async_trait;
use base64::Engine;
use reqwest::header::{CONTENT_LENGTH, ETAG, IF_MATCH, IF_NONE_MATCH};

/// The metadata entry holding the lock holder's record (base64 of its JSON).
const HOLDER_META: &str = "x-ms-meta-clouderlock";

pub struct BlobStore {
    http: reqwest::Client,
    account: BlobAccount,
    container: String,
}

/// The lock's lease.
enum Lease {
    Free,
    /// Held by the holder its record names.
    Held(Holder),
    /// Held under another ID than the record's, for longer than recording takes: a run died
    /// between taking the lease and naming itself. `last` is the record left before it.
    Unrecorded {
        last: Holder,
        etag: String,
    },
}

/// A response: its status, Azure's error code, and the response itself.
struct Answer {
    status: u16,
    code: String,
    response: reqwest::Response,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
    }

    fn refused(&self, what: &str) -> StoreError {
        let hint = if self.status == 403 {
            " (is AZURE_STORAGE_KEY the account's key?)"
        } else {
            ""
        };
        StoreError::Other(format!("{what}: {} {}{hint}", self.status, self.code))
    }
}

impl BlobStore {
    pub fn new(account: BlobAccount, container: &str) -> Self {
        BlobStore {
            http: reqwest::Client::new(),
            account,
            container: container.to_string(),
        }
    }

    /// Creates the container (nothing if it exists).
    pub async fn create_container(&self) -> Result<(), StoreError> {
        let url = self
            .account
            .url(&format!("{}?restype=container", self.container));
        let what = format!("creating container {}", self.container);
        let answer = self
            .send(self.http.put(url).body(Vec::new()), &what)
            .await?;
        match answer.status {
            201 | 409 => Ok(()),
            _ => Err(answer.refused(&what)),
        }
    }

    fn blob_url(&self, key: &str) -> String {
        self.account.url(&format!("{}/{key}", self.container))
    }

    fn describe(&self, key: &str) -> String {
        format!("azblob://{}/{}/{key}", self.account.name, self.container)
    }

    /// Signs and sends `request`; any status is an answer, only a failed exchange an error.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<Answer, StoreError> {
        let mut request = request
            .build()
            .map_err(|e| StoreError::Other(format!("{what}: {e}")))?;
        // Azure wants the length of every PUT, even of nothing (reqwest leaves it out then).
        if request.method() == reqwest::Method::PUT {
            let length = request
                .body()
                .and_then(|b| b.as_bytes())
                .map_or(0, <[u8]>::len);
            request
                .headers_mut()
                .entry(CONTENT_LENGTH)
                .or_insert_with(|| length.into());
        }
        self.account.sign(&mut request);
        let response = self
            .http
            .execute(request)
            .await
            .map_err(|e| StoreError::Other(format!("{what}: {}", error_chain(&e))))?;
        Ok(Answer {
            status: response.status().as_u16(),
            code: error_code(&response),
            response,
        })
    }

    /// A `GET` or `HEAD` of a blob; `None` when there is no such blob (a missing container is
    /// an error: the URL is wrong).
    async fn read(
        &self,
        request: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<Option<Answer>, StoreError> {
        let answer = self.send(request, what).await?;
        match answer.status {
            200 => Ok(Some(answer)),
            404 if answer.code != "ContainerNotFound" => Ok(None),
            _ => Err(answer.refused(what)),
        }
    }

    /// A lease action on blob `key` (`x-ms-lease-action`), with its other headers.
    async fn lease(
        &self,
        key: &str,
        action: &str,
        headers: &[(&str, &str)],
    ) -> Result<Answer, StoreError> {
        let mut request = self
            .http
            .put(format!("{}?comp=lease", self.blob_url(key)))
            .header("x-ms-lease-action", action)
            .body(Vec::new());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send(
            request,
            &format!("{action} the lease of {}", self.describe(key)),
        )
        .await
    }

    /// The holder a leased lock blob names, and the blob's ETag; `None` when nobody holds it.
    async fn lock_record(&self, key: &str) -> Result<Option<(Holder, String)>, StoreError> {
        let what = format!("reading the lock {}", self.describe(key));
        let Some(answer) = self.read(self.http.head(self.blob_url(key)), &what).await? else {
            return Ok(None);
        };
        if !matches!(
            answer.header("x-ms-lease-state"),
            Some("leased" | "breaking")
        ) {
            return Ok(None);
        }
        let bad = |reason: String| StoreError::Other(format!("{what}: {reason}"));
        let record = answer
            .header(HOLDER_META)
            .ok_or_else(|| bad("leased, but names no holder (not a clouder lock?)".into()))?;
        let json = base64::engine::general_purpose::STANDARD
            .decode(record)
            .map_err(|e| bad(format!("holder record: {e}")))?;
        let holder =
            serde_json::from_slice(&json).map_err(|e| bad(format!("holder record: {e}")))?;
        let etag = answer.header("etag").unwrap_or_default().to_string();
        Ok(Some((holder, etag)))
    }

    /// Who holds the lock at `key`, the record checked against the lease: a renew under the
    /// recorded ID succeeds only while that ID holds the lease (an infinite lease is unchanged
    /// by it). A taker records itself right after taking the lease, so a mismatch is given a
    /// moment to clear before the lease counts as unrecorded.
    async fn lease_state(&self, key: &str) -> Result<Lease, StoreError> {
        let mut attempts = 0;
        loop {
            let Some((holder, etag)) = self.lock_record(key).await? else {
                return Ok(Lease::Free);
            };
            let renew = [("x-ms-lease-id", holder.id.as_str())];
            let answer = self.lease(key, "renew", &renew).await?;
            match answer.status {
                200 => return Ok(Lease::Held(holder)),
                409 => {}
                _ => {
                    return Err(answer.refused(&format!("reading the lock {}", self.describe(key))));
                }
            }
            attempts += 1;
            if attempts == 10 {
                return Ok(Lease::Unrecorded { last: holder, etag });
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

#[async_trait]
impl ObjectStore for BlobStore {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        let what = format!("reading {}", self.describe(key));
        let Some(answer) = self.read(self.http.get(self.blob_url(key)), &what).await? else {
            return Ok(None);
        };
        let etag = answer.header("etag").unwrap_or_default().to_string();
        let body = answer
            .response
            .bytes()
            .await
            .map_err(|e| StoreError::Other(format!("{what}: {}", error_chain(&e))))?;
        Ok(Some(Versioned {
            body: body.to_vec(),
            etag,
        }))
    }

    async fn put(&self, key: &str, body: Vec<u8>, expect: Expect) -> Result<String, StoreError> {
        let request = self
            .http
            .put(self.blob_url(key))
            .header("x-ms-blob-type", "BlockBlob")
            .header("content-type", "application/octet-stream")
            .body(body);
        let request = match expect {
            Expect::Absent => request.header(IF_NONE_MATCH, "*"),
            Expect::Etag(etag) => request.header(IF_MATCH, etag),
            Expect::Any => request,
        };
        let what = format!("writing {}", self.describe(key));
        let answer = self.send(request, &what).await?;
        match (answer.status, answer.code.as_str()) {
            (201, _) => Ok(answer.header(ETAG.as_str()).unwrap_or_default().to_string()),
            (412, _) | (409, "BlobAlreadyExists") => Err(StoreError::Conflict(key.to_string())),
            _ => Err(answer.refused(&what)),
        }
    }

    async fn delete(&self, key: &str, expect: Expect) -> Result<(), StoreError> {
        let request = self.http.delete(self.blob_url(key));
        let request = match expect {
            Expect::Etag(etag) => request.header(IF_MATCH, etag),
            Expect::Absent | Expect::Any => request,
        };
        let what = format!("deleting {}", self.describe(key));
        let answer = self.send(request, &what).await?;
        match answer.status {
            202 | 404 => Ok(()),
            412 => Err(StoreError::Conflict(key.to_string())),
            _ => Err(answer.refused(&what)),
        }
    }
}

#[async_trait]
impl Locking for BlobStore {
    async fn try_lock(&self, key: &str, holder: &Holder) -> Result<bool, StoreError> {
        let record = base64::engine::general_purpose::STANDARD
            .encode(serde_json::to_vec(holder).expect("holder serializes"));
        let acquire = [
            ("x-ms-lease-duration", "-1"),
            ("x-ms-proposed-lease-id", holder.id.as_str()),
        ];
        let mut answer = self.lease(key, "acquire", &acquire).await?;
        if answer.status == 404 {
            // The first lock here: its blob, born naming its holder so it never lacks a record.
            let what = format!("creating the lock {}", self.describe(key));
            let create = self
                .http
                .put(self.blob_url(key))
                .header("x-ms-blob-type", "BlockBlob")
                .header(IF_NONE_MATCH, "*")
                .header(HOLDER_META, &record)
                .body(Vec::new());
            let created = self.send(create, &what).await?;
            if !matches!(created.status, 201 | 409 | 412) {
                return Err(created.refused(&what));
            }
            answer = self.lease(key, "acquire", &acquire).await?;
        }
        match answer.status {
            201 => {}
            409 | 404 => return Ok(false),
            _ => return Err(answer.refused(&format!("locking {}", self.describe(key)))),
        }
        // Ours now: name ourselves. Until this lands, a reader sees the previous holder's record.
        let what = format!("recording the holder of {}", self.describe(key));
        let name = self
            .http
            .put(format!("{}?comp=metadata", self.blob_url(key)))
            .header("x-ms-lease-id", &holder.id)
            .header(HOLDER_META, &record)
            .body(Vec::new());
        let answer = self.send(name, &what).await?;
        if answer.status != 200 {
            let _ = self.release(key, holder).await;
            return Err(answer.refused(&what));
        }
        Ok(true)
    }

    async fn held_by(&self, key: &str) -> Result<Option<Holder>, StoreError> {
        match self.lease_state(key).await? {
            Lease::Free => Ok(None),
            Lease::Held(holder) => Ok(Some(holder)),
            Lease::Unrecorded { last, .. } => Err(StoreError::Other(format!(
                "the lock {} is leased by a run that never named itself (it died taking the \
                 lock?); the record before it is {last}: `clouder state unlock --force {}` \
                 breaks it",
                self.describe(key),
                last.id
            ))),
        }
    }

    async fn release(&self, key: &str, holder: &Holder) -> Result<(), StoreError> {
        let answer = self
            .lease(key, "release", &[("x-ms-lease-id", holder.id.as_str())])
            .await?;
        match answer.status {
            // 409: the lease is not ours (any more); 404: no lock blob at all.
            200 | 409 | 404 => Ok(()),
            _ => Err(answer.refused(&format!("unlocking {}", self.describe(key)))),
        }
    }

    async fn force_unlock(&self, key: &str, id: &str) -> Result<Holder, StoreError> {
        let what = format!("breaking the lock {}", self.describe(key));
        match self.lease_state(key).await? {
            Lease::Free => Err(StoreError::Other(format!(
                "no lock at {}",
                self.describe(key)
            ))),
            Lease::Held(holder) if holder.id == id => {
                // The lease's ID is the lock's: releasing under it frees that lock only.
                let answer = self.lease(key, "release", &[("x-ms-lease-id", id)]).await?;
                match answer.status {
                    200 => Ok(holder),
                    409 => Err(StoreError::Other(format!(
                        "{what}: it changed hands meanwhile; not broken"
                    ))),
                    _ => Err(answer.refused(&what)),
                }
            }
            Lease::Unrecorded { last, etag } if last.id == id => {
                // Break the nameless lease, unless a record was written since it was read.
                let answer = self
                    .lease(
                        key,
                        "break",
                        &[("x-ms-lease-break-period", "0"), ("if-match", &etag)],
                    )
                    .await?;
                match answer.status {
                    202 => Ok(last),
                    412 => Err(StoreError::Other(format!(
                        "{what}: it changed hands meanwhile; not broken"
                    ))),
                    _ => Err(answer.refused(&what)),
                }
            }
            Lease::Held(holder) | Lease::Unrecorded { last: holder, .. } => {
                Err(not_that_one(&holder, id))
            }
        }
    }
}
