//! The `vigil` binary: every role of Vigil in one process. All wiring lives in `vigil-server`.

fn main() -> std::process::ExitCode {
    vigil_server::main()
}
