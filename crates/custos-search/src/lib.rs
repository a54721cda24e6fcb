//! The embedded session search index (tantivy): session metadata and terminal text of
//! recorded sessions, queried in the SPS search language (`custos-query`).
//!
//! - [`schema`]: the searchable fields and how documents are laid out;
//! - [`SearchIndex`] ([`index`]): the index on disk and its single writer thread;
//! - [`search`]: listings, counts, statistics, histograms and content hits, always under the
//!   caller's [`Visibility`] (audit-data access rules);
//! - [`translate`]: from parsed queries to tantivy queries;
//! - [`reindex`]: the text of a trail file, for rebuilding.
//!
//! **Invariant:** the index is derived data. The database holds the records and the trails
//! hold the text; anything here can be thrown away and rebuilt (`custos index rebuild`).

mod collect;
pub mod documents;
pub mod index;
mod linematch;
pub mod reindex;
pub mod schema;
pub mod search;
pub mod time;
pub mod translate;

pub use index::{COMMIT_INTERVAL, IndexError, SearchIndex};
pub use search::{ContentHit, Filter, Page, SearchError, Sort, Visibility, parse_query};
pub use translate::QueryError;
