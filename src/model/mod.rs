//! The data every layer shares, and nothing else: ids and units
//! ([`ShardId`], [`TopicId`], [`Partition`], [`Offset`]), the record as the
//! proxy keeps it, batches of records, and positions. No module here
//! imports another layer of the crate.

mod batch;
mod ids;
mod position;
mod record;

pub use batch::{Batch, Skip};
pub use ids::{Offset, Partition, ShardId, TopicId};
pub use position::Position;
pub use record::{Record, RecordAndOffset};
