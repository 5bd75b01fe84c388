//! Expensive reads (reports) run on a bounded pool, within a time budget, and stop when
//! nobody waits for them any more.
//!
//! A report that took minutes used to hold a runtime thread the whole time and went on after
//! its client had gone: three at once stalled call intake. Now
//!
//! * at most [`ReportConfig::concurrency`] reports run at once; another waits for a place at
//!   most [`ReportConfig::queue_wait_ms`], then is refused as busy (`503`, retry later);
//! * its computing runs on a report thread, never on the runtime's workers that serve
//!   intake, and checks its [`Budget`] as it goes: past [`ReportConfig::budget_ms`] it stops
//!   with [`EngineError::ReportTimeout`];
//! * when the caller's future is dropped (the HTTP client went away), the budget says so and
//!   the work stops at its next check;
//! * the computing runs on the pool's own threads, [`ReportConfig::concurrency`] of them, at
//!   a lower CPU priority than everything else ([`REPORT_NICE`]): when intake and a report
//!   both want the CPU, the kernel's scheduler gives it to intake. On two cores a report on a
//!   thread of normal priority took a core from the runtime's workers and tripled intake's
//!   p99 (docs/benchmarks.md).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
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

/// The nice value of the report threads (Linux: 0 is normal, 19 the lowest priority).
/// Raising a thread's nice value needs no privilege; lowering it again would, so the
/// threads are the pool's own and never serve anything else.
pub const REPORT_NICE: i32 = 19;

/// The pool's places, its threads and its counters.
#[derive(Debug)]
pub(crate) struct ReportState {
    places: Arc<Semaphore>,
    workers: Workers,
    pub(crate) counters: Arc<ReportCounters>,
}

type Job = Box<dyn FnOnce() + Send>;

/// The report threads, fed from one queue. They end when the engine (the queue's sender)
/// is dropped.
struct Workers {
    jobs: mpsc::Sender<Job>,
}

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workers").finish_non_exhaustive()
    }
}

impl Workers {
    fn start(count: usize) -> Workers {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..count {
            let queue = Arc::clone(&queue);
            std::thread::Builder::new()
                .name(format!("fk-report-{n}"))
                .spawn(move || {
                    // setpriority(PRIO_PROCESS, 0, …) changes the calling thread only on Linux,
                    // where the nice value belongs to the thread. Where it cannot be changed the
                    // report runs at normal priority: slower intake under load, not a fault.
                    if let Err(error) = rustix::process::setpriority_process(None, REPORT_NICE) {
                        tracing::warn!(%error, "the report thread keeps normal priority");
                    }
                    loop {
                        let job = queue.lock().expect("report queue lock").recv();
                        let Ok(job) = job else { break };
                        // A panicking report drops its answer channel (its caller gets an
                        // error); the thread goes on serving.
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                    }
                })
                .expect("a report thread starts");
        }
        Workers { jobs }
    }
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
        let concurrency = config.concurrency.max(1);
        ReportState {
            places: Arc::new(Semaphore::new(concurrency)),
            workers: Workers::start(concurrency),
            counters: Arc::default(),
        }
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
    /// Runs `work` on a report thread and waits for it. Only for work that holds a place on
    /// the pool (inside [`Engine::run_report`] or [`Engine::run_bounded`]), so a thread is free.
    pub(crate) async fn on_report_thread<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, EngineError> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = answer.send(work());
        });
        let failed = || EngineError::Invalid { field: "report", message: "the report failed".into() };
        self.reports.workers.jobs.send(job).map_err(|_| failed())?;
        answered.await.map_err(|_| failed())
    }

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
            self.on_report_thread(move || {
                let _place = place;
                compute(data, &work_budget)
            })
            .await?
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

#[cfg(test)]
mod tests {
    use std::sync::mpsc as std_mpsc;

    use super::*;
    use crate::EngineConfig;
    use crate::clock::ManualClock;
    use crate::keys::KeyRing;
    use crate::test_support::{T0, config, start};

    async fn engine(reports: ReportConfig) -> (Arc<Engine>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("fk.db").display());
        let keys = KeyRing::generate();
        let config = EngineConfig { reports, ..config(&keys) };
        (start(&url, &ManualClock::new(T0), config).await.unwrap(), dir)
    }

    fn config_of(concurrency: usize, queue_wait_ms: u64, budget_ms: u64) -> ReportConfig {
        ReportConfig { concurrency, queue_wait_ms, budget_ms }
    }

    /// The nice value of the calling thread, from /proc (field 19 of stat).
    fn nice_of_this_thread() -> i32 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        let after_name = stat.rsplit(')').next().unwrap();
        after_name.split_whitespace().nth(16).unwrap().parse().unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reports_compute_on_threads_of_lower_priority_than_intake() {
        let (engine, _dir) = engine(config_of(1, 1_000, 5_000)).await;
        let runtime_nice = nice_of_this_thread();
        let report_nice = engine
            .run_report("nice", async { Ok(()) }, |(), _| {
                Ok((nice_of_this_thread(), std::thread::current().name().map(String::from)))
            })
            .await
            .unwrap();
        assert_eq!(report_nice.1.as_deref(), Some("fk-report-0"));
        assert_eq!(report_nice.0, REPORT_NICE.max(runtime_nice), "the runtime's threads are at {runtime_nice}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_report_waits_for_a_place_then_is_refused_as_busy() {
        let (engine, _dir) = engine(config_of(1, 100, 5_000)).await;
        let (release, released) = std_mpsc::channel::<()>();
        let (started, has_started) = tokio::sync::oneshot::channel();
        let holder = tokio::spawn({
            let engine = Arc::clone(&engine);
            async move {
                engine
                    .run_report("holder", async { Ok(()) }, move |(), _| {
                        let _ = started.send(());
                        released.recv().unwrap();
                        Ok(1)
                    })
                    .await
            }
        });
        has_started.await.unwrap();
        let refused = engine.run_report("second", async { Ok(()) }, |(), _| Ok(2)).await;
        assert!(matches!(refused, Err(EngineError::ReportBusy)), "{refused:?}");
        assert_eq!(engine.reports.counters.busy.load(Ordering::Relaxed), 1);
        release.send(()).unwrap();
        assert_eq!(holder.await.unwrap().unwrap(), 1);
        // The place is free again.
        assert_eq!(engine.run_report("third", async { Ok(()) }, |(), _| Ok(3)).await.unwrap(), 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_report_stops_at_its_budget_and_when_its_caller_goes() {
        let (engine, _dir) = engine(config_of(1, 1_000, 150)).await;
        let spin = |budget: &Budget| -> Result<(), EngineError> {
            loop {
                budget.check()?;
                std::thread::sleep(Duration::from_millis(5));
            }
        };
        let started = Instant::now();
        let result = engine.run_report("long", async { Ok(()) }, move |(), budget| spin(budget)).await;
        assert!(matches!(result, Err(EngineError::ReportTimeout { budget_ms: 150 })), "{result:?}");
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(engine.reports.counters.timed_out.load(Ordering::Relaxed), 1);

        // The caller goes away after 30 ms: the work sees it at its next check and stops.
        let (said, heard) = std_mpsc::channel();
        let caller = engine.run_report("left", async { Ok(()) }, move |(), budget| {
            let result = spin(budget);
            said.send(format!("{result:?}")).unwrap();
            result
        });
        assert!(tokio::time::timeout(Duration::from_millis(30), caller).await.is_err());
        let why = tokio::task::spawn_blocking(move || heard.recv_timeout(Duration::from_secs(2))).await.unwrap();
        assert_eq!(why.unwrap(), "Err(ReportAbandoned)");
        assert_eq!(engine.reports.counters.abandoned.load(Ordering::Relaxed), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_report_is_an_error_and_the_pool_goes_on() {
        let (engine, _dir) = engine(config_of(1, 1_000, 5_000)).await;
        let failed =
            engine.run_report("panics", async { Ok(()) }, |(), _| -> Result<u8, EngineError> { panic!("a bug") }).await;
        assert!(matches!(failed, Err(EngineError::Invalid { field: "report", .. })), "{failed:?}");
        assert_eq!(engine.run_report("next", async { Ok(()) }, |(), _| Ok(7)).await.unwrap(), 7);
    }
}
