//! The ordered merge: partitions in, one stream out in `(timestamp, topic, partition, offset)`
//! order, each partition kept in offset order.
//!
//! # The release rule
//!
//! A row is released only when every partition that is not finished has a buffered head, so
//! the output depends only on the partitions' contents, never on fetch timing: the same
//! partitions give the same rows in the same order, however their messages arrived. The merge
//! compares partition *heads* only, so where timestamps go backwards inside a partition, that
//! partition's offset order wins; nothing is ever re-sorted.
//!
//! Each source (partition) has a rank, its position in `(topic, partition)` order; the merge
//! key is `(timestamp, rank, offset)`.
//!
//! ```
//! use kafkars_core::OrderedMerge;
//!
//! // Two partitions of items (timestamp, offset).
//! let mut merge = OrderedMerge::new(2, |item: &(i64, i64)| *item);
//! merge.push(0, (10, 0));
//! // Partition 1 has nothing yet: nothing may be released.
//! assert_eq!(merge.pop(), None);
//! merge.push(1, (5, 0));
//! assert_eq!(merge.pop(), Some((1, (5, 0))));
//! // Partition 1 is empty again but not finished: wait for it.
//! assert_eq!(merge.pop(), None);
//! merge.finish(1);
//! assert_eq!(merge.pop(), Some((0, (10, 0))));
//! ```

use std::cmp::Reverse;
use std::collections::binary_heap::PeekMut;
use std::collections::{BinaryHeap, VecDeque};

/// A k-way merge of sources by `(timestamp, source, offset)` with the release rule above.
///
/// Sources are numbered `0..n`; their number is their rank, so callers number partitions in
/// `(topic, partition)` order. Sources added later ([`OrderedMerge::add_source`]) take the
/// next numbers, and so rank after all earlier ones. `key` gives an item's
/// `(timestamp, offset)`.
pub struct OrderedMerge<T, K> {
    sources: Vec<Source<T>>,
    /// The heads of non-empty sources, smallest key first.
    heads: BinaryHeap<Reverse<(i64, u32, i64)>>,
    /// How many sources are unfinished and empty: while any is, nothing is released.
    waiting: usize,
    /// Apply the release rule; without it (an unordered scan), any head is released at once.
    wait_for_all: bool,
    key: K,
}

struct Source<T> {
    items: VecDeque<T>,
    finished: bool,
    /// Not waited for while empty (an idle partition in follow mode); cleared by `push`.
    suspended: bool,
    /// Everything its log holds was pushed: once empty it is suspended rather than waited
    /// for. Cleared by `push`.
    at_end: bool,
}

impl<T, K: Fn(&T) -> (i64, i64)> OrderedMerge<T, K> {
    /// A merge over `sources` sources, none of which has anything yet.
    pub fn new(sources: usize, key: K) -> Self {
        Self {
            sources: (0..sources)
                .map(|_| Source {
                    items: VecDeque::new(),
                    finished: false,
                    suspended: false,
                    at_end: false,
                })
                .collect(),
            heads: BinaryHeap::with_capacity(sources),
            waiting: sources,
            wait_for_all: true,
            key,
        }
    }

    /// A merge that never waits: an item is released as soon as it is its source's head, so
    /// only each source's own order holds. For scans that do not need timestamp order.
    pub fn unordered(sources: usize, key: K) -> Self {
        Self {
            wait_for_all: false,
            ..Self::new(sources, key)
        }
    }

    /// Append `item` to source `source`. Items of one source must come in offset order.
    ///
    /// # Panics
    /// If `source` is out of range or already finished (a caller bug).
    pub fn push(&mut self, source: usize, item: T) {
        let state = &mut self.sources[source];
        assert!(!state.finished, "push to finished source {source}");
        state.at_end = false;
        if state.items.is_empty() {
            let (timestamp, offset) = (self.key)(&item);
            self.heads.push(Reverse((timestamp, rank(source), offset)));
            if !std::mem::take(&mut state.suspended) {
                self.waiting -= 1;
            }
        }
        state.items.push_back(item);
    }

    /// Add a source with nothing buffered and return its number, [`OrderedMerge::len`] before
    /// the call. It ranks after every existing source, whatever its topic and partition:
    /// numbers (ranks) of sources already merged never change, since items carry them.
    ///
    /// From now on the release rule waits for it like for any other source, so the caller
    /// decides at once what it is: [`OrderedMerge::finish`] it when it has nothing to
    /// contribute (a follow-mode replay keeps the partitions it resolved), or
    /// [`OrderedMerge::suspend`] it so that it holds nothing back until its first item.
    pub fn add_source(&mut self) -> usize {
        self.sources.push(Source {
            items: VecDeque::new(),
            finished: false,
            suspended: false,
            at_end: false,
        });
        self.waiting += 1;
        self.sources.len() - 1
    }

    /// Declare that source `source` will get no more items. Idempotent.
    pub fn finish(&mut self, source: usize) {
        let state = &mut self.sources[source];
        if !state.finished {
            state.finished = true;
            if state.items.is_empty() && !std::mem::take(&mut state.suspended) {
                self.waiting -= 1;
            }
        }
    }

    /// Stop waiting for source `source` while it is empty: the others' items are released
    /// without it, and its next item joins the merge when it comes. Follow mode uses this for
    /// partitions that have been silent for the idle timeout. Does nothing to a source that
    /// has items or is finished.
    pub fn suspend(&mut self, source: usize) {
        let state = &mut self.sources[source];
        if !state.finished && state.items.is_empty() && !state.suspended {
            state.suspended = true;
            self.waiting -= 1;
        }
    }

    /// Declare that source `source` holds nothing beyond what was pushed, for now (follow
    /// mode: the fetcher reached the end of the partition's log). It does not hold the merge
    /// back once its buffered items are released, until its next push: a partition with
    /// nothing to say is not waited for, one with a backlog still is. Does nothing to a
    /// finished source.
    pub fn mark_at_end(&mut self, source: usize) {
        if !self.sources[source].finished {
            self.sources[source].at_end = true;
            // Empty already: nothing to release first.
            self.suspend(source);
        }
    }

    /// Release the next item with its source, if the release rule allows one now.
    pub fn pop(&mut self) -> Option<(usize, T)> {
        if self.wait_for_all && self.waiting > 0 {
            return None;
        }
        let mut top = self.heads.peek_mut()?;
        let Reverse((_, source, _)) = *top;
        let source = source as usize;
        let state = &mut self.sources[source];
        let item = state.items.pop_front()?;
        match state.items.front() {
            Some(next) => {
                // The source's next item replaces its head in place: one sift down instead
                // of a pop and a push, the usual k-way merge step.
                let (timestamp, offset) = (self.key)(next);
                *top = Reverse((timestamp, rank(source), offset));
            }
            None => {
                PeekMut::pop(top);
                if state.at_end {
                    state.suspended = true;
                } else if !state.finished {
                    self.waiting += 1;
                }
            }
        }
        Some((source, item))
    }

    /// Whether source `source` holds the merge back: unfinished, not suspended, and with
    /// nothing buffered.
    pub fn is_blocking(&self, source: usize) -> bool {
        let state = &self.sources[source];
        self.wait_for_all && !state.finished && !state.suspended && state.items.is_empty()
    }

    /// Whether `pop` would release an item now.
    pub fn is_ready(&self) -> bool {
        (!self.wait_for_all || self.waiting == 0) && !self.heads.is_empty()
    }

    /// How many items source `source` has buffered.
    pub fn buffered(&self, source: usize) -> usize {
        self.sources[source].items.len()
    }

    /// Whether source `source` was finished.
    pub fn is_finished(&self, source: usize) -> bool {
        self.sources[source].finished
    }

    /// Whether every source is finished and every item released.
    pub fn is_done(&self) -> bool {
        self.waiting == 0 && self.heads.is_empty()
    }

    /// How many sources there are.
    pub fn len(&self) -> usize {
        self.sources.len()
    }

    /// Whether there are no sources at all.
    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }
}

fn rank(source: usize) -> u32 {
    u32::try_from(source).expect("fewer than 2^32 sources")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Items are (timestamp, offset); sources are partitions.
    type Item = (i64, i64);
    type TestMerge = OrderedMerge<Item, fn(&Item) -> (i64, i64)>;

    fn merge(sources: usize) -> TestMerge {
        OrderedMerge::new(sources, |item| *item)
    }

    /// The model: with every partition fully known, repeatedly take the smallest head.
    fn model(partitions: &[Vec<Item>]) -> Vec<(usize, Item)> {
        let mut cursors = vec![0; partitions.len()];
        let mut out = Vec::new();
        loop {
            let next = (0..partitions.len())
                .filter(|&p| cursors[p] < partitions[p].len())
                .min_by_key(|&p| {
                    let (timestamp, offset) = partitions[p][cursors[p]];
                    (timestamp, p, offset)
                });
            let Some(p) = next else { return out };
            out.push((p, partitions[p][cursors[p]]));
            cursors[p] += 1;
        }
    }

    /// Partitions with offsets 0.. and arbitrary (also backwards, tied) timestamps.
    fn partitions() -> impl Strategy<Value = Vec<Vec<Item>>> {
        proptest::collection::vec(proptest::collection::vec(0i64..20, 0..12), 1..7).prop_map(
            |partitions| {
                partitions
                    .into_iter()
                    .map(|timestamps| {
                        timestamps
                            .into_iter()
                            .enumerate()
                            .map(|(offset, ts)| (ts, offset as i64))
                            .collect()
                    })
                    .collect()
            },
        )
    }

    /// Feed `partitions` in the arrival order given by `schedule` (partition picks), popping
    /// whatever is released after every step, and finishing partitions once fully delivered.
    fn run(partitions: &[Vec<Item>], schedule: &[usize], pop_every: usize) -> Vec<(usize, Item)> {
        run_with(merge(partitions.len()), partitions, schedule, pop_every)
    }

    /// Push partition `p`'s next item, if any is left, and finish `p` once all are delivered.
    fn deliver_next(
        merge: &mut TestMerge,
        partitions: &[Vec<Item>],
        delivered: &mut [usize],
        p: usize,
    ) {
        if delivered[p] < partitions[p].len() {
            merge.push(p, partitions[p][delivered[p]]);
            delivered[p] += 1;
        }
        if delivered[p] == partitions[p].len() {
            merge.finish(p);
        }
    }

    fn run_with(
        mut merge: TestMerge,
        partitions: &[Vec<Item>],
        schedule: &[usize],
        pop_every: usize,
    ) -> Vec<(usize, Item)> {
        let mut delivered = vec![0; partitions.len()];
        let mut out = Vec::new();
        let mut step = 0;
        // The schedule first, then round-robin so every partition is eventually delivered.
        let mut schedule = schedule
            .iter()
            .copied()
            .chain((0..).map(|i| i % partitions.len()));
        while !merge.is_done() {
            let p = schedule.next().unwrap_or(0) % partitions.len();
            deliver_next(&mut merge, partitions, &mut delivered, p);
            step += 1;
            let all_delivered = delivered.iter().zip(partitions).all(|(d, p)| *d == p.len());
            if step % pop_every == 0 || all_delivered {
                while let Some(released) = merge.pop() {
                    out.push(released);
                }
            }
        }
        out
    }

    proptest! {
        // The output equals the model whatever the arrival order and pop timing.
        #[test]
        fn test_merge_matches_model_for_any_arrival(
            partitions in partitions(),
            schedule in proptest::collection::vec(0usize..7, 1..40),
            pop_every in 1usize..5,
        ) {
            prop_assert_eq!(run(&partitions, &schedule, pop_every), model(&partitions));
        }

        // Each partition comes out in offset order, and every item exactly once.
        #[test]
        fn test_merge_keeps_partition_order(partitions in partitions(), schedule in proptest::collection::vec(0usize..7, 1..40)) {
            let out = run(&partitions, &schedule, 1);
            for (p, items) in partitions.iter().enumerate() {
                let got: Vec<Item> = out.iter().filter(|(s, _)| *s == p).map(|(_, i)| *i).collect();
                prop_assert_eq!(&got, items);
            }
        }

        // Unordered: every item exactly once, each partition in offset order, and an item is
        // released as soon as it arrives (nothing is ever held back for another partition).
        #[test]
        fn test_unordered_merge_releases_at_once(partitions in partitions(), schedule in proptest::collection::vec(0usize..7, 1..40)) {
            let key: fn(&Item) -> (i64, i64) = |item| *item;
            let out = run_with(OrderedMerge::unordered(partitions.len(), key), &partitions, &schedule, 1);
            for (p, items) in partitions.iter().enumerate() {
                let got: Vec<Item> = out.iter().filter(|(s, _)| *s == p).map(|(_, i)| *i).collect();
                prop_assert_eq!(&got, items);
            }
            let mut merge = OrderedMerge::unordered(partitions.len(), key);
            for (p, items) in partitions.iter().enumerate() {
                for item in items {
                    merge.push(p, *item);
                    prop_assert!(!merge.is_blocking(p));
                    prop_assert_eq!(merge.pop(), Some((p, *item)));
                }
            }
        }

        // When every partition's timestamps are non-decreasing, the output is globally sorted.
        #[test]
        fn test_merge_sorted_when_partitions_sorted(mut partitions in partitions(), schedule in proptest::collection::vec(0usize..7, 1..40)) {
            for items in &mut partitions {
                let mut timestamps: Vec<i64> = items.iter().map(|i| i.0).collect();
                timestamps.sort_unstable();
                for (item, ts) in items.iter_mut().zip(timestamps) { item.0 = ts; }
            }
            let out = run(&partitions, &schedule, 2);
            let keys: Vec<(i64, usize, i64)> = out.iter().map(|(p, (ts, off))| (*ts, *p, *off)).collect();
            let mut sorted = keys.clone();
            sorted.sort_unstable();
            prop_assert_eq!(keys, sorted);
        }
    }

    /// Feed `initial` partitions as [`run`] does, and add the `added` ones as new sources
    /// while it runs: `schedule` entries equal to the partition count add the next one
    /// (unless none is left), the others pick a present partition to deliver to. A source
    /// joins suspended when `suspend_on_add`. Before every pop, a step-wise model says what
    /// the release rule allows: nothing while a present, unfinished, unsuspended source has
    /// nothing buffered, else the smallest head by (timestamp, source, offset).
    fn run_adding(
        initial: &[Vec<Item>],
        added: &[Vec<Item>],
        schedule: &[usize],
        suspend_on_add: bool,
    ) -> std::result::Result<Vec<(usize, Item)>, TestCaseError> {
        let partitions: Vec<Vec<Item>> = initial.iter().chain(added).cloned().collect();
        let total = partitions.len();
        let mut merge = merge(initial.len());
        let mut present = initial.len();
        let mut delivered = vec![0; total];
        let mut popped = vec![0; total];
        let mut finished = vec![false; total];
        let mut suspended = vec![false; total];
        let mut out = Vec::new();
        let mut schedule = schedule
            .iter()
            .copied()
            .chain(std::iter::repeat_n(total, added.len()))
            .chain((0..).map(|i| i % total));
        loop {
            let all_done = present == total && finished.iter().all(|&f| f);
            if all_done && popped == delivered {
                break;
            }
            let pick = schedule.next().unwrap_or(0) % (total + 1);
            if pick == total {
                if present < total {
                    prop_assert_eq!(merge.add_source(), present);
                    if suspend_on_add {
                        merge.suspend(present);
                        suspended[present] = true;
                    }
                    present += 1;
                }
            } else if pick < present {
                let p = pick;
                if delivered[p] < partitions[p].len() {
                    merge.push(p, partitions[p][delivered[p]]);
                    delivered[p] += 1;
                    suspended[p] = false;
                }
                if delivered[p] == partitions[p].len() {
                    merge.finish(p);
                    finished[p] = true;
                }
            }
            loop {
                let waiting = (0..present)
                    .any(|p| !finished[p] && !suspended[p] && popped[p] == delivered[p]);
                let expected = if waiting {
                    None
                } else {
                    (0..present)
                        .filter(|&p| popped[p] < delivered[p])
                        .map(|p| {
                            let (timestamp, offset) = partitions[p][popped[p]];
                            (timestamp, p, offset)
                        })
                        .min()
                        .map(|(timestamp, p, offset)| (p, (timestamp, offset)))
                };
                prop_assert_eq!(merge.pop(), expected);
                let Some((p, item)) = expected else { break };
                popped[p] += 1;
                out.push((p, item));
            }
        }
        prop_assert!(merge.is_done());
        prop_assert_eq!(merge.len(), total);
        Ok(out)
    }

    proptest! {
        // Sources added while the merge runs are waited for from then on (or, joined
        // suspended, from their first item), and the release rule holds at every step:
        // every item comes out exactly once, each partition in offset order.
        #[test]
        fn test_merge_added_sources_keep_release_rule(
            initial in partitions(),
            added in partitions(),
            schedule in proptest::collection::vec(0usize..14, 1..60),
            suspend_on_add: bool,
        ) {
            let added = &added[..added.len().min(3)];
            let out = run_adding(&initial, added, &schedule, suspend_on_add)?;
            for (p, items) in initial.iter().chain(added).enumerate() {
                let got: Vec<Item> = out.iter().filter(|(s, _)| *s == p).map(|(_, i)| *i).collect();
                prop_assert_eq!(&got, items);
            }
        }

        // A source added and finished at once, whenever it comes (a partition found during a
        // follow-mode replay), changes nothing: the output is the model's of the others.
        #[test]
        fn test_merge_added_finished_source_changes_nothing(
            partitions in partitions(),
            schedule in proptest::collection::vec(0usize..7, 1..40),
            add_at in 0usize..40,
        ) {
            let mut merge = merge(partitions.len());
            let mut delivered = vec![0; partitions.len()];
            let mut out = Vec::new();
            let mut schedule = schedule.iter().copied().chain((0..).map(|i| i % partitions.len()));
            let mut step = 0;
            let mut added = None;
            while !merge.is_done() || added.is_none() {
                if step == add_at || (merge.is_done() && added.is_none()) {
                    let source = merge.add_source();
                    merge.finish(source);
                    added = Some(source);
                }
                let p = schedule.next().unwrap_or(0) % partitions.len();
                deliver_next(&mut merge, &partitions, &mut delivered, p);
                while let Some(released) = merge.pop() {
                    out.push(released);
                }
                step += 1;
            }
            prop_assert_eq!(added, Some(partitions.len()));
            prop_assert_eq!(out, model(&partitions));
        }
    }

    #[test]
    fn test_merge_add_source_waits_then_releases() {
        let mut merge = merge(1);
        merge.push(0, (5, 0));
        assert_eq!(merge.add_source(), 1);
        // The new source holds the merge back like any other empty, unfinished one.
        assert!(merge.is_blocking(1));
        assert_eq!(merge.pop(), None);
        merge.push(1, (3, 0));
        assert_eq!(merge.pop(), Some((1, (3, 0))));
        assert_eq!(merge.pop(), None);
        // Joined suspended, a source holds nothing back until its first item.
        assert_eq!(merge.add_source(), 2);
        merge.suspend(2);
        merge.finish(1);
        assert_eq!(merge.pop(), Some((0, (5, 0))));
        merge.push(2, (1, 0));
        merge.finish(0);
        assert_eq!(merge.pop(), Some((2, (1, 0))));
        merge.finish(2);
        assert!(merge.is_done());
    }

    #[test]
    fn test_merge_waits_for_empty_unfinished_partition() {
        let mut merge = merge(3);
        merge.push(0, (1, 0));
        merge.push(1, (2, 0));
        assert!(merge.is_blocking(2));
        assert_eq!(merge.pop(), None);
        merge.finish(2);
        assert_eq!(merge.pop(), Some((0, (1, 0))));
        // Partition 0 is now empty and unfinished: partition 1's later row must wait.
        assert_eq!(merge.pop(), None);
        merge.finish(0);
        assert_eq!(merge.pop(), Some((1, (2, 0))));
        merge.finish(1);
        assert!(merge.is_done());
    }

    #[test]
    fn test_merge_ties_break_by_partition_then_offset() {
        let mut merge = merge(2);
        merge.push(1, (5, 0));
        merge.push(0, (5, 7));
        merge.push(0, (5, 8));
        merge.finish(0);
        merge.finish(1);
        let out: Vec<_> = std::iter::from_fn(|| merge.pop()).collect();
        assert_eq!(out, vec![(0, (5, 7)), (0, (5, 8)), (1, (5, 0))]);
    }

    #[test]
    fn test_merge_backwards_timestamps_keep_offset_order() {
        let mut merge = merge(2);
        merge.push(0, (10, 0));
        merge.push(0, (1, 1));
        merge.push(1, (5, 0));
        merge.finish(0);
        merge.finish(1);
        let out: Vec<_> = std::iter::from_fn(|| merge.pop()).collect();
        assert_eq!(out, vec![(1, (5, 0)), (0, (10, 0)), (0, (1, 1))]);
    }

    #[test]
    fn test_merge_suspended_source_stops_holding_back() {
        let mut merge = merge(2);
        merge.push(0, (5, 0));
        assert_eq!(merge.pop(), None);
        merge.suspend(1);
        assert!(!merge.is_blocking(1));
        assert_eq!(merge.pop(), Some((0, (5, 0))));
        // Source 0 is empty and not suspended: it holds the merge back again.
        merge.push(1, (1, 0));
        assert_eq!(merge.pop(), None);
        merge.push(0, (9, 1));
        assert_eq!(merge.pop(), Some((1, (1, 0))));
        merge.suspend(1);
        merge.suspend(1);
        assert_eq!(merge.pop(), Some((0, (9, 1))));
        merge.finish(1);
        merge.finish(0);
        assert!(merge.is_done());
    }

    #[test]
    fn test_merge_at_end_source_releases_its_backlog_then_stops_holding_back() {
        let mut merge = merge(2);
        merge.push(0, (1, 0));
        merge.push(0, (7, 1));
        merge.mark_at_end(0);
        // Its backlog still takes part in the order.
        assert!(!merge.is_blocking(0));
        merge.push(1, (3, 0));
        assert_eq!(merge.pop(), Some((0, (1, 0))));
        assert_eq!(merge.pop(), Some((1, (3, 0))));
        // Source 1 is empty and not at its end: wait for it.
        assert_eq!(merge.pop(), None);
        merge.push(1, (4, 1));
        merge.mark_at_end(1);
        assert_eq!(merge.pop(), Some((1, (4, 1))));
        assert_eq!(merge.pop(), Some((0, (7, 1))));
        // Both drained at their end: nothing holds back, nothing to release.
        assert!(!merge.is_blocking(0) && !merge.is_blocking(1));
        assert_eq!(merge.pop(), None);
        // A push means more came: once drained, it is waited for again.
        merge.push(0, (9, 2));
        assert_eq!(merge.pop(), Some((0, (9, 2))));
        assert!(merge.is_blocking(0));
        merge.push(1, (10, 2));
        assert_eq!(merge.pop(), None);
        merge.finish(0);
        merge.mark_at_end(0);
        assert_eq!(merge.pop(), Some((1, (10, 2))));
        merge.finish(1);
        assert!(merge.is_done());
    }

    proptest! {
        /// Pushes and end marks in any order: after each step, the merge releases exactly
        /// what a step-wise model allows (every source has a head or was marked at its end
        /// since its last push), smallest head first.
        #[test]
        fn test_merge_at_end_matches_model(
            partitions in partitions(),
            steps in proptest::collection::vec((0usize..7, any::<bool>()), 1..60),
        ) {
            let count = partitions.len();
            let mut merge = merge(count);
            let mut delivered = vec![0; count];
            let mut buffered: Vec<VecDeque<Item>> = vec![VecDeque::new(); count];
            let mut at_end = vec![false; count];
            for (pick, mark) in steps {
                let source = pick % count;
                if mark {
                    merge.mark_at_end(source);
                    at_end[source] = true;
                } else if delivered[source] < partitions[source].len() {
                    let item = partitions[source][delivered[source]];
                    delivered[source] += 1;
                    merge.push(source, item);
                    buffered[source].push_back(item);
                    at_end[source] = false;
                }
                loop {
                    let allowed = (0..count).all(|s| !buffered[s].is_empty() || at_end[s]);
                    let smallest = (0..count)
                        .filter(|&s| !buffered[s].is_empty())
                        .min_by_key(|&s| {
                            let (timestamp, offset) = buffered[s][0];
                            (timestamp, s, offset)
                        });
                    let expected = if allowed { smallest } else { None };
                    let released = merge.pop();
                    prop_assert_eq!(released.map(|(s, _)| s), expected);
                    let Some((s, item)) = released else { break };
                    prop_assert_eq!(Some(item), buffered[s].pop_front());
                }
            }
        }
    }

    #[test]
    fn test_merge_without_sources_is_done() {
        let mut merge = merge(0);
        assert!(merge.is_done());
        assert_eq!(merge.pop(), None);
    }
}
