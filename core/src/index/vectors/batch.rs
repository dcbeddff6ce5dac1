//! Shared scans: concurrent recalls of one copy of a namespace's vectors read its int8 codes
//! once for several queries (see [`NamespaceVectors::search_many`]).
//!
//! Shaped like the group commit, for reads: a query that finds no scan of the copy running
//! leads the next pass, after letting the tasks ready to run on its executor go first (it
//! wakes itself and yields once: with nothing else to run, it is polled again at once);
//! queries that arrive meanwhile, or while a pass runs, wait (as tasks, holding no thread)
//! and are scanned together in the next pass, led by the first of them. Under load the
//! tasks that go first are mostly recalls on their way to the same scan, so a pass is
//! shared by more queries (a pass of one query costs about twice as much per query as a
//! pass of four). A batch forms only of queries over the same copy (the same committed
//! vectors), so each answer is the one its query gets alone.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use parking_lot::Mutex;

use super::scan::{ScanAsk, ScanHit};
use super::NamespaceVectors;
use crate::vector::kernels::MULTI_MAX;

/// The scans waiting for a copy's codes. Each copy has its own (a clone starts empty).
#[derive(Default)]
pub(super) struct ScanQueue {
    pub(super) state: Mutex<Waiting>,
}

#[derive(Default)]
pub(super) struct Waiting {
    /// A pass over the codes is running (or its next leader is woken).
    pub(super) running: bool,
    /// Queries for the next pass, oldest first; the first leads it once woken.
    pub(super) pending: Vec<Arc<Job>>,
}

impl Clone for ScanQueue {
    fn clone(&self) -> Self {
        ScanQueue::default()
    }
}

impl std::fmt::Debug for ScanQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ScanQueue")
    }
}

/// A query waiting for a pass.
pub(super) struct Job {
    query: Vec<f32>,
    limit: usize,
    agent: Option<u64>,
    state: Mutex<JobState>,
}

#[derive(Default)]
struct JobState {
    phase: Phase,
    waker: Option<Waker>,
}

#[derive(Default)]
enum Phase {
    #[default]
    Queued,
    /// Leads the next pass: woken to run it.
    Leads,
    Done(Vec<ScanHit>),
    /// Its pass panicked: it scans alone.
    Failed,
}

impl Job {
    fn ask(&self) -> ScanAsk<'_> {
        ScanAsk { query: &self.query, limit: self.limit, agent: self.agent }
    }

    fn set(&self, phase: Phase) {
        let waker = {
            let mut s = self.state.lock();
            s.phase = phase;
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl NamespaceVectors {
    /// [`NamespaceVectors::search`], sharing the scan of the int8 codes with the recalls of
    /// this copy that run at the same time (see the module's docs). A query that finds no
    /// pass running yields once before it leads one; a query waiting for a pass that is
    /// dropped leaves the others to it.
    pub(crate) async fn search_shared(
        &self,
        query: &[f32],
        limit: usize,
        agent: Option<u64>,
    ) -> Vec<ScanHit> {
        if !self.scans_int8(&ScanAsk { query, limit, agent }) {
            return self.search(query, limit, agent);
        }
        let job = Arc::new(Job { query: query.to_vec(), limit, agent, state: Mutex::default() });
        let leads = {
            let mut q = self.scans.state.lock();
            let leads = !q.running;
            if leads {
                // No pass runs (so none waits either): this query leads the next.
                q.running = true;
                job.state.lock().phase = Phase::Leads;
            }
            q.pending.push(job.clone());
            leads
        };
        Shared { vectors: self, job, yields: leads, finished: false }.await
    }

    /// Ends a pass: the first query waiting leads the next one, or no pass runs.
    pub(super) fn hand_on(&self) {
        let mut q = self.scans.state.lock();
        match q.pending.first() {
            Some(next) => next.set(Phase::Leads),
            None => q.running = false,
        }
    }

    /// Runs a pass for the first [`MULTI_MAX`] queries waiting (the leader first among
    /// them), giving each its answer.
    fn run_pass(&self) {
        let batch: Vec<Arc<Job>> = {
            let mut q = self.scans.state.lock();
            let n = q.pending.len().min(MULTI_MAX);
            q.pending.drain(..n).collect()
        };
        let asks: Vec<ScanAsk<'_>> = batch.iter().map(|j| j.ask()).collect();
        let answers =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.search_many(&asks)));
        match answers {
            Ok(answers) => {
                for (job, hits) in batch.iter().zip(answers) {
                    job.set(Phase::Done(hits));
                }
                self.hand_on();
            }
            Err(p) => {
                for job in &batch {
                    job.set(Phase::Failed);
                }
                self.hand_on();
                std::panic::resume_unwind(p);
            }
        }
    }
}

/// A query waiting in a copy's [`ScanQueue`].
struct Shared<'a> {
    vectors: &'a NamespaceVectors,
    job: Arc<Job>,
    /// It leads a pass it started: it yields once first (see the module's docs).
    yields: bool,
    finished: bool,
}

impl Future for Shared<'_> {
    type Output = Vec<ScanHit>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Vec<ScanHit>> {
        let leads = {
            let mut s = self.job.state.lock();
            match std::mem::take(&mut s.phase) {
                Phase::Done(hits) => {
                    drop(s);
                    self.finished = true;
                    return Poll::Ready(hits);
                }
                Phase::Failed => false,
                Phase::Leads if self.yields => {
                    s.phase = Phase::Leads;
                    drop(s);
                    self.yields = false;
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                Phase::Leads => true,
                Phase::Queued => {
                    s.waker = Some(cx.waker().clone());
                    return Poll::Pending;
                }
            }
        };
        self.finished = true;
        let vectors = self.vectors;
        if !leads {
            let ask = self.job.ask();
            return Poll::Ready(vectors.search(ask.query, ask.limit, ask.agent));
        }
        vectors.run_pass();
        let mut s = self.job.state.lock();
        match std::mem::take(&mut s.phase) {
            Phase::Done(hits) => Poll::Ready(hits),
            _ => Poll::Ready(Vec::new()), // unreachable: the pass answered every query in it
        }
    }
}

impl Drop for Shared<'_> {
    /// A query dropped before its answer leaves the queue; if it was to lead the next pass,
    /// the next query waiting leads it instead.
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let mut q = self.vectors.scans.state.lock();
        let Some(at) = q.pending.iter().position(|j| Arc::ptr_eq(j, &self.job)) else {
            return; // taken into a pass already: its answer is dropped with it
        };
        q.pending.remove(at);
        if matches!(self.job.state.lock().phase, Phase::Leads) {
            match q.pending.first() {
                Some(next) => next.set(Phase::Leads),
                None => q.running = false,
            }
        }
    }
}
