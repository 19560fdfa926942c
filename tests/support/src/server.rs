//! Starting a moto server for tests, and the SDK settings and environment that point at it.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_runtime::env_config::file::{EnvConfigFileKind, EnvConfigFiles};
use aws_sdk_ec2::config::Credentials;
use aws_smithy_http_client::tls;

use crate::fixtures::ProviderSide;

/// Dummy credentials that moto accepts. They are not secret.
pub(crate) const ACCESS_KEY_ID: &str = "testing";
pub(crate) const SECRET_ACCESS_KEY: &str = "testing";

/// The region that [`MotoServer::env`] gives a child process.
pub(crate) const DEFAULT_REGION: &str = "us-east-1";

/// Config and credentials file paths for child processes. `/dev/null` reads as an empty file,
/// so the SDK finds no profile, ignores a developer's ~/.aws, and logs no missing-file warning.
const ABSENT_CONFIG_FILE: &str = "/dev/null";
const ABSENT_CREDENTIALS_FILE: &str = "/dev/null";

/// Bypass rules that keep an HTTP_PROXY of the environment away from loopback requests.
const NO_PROXY: &str = "127.0.0.1,localhost,::1";

/// The launcher printed its port 0.8 s after it started on a 2-core development machine. The
/// limit leaves room for a cold disk cache and a loaded CI machine.
const LAUNCH_TIMEOUT: Duration = Duration::from_secs(60);
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Runs moto in a thread of the venv's Python and exits when its standard input reaches end
/// of file. The test binary keeps the write end of that pipe open and never writes, so the
/// kernel closes it when the binary exits, however it exits, and no server outlives it.
///
/// The launcher binds port 0 itself and prints the port it got, so no other process can
/// take the port between choosing and binding it.
const LAUNCHER: &str = r#"
import os
import sys

from moto.server import ThreadedMotoServer

server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
port = server.get_host_and_port()[1]
os.environ["MOTO_PORT"] = str(port)
print(port, flush=True)
# Later output goes to the log on stderr, so nothing can block on a full stdout pipe.
os.dup2(2, 1)
sys.stdin.buffer.read()
os._exit(0)
"#;

/// A moto server on 127.0.0.1 that runs as long as this value exists.
///
/// The server behind [`crate::moto`] lives in a static and stops when the test binary
/// exits. One from [`MotoServer::start`] stops when it is dropped.
pub struct MotoServer {
    /// The server's URL, `http://127.0.0.1:PORT`.
    pub endpoint: String,
    pub port: u16,
    root: PathBuf,
    log_path: PathBuf,
    pub(crate) provider_sides: Mutex<HashMap<String, ProviderSide>>,
    launcher: Child,
    // The launcher exits when this pipe closes.
    launcher_stdin: Option<ChildStdin>,
}

impl MotoServer {
    /// Starts a moto server of its own on a free port of 127.0.0.1 and waits until it responds.
    ///
    /// Runs `scripts/local-aws install` first when `.venv/bin/moto_server` is missing. The
    /// server's log is `.local-aws/tests/<test binary>.log` in the repository.
    pub fn start() -> anyhow::Result<MotoServer> {
        let root = repository_root()?;
        ensure_moto_installed(&root)?;
        let log_path = log_path(&root)?;
        let log = File::create(&log_path)
            .with_context(|| format!("failed to create the moto log {}", log_path.display()))?;

        let python = root.join(".venv/bin/python");
        let mut command = isolated_command(&python);
        command
            .arg("-c")
            .arg(LAUNCHER)
            .current_dir(&root)
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log);
        let mut launcher = command
            .spawn()
            .with_context(|| format!("failed to run {}", python.display()))?;
        let launcher_stdin = launcher.stdin.take();

        let port = match read_port(&mut launcher, &log_path) {
            Ok(port) => port,
            Err(error) => {
                stop(&mut launcher);
                return Err(error);
            }
        };
        let server = MotoServer {
            endpoint: format!("http://127.0.0.1:{port}"),
            port,
            root,
            log_path,
            provider_sides: Mutex::new(HashMap::new()),
            launcher,
            launcher_stdin,
        };
        // On an error, dropping the server stops the launcher.
        server.wait_until_ready()?;
        Ok(server)
    }

    /// Builds an SDK config for `region` that sends every request to this server.
    ///
    /// It uses static dummy credentials, reads no ~/.aws files, never queries instance
    /// metadata and ignores HTTP_PROXY, so nothing in the developer's environment can send a
    /// request elsewhere.
    pub async fn sdk_config(&self, region: &str) -> SdkConfig {
        local_sdk_config(&self.endpoint, region).await
    }

    /// Returns an EC2 client for `region` on this server.
    pub async fn ec2(&self, region: &str) -> aws_sdk_ec2::Client {
        aws_sdk_ec2::Client::new(&self.sdk_config(region).await)
    }

    /// Returns a Route 53 client on this server. Route 53 is global, so the region only
    /// signs the requests.
    pub async fn route53(&self) -> aws_sdk_route53::Client {
        aws_sdk_route53::Client::new(&self.sdk_config(DEFAULT_REGION).await)
    }

    /// Returns an S3 client for `region` on this server, with path-style addressing, since the
    /// server has no per-bucket host names.
    pub async fn s3(&self, region: &str) -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::config::Builder::from(&self.sdk_config(region).await)
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    /// Creates a bucket in us-east-1 whose name starts with `prefix` and that no other call in
    /// this process returns, and returns its name.
    pub async fn bucket(&self, prefix: &str) -> String {
        let bucket = crate::unique_name(prefix);
        let created = self
            .s3(DEFAULT_REGION)
            .await
            .create_bucket()
            .bucket(&bucket)
            .send()
            .await;
        if let Err(error) = created {
            panic!("CreateBucket {bucket} on moto failed: {error:?}");
        }
        bucket
    }

    /// Returns the environment variables that point a child process, such as `linkplan`, at
    /// this server.
    ///
    /// They set the endpoint, dummy credentials, `AWS_REGION` and `AWS_DEFAULT_REGION` to
    /// us-east-1, disable instance metadata and point the config and credentials files at
    /// `/dev/null`. Variables inherited from the test process stay set, so prefer
    /// [`MotoServer::command`], which removes them.
    pub fn env(&self) -> Vec<(String, String)> {
        local_env(&self.endpoint)
    }

    /// Builds a command for `program` whose environment points at this server.
    ///
    /// It removes every inherited `AWS_*` and proxy variable, such as `AWS_PROFILE` or
    /// `AWS_SESSION_TOKEN`, then sets [`MotoServer::env`].
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut command = isolated_command(program);
        command.envs(self.env());
        command
    }

    /// Returns the repository root, which contains `scripts/` and `.venv/`.
    pub fn repository_root(&self) -> &Path {
        &self.root
    }

    /// Returns the path of the file that the server writes its request log and errors to.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    fn wait_until_ready(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match http_status(self.port, "/moto-api/") {
                Ok(200) => return Ok(()),
                Ok(_) | Err(_) if Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(100));
                }
                Ok(status) => bail!(
                    "moto at {} returned HTTP {status} for GET /moto-api/ after {}s; {}",
                    self.endpoint,
                    READY_TIMEOUT.as_secs(),
                    log_tail(&self.log_path)
                ),
                Err(error) => bail!(
                    "moto at {} did not answer GET /moto-api/ within {}s ({error}); {}",
                    self.endpoint,
                    READY_TIMEOUT.as_secs(),
                    log_tail(&self.log_path)
                ),
            }
        }
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        // The launcher exits when it reads end of file from this pipe.
        drop(self.launcher_stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            match self.launcher.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) => thread::sleep(Duration::from_millis(50)),
                Err(_) => break,
            }
        }
        eprintln!(
            "linkplan-testkit: moto at {} did not exit 5s after its stdin closed; killing pid {}",
            self.endpoint,
            self.launcher.id()
        );
        stop(&mut self.launcher);
    }
}

/// Builds the SDK config of [`MotoServer::sdk_config`] for a server at `endpoint`.
pub(crate) async fn local_sdk_config(endpoint: &str, region: &str) -> SdkConfig {
    // A client built without a proxy setting sends no request through a proxy, while the
    // SDK's default client reads HTTP_PROXY from the environment.
    let http_client = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::AwsLc,
        ))
        .build_https();
    let profile_files = EnvConfigFiles::builder()
        .with_contents(EnvConfigFileKind::Config, "")
        .with_contents(EnvConfigFileKind::Credentials, "")
        .build();
    let credentials = Credentials::new(
        ACCESS_KEY_ID,
        SECRET_ACCESS_KEY,
        None,
        None,
        "linkplan-testkit",
    );
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(region.to_owned()))
        .credentials_provider(credentials)
        .profile_files(profile_files)
        .http_client(http_client)
        .load()
        .await
}

/// Returns the environment of [`MotoServer::env`] for a server at `endpoint`.
pub(crate) fn local_env(endpoint: &str) -> Vec<(String, String)> {
    [
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID),
        ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY),
        ("AWS_REGION", DEFAULT_REGION),
        // botocore 1.44 reads this one for a client's region, not AWS_REGION.
        ("AWS_DEFAULT_REGION", DEFAULT_REGION),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_CONFIG_FILE", ABSENT_CONFIG_FILE),
        ("AWS_SHARED_CREDENTIALS_FILE", ABSENT_CREDENTIALS_FILE),
        ("NO_PROXY", NO_PROXY),
        ("no_proxy", NO_PROXY),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value.to_owned()))
    .collect()
}

fn stop(launcher: &mut Child) {
    // Errors mean the process has already exited, which is the goal.
    let _ = launcher.kill();
    let _ = launcher.wait();
}

/// Returns a command for `program` without the inherited `AWS_*` and proxy variables.
pub(crate) fn isolated_command(program: impl AsRef<OsStr>) -> Command {
    let mut command = Command::new(program);
    for (name, _) in std::env::vars_os() {
        let text = name.to_string_lossy();
        let is_proxy = text.eq_ignore_ascii_case("http_proxy")
            || text.eq_ignore_ascii_case("https_proxy")
            || text.eq_ignore_ascii_case("all_proxy");
        if text.starts_with("AWS_") || is_proxy {
            command.env_remove(&name);
        }
    }
    command
}

fn repository_root() -> anyhow::Result<PathBuf> {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = manifest_dir.join("../..");
    root.canonicalize()
        .with_context(|| format!("repository root {} not found", root.display()))
}

fn ensure_moto_installed(root: &Path) -> anyhow::Result<()> {
    if root.join(".venv/bin/moto_server").is_file() {
        return Ok(());
    }
    let script = root.join("scripts/local-aws");
    let status = Command::new(&script)
        .arg("install")
        .current_dir(root)
        .status()
        .with_context(|| format!("failed to run {} install", script.display()))?;
    if !status.success() {
        bail!(
            "{} install failed with {status}: run it by hand to see why",
            script.display()
        );
    }
    Ok(())
}

/// Returns `.local-aws/tests/<test binary>.log`, without the hash that cargo appends to the
/// binary's name, so reruns of a test binary reuse one file.
fn log_path(root: &Path) -> anyhow::Result<PathBuf> {
    let directory = root.join(".local-aws/tests");
    fs::create_dir_all(&directory)
        .with_context(|| format!("failed to create {}", directory.display()))?;
    let executable = std::env::current_exe().unwrap_or_default();
    let stem = executable
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_else(|| "test".to_owned());
    let name = match stem.rsplit_once('-') {
        Some((name, hash)) if hash.len() == 16 && hash.chars().all(|c| c.is_ascii_hexdigit()) => {
            name.to_owned()
        }
        _ => stem,
    };
    Ok(directory.join(format!("{name}.log")))
}

/// Reads the port that the launcher prints once moto listens.
fn read_port(launcher: &mut Child, log_path: &Path) -> anyhow::Result<u16> {
    let stdout = launcher
        .stdout
        .take()
        .context("the moto launcher has no stdout pipe")?;
    let (sender, receiver) = mpsc::channel();
    thread::spawn(move || {
        let mut line = String::new();
        let result = BufReader::new(stdout).read_line(&mut line).map(|_| line);
        // The receiver is gone only after a timeout, when nobody needs the line.
        let _ = sender.send(result);
    });
    let line = match receiver.recv_timeout(LAUNCH_TIMEOUT) {
        Ok(Ok(line)) => line,
        Ok(Err(error)) => bail!(
            "failed to read the port from the moto launcher: {error}; {}",
            log_tail(log_path)
        ),
        Err(_) => bail!(
            "the moto launcher printed no port within {}s; {}",
            LAUNCH_TIMEOUT.as_secs(),
            log_tail(log_path)
        ),
    };
    let text = line.trim();
    if text.is_empty() {
        let status = launcher
            .try_wait()
            .ok()
            .flatten()
            .map_or_else(|| "still running".to_owned(), |status| status.to_string());
        bail!(
            "the moto launcher exited before printing a port ({status}); {}",
            log_tail(log_path)
        );
    }
    text.parse()
        .with_context(|| format!("the moto launcher printed {text:?} instead of a port"))
}

/// Sends `GET path` to 127.0.0.1:port and returns the HTTP status code.
fn http_status(port: u16, path: &str) -> std::io::Result<u16> {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(1))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response);
    // The status line reads `HTTP/1.1 200 OK`.
    text.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("malformed HTTP response from port {port}")))
}

/// Returns the last lines of the moto log, for error messages.
fn log_tail(log_path: &Path) -> String {
    const LINES: usize = 20;
    match fs::read_to_string(log_path) {
        Ok(log) => {
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(LINES)..].join("\n");
            format!("last lines of {}:\n{tail}", log_path.display())
        }
        Err(error) => format!("the log {} is unreadable: {error}", log_path.display()),
    }
}
