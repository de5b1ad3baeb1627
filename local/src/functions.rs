//! The functions of the template as Lambda runs them: each invocation goes to an idle
//! instance (warm) or, when none is idle, to a new one (cold start), up to a
//! per-function limit; beyond it invocations wait for an instance to become free.
//! Every invocation prints one line.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{Semaphore, watch};

use crate::runtime_api::{Fate, Instance, Launch, Reply};
use crate::template::FunctionSpec;

/// One function with its instances.
pub struct Function {
    pub spec: FunctionSpec,
    launch: Launch,
    idle: Mutex<Vec<Instance>>,
    slots: Semaphore,
    started: AtomicU32,
    /// Every process this function ever started (pid, still tracked by us).
    pids: Mutex<Vec<u32>>,
    /// The exit status of every process started, to wait for at shutdown.
    exits: Mutex<Vec<watch::Receiver<Option<String>>>>,
    console: Arc<Console>,
}

/// The result of one invocation.
pub struct Invoked {
    pub reply: Reply,
    pub cold: bool,
    pub duration: Duration,
}

impl Function {
    pub fn new(spec: FunctionSpec, launch: Launch, max_instances: usize, console: Arc<Console>) -> Self {
        Function {
            spec,
            launch,
            idle: Mutex::new(Vec::new()),
            slots: Semaphore::new(max_instances.max(1)),
            started: AtomicU32::new(0),
            pids: Mutex::new(Vec::new()),
            exits: Mutex::new(Vec::new()),
            console,
        }
    }

    pub fn name(&self) -> &str {
        &self.spec.logical_id
    }

    pub fn pids(&self) -> Vec<u32> {
        lock(&self.pids).clone()
    }

    /// Invokes the function and prints the invocation line: `trigger` says what
    /// called it, `status` turns the reply into the status column.
    pub async fn invoke(
        &self,
        payload: Bytes,
        trigger: &str,
        status: impl FnOnce(&Reply) -> String,
    ) -> Invoked {
        let begun = Instant::now();
        let invoked = self.run(payload).await;
        let duration = begun.elapsed();
        self.console.invocation(self.name(), trigger, &status(&invoked.0), duration, invoked.1);
        Invoked { reply: invoked.0, cold: invoked.1, duration }
    }

    async fn run(&self, payload: Bytes) -> (Reply, bool) {
        let Ok(_slot) = self.slots.acquire().await else {
            return (Reply::failure("ServiceException", "the function is shutting down"), false);
        };
        let warm = {
            let mut idle = lock(&self.idle);
            idle.retain(Instance::is_alive);
            idle.pop()
        };
        let (mut instance, cold) = match warm {
            Some(instance) => (instance, false),
            None => match self.start().await {
                Ok(instance) => (instance, true),
                Err(reply) => return (reply, true),
            },
        };
        let timeout = Duration::from_secs(self.spec.timeout_seconds.max(1));
        let (reply, fate) = instance.invoke(payload, timeout).await;
        match fate {
            Fate::Warm => lock(&self.idle).push(instance),
            Fate::Gone => {
                self.console.note(&format!(
                    "{} #{} (pid {}) is gone",
                    self.name(),
                    instance.number,
                    instance.pid
                ));
                instance.stop().await;
            }
        }
        (reply, cold)
    }

    async fn start(&self) -> Result<Instance, Reply> {
        let number = self.started.fetch_add(1, Ordering::Relaxed) + 1;
        match Instance::start(&self.launch, number).await {
            Ok(instance) => {
                lock(&self.pids).push(instance.pid);
                lock(&self.exits).push(instance.exit_watch());
                self.console.note(&format!(
                    "{} #{number} started (pid {}), log {}",
                    self.name(),
                    instance.pid,
                    self.launch.log_file.display()
                ));
                Ok(instance)
            }
            Err(e) => Err(Reply::failure(
                "Runtime.InvalidEntrypoint",
                &format!("cannot start {}: {e}", self.launch.binary.display()),
            )),
        }
    }

    /// Refuses new invocations, stops the idle instances, and waits (up to `grace`)
    /// until every process this function started has exited. Busy instances are
    /// killed when the invocation holding them is dropped (its task aborted).
    /// Returns the pids still running after `grace`.
    pub async fn shutdown(&self, grace: Duration) -> Vec<u32> {
        self.slots.close();
        let idle: Vec<Instance> = lock(&self.idle).drain(..).collect();
        for instance in idle {
            instance.stop().await;
        }
        let exits: Vec<_> = lock(&self.exits).clone();
        let pids = self.pids();
        let mut left = Vec::new();
        for (mut exit, pid) in exits.into_iter().zip(pids) {
            if tokio::time::timeout(grace, exit.wait_for(Option::is_some)).await.is_err() {
                left.push(pid);
            }
        }
        left
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Where the stack's lines go (stdout): one per invocation, plus notes.
#[derive(Debug, Default)]
pub struct Console;

impl Console {
    pub fn invocation(&self, function: &str, trigger: &str, status: &str, duration: Duration, cold: bool) {
        let temperature = if cold { "cold" } else { "warm" };
        println!(
            "{}  {function:<26} {trigger:<40} {status:<14} {:>7.1} ms  {temperature}",
            clock(),
            duration.as_secs_f64() * 1000.0
        );
    }

    pub fn note(&self, text: &str) {
        println!("{}  · {text}", clock());
    }
}

fn clock() -> String {
    let format = time::macros::format_description!("[hour]:[minute]:[second].[subsecond digits:3]");
    time::OffsetDateTime::now_utc().format(&format).unwrap_or_default()
}

/// The status column for a reply whose payload needs no interpretation.
pub fn plain_status(reply: &Reply) -> String {
    match reply {
        Reply::Success(_) => "ok".to_owned(),
        Reply::Failure { error_type, .. } => format!("error {error_type}"),
    }
}
