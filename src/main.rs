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

/// Returns the pages jemalloc holds freed (in every arena) to the system.
fn purge_freed_pages() {
    // MALLCTL_ARENAS_ALL: every arena.
    const PURGE_ALL_ARENAS: &[u8] = b"arena.4096.purge\0";
    // SAFETY: a NUL-terminated control name of this jemalloc that neither reads nor writes a
    // value, so null pointers and zero length are what it expects.
    // A failure only leaves the pages to the decay (about a second), so it is not reported.
    let _status = unsafe {
        tikv_jemalloc_sys::mallctl(
            PURGE_ALL_ARENAS.as_ptr().cast(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0,
        )
    };
}

fn main() -> std::process::ExitCode {
    vigil_db::set_release_freed_memory(purge_freed_pages);
    vigil_server::main()
}
