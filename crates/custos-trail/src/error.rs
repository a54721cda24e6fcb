//! The one error type of the crate.

/// Everything that can go wrong writing or reading a trail.
#[derive(thiserror::Error, Debug)]
pub enum TrailError {
    /// An I/O error from the file. `ErrorKind::StorageFull` (disk full) is passed through
    /// unchanged so the gateway can apply its "storage full" policy: see
    /// [`TrailError::is_storage_full`].
    #[error("trail I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The file is not a valid trail at `offset` (bad magic, impossible length, chain mismatch,
    /// undecodable record, ...).
    #[error("corrupt trail at offset {offset}: {reason}")]
    Corrupt { offset: u64, reason: String },
    /// The file is a trail of a format version this crate cannot read.
    #[error("unsupported trail format version {0} (this reader knows versions 1 and 2)")]
    UnsupportedVersion(u16),
    /// A record stream is encrypted and no data key was supplied for it.
    #[error(
        "record stream {0} is encrypted: give the private key of a certificate it was encrypted to"
    )]
    Encrypted(u8),
    /// A single non-data record (its JSON, mostly) is larger than the writer accepts. Data
    /// records are never too large: they are split.
    #[error("record of {len} bytes is larger than the limit of {max} bytes")]
    RecordTooLarge { len: usize, max: usize },
    /// The JSON file header is larger than the format allows.
    #[error("trail header of {len} bytes is larger than the limit of {max} bytes")]
    HeaderTooLarge { len: usize, max: usize },
    /// A JSON value could not be serialised.
    #[error("JSON serialisation failed: {0}")]
    Json(#[from] serde_json::Error),
    /// [`WriterOptions`](crate::WriterOptions) out of range.
    #[error("invalid writer options: {0}")]
    InvalidOptions(String),
    /// An earlier write or sync failed in a way the writer could not undo (the partial segment
    /// could not be cut off, or fdatasync failed), so nothing more can be appended safely.
    #[error("the trail writer failed earlier and accepts no more records")]
    Poisoned,
    /// The asciicast export found nothing to export (no such channel, no terminal channel).
    #[error("asciicast export: {0}")]
    Export(String),
}

impl TrailError {
    /// Whether this is the disk-full error (`ENOSPC`/`EDQUOT`), on which the gateway applies
    /// its storage-full policy rather than treating it as a bug.
    pub fn is_storage_full(&self) -> bool {
        match self {
            TrailError::Io(e) => {
                e.kind() == std::io::ErrorKind::StorageFull
                    || e.kind() == std::io::ErrorKind::QuotaExceeded
            }
            _ => false,
        }
    }

    pub(crate) fn corrupt(offset: u64, reason: impl Into<String>) -> TrailError {
        TrailError::Corrupt {
            offset,
            reason: reason.into(),
        }
    }
}
