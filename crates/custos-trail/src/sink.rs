//! The trail file as an append-only byte sink that bypasses the page cache.
//!
//! Why: a recording is written once and seldom read soon after, yet buffered writes make the
//! kernel copy every byte into freshly allocated page-cache pages. Measured on the gateway's
//! machine kind (a VM), that copy cost 2+ CPU-s/GiB — more than the whole gateway budget of
//! 1.0 — because first-touched guest memory is expensive; `O_DIRECT` writes of whole aligned
//! blocks cost 0.13 CPU-s/GiB. So the sink gathers appended bytes in one aligned buffer and
//! writes it with `O_DIRECT` whenever it is full, and at [`AppendFile::flush`] writes the
//! partial tail block padded with zeros, then truncates the file back to its logical length.
//! The tail block is rewritten by the next write; a crash in between leaves zeros after the
//! last complete segment, which readers already treat as "incomplete" (as after any crash).
//!
//! Where `O_DIRECT` is refused (some filesystems, e.g. older tmpfs), the same sink writes
//! through the page cache: same file contents, only the cost differs.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

/// Alignment of `O_DIRECT` buffers, offsets and lengths: the largest logical block size of
/// common devices (and the page size).
const ALIGN: usize = 4096;
/// Bytes gathered before one write: large enough that the per-write cost vanishes, small
/// enough that a failure (a full disk) is noticed soon.
const CAPACITY: usize = 1 << 20;

#[derive(Debug)]
pub(crate) struct AppendFile {
    /// Plain descriptor: reads, `set_len`, `fdatasync`, and writes when `direct` is `None`.
    file: File,
    /// `O_DIRECT` descriptor of the same file, when the filesystem supports it.
    direct: Option<File>,
    /// The aligned buffer is `storage[start..]`. Its capacity is reserved once and never
    /// exceeded (so it never moves), and its length grows only as bytes arrive, so an idle
    /// session's trail touches a few pages, not the whole megabyte.
    storage: Vec<u8>,
    start: usize,
    /// File offset of the buffer's first byte (a multiple of `ALIGN`).
    buffer_offset: u64,
}

impl AppendFile {
    /// Creates `path` (never overwriting an existing file), mode 0600.
    pub(crate) fn create_new(path: &Path) -> io::Result<AppendFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        // A second descriptor, because opening with O_CREAT|O_DIRECT on a filesystem without
        // direct I/O creates the file and then fails.
        let direct = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(path)
            .ok();
        let mut storage: Vec<u8> = Vec::with_capacity(CAPACITY + ALIGN);
        let start = storage.as_ptr().align_offset(ALIGN).min(ALIGN);
        storage.resize(start, 0);
        Ok(AppendFile {
            file,
            direct,
            storage,
            start,
            buffer_offset: 0,
        })
    }

    fn buffered(&self) -> usize {
        self.storage.len() - self.start
    }

    /// The file's logical length: everything appended, written out or not.
    pub(crate) fn len(&self) -> u64 {
        self.buffer_offset + self.buffered() as u64
    }

    /// Appends `bytes`, writing out the buffer each time it fills.
    pub(crate) fn append(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            let room = CAPACITY - self.buffered();
            let (head, rest) = bytes.split_at(room.min(bytes.len()));
            self.storage.extend_from_slice(head);
            bytes = rest;
            if self.buffered() == CAPACITY {
                self.write_out()?;
                self.buffer_offset += CAPACITY as u64;
                self.storage.truncate(self.start);
            }
        }
        Ok(())
    }

    /// Writes every buffered byte to the file (not synced). The file's length is exact
    /// afterwards; the partial tail block stays buffered to be rewritten with what follows.
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        let buffered = self.buffered();
        if buffered == 0 {
            return Ok(());
        }
        let padded = buffered.next_multiple_of(ALIGN);
        self.storage.resize(self.start + padded, 0);
        let written = self.write_out();
        self.storage.truncate(self.start + buffered);
        written?;
        if padded != buffered {
            self.file.set_len(self.len())?;
        }
        let whole = buffered - buffered % ALIGN;
        self.storage
            .copy_within(self.start + whole..self.start + buffered, self.start);
        self.storage.truncate(self.start + buffered - whole);
        self.buffer_offset += whole as u64;
        Ok(())
    }

    /// Flushes and `fdatasync`s.
    pub(crate) fn sync(&mut self) -> io::Result<()> {
        self.flush()?;
        self.file.sync_data()
    }

    /// Cuts the file back to `len` (at most its logical length), e.g. to drop a partial
    /// segment after a failed write. What lies before `len` is kept, buffered or not.
    pub(crate) fn truncate(&mut self, len: u64) -> io::Result<()> {
        let len = len.min(self.len());
        self.file.set_len(len)?;
        if len >= self.buffer_offset {
            let keep = usize::try_from(len - self.buffer_offset).unwrap_or(0);
            self.storage.truncate(self.start + keep);
            return Ok(());
        }
        // The cut falls in data already written: reload its partial block into the buffer.
        let block = len - len % ALIGN as u64;
        let mut head = vec![0u8; usize::try_from(len - block).unwrap_or(0)];
        self.file.read_exact_at(&mut head, block)?;
        self.storage.truncate(self.start);
        self.storage.extend_from_slice(&head);
        self.buffer_offset = block;
        Ok(())
    }

    /// Writes the whole buffer (a multiple of `ALIGN` long) at `buffer_offset`.
    fn write_out(&mut self) -> io::Result<()> {
        let data = self
            .storage
            .get(self.start..)
            .ok_or_else(|| io::Error::other("trail buffer out of range"))?;
        if let Some(direct) = &self.direct {
            match direct.write_all_at(data, self.buffer_offset) {
                Ok(()) => return Ok(()),
                // The filesystem accepted O_DIRECT at open but not this write (alignment
                // rules stricter than ours): fall back to the page cache for good.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => self.direct = None,
                Err(e) => return Err(e),
            }
        }
        self.file.write_all_at(data, self.buffer_offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contents(path: &Path) -> Vec<u8> {
        std::fs::read(path).unwrap_or_default()
    }

    #[test]
    fn flushed_file_holds_exactly_what_was_appended() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t");
        let mut sink = AppendFile::create_new(&path).unwrap();
        let mut expected = Vec::new();
        // Sizes that straddle blocks and whole buffers, with flushes in between.
        for (i, size) in [10usize, 4086, 4096, 5000, CAPACITY, CAPACITY + 123, 7]
            .into_iter()
            .enumerate()
        {
            let chunk: Vec<u8> = (0..size).map(|b| (b * 31 + i) as u8).collect();
            sink.append(&chunk).unwrap();
            expected.extend_from_slice(&chunk);
            if i % 2 == 0 {
                sink.flush().unwrap();
                assert_eq!(contents(&path), expected, "after flush {i}");
            }
            assert_eq!(sink.len(), expected.len() as u64);
        }
        sink.sync().unwrap();
        assert_eq!(contents(&path), expected);
    }

    #[test]
    fn truncate_keeps_the_prefix_written_or_buffered() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t");
        let mut sink = AppendFile::create_new(&path).unwrap();
        let data: Vec<u8> = (0..CAPACITY + 9000).map(|b| (b % 251) as u8).collect();
        sink.append(&data).unwrap();
        // Into the part already written out (the first full buffer).
        sink.truncate(CAPACITY as u64 - 100).unwrap();
        sink.append(b"tail").unwrap();
        sink.flush().unwrap();
        let mut expected = data[..CAPACITY - 100].to_vec();
        expected.extend_from_slice(b"tail");
        assert_eq!(contents(&path), expected);
        // Into the buffered part.
        sink.append(b"more bytes").unwrap();
        sink.truncate(expected.len() as u64 + 4).unwrap();
        sink.flush().unwrap();
        expected.extend_from_slice(b"more");
        assert_eq!(contents(&path), expected);
    }
}
