//! Shared scans: concurrent recalls of one copy of a namespace's vectors read its int8 codes
//! once for several queries (see [`NamespaceVectors::search_many`]).
//!
//! Shaped like the group commit, for reads: a query that finds no scan of the copy running
//! scans at once, alone; queries that arrive while one runs wait (as tasks, holding no
//! thread) and are scanned together in the next pass, led by the first of them when the
//! running pass ends. A batch forms only under load, and only of queries over the same copy
//! (the same committed vectors), so each answer is the one its query gets alone.

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
    /// this copy that run at the same time (see the module's docs). Never waits when no scan
    /// of the copy is running; a query waiting for a pass that is dropped leaves the others
    /// to it.
    pub(crate) async fn search_shared(
        &self,
        query: &[f32],
        limit: usize,
        agent: Option<u64>,
    ) -> Vec<ScanHit> {
        if !self.scans_int8(&ScanAsk { query, limit, agent }) {
            return self.search(query, limit, agent);
        }
        let job = {
            let mut q = self.scans.state.lock();
            if !q.running {
                q.running = true;
                drop(q);
                let hits = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    self.search(query, limit, agent)
                }));
                self.hand_on();
                return hits.unwrap_or_else(|p| std::panic::resume_unwind(p));
            }
            let job =
                Arc::new(Job { query: query.to_vec(), limit, agent, state: Mutex::default() });
            q.pending.push(job.clone());
            job
        };
        Shared { vectors: self, job, finished: false }.await
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
