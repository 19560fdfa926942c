//! The S3 backend: a stack's lock, journals and record of applied plans as objects in a bucket,
//! so that plan, apply, `--resume` and `rollback` can run on different machines.
//!
//! # Layout
//! Every key starts with `<prefix><stack>/`:
//! - `lock`: the holder as JSON. It is created with `If-None-Match: *`, so of two runs that
//!   try at once exactly one gets it and the other gets `412 PreconditionFailed`.
//! - `journal/<plan id>/<sequence>.json`: one entry per object. The sequence has ten digits,
//!   zero-padded, so key order is entry order. Each object is created with `If-None-Match: *`,
//!   so two writers can never take the same sequence number.
//! - `applied/<plan id>`: a record that the plan completed, also created with `If-None-Match: *`.
//!
//! # Guarantees
//! - An entry is in S3 when [`Journal::append`] returns: S3 acknowledges a `PutObject` only
//!   once the object is stored durably.
//! - A retried create whose first attempt reached S3 gets `412`. The object is then read, and
//!   when it contains the same bytes the create counts as done.
//! - The backend needs neither versioning nor any bucket setting beyond what docs/backend.md
//!   lists, and checks none.
//!
//! # Caveats
//! A lock whose holder died stays until `linkplan unlock STACK --force` removes it. Unlike the
//! local backend, it is never taken over: a host name is no proof, across machines, that the
//! holder is gone.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use futures_util::{StreamExt, TryStreamExt};
use linkplan_engine::config;
use linkplan_engine::journal::{Backend, BackendError, Entry, Holder, Journal, LockGuard};
use linkplan_engine::provider::{ErrorKind, ProviderError};
use linkplan_engine::stack::S3BackendConfig;
use serde::Serialize;

use crate::errors::{CallSite, send};
use crate::sdk_config::ProviderOptions;

/// Digits of a journal entry's sequence number: room for ten billion entries per plan.
const SEQUENCE_DIGITS: usize = 10;

/// Journal objects read at once by [`Journal::entries`].
const PARALLEL_READS: usize = 8;

/// Attempts of a create that fails with `409 ConditionalRequestConflict`, which S3 returns while
/// another conditional write of the same key is in flight. The SDK does not retry it.
const CONFLICT_ATTEMPTS: u32 = 3;
const CONFLICT_BACKOFF: Duration = Duration::from_millis(200);

/// A stack backend in an S3 bucket.
#[derive(Debug, Clone)]
pub struct S3Backend {
    store: Arc<Store>,
    prefix: String,
    endpoint_url: Option<String>,
}

impl S3Backend {
    /// Builds the S3 client of `config` with the endpoint override, timeouts and retries of
    /// `options`. Path-style addressing is used whenever an endpoint override applies, since
    /// emulators such as moto on 127.0.0.1 have no per-bucket host names.
    ///
    /// Nothing is sent here: a missing bucket or missing permissions show up in the first call.
    pub async fn new(config: &S3BackendConfig, options: &ProviderOptions) -> S3Backend {
        let shared =
            crate::sdk_config::load_shared_config(&config.credentials, &config.region, options)
                .await;
        let endpoint_url = options
            .endpoint_url
            .clone()
            .or_else(|| crate::sdk_config::resolved_endpoint(&shared, "S3"));
        let mut builder = aws_sdk_s3::config::Builder::from(&shared);
        if let Some(url) = &endpoint_url {
            builder = builder.endpoint_url(url).force_path_style(true);
        }
        let store = Store {
            client: aws_sdk_s3::Client::from_conf(builder.build()),
            bucket: config.bucket.clone(),
            site: CallSite {
                service: "s3",
                region: config.region.clone(),
                endpoint: endpoint_url.clone(),
                timeouts: options.timeouts,
            },
            policy_scope: format!("arn:aws:s3:::{}/{}*", config.bucket, config.prefix),
        };
        S3Backend {
            store: Arc::new(store),
            prefix: config.prefix.clone(),
            endpoint_url,
        }
    }

    /// Returns the endpoint override the client uses, `None` for the AWS default.
    pub fn endpoint_url(&self) -> Option<&str> {
        self.endpoint_url.as_deref()
    }

    /// Returns the key of `rest` under the folder of `stack`.
    ///
    /// # Errors
    /// `stack` is not a valid stack name. A name such as `../x` or `a/b` would reach the keys
    /// of another stack or prefix, so such a name is never sent.
    fn key(&self, stack: &str, rest: &str) -> Result<String, BackendError> {
        if !config::is_stack_name(stack) {
            return Err(BackendError::Remote {
                action: "build the S3 keys of stack",
                location: stack.to_string(),
                reason: "invalid stack name".to_string(),
                help: format!(
                    "pass the `name` of the stack's config: {}",
                    config::STACK_NAME_RULE
                ),
            });
        }
        Ok(format!("{}{stack}/{rest}", self.prefix))
    }
}

/// The client and bucket, shared by the backend, its locks and its journals.
#[derive(Debug)]
struct Store {
    client: aws_sdk_s3::Client,
    bucket: String,
    site: CallSite,
    /// The resource of the backend's objects in an IAM policy, for the help of access errors.
    policy_scope: String,
}

/// The result of a create with `If-None-Match: *`.
enum Created {
    Now,
    /// A key that existed already, with its content (`None` when it was removed since).
    Existed(Option<Vec<u8>>),
}

impl Store {
    fn location(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }

    /// Reads object `key`, `None` when it does not exist.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, BackendError> {
        let request = self.client.get_object().bucket(&self.bucket).key(key);
        let output = match send!(self.site, "GetObject", request) {
            Ok(output) => output,
            Err(error) if error.code.as_deref() == Some("NoSuchKey") => return Ok(None),
            Err(error) => return Err(self.error("read", key, error)),
        };
        let body = output.body.collect().await.map_err(|error| {
            let failure = self.site.failure(
                ErrorKind::Transient,
                "GetObject",
                format!("the response body was cut short: {error}"),
            );
            self.error("read", key, failure)
        })?;
        Ok(Some(body.into_bytes().to_vec()))
    }

    /// Creates object `key` with `body` unless the key exists.
    async fn create(&self, key: &str, body: &[u8]) -> Result<Created, BackendError> {
        let mut attempt = 1;
        loop {
            let request = self
                .client
                .put_object()
                .bucket(&self.bucket)
                .key(key)
                .if_none_match("*")
                .content_type("application/json")
                .body(ByteStream::from(body.to_vec()));
            match send!(self.site, "PutObject", request) {
                Ok(_) => return Ok(Created::Now),
                Err(error) if error.code.as_deref() == Some("PreconditionFailed") => {
                    return Ok(Created::Existed(self.get(key).await?));
                }
                Err(error)
                    if error.code.as_deref() == Some("ConditionalRequestConflict")
                        && attempt < CONFLICT_ATTEMPTS =>
                {
                    attempt += 1;
                    tokio::time::sleep(CONFLICT_BACKOFF).await;
                }
                Err(error) => return Err(self.error("create", key, error)),
            }
        }
    }

    /// Writes object `key` with `body`, over any earlier version.
    async fn replace(&self, key: &str, body: &[u8]) -> Result<(), BackendError> {
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("text/plain")
            .body(ByteStream::from(body.to_vec()));
        send!(self.site, "PutObject", request)
            .map(|_| ())
            .map_err(|error| self.error("write", key, error))
    }

    async fn delete(&self, key: &str) -> Result<(), BackendError> {
        let request = self.client.delete_object().bucket(&self.bucket).key(key);
        send!(self.site, "DeleteObject", request)
            .map(|_| ())
            .map_err(|error| self.error("delete", key, error))
    }

    /// Lists the keys under `prefix`, in key order.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, BackendError> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let request = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_continuation_token(token.take());
            let page = send!(self.site, "ListObjectsV2", request)
                .map_err(|error| self.error("list", prefix, error))?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|object| object.key().map(str::to_string)),
            );
            match page.next_continuation_token() {
                Some(next) if page.is_truncated() == Some(true) => token = Some(next.to_string()),
                _ => break,
            }
        }
        keys.sort();
        Ok(keys)
    }

    /// Converts the failed call on `key` into a backend error with advice for its cause.
    fn error(&self, action: &'static str, key: &str, error: ProviderError) -> BackendError {
        let help = match (error.code.as_deref(), error.kind) {
            (Some("NoSuchBucket"), _) => format!(
                "create the bucket `{}` in {} (docs/backend.md shows how), or correct \
                 `backend.bucket` in the config and plan again",
                self.bucket, self.site.region
            ),
            (
                Some(
                    "PermanentRedirect"
                    | "AuthorizationHeaderMalformed"
                    | "IllegalLocationConstraintException",
                ),
                _,
            ) => {
                format!(
                    "the bucket `{}` is in another region: set `backend.region` to its region \
                     and plan again",
                    self.bucket
                )
            }
            (Some("AccessDenied" | "AllAccessDisabled"), _) => format!(
                "allow these credentials s3:GetObject, s3:PutObject and s3:DeleteObject on {} \
                 and s3:ListBucket on arn:aws:s3:::{}; docs/backend.md has the policy",
                self.policy_scope, self.bucket
            ),
            (_, ErrorKind::Unauthorized) => {
                "check the backend's credentials (`backend.profile`, `backend.role_arn` or the \
                 AWS_* variables) and that their policy allows the calls docs/backend.md lists"
                    .to_string()
            }
            (_, ErrorKind::Timeout | ErrorKind::Transient | ErrorKind::Throttled) => {
                "check the network path to the S3 endpoint, then run the command again".to_string()
            }
            _ => "see the S3 error above, then run the command again".to_string(),
        };
        BackendError::Remote {
            action,
            location: self.location(key),
            reason: error.to_string(),
            help,
        }
    }
}

#[async_trait]
impl Backend for S3Backend {
    async fn lock(&self, stack: &str, holder: &Holder) -> Result<Box<dyn LockGuard>, BackendError> {
        let key = self.key(stack, "lock")?;
        let body = serde_json::to_vec(holder).expect("a holder serializes");
        // A lock released between the failed create and the read is tried once more.
        for _ in 0..2 {
            let existing = match self.store.create(&key, &body).await? {
                Created::Now => None,
                Created::Existed(None) => continue,
                Created::Existed(Some(existing)) if existing == body => None,
                Created::Existed(Some(existing)) => Some(existing),
            };
            let Some(existing) = existing else {
                return Ok(Box::new(S3Lock {
                    store: Arc::clone(&self.store),
                    key,
                    body,
                }));
            };
            let holder = serde_json::from_slice(&existing).unwrap_or_else(|_| Holder::unreadable());
            return Err(BackendError::Locked {
                stack: stack.to_string(),
                holder,
            });
        }
        Err(BackendError::Remote {
            action: "create",
            location: self.store.location(&key),
            reason: "the lock was taken and released twice while this run tried to take it"
                .to_string(),
            help: "another run of the stack is starting and stopping; run the command again"
                .to_string(),
        })
    }

    async fn lock_holder(&self, stack: &str) -> Result<Option<Holder>, BackendError> {
        let key = self.key(stack, "lock")?;
        let existing = self.store.get(&key).await?;
        Ok(existing
            .map(|body| serde_json::from_slice(&body).unwrap_or_else(|_| Holder::unreadable())))
    }

    async fn break_lock(&self, stack: &str) -> Result<Option<Holder>, BackendError> {
        let holder = self.lock_holder(stack).await?;
        if holder.is_some() {
            self.store.delete(&self.key(stack, "lock")?).await?;
        }
        Ok(holder)
    }

    fn lock_location(&self, stack: &str) -> String {
        // Only a message: an invalid name is rejected by every call that sends a request.
        self.store.location(&format!("{}{stack}/lock", self.prefix))
    }

    async fn journal(&self, stack: &str, plan_id: &str) -> Result<Box<dyn Journal>, BackendError> {
        let folder = self.key(stack, &format!("journal/{plan_id}/"))?;
        let mut journal = S3Journal {
            store: Arc::clone(&self.store),
            folder,
            next: 0,
        };
        journal.next = journal
            .sequences()
            .await?
            .last()
            .map_or(0, |(sequence, _)| sequence + 1);
        Ok(Box::new(journal))
    }

    async fn is_applied(&self, stack: &str, plan_id: &str) -> Result<bool, BackendError> {
        let key = self.key(stack, &format!("applied/{plan_id}"))?;
        Ok(self.store.get(&key).await?.is_some())
    }

    async fn record_applied(&self, stack: &str, plan_id: &str) -> Result<(), BackendError> {
        let key = self.key(stack, &format!("applied/{plan_id}"))?;
        let record = AppliedRecord {
            plan_id,
            stack,
            by: Holder::current(),
        };
        let body = serde_json::to_vec(&record).expect("an applied record serializes");
        // A record that exists already means the same: the plan was applied.
        self.store.create(&key, &body).await?;
        let last = self.key(stack, "last-applied")?;
        self.store.replace(&last, plan_id.as_bytes()).await
    }

    async fn last_applied(&self, stack: &str) -> Result<Option<String>, BackendError> {
        let key = self.key(stack, "last-applied")?;
        let body = self.store.get(&key).await?;
        Ok(body.map(|bytes| String::from_utf8_lossy(&bytes).trim().to_string()))
    }
}

/// The content of `applied/<plan id>`, for people who look at the bucket.
#[derive(Serialize)]
struct AppliedRecord<'a> {
    plan_id: &'a str,
    stack: &'a str,
    /// The process that wrote the record. Its `since` is when the record was written.
    by: Holder,
}

/// A held S3 lock. Dropping it deletes the lock object if the object still contains this run's
/// holder.
struct S3Lock {
    store: Arc<Store>,
    key: String,
    body: Vec<u8>,
}

impl LockGuard for S3Lock {}

impl S3Lock {
    async fn release(store: Arc<Store>, key: String, body: Vec<u8>) {
        let result = match store.get(&key).await {
            Ok(Some(current)) if current == body => store.delete(&key).await,
            Ok(Some(_)) => {
                tracing::warn!(
                    lock = %store.location(&key),
                    "the lock was removed with `linkplan unlock` and taken by another run; \
                     leaving it to that run"
                );
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(error) => Err(error),
        };
        if let Err(error) = result {
            tracing::warn!(
                lock = %store.location(&key),
                "failed to release the lock: {error}; remove it with `linkplan unlock --force` \
                 once this run has exited"
            );
        }
    }
}

impl Drop for S3Lock {
    fn drop(&mut self) {
        let release = S3Lock::release(
            Arc::clone(&self.store),
            std::mem::take(&mut self.key),
            std::mem::take(&mut self.body),
        );
        // Dropping cannot await, so the release blocks this worker thread until S3 responds,
        // which the client's operation timeout bounds. A current-thread runtime cannot block
        // in place: there the release becomes a task, which runs only if the runtime goes on.
        match tokio::runtime::Handle::try_current() {
            Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(|| handle.block_on(release));
            }
            Ok(handle) => {
                handle.spawn(release);
            }
            Err(_) => {
                tracing::warn!("the S3 lock was dropped outside a runtime and stays in place");
            }
        }
    }
}

/// The journal of one plan: the objects under `<prefix><stack>/journal/<plan id>/`.
struct S3Journal {
    store: Arc<Store>,
    /// The key prefix of the entries, ending with `/`.
    folder: String,
    /// The sequence number of the next entry.
    next: u64,
}

impl S3Journal {
    /// Lists the entries' sequence numbers and keys, in order. Keys that are not entries, such
    /// as a file someone copied there, are skipped with a warning.
    async fn sequences(&self) -> Result<Vec<(u64, String)>, BackendError> {
        let mut found = Vec::new();
        for key in self.store.list(&self.folder).await? {
            let sequence = key
                .strip_prefix(&self.folder)
                .and_then(|name| name.strip_suffix(".json"))
                .filter(|digits| digits.len() == SEQUENCE_DIGITS)
                .and_then(|digits| digits.parse::<u64>().ok());
            match sequence {
                Some(sequence) => found.push((sequence, key)),
                None => tracing::warn!(
                    object = %self.store.location(&key),
                    "skipping an object in the journal that is not a journal entry"
                ),
            }
        }
        found.sort();
        Ok(found)
    }
}

#[async_trait]
impl Journal for S3Journal {
    async fn append(&mut self, entry: &Entry) -> Result<(), BackendError> {
        let key = format!(
            "{}{:0width$}.json",
            self.folder,
            self.next,
            width = SEQUENCE_DIGITS
        );
        let body = serde_json::to_vec(entry).expect("journal entries serialize");
        match self.store.create(&key, &body).await? {
            Created::Now => {}
            Created::Existed(Some(existing)) if existing == body => {}
            Created::Existed(_) => {
                return Err(BackendError::Remote {
                    action: "write",
                    location: self.store.location(&key),
                    reason: "another run wrote this journal entry first".to_string(),
                    help: "another apply or rollback of this plan is running, or ran after this \
                           one's lock was removed: check the journal before going on"
                        .to_string(),
                });
            }
        }
        self.next += 1;
        Ok(())
    }

    async fn entries(&self) -> Result<Vec<Entry>, BackendError> {
        let keys: Vec<String> = self
            .sequences()
            .await?
            .into_iter()
            .map(|(_, key)| key)
            .collect();
        let store = &self.store;
        futures_util::stream::iter(keys)
            .map(|key| async move {
                // An entry listed a moment ago cannot vanish unless someone deletes it.
                let body = store.get(&key).await?.ok_or_else(|| BackendError::Remote {
                    action: "read",
                    location: store.location(&key),
                    reason: "the entry was deleted while the journal was read".to_string(),
                    help: "someone is removing this journal; check the bucket before going on"
                        .to_string(),
                })?;
                serde_json::from_slice(&body).map_err(|error| BackendError::Corrupt {
                    path: store.location(&key),
                    line: 1,
                    reason: error.to_string(),
                })
            })
            .buffered(PARALLEL_READS)
            .try_collect()
            .await
    }

    fn location(&self) -> String {
        self.store.location(&self.folder)
    }
}
