//! The terminal text of a recorded trail, for rebuilding the index from files.

use custos_trail::text::{TextChunk, TextExtractor};
use custos_trail::{TrailError, TrailReader};

/// All the text lines of a trail, as the gateway extracted them live. An incomplete trail (a
/// crash) gives the text up to where it ends; a damaged one, the text up to the damage and the
/// error. The caller supplies keys for encrypted streams (or decides not to read them).
pub fn trail_text(reader: &mut TrailReader) -> (Vec<TextChunk>, Option<TrailError>) {
    let mut extractor = TextExtractor::new();
    let mut chunks = Vec::new();
    let mut failure = None;
    for item in reader.records() {
        match item {
            Ok((at, record)) => extractor.push(at, &record, &mut chunks),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    extractor.finish(&mut chunks);
    (chunks, failure)
}
