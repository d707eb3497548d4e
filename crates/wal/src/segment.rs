//! Segment and checkpoint files. Layout (docs/format/wal.md):
//! header `VGWAL` + version byte + 2 reserved bytes, then records
//! `[u32 le payload length][u32 le crc32(payload)][payload]`.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::WalError;

pub const SEGMENT_MAGIC: &[u8; 5] = b"VGWAL";
const VERSION: u8 = 1;
const HEADER_LEN: usize = 8;
const RECORD_HEADER_LEN: usize = 8;
/// Larger lengths can only come from corruption.
const MAX_RECORD_LEN: usize = 1 << 30;

/// What replay found.
#[derive(Debug, Default, Clone)]
pub struct ReplayStats {
    pub checkpoint: Option<u64>,
    pub last_segment: Option<u64>,
    pub records: u64,
    pub bytes: u64,
    /// Bytes cut off a torn or corrupt tail.
    pub truncated_bytes: u64,
}

pub(crate) fn segment_path(dir: &Path, index: u64) -> PathBuf {
    dir.join(format!("{index:08}.seg"))
}

fn checkpoint_path(dir: &Path, index: u64) -> PathBuf {
    dir.join(format!("checkpoint.{index:08}"))
}

pub(crate) fn frame_record(buffer: &mut Vec<u8>, payload: &[u8]) {
    buffer.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buffer.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    buffer.extend_from_slice(payload);
}

fn header() -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..5].copy_from_slice(SEGMENT_MAGIC);
    h[5] = VERSION;
    h
}

pub(crate) struct SegmentWriter {
    file: File,
    index: u64,
    len: u64,
}

impl SegmentWriter {
    pub(crate) fn create(dir: &Path, index: u64) -> Result<Self, WalError> {
        let path = segment_path(dir, index);
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| WalError::io(&path, e))?;
        let mut len = file.metadata().map_err(|e| WalError::io(&path, e))?.len();
        if len == 0 {
            file.write_all(&header())
                .map_err(|e| WalError::io(&path, e))?;
            file.sync_all().map_err(|e| WalError::io(&path, e))?;
            sync_dir(dir)?;
            len = HEADER_LEN as u64;
        }
        Ok(Self { file, index, len })
    }

    pub(crate) fn write_all(&mut self, bytes: &[u8]) -> Result<(), WalError> {
        self.file.write_all(bytes).map_err(|e| WalError::Io {
            path: PathBuf::from(format!("segment {}", self.index)),
            source: e,
        })?;
        self.len += bytes.len() as u64;
        Ok(())
    }

    pub(crate) fn sync(&mut self) -> Result<(), WalError> {
        self.file.sync_data().map_err(|e| WalError::Io {
            path: PathBuf::from(format!("segment {}", self.index)),
            source: e,
        })
    }

    pub(crate) fn index(&self) -> u64 {
        self.index
    }

    pub(crate) fn len(&self) -> u64 {
        self.len
    }
}

fn sync_dir(dir: &Path) -> Result<(), WalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| WalError::io(dir, e))
}

/// Files of the WAL directory: (checkpoints, segments), each sorted by index.
fn list(dir: &Path) -> Result<(Vec<u64>, Vec<u64>), WalError> {
    let mut checkpoints = Vec::new();
    let mut segments = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| WalError::io(dir, e))? {
        let entry = entry.map_err(|e| WalError::io(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(index) = name.strip_suffix(".seg").and_then(|n| n.parse().ok()) {
            segments.push(index);
        } else if let Some(index) = name
            .strip_prefix("checkpoint.")
            .and_then(|n| n.parse().ok())
        {
            checkpoints.push(index);
        }
    }
    checkpoints.sort_unstable();
    segments.sort_unstable();
    Ok((checkpoints, segments))
}

pub(crate) fn replay_dir(
    dir: &Path,
    apply: &mut dyn FnMut(&[u8]),
) -> Result<ReplayStats, WalError> {
    let (checkpoints, segments) = list(dir)?;
    let mut stats = ReplayStats::default();
    let start = checkpoints.last().copied();
    if let Some(index) = start {
        stats.checkpoint = Some(index);
        let path = checkpoint_path(dir, index);
        let clean = replay_file(&path, apply, &mut stats)?;
        if !clean {
            // A checkpoint is written to a temporary name and renamed only when complete.
            return Err(WalError::Corrupt(format!(
                "checkpoint {} is damaged",
                path.display()
            )));
        }
    }
    for index in segments
        .into_iter()
        .filter(|i| start.is_none_or(|c| *i >= c))
    {
        let path = segment_path(dir, index);
        replay_file(&path, apply, &mut stats)?;
        stats.last_segment = Some(index);
    }
    Ok(stats)
}

/// Replays one file; a torn or corrupt tail is truncated. Returns whether the file was clean.
fn replay_file(
    path: &Path,
    apply: &mut dyn FnMut(&[u8]),
    stats: &mut ReplayStats,
) -> Result<bool, WalError> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|e| WalError::io(path, e))?;
    if bytes.len() < HEADER_LEN || &bytes[..5] != SEGMENT_MAGIC || bytes[5] != VERSION {
        tracing::warn!(path = %path.display(), "wal file without a valid header; rewriting it empty");
        truncate(path, 0)?;
        stats.truncated_bytes += bytes.len() as u64;
        return Ok(false);
    }
    let mut offset = HEADER_LEN;
    while offset < bytes.len() {
        let rest = &bytes[offset..];
        let good = rest.len() >= RECORD_HEADER_LEN && {
            let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
            len <= MAX_RECORD_LEN
                && rest.len() >= RECORD_HEADER_LEN + len
                && crc32fast::hash(&rest[RECORD_HEADER_LEN..RECORD_HEADER_LEN + len]) == crc
        };
        if !good {
            let cut = bytes.len() - offset;
            tracing::warn!(path = %path.display(), offset, bytes = cut, "truncating torn or corrupt wal tail");
            truncate(path, offset as u64)?;
            stats.truncated_bytes += cut as u64;
            return Ok(false);
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        apply(&rest[RECORD_HEADER_LEN..RECORD_HEADER_LEN + len]);
        stats.records += 1;
        stats.bytes += (RECORD_HEADER_LEN + len) as u64;
        offset += RECORD_HEADER_LEN + len;
    }
    Ok(true)
}

fn truncate(path: &Path, len: u64) -> Result<(), WalError> {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| WalError::io(path, e))?;
    if len == 0 {
        file.set_len(0).map_err(|e| WalError::io(path, e))?;
        let mut file = file;
        file.write_all(&header())
            .map_err(|e| WalError::io(path, e))?;
        return file.sync_all().map_err(|e| WalError::io(path, e));
    }
    file.set_len(len).map_err(|e| WalError::io(path, e))?;
    file.sync_all().map_err(|e| WalError::io(path, e))
}

pub(crate) fn write_checkpoint(
    dir: &Path,
    index: u64,
    records: &mut dyn Iterator<Item = Vec<u8>>,
) -> Result<(), WalError> {
    let final_path = checkpoint_path(dir, index);
    let tmp = dir.join(format!("checkpoint.{index:08}.tmp"));
    let file = File::create(&tmp).map_err(|e| WalError::io(&tmp, e))?;
    // Records are framed into a bounded buffer and written as they come, so a large head
    // (log lines) never sits in memory twice.
    let mut writer = std::io::BufWriter::with_capacity(1 << 20, file);
    writer
        .write_all(&header())
        .map_err(|e| WalError::io(&tmp, e))?;
    let mut framed = Vec::new();
    for record in records {
        framed.clear();
        frame_record(&mut framed, &record);
        writer
            .write_all(&framed)
            .map_err(|e| WalError::io(&tmp, e))?;
    }
    let file = writer
        .into_inner()
        .map_err(|e| WalError::io(&tmp, e.into_error()))?;
    file.sync_all().map_err(|e| WalError::io(&tmp, e))?;
    std::fs::rename(&tmp, &final_path).map_err(|e| WalError::io(&final_path, e))?;
    sync_dir(dir)
}

/// Deletes segments and checkpoints that the checkpoint at `index` stands for.
pub(crate) fn remove_before(dir: &Path, index: u64) -> Result<(), WalError> {
    let (checkpoints, segments) = list(dir)?;
    for s in segments.into_iter().filter(|s| *s < index) {
        let path = segment_path(dir, s);
        std::fs::remove_file(&path).map_err(|e| WalError::io(&path, e))?;
    }
    for c in checkpoints.into_iter().filter(|c| *c < index) {
        let path = checkpoint_path(dir, c);
        std::fs::remove_file(&path).map_err(|e| WalError::io(&path, e))?;
    }
    sync_dir(dir)
}
