//! Positions: where a stream is in a topic — the next offset of every
//! partition, partition 0 first. A topic stream's *heads* are a position
//! (the next offset it will see of each partition), and so is a reader's
//! place; an event id encodes one.

use std::ops::{Index, IndexMut};

use super::ids::{Offset, Partition};

/// The next offset of each partition `0..len()`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Position(Vec<Offset>);

impl Position {
    pub fn new() -> Self {
        Self(Vec::new())
    }

    pub fn from_offsets(offsets: Vec<Offset>) -> Self {
        Self(offsets)
    }

    /// The partitions it covers.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every partition's next offset, partition 0 first (what an event id
    /// encodes).
    pub fn offsets(&self) -> &[Offset] {
        &self.0
    }

    /// Each partition with its next offset.
    pub fn iter(&self) -> impl Iterator<Item = (Partition, Offset)> + '_ {
        self.0
            .iter()
            .enumerate()
            .map(|(i, o)| (Partition::at(i), *o))
    }

    /// Covers at least `count` partitions: partitions it did not cover start
    /// at `at`.
    pub fn extend_to(&mut self, count: usize, at: Offset) {
        if self.0.len() < count {
            self.0.resize(count, at);
        }
    }

    /// Offsets between this position and `heads`, summed over the
    /// partitions both cover (0 for a partition already at or past its head).
    pub fn behind(&self, heads: &Position) -> u64 {
        self.0
            .iter()
            .zip(&heads.0)
            .map(|(at, head)| at.until(*head))
            .fold(0, u64::saturating_add)
    }
}

impl Index<Partition> for Position {
    type Output = Offset;

    fn index(&self, p: Partition) -> &Offset {
        &self.0[p.index()]
    }
}

impl IndexMut<Partition> for Position {
    fn index_mut(&mut self, p: Partition) -> &mut Offset {
        &mut self.0[p.index()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn position(offsets: &[i64]) -> Position {
        Position::from_offsets(offsets.iter().copied().map(Offset).collect())
    }

    #[test]
    fn lag_counts_only_what_is_behind_the_heads() {
        let heads = position(&[10, 20, 30]);
        assert_eq!(position(&[10, 20, 30]).behind(&heads), 0);
        assert_eq!(position(&[5, 20, 31]).behind(&heads), 5);
        assert_eq!(position(&[0, 0, 0]).behind(&heads), 60);
    }

    #[test]
    fn extending_keeps_known_partitions() {
        let mut p = position(&[4, 7]);
        p.extend_to(4, Offset(1));
        assert_eq!(p, position(&[4, 7, 1, 1]));
        p.extend_to(2, Offset(9));
        assert_eq!(p.len(), 4);
        p[Partition(3)] = Offset(8);
        assert_eq!(p[Partition(3)], Offset(8));
        assert_eq!(p.iter().collect::<Vec<_>>()[1], (Partition(1), Offset(7)));
    }
}
