//! Expensive reads (reports) run on a bounded pool, within a time budget, and stop when
//! nobody waits for them any more.
//!
//! A report that took minutes used to hold a runtime thread the whole time and went on after
//! its client had gone: three at once stalled call intake. Now
//!
//! * at most [`ReportConfig::concurrency`] reports run at once; another waits for a place at
//!   most [`ReportConfig::queue_wait_ms`], then is refused as busy (`503`, retry later);
//! * its computing runs on a blocking thread, never on the runtime's workers that serve
//!   intake, and checks its [`Budget`] as it goes: past [`ReportConfig::budget_ms`] it stops
//!   with [`EngineError::ReportTimeout`];
//! * when the caller's future is dropped (the HTTP client went away), the budget says so and
//!   the work stops at its next check.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::{Engine, EngineError};

/// How reports run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportConfig {
    /// Reports running at once, at most.
    pub concurrency: usize,
    /// How long a report waits for a place before it is refused as busy.
    pub queue_wait_ms: u64,
    /// How long one report may take.
    pub budget_ms: u64,
}

impl Default for ReportConfig {
    /// One core is always left to intake: on two cores, one report at a time (two at once
    /// took both cores and tripled intake's p99; see docs/benchmarks.md).
    fn default() -> ReportConfig {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        ReportConfig { concurrency: (cores - 1).clamp(1, 4), queue_wait_ms: 2_000, budget_ms: 20_000 }
    }
}

/// The pool's places and its counters.
#[derive(Debug)]
pub(crate) struct ReportState {
    places: Arc<Semaphore>,
    pub(crate) counters: Arc<ReportCounters>,
}

/// Counts for `/metrics`.
#[derive(Debug, Default)]
pub struct ReportCounters {
    pub finished: AtomicU64,
    pub busy: AtomicU64,
    pub timed_out: AtomicU64,
    pub abandoned: AtomicU64,
}

impl ReportState {
    pub(crate) fn new(config: &ReportConfig) -> ReportState {
        ReportState { places: Arc::new(Semaphore::new(config.concurrency.max(1))), counters: Arc::default() }
    }
}

/// What a report's work checks as it goes: its deadline, and whether anyone still waits.
#[derive(Clone, Debug)]
pub struct Budget {
    deadline: Instant,
    budget_ms: u64,
    abandoned: Arc<AtomicBool>,
}

impl Budget {
    /// `Err` once the deadline has passed or the caller has gone.
    pub fn check(&self) -> Result<(), EngineError> {
        if self.abandoned.load(Ordering::Relaxed) {
            return Err(EngineError::ReportAbandoned);
        }
        if Instant::now() > self.deadline {
            return Err(EngineError::ReportTimeout { budget_ms: self.budget_ms });
        }
        Ok(())
    }

    /// The time left, for the store reads a report awaits.
    fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}

/// Marks the budget abandoned when the future holding it is dropped before it finished.
struct AbandonOnDrop {
    abandoned: Arc<AtomicBool>,
    finished: bool,
    counters: Arc<ReportCounters>,
}

impl Drop for AbandonOnDrop {
    fn drop(&mut self) {
        if !self.finished {
            self.abandoned.store(true, Ordering::Relaxed);
            self.counters.abandoned.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Engine {
    /// A place on the report pool, waiting at most the configured time for one.
    async fn report_place(&self, name: &'static str) -> Result<tokio::sync::OwnedSemaphorePermit, EngineError> {
        let state = &self.reports;
        let wait = Duration::from_millis(self.config.reports.queue_wait_ms);
        match tokio::time::timeout(wait, Arc::clone(&state.places).acquire_owned()).await {
            Ok(Ok(place)) => Ok(place),
            Ok(Err(_)) => Err(EngineError::ReportBusy),
            Err(_) => {
                state.counters.busy.fetch_add(1, Ordering::Relaxed);
                tracing::info!(report = name, "report refused: every place on the report pool is taken");
                Err(EngineError::ReportBusy)
            }
        }
    }

    /// Runs a report that is all awaiting (paging through the store, writing a file as it
    /// goes) on the pool and within the budget; dropping the future stops it.
    pub(crate) async fn run_bounded<T>(
        &self,
        name: &'static str,
        work: impl Future<Output = Result<T, EngineError>>,
    ) -> Result<T, EngineError> {
        let _place = self.report_place(name).await?;
        let budget_ms = self.config.reports.budget_ms;
        match tokio::time::timeout(Duration::from_millis(budget_ms), work).await {
            Ok(result) => {
                if result.is_ok() {
                    self.reports.counters.finished.fetch_add(1, Ordering::Relaxed);
                }
                result
            }
            Err(_) => {
                self.reports.counters.timed_out.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(report = name, budget_ms, "report stopped at its time budget");
                Err(EngineError::ReportTimeout { budget_ms })
            }
        }
    }

    /// Runs a report: `read` gathers what it needs from the store (awaited, within the
    /// budget), then `compute` works on a blocking thread, checking the budget it is given.
    pub(crate) async fn run_report<D, T, R, C>(&self, name: &'static str, read: R, compute: C) -> Result<T, EngineError>
    where
        D: Send + 'static,
        T: Send + 'static,
        R: Future<Output = Result<D, EngineError>>,
        C: FnOnce(D, &Budget) -> Result<T, EngineError> + Send + 'static,
    {
        let config = &self.config.reports;
        let state = &self.reports;
        let place = self.report_place(name).await?;
        let abandoned = Arc::new(AtomicBool::new(false));
        let mut guard =
            AbandonOnDrop { abandoned: Arc::clone(&abandoned), finished: false, counters: Arc::clone(&state.counters) };
        let budget = Budget {
            deadline: Instant::now() + Duration::from_millis(config.budget_ms),
            budget_ms: config.budget_ms,
            abandoned,
        };
        let started = Instant::now();
        let result = async {
            let data = match tokio::time::timeout(budget.remaining(), read).await {
                Ok(data) => data?,
                Err(_) => return Err(EngineError::ReportTimeout { budget_ms: budget.budget_ms }),
            };
            let work_budget = budget.clone();
            // The place travels with the work: it is released when the work ends, even if
            // the caller has gone by then.
            tokio::task::spawn_blocking(move || {
                let _place = place;
                compute(data, &work_budget)
            })
            .await
            .map_err(|e| EngineError::Invalid { field: "report", message: format!("the report failed: {e}") })?
        }
        .await;
        guard.finished = true;
        match &result {
            Ok(_) => {
                state.counters.finished.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(report = name, elapsed_ms = started.elapsed().as_millis() as u64, "report finished");
            }
            Err(EngineError::ReportTimeout { .. }) => {
                state.counters.timed_out.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(report = name, budget_ms = budget.budget_ms, "report stopped at its time budget");
            }
            Err(_) => {}
        }
        result
    }
}
