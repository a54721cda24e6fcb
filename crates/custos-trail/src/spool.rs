//! The index entries of the segments written so far, kept until the index is written at the
//! end of the trail.
//!
//! Why not re-read the segment headers at the end: the trail bypasses the page cache (see
//! `sink.rs`), so re-reading headers spread over the file reads the whole file back from
//! disk. Why not a vector: a long session would grow the writer's memory without bound
//! (40 bytes per segment). So entries are gathered in a small buffer and spilled to an
//! unnamed temporary file next to the trail (`O_TMPFILE`: nothing is left behind on a crash,
//! and the trail's own file stays append-only). Where the filesystem cannot make unnamed
//! files, the entries stay in memory.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::format::INDEX_ENTRY_LEN;

/// Entries held in memory before they are spilled (4 KiB of them).
const SPILL_AT: usize = 4096 / INDEX_ENTRY_LEN * INDEX_ENTRY_LEN;

#[derive(Debug)]
pub(crate) struct IndexSpool {
    spill: Option<File>,
    buffer: Vec<u8>,
    /// Bytes in the spill file.
    spilled: u64,
}

impl IndexSpool {
    /// A spool whose spill file (if any) lives in `dir`.
    pub(crate) fn new(dir: &Path) -> IndexSpool {
        let spill = OpenOptions::new()
            .read(true)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_TMPFILE)
            .open(dir)
            .ok();
        IndexSpool {
            spill,
            buffer: Vec::new(),
            spilled: 0,
        }
    }

    pub(crate) fn push(&mut self, entry: &[u8; INDEX_ENTRY_LEN]) -> io::Result<()> {
        self.buffer.extend_from_slice(entry);
        if self.buffer.len() >= SPILL_AT
            && let Some(file) = &mut self.spill
        {
            file.write_all(&self.buffer)?;
            self.spilled += self.buffer.len() as u64;
            self.buffer.clear();
        }
        Ok(())
    }

    /// Calls `each` with every entry, in order.
    pub(crate) fn for_each(
        &mut self,
        mut each: impl FnMut(&[u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        if let Some(file) = &mut self.spill {
            file.seek(SeekFrom::Start(0))?;
            let mut chunk = vec![0u8; SPILL_AT * 16];
            let mut remaining = self.spilled;
            while remaining > 0 {
                let n = usize::try_from(remaining).map_or(chunk.len(), |r| r.min(chunk.len()));
                let part = chunk
                    .get_mut(..n)
                    .ok_or_else(|| io::Error::other("index spool chunk out of range"))?;
                file.read_exact(part)?;
                for entry in part.chunks_exact(INDEX_ENTRY_LEN) {
                    each(entry)?;
                }
                remaining -= n as u64;
            }
            file.seek(SeekFrom::End(0))?;
        }
        for entry in self.buffer.chunks_exact(INDEX_ENTRY_LEN) {
            each(entry)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_come_back_in_order_across_spills() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = IndexSpool::new(dir.path());
        assert!(
            spool.spill.is_some(),
            "O_TMPFILE works on the test filesystem"
        );
        let count = SPILL_AT / INDEX_ENTRY_LEN * 40 + 7;
        for i in 0..count as u64 {
            let mut entry = [0u8; INDEX_ENTRY_LEN];
            entry[..8].copy_from_slice(&i.to_le_bytes());
            spool.push(&entry).unwrap();
        }
        let mut seen = Vec::new();
        spool
            .for_each(|e| {
                seen.push(u64::from_le_bytes(e[..8].try_into().unwrap_or_default()));
                Ok(())
            })
            .unwrap();
        let expected: Vec<u64> = (0..count as u64).collect();
        assert_eq!(seen, expected);
        // Nothing is left in the directory: the spill file has no name.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
