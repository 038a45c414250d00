//! The edge's one upkeep schedule: pull the revocation feed every 5 s, refetch the JWKS every
//! 5 min, prune expired state every minute. Runtimes only drive it (native from a timer, the
//! Worker after its responses through `wait_until`, Spin after each response); what is due is
//! decided here, from the last-run times each runtime keeps in its state store
//! ([`EdgeState::last_upkeep`]), so every isolate and instance follows the same rule.
//!
//! A deny-list that has gone unsynced for [`REVOCATION_MAX_AGE_MS`] (a quiet Worker or Spin
//! app) is synced before the next request is answered ([`Upkeep::run_overdue`]), so a revocation
//! holds at every edge within 60 s of being made.

use std::sync::Mutex;

use crate::pipeline::Pipeline;
use crate::ports::{EdgeState, RateStore, UpkeepTask, Upstream};

/// How often the revocation feed is pulled.
pub const REVOCATION_SYNC_MS: u64 = 5_000;
/// How often the JWKS is refetched (besides the refetch an unknown `kid` triggers): a key the
/// backend stopped publishing stops verifying within this time.
pub const JWKS_REFRESH_MS: u64 = 300_000;
/// How often expired state is dropped.
pub const PRUNE_MS: u64 = 60_000;
/// The oldest a deny-list may be when a request is answered; older, the feed is pulled first.
pub const REVOCATION_MAX_AGE_MS: u64 = 30_000;

// A revocation is enforced at every edge within 60 s of being made.
const _: () = assert!(REVOCATION_MAX_AGE_MS + REVOCATION_SYNC_MS <= 60_000);

/// When each task falls due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub revocations_ms: u64,
    pub jwks_ms: u64,
    pub prune_ms: u64,
    /// See [`REVOCATION_MAX_AGE_MS`].
    pub revocations_max_age_ms: u64,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            revocations_ms: REVOCATION_SYNC_MS,
            jwks_ms: JWKS_REFRESH_MS,
            prune_ms: PRUNE_MS,
            revocations_max_age_ms: REVOCATION_MAX_AGE_MS,
        }
    }
}

/// When each task last ran (ms since the epoch; 0: never).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LastRuns {
    pub revocations_ms: u64,
    pub jwks_ms: u64,
    pub prune_ms: u64,
}

impl LastRuns {
    pub fn get(&self, task: UpkeepTask) -> u64 {
        match task {
            UpkeepTask::Revocations => self.revocations_ms,
            UpkeepTask::Jwks => self.jwks_ms,
            UpkeepTask::Prune => self.prune_ms,
        }
    }

    pub fn set(&mut self, task: UpkeepTask, at_ms: u64) {
        match task {
            UpkeepTask::Revocations => self.revocations_ms = at_ms,
            UpkeepTask::Jwks => self.jwks_ms = at_ms,
            UpkeepTask::Prune => self.prune_ms = at_ms,
        }
    }
}

impl Schedule {
    /// How long after its last run `task` is due again.
    pub fn interval_ms(&self, task: UpkeepTask) -> u64 {
        match task {
            UpkeepTask::Revocations => self.revocations_ms,
            UpkeepTask::Jwks => self.jwks_ms,
            UpkeepTask::Prune => self.prune_ms,
        }
    }

    /// How long `task` may go unrun before a request waits for it; `None`: never.
    pub fn max_age_ms(&self, task: UpkeepTask) -> Option<u64> {
        match task {
            UpkeepTask::Revocations => Some(self.revocations_max_age_ms),
            UpkeepTask::Jwks | UpkeepTask::Prune => None,
        }
    }

    /// Whether `task`, last run at `last_ms`, is due at `now_ms`: its interval has passed, or
    /// the last run lies further in the future than one interval (a clock that went back).
    pub fn is_due(&self, task: UpkeepTask, last_ms: u64, now_ms: u64) -> bool {
        older_than(last_ms, now_ms, self.interval_ms(task))
    }

    /// Whether `task`, last run at `last_ms`, must run before a request is answered at `now_ms`.
    pub fn is_overdue(&self, task: UpkeepTask, last_ms: u64, now_ms: u64) -> bool {
        self.max_age_ms(task)
            .is_some_and(|age| older_than(last_ms, now_ms, age))
    }

    /// The tasks due at `now_ms`, in the order a run performs them.
    pub fn due(&self, last: &LastRuns, now_ms: u64) -> Vec<UpkeepTask> {
        UpkeepTask::ALL
            .into_iter()
            .filter(|task| self.is_due(*task, last.get(*task), now_ms))
            .collect()
    }

    /// The tasks overdue at `now_ms`, in run order.
    pub fn overdue(&self, last: &LastRuns, now_ms: u64) -> Vec<UpkeepTask> {
        UpkeepTask::ALL
            .into_iter()
            .filter(|task| self.is_overdue(*task, last.get(*task), now_ms))
            .collect()
    }

    /// How often a runtime that drives the schedule from a timer should look: a fifth of the
    /// shortest interval, so a task runs at most that late.
    pub fn tick_ms(&self) -> u64 {
        (self.revocations_ms.min(self.jwks_ms).min(self.prune_ms) / 5).max(1)
    }
}

fn older_than(last_ms: u64, now_ms: u64, age_ms: u64) -> bool {
    now_ms.saturating_sub(last_ms) >= age_ms || last_ms > now_ms.saturating_add(age_ms)
}

/// What one task of a run came to: how many entries it fetched, filed or dropped, or why it
/// failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskOutcome {
    pub task: UpkeepTask,
    pub result: Result<usize, String>,
}

/// The schedule, and what this instance has seen of the last runs. The store's times only grow,
/// so a task this instance saw run recently is not due, and the store is asked only when the
/// instance's own view says a task may be due.
#[derive(Debug, Default)]
pub struct Upkeep {
    schedule: Schedule,
    seen: Mutex<LastRuns>,
}

impl Upkeep {
    pub fn new(schedule: Schedule) -> Self {
        Upkeep {
            schedule,
            seen: Mutex::new(LastRuns::default()),
        }
    }

    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// Runs every task due now, in order. A task's run is recorded before it starts, so
    /// instances that look at the same time rarely repeat it, and one that fails is retried a
    /// full interval later.
    pub async fn run_due<R: RateStore, S: EdgeState, U: Upstream>(
        &self,
        pipeline: &Pipeline<R, S, U>,
    ) -> Vec<TaskOutcome> {
        self.run_where(pipeline, Schedule::is_due).await
    }

    /// Runs the tasks whose state is too old to answer a request with; call it before handling.
    pub async fn run_overdue<R: RateStore, S: EdgeState, U: Upstream>(
        &self,
        pipeline: &Pipeline<R, S, U>,
    ) -> Vec<TaskOutcome> {
        self.run_where(pipeline, Schedule::is_overdue).await
    }

    async fn run_where<R: RateStore, S: EdgeState, U: Upstream>(
        &self,
        pipeline: &Pipeline<R, S, U>,
        wanted: fn(&Schedule, UpkeepTask, u64, u64) -> bool,
    ) -> Vec<TaskOutcome> {
        let now_ms = pipeline.clock().now_ms();
        let mut outcomes = Vec::new();
        for task in UpkeepTask::ALL {
            if !wanted(&self.schedule, task, self.seen(task), now_ms) {
                continue;
            }
            let result = match self.claim(pipeline.state(), task, now_ms, wanted).await {
                Ok(false) => continue,
                Ok(true) => run_task(pipeline, task).await,
                Err(error) => Err(error),
            };
            outcomes.push(TaskOutcome { task, result });
        }
        outcomes
    }

    /// Asks the store when `task` last ran and, if it is still wanted, records a run at
    /// `now_ms`; says whether the caller should run it.
    async fn claim<S: EdgeState>(
        &self,
        state: &S,
        task: UpkeepTask,
        now_ms: u64,
        wanted: fn(&Schedule, UpkeepTask, u64, u64) -> bool,
    ) -> Result<bool, String> {
        let last = state.last_upkeep(task).await.map_err(|e| e.to_string())?;
        self.see(task, last);
        if !wanted(&self.schedule, task, last, now_ms) {
            return Ok(false);
        }
        state
            .record_upkeep(task, now_ms)
            .await
            .map_err(|e| e.to_string())?;
        self.see(task, now_ms);
        Ok(true)
    }

    fn seen(&self, task: UpkeepTask) -> u64 {
        self.seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(task)
    }

    fn see(&self, task: UpkeepTask, at_ms: u64) {
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        seen.set(task, at_ms);
    }
}

async fn run_task<R: RateStore, S: EdgeState, U: Upstream>(
    pipeline: &Pipeline<R, S, U>,
    task: UpkeepTask,
) -> Result<usize, String> {
    match task {
        UpkeepTask::Revocations => pipeline.sync_revocations().await.map_err(|e| e.to_string()),
        UpkeepTask::Jwks => pipeline
            .refresh_keys()
            .await
            .map(|keys| keys.len())
            .map_err(|e| e.to_string()),
        UpkeepTask::Prune => pipeline.prune().await.map_err(|e| e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    use shared::signing::MessageSigningKey;
    use shared::token::{KeySet, SigningKey};

    use super::*;
    use crate::EdgeConfig;
    use crate::backend_sync::{JWKS_PATH, REVOCATIONS_PATH};
    use crate::memory::{MemoryRateStore, MemoryState};
    use crate::testing::{
        CountingEntropy, ManualClock, RecordingAudit, ScriptedUpstream, block_on, json,
    };

    const NOW_MS: u64 = 1_700_000_000_000;

    #[test]
    fn a_first_look_finds_every_task_due() {
        let schedule = Schedule::default();
        assert_eq!(
            schedule.due(&LastRuns::default(), NOW_MS),
            UpkeepTask::ALL.to_vec()
        );
        assert_eq!(
            schedule.overdue(&LastRuns::default(), NOW_MS),
            vec![UpkeepTask::Revocations]
        );
    }

    #[test]
    fn each_task_falls_due_when_its_own_interval_has_passed() {
        let schedule = Schedule::default();
        let last = LastRuns {
            revocations_ms: NOW_MS,
            jwks_ms: NOW_MS,
            prune_ms: NOW_MS,
        };
        let due_after = |ms: u64| schedule.due(&last, NOW_MS + ms);
        assert_eq!(due_after(0), vec![]);
        assert_eq!(due_after(REVOCATION_SYNC_MS - 1), vec![]);
        assert_eq!(due_after(REVOCATION_SYNC_MS), vec![UpkeepTask::Revocations]);
        assert_eq!(
            due_after(PRUNE_MS),
            vec![UpkeepTask::Revocations, UpkeepTask::Prune]
        );
        assert_eq!(due_after(JWKS_REFRESH_MS - 1).len(), 2);
        assert_eq!(due_after(JWKS_REFRESH_MS), UpkeepTask::ALL.to_vec());
    }

    #[test]
    fn only_a_stale_deny_list_holds_up_a_request() {
        let schedule = Schedule::default();
        let last = LastRuns {
            revocations_ms: NOW_MS,
            jwks_ms: 0,
            prune_ms: 0,
        };
        assert_eq!(
            schedule.overdue(&last, NOW_MS + REVOCATION_MAX_AGE_MS - 1),
            vec![]
        );
        assert_eq!(
            schedule.overdue(&last, NOW_MS + REVOCATION_MAX_AGE_MS),
            vec![UpkeepTask::Revocations]
        );
    }

    #[test]
    fn a_run_stamped_far_in_the_future_does_not_stall_the_task() {
        let schedule = Schedule::default();
        let ahead = NOW_MS + REVOCATION_SYNC_MS / 2;
        assert!(!schedule.is_due(UpkeepTask::Revocations, ahead, NOW_MS));
        let far = NOW_MS + REVOCATION_SYNC_MS + 1;
        assert!(schedule.is_due(UpkeepTask::Revocations, far, NOW_MS));
    }

    #[test]
    fn a_timer_looks_often_enough_for_the_shortest_interval() {
        let schedule = Schedule::default();
        assert_eq!(schedule.tick_ms(), REVOCATION_SYNC_MS / 5);
    }

    type TestPipeline = Pipeline<MemoryRateStore, MemoryState, Arc<ScriptedUpstream>>;

    fn pipeline(clock: Arc<ManualClock>) -> (TestPipeline, Arc<ScriptedUpstream>) {
        let signing = SigningKey::generate_ed25519("kid-1", [5u8; 32]).expect("key");
        let mut keys = KeySet::new();
        keys.insert(signing.verification_key());
        let jwks = keys.to_jwks_json();
        let upstream = Arc::new(ScriptedUpstream::new(move |request| {
            Ok(match request.path_and_query.as_str() {
                JWKS_PATH => json(200, &jwks),
                p if p.starts_with(REVOCATIONS_PATH) => json(200, r#"{"revoked":[]}"#),
                _ => json(404, "{}"),
            })
        }));
        (with_upstream(upstream.clone(), clock), upstream)
    }

    fn with_upstream(upstream: Arc<ScriptedUpstream>, clock: Arc<ManualClock>) -> TestPipeline {
        let key = MessageSigningKey::new("edge-1", vec![1u8; 32]).expect("key");
        Pipeline::new(
            EdgeConfig::new("http://backend", key),
            MemoryRateStore::default(),
            MemoryState::default(),
            upstream,
            Box::new(clock),
            Box::new(CountingEntropy::default()),
            Box::new(Arc::new(RecordingAudit::default())),
        )
    }

    fn tasks(outcomes: &[TaskOutcome]) -> Vec<UpkeepTask> {
        outcomes.iter().map(|o| o.task).collect()
    }

    /// Two [`Upkeep`]s over one pipeline stand for two isolates over one shared store: each
    /// has its own view of the last runs, the store has the truth.
    #[test]
    fn instances_sharing_a_store_follow_one_schedule() {
        let clock = Arc::new(ManualClock::at(NOW_MS));
        let (pipeline, backend) = pipeline(clock.clone());
        let (one, two) = (Upkeep::default(), Upkeep::default());

        let ran = block_on(one.run_due(&pipeline));
        assert_eq!(tasks(&ran), UpkeepTask::ALL.to_vec());
        assert!(ran.iter().all(|o| o.result.is_ok()), "{ran:?}");
        let revocations = format!("{REVOCATIONS_PATH}?since_ms=0");
        assert_eq!(
            backend.paths(),
            vec![revocations.clone(), JWKS_PATH.to_owned(), revocations],
            "a JWKS refresh pulls the feed after it"
        );
        assert!(block_on(two.run_due(&pipeline)).is_empty(), "already done");

        clock.0.fetch_add(REVOCATION_SYNC_MS, Ordering::SeqCst);
        assert_eq!(
            tasks(&block_on(two.run_due(&pipeline))),
            vec![UpkeepTask::Revocations]
        );
        assert!(
            block_on(one.run_due(&pipeline)).is_empty(),
            "the other ran it"
        );
        assert_eq!(backend.paths().len(), 4);
        assert_eq!(
            block_on(pipeline.state().last_upkeep(UpkeepTask::Revocations)),
            Ok(NOW_MS + REVOCATION_SYNC_MS)
        );
    }

    #[test]
    fn an_overdue_run_syncs_only_the_deny_list() {
        let clock = Arc::new(ManualClock::at(NOW_MS));
        let (pipeline, backend) = pipeline(clock.clone());
        let upkeep = Upkeep::default();
        assert_eq!(
            tasks(&block_on(upkeep.run_overdue(&pipeline))),
            vec![UpkeepTask::Revocations]
        );
        clock
            .0
            .fetch_add(REVOCATION_MAX_AGE_MS - 1, Ordering::SeqCst);
        assert!(block_on(upkeep.run_overdue(&pipeline)).is_empty());
        assert_eq!(backend.paths().len(), 1);
    }

    #[test]
    fn a_failing_task_is_reported_and_retried_an_interval_later() {
        let clock = Arc::new(ManualClock::at(NOW_MS));
        let upstream = Arc::new(ScriptedUpstream::new(|_| Ok(json(503, "{}"))));
        let pipeline = with_upstream(upstream, clock.clone());
        let upkeep = Upkeep::default();
        let ran = block_on(upkeep.run_due(&pipeline));
        let failed: Vec<UpkeepTask> = ran
            .iter()
            .filter(|o| o.result.is_err())
            .map(|o| o.task)
            .collect();
        assert_eq!(failed, vec![UpkeepTask::Revocations, UpkeepTask::Jwks]);
        assert!(block_on(upkeep.run_due(&pipeline)).is_empty());
        clock.0.fetch_add(REVOCATION_SYNC_MS, Ordering::SeqCst);
        assert_eq!(
            tasks(&block_on(upkeep.run_due(&pipeline))),
            vec![UpkeepTask::Revocations]
        );
    }
}
