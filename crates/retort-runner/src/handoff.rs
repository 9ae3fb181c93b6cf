//! Parts a step has just committed, kept in memory for the steps that read it.
//!
//! Every committed part is durable on disk, and a downstream step could always read it
//! back from there; but a streaming consumer usually asks for a part moments after it
//! was written, and decoding Parquet back into records was a fifth of a million-row
//! `load → filter → export` run. The handoff keeps the newest few parts' records so
//! consumers take them directly. It is only a shortcut: an evicted part, a resumed run
//! or a step skipped as unchanged is read from disk, and the records are the same either
//! way (the resume tests compare both paths).

use std::collections::BTreeMap;
use std::sync::Mutex;

use retort_core::Record;

/// Newest parts kept per step. Bounds memory to this many batches per step, whatever
/// the speed difference between producer and consumers.
pub(crate) const HANDOFF_PARTS: usize = 3;

/// One step's recently committed parts and how many consumers have yet to take each.
pub(crate) struct Handoff {
    consumers: usize,
    parts: Mutex<BTreeMap<usize, (Vec<Record>, usize)>>,
}

impl Handoff {
    /// A handoff for a step read by `consumers` downstream inputs (0: keeps nothing).
    pub(crate) fn new(consumers: usize) -> Handoff {
        Handoff {
            consumers,
            parts: Mutex::new(BTreeMap::new()),
        }
    }

    /// Offer the records of committed part `part`, evicting the oldest beyond
    /// [`HANDOFF_PARTS`].
    pub(crate) fn put(&self, part: usize, records: Vec<Record>) {
        if self.consumers == 0 {
            return;
        }
        let mut parts = self.parts.lock().expect("handoff lock");
        parts.insert(part, (records, self.consumers));
        while parts.len() > HANDOFF_PARTS {
            parts.pop_first();
        }
    }

    /// The records of part `part` if still held: the last consumer takes them, earlier
    /// ones get a copy.
    pub(crate) fn take(&self, part: usize) -> Option<Vec<Record>> {
        let mut parts = self.parts.lock().expect("handoff lock");
        let (records, left) = parts.get_mut(&part)?;
        if *left <= 1 {
            parts.remove(&part).map(|(r, _)| r)
        } else {
            *left -= 1;
            Some(records.clone())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recs(n: usize) -> Vec<Record> {
        (0..n)
            .map(|i| Record {
                id: format!("r{i}"),
                ..Default::default()
            })
            .collect()
    }

    #[test]
    fn each_consumer_gets_the_part_once_and_the_last_takes_it() {
        let h = Handoff::new(2);
        h.put(0, recs(3));
        assert_eq!(h.take(0).unwrap().len(), 3);
        assert_eq!(h.take(0).unwrap().len(), 3);
        assert!(h.take(0).is_none(), "both consumers served: nothing left");
    }

    #[test]
    fn keeps_only_the_newest_parts_and_nothing_without_consumers() {
        let h = Handoff::new(1);
        for p in 0..HANDOFF_PARTS + 2 {
            h.put(p, recs(1));
        }
        assert!(h.take(0).is_none() && h.take(1).is_none(), "oldest evicted");
        assert!(h.take(HANDOFF_PARTS + 1).is_some());
        let none = Handoff::new(0);
        none.put(0, recs(1));
        assert!(none.take(0).is_none());
    }
}
