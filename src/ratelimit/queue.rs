//! The fair queue of one budget: requests beyond it wait here, and callers
//! share the slots by weight.
//!
//! Weighted fair queuing by virtual finish tags (as in WF²Q without the
//! eligibility test): a waiter's tag is `max(V, its flow's last tag) + 1/weight`,
//! the smallest tag goes first, and `V` follows the tag last served. A flow
//! that has been waiting a while does not build credit, and a flow that just
//! arrived starts at `V`: a caller sending 2 requests a second behind a batch
//! job's 64 queued ones waits about one slot, not 64.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use tokio::sync::oneshot;

use super::Refusal;

/// Who is asking: a `[[caller]]` or one binding of a virtual-token caller.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Flow {
    /// `caller:<name>` or `binding:<id>`; shown by `/ratelimits`.
    pub id: Arc<str>,
    pub weight: u32,
}

/// What a waiter is told: go (`Ok`) or give up.
pub(super) type Grant = Result<(), Refusal>;

struct Waiter {
    tx: oneshot::Sender<Grant>,
    tag: f64,
}

#[derive(Default)]
pub(super) struct FairQueue {
    /// Virtual time: the tag of the waiter served last.
    now: f64,
    flows: HashMap<Arc<str>, FlowQueue>,
    len: usize,
}

impl std::fmt::Debug for FairQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FairQueue")
            .field("waiting", &self.len)
            .field("flows", &self.flows.len())
            .finish()
    }
}

#[derive(Default)]
struct FlowQueue {
    last_tag: f64,
    waiting: VecDeque<Waiter>,
}

// === impl FairQueue ===

impl FairQueue {
    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.len
    }

    pub(super) fn push(&mut self, flow: &Flow) -> oneshot::Receiver<Grant> {
        let (tx, rx) = oneshot::channel();
        let q = self.flows.entry(flow.id.clone()).or_default();
        let tag = q.last_tag.max(self.now) + 1.0 / f64::from(flow.weight.max(1));
        q.last_tag = tag;
        q.waiting.push_back(Waiter { tx, tag });
        self.len += 1;
        rx
    }

    /// Drops waiters whose caller hung up or gave up (their receiver is gone).
    pub(super) fn prune(&mut self) {
        let mut dropped = 0;
        for q in self.flows.values_mut() {
            let before = q.waiting.len();
            q.waiting.retain(|w| !w.tx.is_closed());
            dropped += before - q.waiting.len();
        }
        self.len -= dropped;
        self.forget_idle();
    }

    /// Hands the slot to the waiter with the smallest tag that is still
    /// there; `false` if none was.
    pub(super) fn serve_next(&mut self) -> bool {
        loop {
            let Some(next) = self
                .flows
                .iter()
                .filter_map(|(id, q)| q.waiting.front().map(|w| (w.tag, id)))
                .min_by(|a, b| a.0.total_cmp(&b.0))
                .map(|(_, id)| id.clone())
            else {
                return false;
            };
            let Some(waiter) = self
                .flows
                .get_mut(&next)
                .and_then(|q| q.waiting.pop_front())
            else {
                return false;
            };
            self.len -= 1;
            self.now = self.now.max(waiter.tag);
            if waiter.tx.send(Ok(())).is_ok() {
                self.forget_idle();
                return true;
            }
        }
    }

    /// Tells every waiter the same refusal (the budget closed for the day).
    pub(super) fn refuse_all(&mut self, refusal: &Refusal) {
        for q in self.flows.values_mut() {
            for w in q.waiting.drain(..) {
                let _ = w.tx.send(Err(refusal.clone()));
            }
        }
        self.len = 0;
        self.flows.clear();
    }

    /// Waiting requests by flow, for `/ratelimits`.
    pub(super) fn waiting(&self) -> Vec<(Arc<str>, usize)> {
        let mut out: Vec<_> = self
            .flows
            .iter()
            .filter(|(_, q)| !q.waiting.is_empty())
            .map(|(id, q)| (id.clone(), q.waiting.len()))
            .collect();
        out.sort();
        out
    }

    /// A flow with nothing waiting whose last tag is behind virtual time has no
    /// state worth keeping: it would restart at `now` anyway.
    fn forget_idle(&mut self) {
        let now = self.now;
        self.flows
            .retain(|_, q| !q.waiting.is_empty() || q.last_tag > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(id: &str, weight: u32) -> Flow {
        Flow {
            id: Arc::from(id),
            weight,
        }
    }

    /// Serves `n` slots and returns whose they were.
    fn serve(
        q: &mut FairQueue,
        rxs: &mut Vec<(&'static str, oneshot::Receiver<Grant>)>,
        n: usize,
    ) -> Vec<&'static str> {
        let mut order = Vec::new();
        for _ in 0..n {
            assert!(q.serve_next());
            let i = rxs
                .iter_mut()
                .position(|(_, rx)| rx.try_recv().is_ok())
                .expect("one waiter was served");
            order.push(rxs.remove(i).0);
        }
        order
    }

    #[test]
    fn a_newcomer_goes_ahead_of_a_backlog() {
        let mut q = FairQueue::default();
        let greedy = flow("caller:batch", 1);
        let mut rxs: Vec<_> = (0..64).map(|_| ("batch", q.push(&greedy))).collect();
        assert_eq!(serve(&mut q, &mut rxs, 3), ["batch"; 3]);
        rxs.push(("interactive", q.push(&flow("caller:ui", 1))));
        let order = serve(&mut q, &mut rxs, 2);
        assert!(order.contains(&"interactive"), "{order:?}");
    }

    #[test]
    fn weights_share_slots() {
        let mut q = FairQueue::default();
        let (a, b) = (flow("a", 3), flow("b", 1));
        let mut rxs = Vec::new();
        for _ in 0..40 {
            rxs.push(("a", q.push(&a)));
            rxs.push(("b", q.push(&b)));
        }
        let order = serve(&mut q, &mut rxs, 40);
        let served_a = order.iter().filter(|w| **w == "a").count();
        assert_eq!(served_a, 30, "{order:?}");
    }

    #[test]
    fn gone_waiters_are_skipped_and_pruned() {
        let mut q = FairQueue::default();
        let f = flow("a", 1);
        let gone = q.push(&f);
        let kept = q.push(&f);
        drop(gone);
        q.prune();
        assert_eq!(q.len(), 1);
        let mut rxs = vec![("kept", kept)];
        assert_eq!(serve(&mut q, &mut rxs, 1), ["kept"]);
        assert!(q.is_empty());
        assert!(!q.serve_next());
    }
}
