//! The write-ahead log makes every acknowledged write durable until it is safe in an uploaded
//! block. Writers append encoded records to a shared buffer and wait; one flusher thread writes
//! whatever has accumulated, fsyncs once for all of them (group commit) and wakes them. Files are
//! numbered segments that start with magic bytes and a version; every record carries a CRC32. On
//! start the newest checkpoint and the segments after it are replayed; a torn or corrupt tail is
//! truncated at the last good record. The record payloads are defined in [`record`].

pub mod record;
mod segment;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use tokio::sync::watch;

pub use segment::{ReplayStats, SEGMENT_MAGIC};

#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("wal i/o error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("wal is unavailable after an earlier write failure: {0}")]
    Poisoned(String),
    #[error("wal is closed")]
    Closed,
    #[error("corrupt wal record: {0}")]
    Corrupt(String),
}

impl WalError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        WalError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// How the WAL writes.
#[derive(Debug, Clone)]
pub struct WalOptions {
    /// fsync before acknowledging (the default); off trades crash safety for speed.
    pub fsync: bool,
    /// A new segment starts once the current one is this large.
    pub segment_bytes: u64,
}

impl Default for WalOptions {
    fn default() -> Self {
        Self {
            fsync: true,
            segment_bytes: 128 << 20,
        }
    }
}

/// Position of a record in the log: writers wait until `durable >= ticket`.
pub type Ticket = u64;

struct Pending {
    buffer: Vec<u8>,
    /// Ticket of the last record in `buffer`.
    last_ticket: Ticket,
    rotate_requested: bool,
    closing: bool,
}

struct Shared {
    pending: Mutex<Pending>,
    wake_flusher: Condvar,
    /// Highest durable ticket, or the error that poisoned the log.
    durable: watch::Sender<Result<Ticket, String>>,
    /// Segment index the flusher is writing now.
    current_segment: Mutex<u64>,
}

/// Observer for fsync latency (the server exports it as a histogram).
pub type FsyncObserver = Arc<dyn Fn(Duration) + Send + Sync>;

/// The write-ahead log of one data directory.
pub struct Wal {
    dir: PathBuf,
    shared: Arc<Shared>,
    flusher: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Wal {
    /// Replays the directory into `apply` (checkpoint first, then segments in order), truncating
    /// a corrupt tail, and opens a fresh segment for new writes.
    pub fn open(
        dir: &Path,
        options: WalOptions,
        fsync_observer: FsyncObserver,
        apply: &mut dyn FnMut(&[u8]),
    ) -> Result<(Self, ReplayStats), WalError> {
        std::fs::create_dir_all(dir).map_err(|e| WalError::io(dir, e))?;
        let stats = segment::replay_dir(dir, apply)?;
        let next_segment = stats
            .last_segment
            .map_or(stats.checkpoint.unwrap_or(0), |s| s + 1);
        let writer = segment::SegmentWriter::create(dir, next_segment)?;
        let (durable, _) = watch::channel(Ok(0));
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending {
                buffer: Vec::with_capacity(1 << 20),
                last_ticket: 0,
                rotate_requested: false,
                closing: false,
            }),
            wake_flusher: Condvar::new(),
            durable,
            current_segment: Mutex::new(next_segment),
        });
        let flusher_shared = shared.clone();
        let flusher_dir = dir.to_path_buf();
        let handle = std::thread::Builder::new()
            .name("wal-flusher".into())
            .spawn(move || {
                flusher_loop(flusher_shared, flusher_dir, writer, options, fsync_observer)
            })
            .map_err(|e| WalError::io(dir, e))?;
        Ok((
            Self {
                dir: dir.to_path_buf(),
                shared,
                flusher: Mutex::new(Some(handle)),
            },
            stats,
        ))
    }

    /// Appends framed records to the group-commit buffer; the returned ticket becomes durable
    /// after the next flush. Records of one call stay together and in order.
    pub fn append(&self, payloads: &[&[u8]]) -> Result<Ticket, WalError> {
        if let Err(e) = &*self.shared.durable.borrow() {
            return Err(WalError::Poisoned(e.clone()));
        }
        let mut pending = self.shared.pending.lock();
        if pending.closing {
            return Err(WalError::Closed);
        }
        for payload in payloads {
            segment::frame_record(&mut pending.buffer, payload);
        }
        pending.last_ticket += 1;
        let ticket = pending.last_ticket;
        drop(pending);
        self.shared.wake_flusher.notify_one();
        Ok(ticket)
    }

    /// Waits until `ticket` is on disk (fsynced when fsync is on).
    pub async fn wait_durable(&self, ticket: Ticket) -> Result<(), WalError> {
        let mut rx = self.shared.durable.subscribe();
        loop {
            match &*rx.borrow_and_update() {
                Ok(durable) if *durable >= ticket => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(WalError::Poisoned(e.clone())),
            }
            if rx.changed().await.is_err() {
                return Err(WalError::Closed);
            }
        }
    }

    /// Appends and waits for durability.
    pub async fn write(&self, payloads: &[&[u8]]) -> Result<(), WalError> {
        let ticket = self.append(payloads)?;
        self.wait_durable(ticket).await
    }

    /// Makes the flusher start a new segment and waits until everything appended before this
    /// call is durable. Returns the index of the new segment: every record appended before the
    /// call lies in a segment with a smaller index.
    pub async fn rotate(&self) -> Result<u64, WalError> {
        let ticket = {
            let mut pending = self.shared.pending.lock();
            pending.rotate_requested = true;
            pending.last_ticket += 1;
            pending.last_ticket
        };
        self.shared.wake_flusher.notify_one();
        self.wait_durable(ticket).await?;
        Ok(*self.shared.current_segment.lock())
    }

    /// Writes a checkpoint holding `records` that stands for every segment below `segment`, then
    /// deletes those segments and older checkpoints. Blocking I/O: call from a blocking thread.
    /// `records` are produced lazily and written as they come.
    pub fn checkpoint(
        &self,
        segment: u64,
        records: impl IntoIterator<Item = Vec<u8>>,
    ) -> Result<(), WalError> {
        segment::write_checkpoint(&self.dir, segment, &mut records.into_iter())?;
        segment::remove_before(&self.dir, segment)
    }

    /// Flushes what is buffered and stops the flusher thread.
    pub fn close(&self) {
        self.shared.pending.lock().closing = true;
        self.shared.wake_flusher.notify_one();
        if let Some(handle) = self.flusher.lock().take() {
            let _ = handle.join();
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        self.close();
    }
}

fn flusher_loop(
    shared: Arc<Shared>,
    dir: PathBuf,
    mut writer: segment::SegmentWriter,
    options: WalOptions,
    fsync_observer: FsyncObserver,
) {
    let mut batch = Vec::with_capacity(1 << 20);
    loop {
        let (ticket, rotate, closing) = {
            let mut pending = shared.pending.lock();
            while pending.buffer.is_empty()
                && !pending.rotate_requested
                && !pending.closing
                && *shared.durable.borrow() == Ok(pending.last_ticket)
            {
                shared.wake_flusher.wait(&mut pending);
            }
            std::mem::swap(&mut batch, &mut pending.buffer);
            let rotate = std::mem::take(&mut pending.rotate_requested);
            (pending.last_ticket, rotate, pending.closing)
        };
        let result = (|| -> Result<(), WalError> {
            if !batch.is_empty() {
                writer.write_all(&batch)?;
                if options.fsync {
                    let started = Instant::now();
                    writer.sync()?;
                    fsync_observer(started.elapsed());
                }
            }
            if rotate || writer.len() >= options.segment_bytes {
                writer.sync()?;
                let next = writer.index() + 1;
                writer = segment::SegmentWriter::create(&dir, next)?;
                *shared.current_segment.lock() = next;
            }
            Ok(())
        })();
        batch.clear();
        match result {
            Ok(()) => {
                let _ = shared.durable.send_replace(Ok(ticket));
            }
            Err(e) => {
                tracing::error!(error = %e, "wal write failed; refusing further writes");
                let _ = shared.durable.send_replace(Err(e.to_string()));
                return;
            }
        }
        if closing {
            let _ = writer.sync();
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_observer() -> FsyncObserver {
        Arc::new(|_| {})
    }

    fn replay_all(dir: &Path) -> Vec<Vec<u8>> {
        let mut seen = Vec::new();
        let (wal, _) = Wal::open(dir, WalOptions::default(), no_observer(), &mut |r| {
            seen.push(r.to_vec())
        })
        .unwrap();
        wal.close();
        seen
    }

    #[tokio::test]
    async fn records_survive_reopen_in_order() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (wal, _) = Wal::open(
                dir.path(),
                WalOptions::default(),
                no_observer(),
                &mut |_| {},
            )
            .unwrap();
            wal.write(&[b"one", b"two"]).await.unwrap();
            wal.write(&[b"three"]).await.unwrap();
            wal.close();
        }
        assert_eq!(
            replay_all(dir.path()),
            vec![b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]
        );
    }

    #[tokio::test]
    async fn torn_tail_is_truncated_at_last_good_record() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (wal, _) = Wal::open(
                dir.path(),
                WalOptions::default(),
                no_observer(),
                &mut |_| {},
            )
            .unwrap();
            wal.write(&[b"kept"]).await.unwrap();
            wal.write(&[b"torn-record"]).await.unwrap();
            wal.close();
        }
        let segment = segment::segment_path(dir.path(), 0);
        let len = std::fs::metadata(&segment).unwrap().len();
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&segment)
            .unwrap();
        file.set_len(len - 3).unwrap();
        assert_eq!(replay_all(dir.path()), vec![b"kept".to_vec()]);
        // A later write after truncation replays cleanly after the kept record.
        {
            let (wal, _) = Wal::open(
                dir.path(),
                WalOptions::default(),
                no_observer(),
                &mut |_| {},
            )
            .unwrap();
            wal.write(&[b"after"]).await.unwrap();
            wal.close();
        }
        assert_eq!(
            replay_all(dir.path()),
            vec![b"kept".to_vec(), b"after".to_vec()]
        );
    }

    #[tokio::test]
    async fn corrupt_checksum_stops_replay_of_that_segment() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (wal, _) = Wal::open(
                dir.path(),
                WalOptions::default(),
                no_observer(),
                &mut |_| {},
            )
            .unwrap();
            wal.write(&[b"good"]).await.unwrap();
            wal.write(&[b"flipped"]).await.unwrap();
            wal.close();
        }
        let segment = segment::segment_path(dir.path(), 0);
        let mut bytes = std::fs::read(&segment).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&segment, bytes).unwrap();
        assert_eq!(replay_all(dir.path()), vec![b"good".to_vec()]);
    }

    #[tokio::test]
    async fn checkpoint_replaces_older_segments() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (wal, _) = Wal::open(
                dir.path(),
                WalOptions::default(),
                no_observer(),
                &mut |_| {},
            )
            .unwrap();
            wal.write(&[b"old"]).await.unwrap();
            let segment = wal.rotate().await.unwrap();
            wal.write(&[b"new"]).await.unwrap();
            wal.checkpoint(segment, [b"snapshot".to_vec()]).unwrap();
            wal.close();
        }
        assert_eq!(
            replay_all(dir.path()),
            vec![b"snapshot".to_vec(), b"new".to_vec()]
        );
    }

    #[tokio::test]
    async fn concurrent_writers_share_fsyncs() {
        let dir = tempfile::tempdir().unwrap();
        let fsyncs = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = fsyncs.clone();
        let observer: FsyncObserver = Arc::new(move |_| {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        });
        let (wal, _) = Wal::open(dir.path(), WalOptions::default(), observer, &mut |_| {}).unwrap();
        let wal = Arc::new(wal);
        let mut tasks = Vec::new();
        for i in 0..64u32 {
            let wal = wal.clone();
            tasks.push(tokio::spawn(
                async move { wal.write(&[&i.to_le_bytes()]).await },
            ));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        wal.close();
        assert!(fsyncs.load(std::sync::atomic::Ordering::Relaxed) <= 64);
        assert_eq!(replay_all(dir.path()).len(), 64);
    }
}
