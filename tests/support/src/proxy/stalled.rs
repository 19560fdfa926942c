//! A TCP listener that accepts connections and never responds, for timeout tests.

use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// How often the accepting thread checks for new connections and for the stop flag.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// A listener on 127.0.0.1 that accepts every connection, reads nothing and sends nothing.
///
/// A client connects at once and then waits for a response that never comes, so its read
/// timeout, not its connect timeout, ends the request. The listener closes its connections
/// when it is dropped.
#[derive(Debug)]
pub struct StalledListener {
    address: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Starts a [`StalledListener`] on a free port of 127.0.0.1.
///
/// # Panics
///
/// Panics when the port cannot be bound or the accepting thread cannot be started.
pub fn stalled_listener() -> StalledListener {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap_or_else(|error| panic!("failed to bind a stalled listener on 127.0.0.1: {error}"));
    // Non-blocking accepts let the thread see the stop flag without a wake-up connection.
    listener.set_nonblocking(true).unwrap_or_else(|error| {
        panic!("failed to make the stalled listener non-blocking: {error}")
    });
    let address = listener
        .local_addr()
        .unwrap_or_else(|error| panic!("the stalled listener has no local address: {error}"));
    let stop = Arc::new(AtomicBool::new(false));
    let thread_stop = Arc::clone(&stop);
    let thread = thread::Builder::new()
        .name("linkplan-stalled-listener".to_owned())
        .spawn(move || hold_connections(&listener, &thread_stop))
        .unwrap_or_else(|error| panic!("failed to start the stalled listener thread: {error}"));
    StalledListener {
        address,
        stop,
        thread: Some(thread),
    }
}

impl StalledListener {
    /// Returns the listener's URL, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

impl Drop for StalledListener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            // A panic in the thread has already been printed, and a drop must not panic.
            let _ = thread.join();
        }
    }
}

fn hold_connections(listener: &TcpListener, stop: &AtomicBool) {
    // The connections stay open in this list until the thread returns.
    let mut connections: Vec<TcpStream> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => connections.push(stream),
            Err(error) if error.kind() == ErrorKind::WouldBlock => thread::sleep(POLL_INTERVAL),
            Err(error) => {
                eprintln!("linkplan-testkit: the stalled listener failed to accept: {error}");
                thread::sleep(POLL_INTERVAL);
            }
        }
    }
}
