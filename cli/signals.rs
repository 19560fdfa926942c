//! The signals that stop a run: SIGINT (Ctrl-C) and, on Unix, SIGTERM, which `timeout`,
//! systemd, Kubernetes and CI runners send to cancel a job.

/// Waits for the next SIGINT or SIGTERM.
///
/// The first call installs the handlers. From then on neither signal ends the process by
/// itself, so the caller decides what an interruption does.
///
/// # Errors
/// A handler could not be installed.
pub async fn interrupted() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate())?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result,
            _ = terminate.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await
    }
}
