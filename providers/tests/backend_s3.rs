//! The S3 backend against moto 5.2.5 on 127.0.0.1: conditional creates, the lock, the journal
//! and the applied record, and the errors of a missing bucket and of denied access.

mod support;

use std::io::Write;
use std::net::TcpListener;
use std::sync::{Arc, Mutex, Once};

use aws_sdk_s3::primitives::ByteStream;
use linkplan_aws::{ProviderOptions, S3Backend};
use linkplan_engine::journal::{Backend, BackendError, Entry, Holder};
use linkplan_engine::provider::Outputs;
use linkplan_engine::resource::Address;
use linkplan_engine::stack::S3BackendConfig;
use linkplan_testkit::{MotoServer, moto, unique_name};

const REGION: &str = "us-east-1";

/// Returns the moto server, with the environment of this process set up for the backend's
/// default credential chain: dummy keys, no profile files, no metadata lookup, no proxy.
fn server() -> &'static MotoServer {
    static ENVIRONMENT: Once = Once::new();
    let server = moto();
    ENVIRONMENT.call_once(|| {
        // SAFETY: this runs once, before any test of this binary builds a client: every test
        // calls server() first and waits here until the variables are set.
        unsafe {
            std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
            std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
            std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
            std::env::set_var("AWS_CONFIG_FILE", "/dev/null");
            std::env::set_var("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
            std::env::set_var("NO_PROXY", "127.0.0.1,localhost");
            for name in [
                "AWS_PROFILE",
                "AWS_SESSION_TOKEN",
                "AWS_ENDPOINT_URL",
                "AWS_ENDPOINT_URL_S3",
                "HTTP_PROXY",
                "http_proxy",
                "HTTPS_PROXY",
                "https_proxy",
                "ALL_PROXY",
            ] {
                std::env::remove_var(name);
            }
        }
    });
    server
}

/// Returns an S3 client on moto, for setting up and inspecting buckets.
async fn s3() -> aws_sdk_s3::Client {
    server().s3(REGION).await
}

/// Creates a bucket of its own for one test and returns its name.
async fn new_bucket() -> String {
    server().bucket("lp-state").await
}

fn options(endpoint: &str) -> ProviderOptions {
    ProviderOptions {
        endpoint_url: Some(endpoint.to_string()),
        max_attempts: 2,
        ..ProviderOptions::default()
    }
}

async fn backend_at(bucket: &str, endpoint: &str) -> S3Backend {
    let config = S3BackendConfig {
        bucket: bucket.to_string(),
        prefix: "linkplan/".to_string(),
        region: REGION.to_string(),
        credentials: Default::default(),
    };
    S3Backend::new(&config, &options(endpoint)).await
}

async fn backend(bucket: &str) -> S3Backend {
    backend_at(bucket, &server().endpoint).await
}

async fn exists(bucket: &str, key: &str) -> bool {
    match s3()
        .await
        .head_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
    {
        Ok(_) => true,
        Err(error) if error.raw_response().map(|r| r.status().as_u16()) == Some(404) => false,
        Err(error) => panic!("HeadObject {key} failed: {error:?}"),
    }
}

fn holder() -> Holder {
    Holder {
        host: "ci-1".to_string(),
        pid: 42,
        since: "2026-01-01T00:00:00Z".to_string(),
        user: "deploy".to_string(),
    }
}

fn completed(address: &str) -> Entry {
    Entry::Completed {
        address: Address::from(address),
        outputs: Outputs::from([("id".into(), format!("id-{address}"))]),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn moto_rejects_second_conditional_put() {
    let bucket = new_bucket().await;
    let s3 = s3().await;
    let put = || {
        s3.put_object()
            .bucket(&bucket)
            .key("probe")
            .if_none_match("*")
            .body(ByteStream::from_static(b"{}"))
            .send()
    };
    put()
        .await
        .expect("the first conditional put creates the object");
    let error = put()
        .await
        .expect_err("the second conditional put is rejected");
    let status = error.raw_response().map(|r| r.status().as_u16());
    assert_eq!(status, Some(412), "{error:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn lock_taken_refused_then_released() {
    let bucket = new_bucket().await;
    let backend = backend(&bucket).await;

    let guard = backend.lock("web", &holder()).await.unwrap();
    assert!(exists(&bucket, "linkplan/web/lock").await);
    let refused = backend.lock("web", &Holder::current()).await.err();
    let Some(BackendError::Locked {
        stack,
        holder: found,
    }) = refused
    else {
        panic!("the second lock was not refused: {refused:?}");
    };
    assert_eq!(stack, "web");
    assert_eq!(found, holder());
    assert_eq!(
        BackendError::Locked {
            stack,
            holder: found
        }
        .to_string(),
        "stack `web` is locked by process 42 on ci-1 since 2026-01-01T00:00:00Z (user deploy)"
    );

    drop(guard);
    assert!(
        !exists(&bucket, "linkplan/web/lock").await,
        "dropping the guard left the lock"
    );
    assert!(backend.lock("web", &Holder::current()).await.is_ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn lock_retry_of_same_holder_succeeds() {
    let bucket = new_bucket().await;
    let backend = backend(&bucket).await;
    let first = backend.lock("web", &holder()).await.unwrap();
    std::mem::forget(first);
    // The same bytes are what a retried PutObject whose first attempt landed finds.
    let again = backend.lock("web", &holder()).await;
    assert!(again.is_ok(), "{:?}", again.err());
}

#[tokio::test(flavor = "multi_thread")]
async fn release_keeps_lock_of_another_run() {
    let bucket = new_bucket().await;
    let backend = backend(&bucket).await;
    let guard = backend.lock("web", &holder()).await.unwrap();
    assert_eq!(backend.break_lock("web").await.unwrap(), Some(holder()));
    let other = Holder::current();
    let taken = backend.lock("web", &other).await.unwrap();
    drop(guard);
    assert_eq!(
        backend.lock_holder("web").await.unwrap(),
        Some(other),
        "releasing the broken lock removed the new holder's lock"
    );
    drop(taken);
    assert_eq!(backend.lock_holder("web").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn break_lock_returns_holder() {
    let bucket = new_bucket().await;
    let backend = backend(&bucket).await;
    assert_eq!(backend.break_lock("web").await.unwrap(), None);
    let guard = backend.lock("web", &holder()).await.unwrap();
    std::mem::forget(guard);
    assert_eq!(backend.lock_holder("web").await.unwrap(), Some(holder()));
    assert_eq!(backend.break_lock("web").await.unwrap(), Some(holder()));
    assert!(!exists(&bucket, "linkplan/web/lock").await);
    assert_eq!(
        backend.lock_location("web"),
        format!("s3://{bucket}/linkplan/web/lock")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn journal_keeps_entry_order() {
    let bucket = new_bucket().await;
    let backend = backend(&bucket).await;
    let mut journal = backend.journal("web", "abc").await.unwrap();
    assert_eq!(
        journal.location(),
        format!("s3://{bucket}/linkplan/web/journal/abc/")
    );
    assert!(journal.entries().await.unwrap().is_empty());

    // Twelve entries cross from one digit to two, where unpadded keys would sort 10 before 2.
    let written: Vec<Entry> = (0..12).map(|i| completed(&format!("step-{i}"))).collect();
    for entry in &written {
        journal.append(entry).await.unwrap();
    }
    assert_eq!(journal.entries().await.unwrap(), written);

    let listed = s3()
        .await
        .list_objects_v2()
        .bucket(&bucket)
        .prefix("linkplan/web/journal/abc/")
        .send()
        .await
        .unwrap();
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys.len(), 12);
    assert_eq!(keys[0], "linkplan/web/journal/abc/0000000000.json");
    assert_eq!(keys[11], "linkplan/web/journal/abc/0000000011.json");

    // A journal opened again goes on after the last entry.
    let mut reopened = backend.journal("web", "abc").await.unwrap();
    reopened.append(&completed("step-12")).await.unwrap();
    let entries = reopened.entries().await.unwrap();
    assert_eq!(entries.len(), 13);
    assert_eq!(entries[12], completed("step-12"));
    assert_eq!(journal.entries().await.unwrap(), entries);
}

#[tokio::test(flavor = "multi_thread")]
async fn journal_writers_cannot_share_sequence() {
    let bucket = new_bucket().await;
    let backend = backend(&bucket).await;
    let mut first = backend.journal("web", "abc").await.unwrap();
    let mut second = backend.journal("web", "abc").await.unwrap();
    first.append(&completed("a")).await.unwrap();
    let error = second.append(&completed("b")).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "failed to write `s3://{bucket}/linkplan/web/journal/abc/0000000000.json`: another \
             run wrote this journal entry first"
        )
    );
    assert_eq!(first.entries().await.unwrap(), vec![completed("a")]);
}

#[tokio::test(flavor = "multi_thread")]
async fn journals_of_plans_are_apart() {
    let bucket = new_bucket().await;
    let backend = backend(&bucket).await;
    let mut one = backend.journal("web", "plan-one").await.unwrap();
    let mut two = backend.journal("web", "plan-two").await.unwrap();
    one.append(&completed("a")).await.unwrap();
    two.append(&completed("b")).await.unwrap();
    assert_eq!(one.entries().await.unwrap(), vec![completed("a")]);
    assert_eq!(two.entries().await.unwrap(), vec![completed("b")]);
}

#[tokio::test(flavor = "multi_thread")]
async fn applied_record_is_kept() {
    let bucket = new_bucket().await;
    let backend = backend(&bucket).await;
    assert!(!backend.is_applied("web", "abc").await.unwrap());
    backend.record_applied("web", "abc").await.unwrap();
    assert!(backend.is_applied("web", "abc").await.unwrap());
    assert!(exists(&bucket, "linkplan/web/applied/abc").await);
    assert!(!backend.is_applied("web", "other").await.unwrap());
    // Recording twice is no error: the plan stays applied.
    backend.record_applied("web", "abc").await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_bucket_is_named() {
    server();
    let bucket = unique_name("lp-missing");
    let backend = backend(&bucket).await;
    let error = backend.is_applied("web", "abc").await.unwrap_err();
    let message = error.to_string();
    assert!(
        message.starts_with(&format!(
            "failed to read `s3://{bucket}/linkplan/web/applied/abc`: s3 GetObject in us-east-1 \
             failed: NoSuchBucket: "
        )),
        "{message}"
    );
    assert!(
        error
            .help()
            .starts_with(&format!("create the bucket `{bucket}` in us-east-1")),
        "{}",
        error.help()
    );
    let lock = backend.lock("web", &Holder::current()).await.err().unwrap();
    assert!(lock.to_string().contains("PutObject"), "{lock}");
    assert!(lock.to_string().contains("NoSuchBucket"), "{lock}");
}

/// Starts a server on 127.0.0.1 that returns S3's `403 AccessDenied` for every request, and
/// returns its endpoint and the requests it receives, head and body.
fn denying_server() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&requests);
    std::thread::spawn(move || {
        // A bounded number of connections: the test makes two calls of at most two attempts.
        for _ in 0..8 {
            let Ok((mut client, _)) = listener.accept() else {
                return;
            };
            let Some(request) = support::read_request(&mut client) else {
                continue;
            };
            let text = String::from_utf8_lossy(&request);
            seen.lock().unwrap().push(text.into_owned());
            let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code>\
                        <Message>Access Denied</Message><RequestId>REQ123</RequestId></Error>";
            let response = format!(
                "HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml\r\n\
                 x-amz-request-id: REQ123\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = client.write_all(response.as_bytes());
        }
    });
    (endpoint, requests)
}

#[tokio::test(flavor = "multi_thread")]
async fn access_denied_names_key_and_policy() {
    server();
    let (endpoint, requests) = denying_server();
    let backend = backend_at("acme-state", &endpoint).await;
    let error = backend.is_applied("web", "abc").await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "failed to read `s3://acme-state/linkplan/web/applied/abc`: s3 GetObject in us-east-1 \
         failed: AccessDenied: Access Denied (request id REQ123)"
    );
    assert_eq!(
        error.help(),
        "allow these credentials s3:GetObject, s3:PutObject and s3:DeleteObject on \
         arn:aws:s3:::acme-state/linkplan/* and s3:ListBucket on arn:aws:s3:::acme-state; \
         docs/backend.md has the policy"
    );
    let first = requests.lock().unwrap()[0].clone();
    assert!(
        first.starts_with("GET /acme-state/linkplan/web/applied/abc"),
        "the request is not path-style: {first}"
    );

    let lock = backend.lock("web", &Holder::current()).await.err().unwrap();
    assert!(
        lock.to_string().starts_with(
            "failed to create `s3://acme-state/linkplan/web/lock`: s3 PutObject in us-east-1 \
             failed: AccessDenied"
        ),
        "{lock}"
    );
    let put = requests.lock().unwrap().last().cloned().unwrap();
    assert!(
        put.starts_with("PUT /acme-state/linkplan/web/lock"),
        "{put}"
    );
    let headers: Vec<String> = put.lines().map(str::to_ascii_lowercase).collect();
    assert!(
        headers.iter().any(|h| h == "if-none-match: *"),
        "the lock is put without If-None-Match: *\n{put}"
    );
    let body = put.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    let holder: Holder = serde_json::from_str(body)
        .unwrap_or_else(|error| panic!("the body is not a holder ({error})\n{put}"));
    assert_eq!(holder.pid, std::process::id());
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_stack_name_sends_nothing() {
    server();
    let (endpoint, requests) = denying_server();
    let backend = backend_at("acme-state", &endpoint).await;
    for stack in ["../../zz", "a/b", "..", "", "Web"] {
        let error = backend.break_lock(stack).await.unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("failed to build the S3 keys of stack `{stack}`: invalid stack name")
        );
        assert!(
            error
                .help()
                .starts_with("pass the `name` of the stack's config"),
            "{}",
            error.help()
        );
        let lock = backend.lock(stack, &Holder::current()).await.err().unwrap();
        assert!(lock.to_string().contains("invalid stack name"), "{lock}");
        let journal = backend.journal(stack, "abc").await.err().unwrap();
        assert!(
            journal.to_string().contains("invalid stack name"),
            "{journal}"
        );
        let applied = backend.record_applied(stack, "abc").await.unwrap_err();
        assert!(
            applied.to_string().contains("invalid stack name"),
            "{applied}"
        );
    }
    assert!(
        requests.lock().unwrap().is_empty(),
        "requests were sent: {:?}",
        requests.lock().unwrap()
    );
}
