//! Child processes: a generic guard ([`Proc`]) and the `vigil` server ([`Vigil`]).

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::http::{Client, Response};
use super::{free_port, wait_for};

/// How long a server may take to become ready (WAL replay included).
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A child process that is killed when dropped. Its stdout and stderr go to `log` (one file), which
/// is printed when the thread is panicking, so a failing test shows what the process said.
pub struct Proc {
    pub name: String,
    child: Option<Child>,
    pub log: PathBuf,
    exit: Option<ExitStatus>,
}

impl Proc {
    /// Spawns `command` with stdin closed and stdout+stderr appended to `log`.
    pub fn spawn(name: &str, mut command: Command, log: &Path) -> Proc {
        let out = File::options()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|err| panic!("open log {}: {err}", log.display()));
        let err = out.try_clone().expect("clone log file handle");
        command
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        let child = command
            .spawn()
            .unwrap_or_else(|err| panic!("spawn {name} ({command:?}): {err}"));
        Proc {
            name: name.to_string(),
            child: Some(child),
            log: log.to_path_buf(),
            exit: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("process was reaped").id()
    }

    /// `Some(status)` once the process has exited.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            if let Some(child) = self.child.as_mut() {
                self.exit = child.try_wait().expect("try_wait");
            }
        }
        self.exit
    }

    /// Sends a signal by name (`TERM`, `STOP`, `CONT`, `HUP`, …) with the `kill` command.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill(1)");
        assert!(status.success(), "kill -{signal} {} failed", self.name);
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        if let Some(child) = self.child.as_mut() {
            if self.exit.is_none() {
                let _ = child.kill();
                self.exit = Some(child.wait().expect("wait after kill"));
            }
        }
    }

    /// Waits for the process to exit on its own, up to `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.try_exit() {
                return status;
            }
            if start.elapsed() > timeout {
                panic!("{} did not exit within {timeout:?}", self.name);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The whole log so far.
    pub fn log_text(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = File::open(&self.log) {
            let mut bytes = Vec::new();
            let _ = file.read_to_end(&mut bytes);
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
        text
    }

    /// Prints the log's last 200 lines to stderr.
    pub fn print_log(&self) {
        let text = self.log_text();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(200);
        eprintln!(
            "----- {} log ({}, last {} of {} lines) -----",
            self.name,
            self.log.display(),
            lines.len() - from,
            lines.len()
        );
        for line in &lines[from..] {
            eprintln!("{line}");
        }
        eprintln!("----- end of {} log -----", self.name);
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // A stopped process (SIGSTOP) still dies of SIGKILL.
        self.kill();
        if std::thread::panicking() {
            self.print_log();
        }
    }
}

/// The binary under test: `VIGIL_TEST_BINARY` if set (e.g. a release build), else the workspace's
/// own `vigil`.
pub fn vigil_binary() -> PathBuf {
    match std::env::var_os("VIGIL_TEST_BINARY") {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(env!("CARGO_BIN_EXE_vigil")),
    }
}

/// Options of a `vigil serve` run.
#[derive(Clone, Debug, Default)]
pub struct VigilOpts {
    /// Extra flags after `serve --listen … --data-dir …`.
    pub args: Vec<String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
}

impl VigilOpts {
    pub fn args(args: &[&str]) -> VigilOpts {
        VigilOpts {
            args: args.iter().map(|arg| arg.to_string()).collect(),
            env: Vec::new(),
        }
    }

    pub fn env(mut self, name: &str, value: &str) -> VigilOpts {
        self.env.push((name.to_string(), value.to_string()));
        self
    }
}

/// A running `vigil serve` on a loopback port with its own data directory. Restartable on the same
/// data directory; killed when dropped (printing its logs if the test failed).
pub struct Vigil {
    root: PathBuf,
    pub data_dir: PathBuf,
    opts: VigilOpts,
    pub port: u16,
    proc: Option<Proc>,
    /// Logs of earlier runs of this server (printed too on failure).
    old_logs: Vec<PathBuf>,
    runs: u32,
    pub client: Client,
}

impl Vigil {
    /// Starts `vigil serve` with data in `root/data` and logs in `root/vigil-N.log`, and waits until
    /// `/ready` answers 200.
    pub fn start(root: &Path, opts: VigilOpts) -> Vigil {
        let mut vigil = Vigil {
            root: root.to_path_buf(),
            data_dir: root.join("data"),
            opts,
            port: 0,
            proc: None,
            old_logs: Vec::new(),
            runs: 0,
            client: Client::new(),
        };
        vigil.spawn();
        vigil.wait_ready();
        vigil
    }

    fn spawn(&mut self) {
        assert!(self.proc.is_none(), "vigil is already running");
        self.runs += 1;
        self.port = free_port();
        let log = self.root.join(format!("vigil-{}.log", self.runs));
        let mut command = Command::new(vigil_binary());
        command
            .arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(&self.opts.args)
            .current_dir(&self.root);
        // Hermetic: no VIGIL_* or AWS_* settings of the caller leak in.
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if name.starts_with("VIGIL_") || name.starts_with("AWS_") {
                command.env_remove(&*name);
            }
        }
        command.env("RUST_BACKTRACE", "1");
        for (name, value) in &self.opts.env {
            command.env(name, value);
        }
        self.proc = Some(Proc::spawn(
            &format!("vigil run {}", self.runs),
            command,
            &log,
        ));
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}{}", self.base_url(), path_and_query)
    }

    /// Waits until `GET /ready` is 200; panics (with the log) if the process exits first or the
    /// deadline passes.
    pub fn wait_ready(&mut self) {
        let url = self.url("/ready");
        let client = self.client.clone();
        let proc = self.proc.as_mut().expect("vigil is not running");
        wait_for(
            "vigil /ready to answer 200",
            READY_TIMEOUT,
            Duration::from_millis(50),
            || {
                if let Some(status) = proc.try_exit() {
                    // The guard prints the log as the panic unwinds.
                    panic!("vigil exited with {status} before it was ready");
                }
                match client.get(&url, None) {
                    Ok(Response { status: 200, .. }) => Ok(()),
                    Ok(response) => Err(format!("{} {}", response.status, response.text())),
                    Err(err) => Err(err),
                }
            },
        );
    }

    /// SIGKILL: the process dies at once, wherever it is.
    pub fn kill(&mut self) {
        if let Some(mut proc) = self.proc.take() {
            proc.kill();
            self.old_logs.push(proc.log.clone());
        }
    }

    /// SIGTERM, then waits (bounded) for the graceful shutdown to finish; returns the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        let mut proc = self.proc.take().expect("vigil is not running");
        proc.signal("TERM");
        let status = proc.wait_exit(timeout);
        self.old_logs.push(proc.log.clone());
        status
    }

    /// Starts again on the same data directory (on a new port) and waits until ready.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
        self.wait_ready();
    }

    /// Asserts the process is still running (it did not crash on what the test sent).
    pub fn assert_running(&mut self) {
        let proc = self.proc.as_mut().expect("vigil is not running");
        if let Some(status) = proc.try_exit() {
            panic!("vigil exited unexpectedly with {status}");
        }
    }
}

/// `path size` for every file under `dir`, sorted (for failure reports).
fn list_files(dir: &Path) -> Vec<String> {
    super::walk_files(dir)
        .into_iter()
        .map(|(path, size)| format!("{} {size}", path.display()))
        .collect()
}

impl Drop for Vigil {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let files = list_files(&self.data_dir);
            eprintln!(
                "----- files in the data directory ({} files, bytes) -----",
                files.len()
            );
            for line in files.iter().take(300) {
                eprintln!("{line}");
            }
            // The earlier runs first; the running one is printed by its own guard.
            for path in &self.old_logs {
                let text = std::fs::read_to_string(path).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                let from = lines.len().saturating_sub(100);
                eprintln!(
                    "----- earlier vigil run ({}) last lines -----",
                    path.display()
                );
                for line in &lines[from..] {
                    eprintln!("{line}");
                }
            }
        }
        // `proc` drops after this and kills the server.
    }
}
