//! A real Prometheus (Debian's 2.42) as a child process on a loopback port, with its TSDB and log
//! in a test's temporary directory.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::http::Client;
use super::process::Proc;
use super::wait_for;

/// How long Prometheus may take to answer `/-/ready`.
pub const PROMETHEUS_READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A running Prometheus, killed when dropped (its log printed if the test failed).
pub struct Prometheus {
    pub proc: Proc,
    pub port: u16,
    pub client: Client,
}

impl Prometheus {
    /// Starts `binary` with `--config.file=config_path`, its TSDB in `dir/prometheus-data`,
    /// listening on `127.0.0.1:port`, plus `extra_args` (e.g. `--web.enable-lifecycle`); the log
    /// goes to `dir/prometheus.log`. Waits (bounded) until `/-/ready` answers 200.
    pub fn start(
        binary: &Path,
        dir: &Path,
        config_path: &Path,
        port: u16,
        extra_args: &[&str],
    ) -> Prometheus {
        let mut command = Command::new(binary);
        command
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("prometheus-data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .args(extra_args)
            .current_dir(dir);
        let mut proc = Proc::spawn("prometheus", command, &dir.join("prometheus.log"));
        let client = Client::with_timeout(Duration::from_secs(10));
        let url = format!("http://127.0.0.1:{port}/-/ready");
        wait_for(
            "Prometheus /-/ready",
            PROMETHEUS_READY_TIMEOUT,
            Duration::from_millis(100),
            || {
                if let Some(status) = proc.try_exit() {
                    panic!("prometheus exited with {status}");
                }
                match client.get(&url, None) {
                    Ok(response) if response.status == 200 => Ok(()),
                    Ok(response) => Err(format!("{} {}", response.status, response.text())),
                    Err(err) => Err(err),
                }
            },
        );
        Prometheus { proc, port, client }
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}
