//! Collectors that read fast fields instead of stored documents.

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::Column;
use tantivy::{DocId, Score, SegmentOrdinal, SegmentReader};

/// The distinct `sid`s of the matching documents: which sessions a content condition hits.
pub struct SidCollector;

pub struct SidSegment {
    column: Column<u64>,
    sids: Vec<u64>,
}

impl Collector for SidCollector {
    type Fruit = Vec<u64>;
    type Child = SidSegment;

    fn for_segment(
        &self,
        _segment: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<SidSegment> {
        Ok(SidSegment {
            column: reader.fast_fields().u64("sid")?,
            sids: Vec::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Vec<u64>>) -> tantivy::Result<Vec<u64>> {
        let mut all: Vec<u64> = fruits.into_iter().flatten().collect();
        all.sort_unstable();
        all.dedup();
        Ok(all)
    }
}

impl SegmentCollector for SidSegment {
    type Fruit = Vec<u64>;

    fn collect(&mut self, doc: DocId, _score: Score) {
        if let Some(sid) = self.column.first(doc) {
            // Text documents of one session are mostly adjacent: skip the obvious repeats early.
            if self.sids.last() != Some(&sid) {
                self.sids.push(sid);
            }
        }
    }

    fn harvest(mut self) -> Vec<u64> {
        self.sids.sort_unstable();
        self.sids.dedup();
        self.sids
    }
}
