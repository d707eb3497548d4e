//! The `vigil` binary: every role of Vigil in one process. All wiring lives in `vigil-server`.

/// jemalloc: per-line allocations on the log push path cost a third less CPU than with glibc's
/// allocator, and memory freed by a burst goes back to the system (see benches/README.md).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read at its start (`_RJEM_MALLOC_CONF` in the environment adds to and
/// overrides them): two arenas as for glibc (threads beyond them share), freed pages returned
/// to the system after about a second instead of ten, and none kept lazily mapped.
#[export_name = "_rjem_malloc_conf"]
pub static MALLOC_CONF: &[u8; 47] = b"narenas:2,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

fn main() -> std::process::ExitCode {
    vigil_server::main()
}
