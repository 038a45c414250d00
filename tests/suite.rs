//! One named test per scenario and runtime (`<runtime>::<scenario function>`), run by
//! libtest-mimic: a runtime's test target hands [`main`] how to start its system. The scenarios
//! that share a system run against one started once, and only when at least one of them is
//! selected; an isolated scenario starts a system of its own inside its test.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};

use libtest_mimic::{Arguments, Failed, Trial};

use crate::harness::Backend;
use crate::runtimes::Served;
use crate::{Fixture, Scenario};

/// A running system: an edge in front of a backend, and the fixture that tests it. Dropping it
/// stops both.
pub struct System {
    pub fixture: Fixture,
    // Fields drop in order: the edge stops before its backend.
    _edge: Served,
    _backend: Backend,
}

impl System {
    pub fn new(backend: Backend, edge: Served, fixture: Fixture) -> System {
        System {
            fixture,
            _edge: edge,
            _backend: backend,
        }
    }
}

/// Starts a runtime's system; `label` names its data folder.
pub type Start = fn(label: &str) -> System;

/// The shared system, once started: the system, or why it did not start.
type Shared = Arc<OnceLock<Result<System, String>>>;

/// Runs `lists` (in this order, each scenario with its own client addresses) as tests of
/// `runtime` under the command line's filters, and says whether all passed.
pub fn main(runtime: &'static str, start: Start, lists: Vec<Vec<Scenario>>) -> ExitCode {
    let args = Arguments::from_args();
    let shared: Shared = Arc::new(OnceLock::new());
    let mut trials = Vec::new();
    let mut isolated = Vec::new();
    for (index, scenario) in lists.into_iter().flatten().enumerate() {
        isolated.push(scenario.isolated);
        trials.push(trial(runtime, start, &shared, index, scenario));
    }
    let needs_shared = !args.list
        && trials.iter().zip(&isolated).any(|(trial, isolated)| {
            !isolated && !args.is_filtered_out(trial) && !args.is_ignored(trial)
        });
    if needs_shared {
        let _ = shared.set(started(start, runtime));
    }
    let conclusion = libtest_mimic::run(&args, trials);
    // The trials (and their handles on the system) are gone: this stops the processes.
    drop(shared);
    conclusion.exit_code()
}

fn trial(
    runtime: &'static str,
    start: Start,
    shared: &Shared,
    index: usize,
    scenario: Scenario,
) -> Trial {
    let name = format!("{runtime}::{}", scenario.function);
    let label = format!("{runtime}-{}", scenario.function);
    let isolated = scenario.isolated;
    let run = move |fixture: &Fixture| {
        scenario
            .run_against(fixture, index)
            .map_err(|why| Failed::from(format!("{}: {why}", scenario.name)))
    };
    if isolated {
        return Trial::test(name, move || run(&started(start, &label)?.fixture));
    }
    let shared = Arc::clone(shared);
    Trial::test(name, move || match shared.get() {
        Some(Ok(system)) => run(&system.fixture),
        Some(Err(why)) => Err(Failed::from(format!(
            "the {runtime} system did not start: {why}"
        ))),
        None => Err("the shared system was never started (this is a bug)".into()),
    })
}

/// Starts a system, turning a failed start (a panic in the harness) into its message.
fn started(start: Start, label: &str) -> Result<System, String> {
    catch_unwind(AssertUnwindSafe(|| start(label))).map_err(|panic| {
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "the harness panicked".to_owned())
    })
}
