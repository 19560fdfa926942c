//! A fault-injecting HTTP proxy between AWS SDK clients and the local moto server.
//!
//! moto responds to every request at once and never throttles, fails or loses a connection. The
//! proxy forwards requests to moto and, where a test's rules say so, returns an AWS error,
//! drops the connection after moto made the change, or never answers. It logs every request
//! with its service and operation, so tests and benchmarks can count AWS calls.
//!
//! The proxy listens on 127.0.0.1 only and forwards only to a loopback address, which
//! [`FaultProxy::try_start`] checks. It never resolves a host name.
//!
//! ```no_run
//! # async fn example() {
//! use linkplan_testkit::{FaultProxy, InjectedError, moto};
//!
//! let proxy = FaultProxy::start(&moto().endpoint);
//! proxy.fail_operation(
//!     "ChangeResourceRecordSets",
//!     2,
//!     InjectedError::new(400, "PriorRequestNotComplete", "The request was rejected."),
//! );
//! let route53 = proxy.route53().await;
//! // ... run the code under test with `route53`, or a child process from `proxy.command()`.
//! let calls = proxy.counts()[&("route53".to_owned(), "ChangeResourceRecordSets".to_owned())];
//! # let _ = (route53, calls);
//! # }
//! ```

mod classify;
mod errors;
mod rules;
mod stalled;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::ffi::OsStr;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Command;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use aws_config::SdkConfig;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderMap, HeaderName};
use hyper::http::request::Parts;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

pub use errors::InjectedError;
pub use rules::{Fault, Outcome, RequestRecord};
pub use stalled::{StalledListener, stalled_listener};

use crate::server::{DEFAULT_REGION, isolated_command, local_env, local_sdk_config};
use classify::{Call, classify};
use rules::State;

/// Worker threads of the proxy's runtime, an estimate: the proxy only copies bytes over
/// loopback and spends most of its time waiting for moto.
const WORKER_THREADS: usize = 2;

/// How long a stopping proxy waits for its tasks before it abandons them.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(1);

/// Headers that describe one HTTP connection, not the message, so a proxy must not forward
/// them (RFC 9110, section 7.6.1). `expect` is dropped too, because the proxy sends the
/// whole body at once.
const HOP_BY_HOP_HEADERS: &[&str] = &[
    "connection",
    "expect",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// A failure to start a [`FaultProxy`].
#[derive(Debug)]
pub enum ProxyError {
    /// The upstream URL is malformed or not of the form `http://HOST:PORT`.
    InvalidUpstream { upstream: String, reason: String },
    /// The upstream is not a loopback address. The proxy forwards only to loopback, so that
    /// no test request can reach AWS or any other host.
    NonLoopbackUpstream { upstream: String },
    /// Binding the listener or starting the runtime failed.
    Start(std::io::Error),
}

impl fmt::Display for ProxyError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxyError::InvalidUpstream { upstream, reason } => {
                write!(
                    formatter,
                    "invalid fault proxy upstream {upstream:?}: {reason}"
                )
            }
            ProxyError::NonLoopbackUpstream { upstream } => write!(
                formatter,
                "rejected fault proxy upstream {upstream:?}: the host must be a loopback \
                 address such as 127.0.0.1, [::1] or localhost"
            ),
            ProxyError::Start(error) => {
                write!(formatter, "failed to start the fault proxy: {error}")
            }
        }
    }
}

impl std::error::Error for ProxyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ProxyError::Start(error) => Some(error),
            _ => None,
        }
    }
}

/// A fault-injecting HTTP proxy on 127.0.0.1 in front of a loopback moto server.
///
/// It runs on a Tokio runtime of its own thread, so synchronous tests, async tests and child
/// processes can all use it. It stops when dropped, closing every open connection. Rules can
/// be changed from any thread at any time and apply to requests that arrive afterwards.
pub struct FaultProxy {
    endpoint: String,
    upstream: SocketAddr,
    state: Arc<Mutex<State>>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl fmt::Debug for FaultProxy {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("FaultProxy")
            .field("endpoint", &self.endpoint)
            .field("upstream", &self.upstream)
            .finish_non_exhaustive()
    }
}

impl FaultProxy {
    /// Starts a proxy on a free port of 127.0.0.1 that forwards to `upstream`, such as
    /// [`MotoServer::endpoint`](crate::MotoServer::endpoint).
    ///
    /// # Panics
    ///
    /// Panics with the [`ProxyError`] of [`FaultProxy::try_start`].
    pub fn start(upstream: &str) -> FaultProxy {
        FaultProxy::try_start(upstream).unwrap_or_else(|error| panic!("{error}"))
    }

    /// Starts a proxy like [`FaultProxy::start`], but returns a failure instead of panicking.
    ///
    /// `upstream` must be `http://HOST:PORT` where HOST is a loopback IP address or
    /// `localhost`, which the proxy takes as 127.0.0.1 without a DNS lookup. Any other host
    /// is rejected with [`ProxyError::NonLoopbackUpstream`].
    pub fn try_start(upstream: &str) -> Result<FaultProxy, ProxyError> {
        let upstream_address = parse_upstream(upstream)?;
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|listener| listener.set_nonblocking(true).map(|()| listener))
            .map_err(ProxyError::Start)?;
        let address = listener.local_addr().map_err(ProxyError::Start)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(WORKER_THREADS)
            .thread_name("linkplan-fault-proxy-worker")
            .enable_all()
            .build()
            .map_err(ProxyError::Start)?;
        let listener = {
            // Registering the socket with Tokio needs the runtime's context.
            let _context = runtime.enter();
            TcpListener::from_std(listener).map_err(ProxyError::Start)?
        };

        let state = Arc::new(Mutex::new(State::default()));
        let connection_context = Arc::new(ConnectionContext {
            upstream: upstream_address,
            state: Arc::clone(&state),
        });
        let (shutdown, shutdown_signal) = oneshot::channel();
        let thread = thread::Builder::new()
            .name("linkplan-fault-proxy".to_owned())
            .spawn(move || {
                runtime.block_on(accept_connections(
                    listener,
                    connection_context,
                    shutdown_signal,
                ));
                // Stalled requests never finish, so the runtime drops them after the timeout.
                runtime.shutdown_timeout(SHUTDOWN_TIMEOUT);
            })
            .map_err(ProxyError::Start)?;

        Ok(FaultProxy {
            endpoint: format!("http://{address}"),
            upstream: upstream_address,
            state,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// Returns the proxy's URL, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        self.endpoint.clone()
    }

    /// Returns the loopback address that the proxy forwards to.
    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    /// Builds an SDK config for `region` that sends every request through this proxy, with
    /// the isolation of [`MotoServer::sdk_config`](crate::MotoServer::sdk_config).
    pub async fn sdk_config(&self, region: &str) -> SdkConfig {
        local_sdk_config(&self.endpoint, region).await
    }

    /// Returns an EC2 client for `region` that sends its requests through this proxy.
    pub async fn ec2(&self, region: &str) -> aws_sdk_ec2::Client {
        aws_sdk_ec2::Client::new(&self.sdk_config(region).await)
    }

    /// Returns a Route 53 client that sends its requests through this proxy.
    pub async fn route53(&self) -> aws_sdk_route53::Client {
        aws_sdk_route53::Client::new(&self.sdk_config(DEFAULT_REGION).await)
    }

    /// Returns the variables of [`MotoServer::env`](crate::MotoServer::env), with
    /// `AWS_ENDPOINT_URL` set to this proxy.
    pub fn env(&self) -> Vec<(String, String)> {
        local_env(&self.endpoint)
    }

    /// Builds a command for `program` whose environment points at this proxy.
    ///
    /// It removes every inherited `AWS_*` and proxy variable, then sets [`FaultProxy::env`].
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut command = isolated_command(program);
        command.envs(self.env());
        command
    }

    /// Fails the `n`th mutating request (from 1) with `error`, without forwarding it.
    ///
    /// Mutating requests are counted from the start of the proxy or the last
    /// [`FaultProxy::reset_counts`], so a rule for a position already passed never applies.
    /// [`FaultProxy::mutating_count`] returns the current position. Each rule applies once.
    ///
    /// # Panics
    ///
    /// Panics when `n` is 0.
    pub fn fail_nth_mutating(&self, n: u32, error: InjectedError) {
        self.fault_nth_mutating(n, Fault::Error(error));
    }

    /// Forwards the `n`th mutating request (from 1) to moto, then closes the connection
    /// without a response. Positions are counted as in [`FaultProxy::fail_nth_mutating`].
    pub fn drop_nth_mutating(&self, n: u32) {
        self.fault_nth_mutating(n, Fault::DropAfterForward);
    }

    /// Forwards the `n`th mutating request (from 1) to moto, then never responds, so the
    /// client waits with the mutation made. Positions are counted as in
    /// [`FaultProxy::fail_nth_mutating`].
    pub fn stall_nth_mutating_after_forward(&self, n: u32) {
        self.fault_nth_mutating(n, Fault::StallAfterForward);
    }

    /// Applies `fault` to the `n`th mutating request (from 1), counted as in
    /// [`FaultProxy::fail_nth_mutating`].
    pub fn fault_nth_mutating(&self, n: u32, fault: Fault) {
        self.lock().add_nth_mutating(n, fault);
    }

    /// Fails the next `times` requests of `operation`, such as `ChangeResourceRecordSets`,
    /// with `error`, without forwarding them.
    pub fn fail_operation(&self, operation: &str, times: u32, error: InjectedError) {
        self.fault_operation(operation, times, Fault::Error(error));
    }

    /// Holds the next `times` requests of `operation` open without forwarding or responding
    /// to them. Pass `u32::MAX` to stall every request.
    pub fn stall_operation(&self, operation: &str, times: u32) {
        self.fault_operation(operation, times, Fault::Stall);
    }

    /// Applies `fault` to the next `times` requests of `operation`.
    ///
    /// When several rules name one operation, the oldest with uses left applies.
    pub fn fault_operation(&self, operation: &str, times: u32, fault: Fault) {
        self.lock().add_operation(operation, times, fault);
    }

    /// Throttles `numerator` of every `denominator` requests of any service, counted from
    /// this call, with the service's throttling error ([`InjectedError::throttling`]).
    ///
    /// The choice is deterministic and even: 1/3 throttles the 3rd, 6th, 9th request. A
    /// request that a rule for the Nth mutating request or an operation already selects
    /// keeps that rule's fault. A numerator of 0 turns throttling off.
    ///
    /// # Panics
    ///
    /// Panics when `denominator` is 0 or smaller than `numerator`.
    pub fn throttle_fraction(&self, numerator: u32, denominator: u32) {
        self.lock().set_throttle(numerator, denominator);
    }

    /// Delays every later request by `delay` before it is forwarded or failed, to add the
    /// latency of a real AWS endpoint to benchmarks. `Duration::ZERO` turns the delay off.
    pub fn set_delay(&self, delay: Duration) {
        self.lock().set_delay(delay);
    }

    /// Removes every fault rule, the throttling and the delay. Counts and the log stay.
    pub fn clear_faults(&self) {
        self.lock().clear_faults();
    }

    /// Clears the request log and restarts the count of mutating requests and the sequence
    /// of the throttled fraction. Fault rules stay.
    pub fn reset_counts(&self) {
        self.lock().reset_counts();
    }

    /// Returns how many mutating requests arrived since the start or the last reset.
    pub fn mutating_count(&self) -> u32 {
        self.lock().mutating_count()
    }

    /// Returns every request since the start or the last reset, in the order of arrival.
    ///
    /// A request appears once the proxy has decided its outcome, before its client sees a
    /// response, so the log is complete when a client call returns.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.lock().log().to_vec()
    }

    /// Returns the number of requests by (service, operation) since the start or the last
    /// reset, whatever their outcome.
    pub fn counts(&self) -> BTreeMap<(String, String), u32> {
        self.lock().counts()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock_state(&self.state)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            // An error means the accept loop has already stopped.
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            // A panic in the thread has already been printed, and a drop must not panic.
            let _ = thread.join();
        }
    }
}

/// Locks the shared state, and uses it even when a panic poisoned the lock: every update is a
/// single step, so a panic cannot leave rules or counts half changed.
fn lock_state(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Parses `http://HOST:PORT` and returns its address if HOST is a loopback address.
fn parse_upstream(upstream: &str) -> Result<SocketAddr, ProxyError> {
    let invalid = |reason: &str| ProxyError::InvalidUpstream {
        upstream: upstream.to_owned(),
        reason: reason.to_owned(),
    };
    let uri: Uri = upstream
        .parse()
        .map_err(|error| invalid(&format!("not a URL ({error})")))?;
    if uri.scheme_str() != Some("http") {
        return Err(invalid(
            "the scheme must be http, because the proxy does not speak TLS",
        ));
    }
    let authority = uri
        .authority()
        .ok_or_else(|| invalid("the host is missing"))?;
    if authority.as_str().contains('@') {
        return Err(invalid("user information is not supported"));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(invalid("a path or query is not supported"));
    }
    let port = authority
        .port_u16()
        .filter(|&port| port != 0)
        .ok_or_else(|| invalid("the port is missing or 0"))?;

    let host = authority.host();
    let ip = if host.eq_ignore_ascii_case("localhost") {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        // IPv6 hosts come in brackets, such as [::1]. Any host name other than localhost
        // fails to parse and is rejected, because resolving it could lead anywhere.
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        bare.parse::<IpAddr>()
            .map_err(|_| ProxyError::NonLoopbackUpstream {
                upstream: upstream.to_owned(),
            })?
    };
    if !ip.is_loopback() {
        return Err(ProxyError::NonLoopbackUpstream {
            upstream: upstream.to_owned(),
        });
    }
    Ok(SocketAddr::new(ip, port))
}

/// What every connection task of a proxy needs.
struct ConnectionContext {
    upstream: SocketAddr,
    state: Arc<Mutex<State>>,
}

impl ConnectionContext {
    fn lock(&self) -> MutexGuard<'_, State> {
        lock_state(&self.state)
    }
}

/// The reason that the proxy closes a client connection without a response.
#[derive(Debug)]
enum ConnectionClosed {
    /// A [`Fault::DropAfterForward`] rule applied.
    Dropped,
    /// The request body could not be read.
    RequestBody(hyper::Error),
}

impl fmt::Display for ConnectionClosed {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectionClosed::Dropped => formatter.write_str("connection dropped by a fault rule"),
            ConnectionClosed::RequestBody(error) => {
                write!(formatter, "failed to read the request body: {error}")
            }
        }
    }
}

impl std::error::Error for ConnectionClosed {}

async fn accept_connections(
    listener: TcpListener,
    context: Arc<ConnectionContext>,
    mut shutdown: oneshot::Receiver<()>,
) {
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                tokio::spawn(serve_connection(stream, Arc::clone(&context)));
            }
            Err(error) => {
                // Accept fails for a full file table, for example. Waiting lets it drain.
                eprintln!("linkplan-testkit: fault proxy failed to accept a connection: {error}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn serve_connection(stream: TcpStream, context: Arc<ConnectionContext>) {
    let service = service_fn(move |request| handle(request, Arc::clone(&context)));
    let result = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
    // A client that gives up mid-request, such as after a read timeout on a stalled request,
    // causes an incomplete-message error, which is no fault of the proxy.
    if let Err(error) = result
        && !error.is_incomplete_message()
        && !is_deliberate_drop(&error)
    {
        eprintln!("linkplan-testkit: fault proxy connection failed: {error}");
    }
}

fn is_deliberate_drop(error: &hyper::Error) -> bool {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if matches!(
            cause.downcast_ref::<ConnectionClosed>(),
            Some(ConnectionClosed::Dropped)
        ) {
            return true;
        }
        source = cause.source();
    }
    false
}

async fn handle(
    request: Request<Incoming>,
    context: Arc<ConnectionContext>,
) -> Result<Response<Full<Bytes>>, ConnectionClosed> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map_err(ConnectionClosed::RequestBody)?
        .to_bytes();
    if parts.method == Method::CONNECT {
        // A CONNECT tunnel would lead to a host of the client's choice.
        return Ok(plain_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "the fault proxy does not support CONNECT",
        ));
    }

    let call = classify(&parts, &body);
    let decision = context.lock().decide(&call);
    if !decision.delay.is_zero() {
        tokio::time::sleep(decision.delay).await;
    }
    let index = decision.mutating_index;
    match decision.fault {
        None => Ok(forward_and_record(&context, call, index, &parts, body).await),
        Some(Fault::Error(error)) => Ok(fail(&context, call, index, &error)),
        Some(Fault::Throttle) => {
            let error = InjectedError::throttling(&call.service);
            Ok(fail(&context, call, index, &error))
        }
        Some(Fault::Stall) => {
            context.lock().record(call, index, Outcome::Stalled);
            // Hyper drops this future, and so the connection, when the client closes it or
            // the proxy stops.
            let never: Infallible = std::future::pending().await;
            match never {}
        }
        Some(Fault::StallAfterForward) => match forward(context.upstream, &parts, body).await {
            Ok(response) => {
                let outcome = Outcome::StalledAfterForward {
                    upstream_status: response.status().as_u16(),
                };
                context.lock().record(call, index, outcome);
                let never: Infallible = std::future::pending().await;
                match never {}
            }
            Err(message) => Ok(upstream_failure(&context, call, index, message)),
        },
        Some(Fault::DropAfterForward) => match forward(context.upstream, &parts, body).await {
            Ok(response) => {
                let outcome = Outcome::Dropped {
                    upstream_status: response.status().as_u16(),
                };
                context.lock().record(call, index, outcome);
                Err(ConnectionClosed::Dropped)
            }
            Err(message) => Ok(upstream_failure(&context, call, index, message)),
        },
    }
}

async fn forward_and_record(
    context: &ConnectionContext,
    call: Call,
    index: Option<u32>,
    parts: &Parts,
    body: Bytes,
) -> Response<Full<Bytes>> {
    match forward(context.upstream, parts, body).await {
        Ok(response) => {
            let outcome = Outcome::Forwarded {
                status: response.status().as_u16(),
            };
            context.lock().record(call, index, outcome);
            response
        }
        Err(message) => upstream_failure(context, call, index, message),
    }
}

fn fail(
    context: &ConnectionContext,
    call: Call,
    index: Option<u32>,
    error: &InjectedError,
) -> Response<Full<Bytes>> {
    let mut state = context.lock();
    let request_id = state.next_request_id();
    let body = errors::error_body(&call.service, error, &request_id);
    let outcome = Outcome::Failed {
        status: error.status,
        code: error.code.clone(),
    };
    state.record(call, index, outcome);
    Response::builder()
        .status(error.status)
        .header(CONTENT_TYPE, "text/xml")
        .header("x-amzn-requestid", request_id)
        .body(Full::new(Bytes::from(body)))
        .expect("InjectedError::new accepts only valid status codes")
}

fn upstream_failure(
    context: &ConnectionContext,
    call: Call,
    index: Option<u32>,
    message: String,
) -> Response<Full<Bytes>> {
    eprintln!(
        "linkplan-testkit: fault proxy failed to forward {} {} to {}: {message}",
        call.service, call.operation, context.upstream
    );
    let text = format!("the fault proxy failed to forward the request to moto: {message}");
    context
        .lock()
        .record(call, index, Outcome::UpstreamFailed { message });
    plain_response(StatusCode::BAD_GATEWAY, &text)
}

fn plain_response(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(text.to_owned())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Sends the request to moto on a new connection and returns moto's full response.
///
/// Only the path and query of the request are used, so an absolute URI that names another
/// host still goes to `upstream`.
async fn forward(
    upstream: SocketAddr,
    parts: &Parts,
    body: Bytes,
) -> Result<Response<Full<Bytes>>, String> {
    // parse_upstream checked this already. The check here keeps a later change from sending
    // test requests off the machine.
    if !upstream.ip().is_loopback() {
        return Err(format!(
            "refusing to forward to {upstream}, which is not loopback"
        ));
    }
    let path = parts.uri.path_and_query().map_or("/", |path| path.as_str());
    let mut request = Request::builder()
        .method(parts.method.clone())
        .uri(path)
        .body(Full::new(body))
        .map_err(|error| format!("invalid request for {path}: {error}"))?;
    copy_end_to_end_headers(&parts.headers, request.headers_mut());

    let stream = TcpStream::connect(upstream)
        .await
        .map_err(|error| format!("failed to connect: {error}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|error| format!("HTTP handshake failed: {error}"))?;
    // The connection task ends when the response is read and `sender` is dropped. Its errors
    // also fail send_request or the body, which report them.
    tokio::spawn(connection);
    let response = sender
        .send_request(request)
        .await
        .map_err(|error| format!("request failed: {error}"))?;
    let (mut response_parts, response_body) = response.into_parts();
    let response_body = response_body
        .collect()
        .await
        .map_err(|error| format!("failed to read the response body: {error}"))?
        .to_bytes();

    let mut headers = HeaderMap::new();
    copy_end_to_end_headers(&response_parts.headers, &mut headers);
    response_parts.headers = headers;
    Ok(Response::from_parts(
        response_parts,
        Full::new(response_body),
    ))
}

fn copy_end_to_end_headers(from: &HeaderMap, to: &mut HeaderMap) {
    for (name, value) in from {
        if !is_hop_by_hop(name) {
            to.append(name.clone(), value.clone());
        }
    }
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP_HEADERS.contains(&name.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_upstreams_parse() {
        let cases = [
            ("http://127.0.0.1:5000", "127.0.0.1:5000"),
            ("http://127.0.0.1:5000/", "127.0.0.1:5000"),
            ("http://127.1.2.3:80", "127.1.2.3:80"),
            ("http://localhost:5000", "127.0.0.1:5000"),
            ("http://[::1]:5000", "[::1]:5000"),
        ];
        for (upstream, expected) in cases {
            let address = parse_upstream(upstream).expect(upstream);
            assert_eq!(address.to_string(), expected, "{upstream}");
        }
    }

    #[test]
    fn remote_upstreams_are_rejected() {
        let cases = [
            "http://169.254.169.254:80",
            "http://10.0.0.1:4566",
            "http://ec2.us-east-1.amazonaws.com:80",
            "http://localhost.example.com:80",
            "http://[::ffff:127.0.0.1]:80",
            "http://0.0.0.0:5000",
        ];
        for upstream in cases {
            let result = parse_upstream(upstream);
            assert!(
                matches!(result, Err(ProxyError::NonLoopbackUpstream { .. })),
                "{upstream}: {result:?}"
            );
        }
    }

    #[test]
    fn malformed_upstreams_are_rejected() {
        let cases = [
            "https://127.0.0.1:443",
            "127.0.0.1:5000",
            "http://user@127.0.0.1:5000",
            "http://127.0.0.1",
            "http://127.0.0.1:0",
            "http://127.0.0.1:5000/moto-api",
            "http://127.0.0.1:5000/?a=b",
            "not a url",
        ];
        for upstream in cases {
            let result = parse_upstream(upstream);
            assert!(
                matches!(result, Err(ProxyError::InvalidUpstream { .. })),
                "{upstream}: {result:?}"
            );
        }
    }

    #[test]
    fn hop_by_hop_headers_are_dropped() {
        let mut from = HeaderMap::new();
        from.insert("connection", "close".parse().expect("a header value"));
        from.insert(
            "transfer-encoding",
            "chunked".parse().expect("a header value"),
        );
        from.insert(
            "x-amz-date",
            "20250101T000000Z".parse().expect("a header value"),
        );
        let mut to = HeaderMap::new();
        copy_end_to_end_headers(&from, &mut to);
        assert_eq!(to.len(), 1);
        assert!(to.contains_key("x-amz-date"));
    }
}
