//! docs/BENCHMARKS.md: every figure with the machine, date, commit, load and
//! the command that reproduces it.

mod bundles;
mod costs;
mod memory;

pub use bundles::{BUNDLE_RECORD, Bundle, read as read_bundles};
pub use costs::CostSection;
pub use memory::workloads;

use crate::stats::{Summary, ms};
use crate::{Options, argon, cold, cpu, hot, jobs, roundtrips};
use std::fmt::Write;
use std::time::Duration;

/// The handler-CPU section: rows, the measured (user, system) CPU of the run, and its stamps.
pub type CpuSection = (Vec<cpu::Row>, (Duration, Duration), String, String);

pub struct Report {
    command: String,
    /// The command without its `--only`, for each section's "Reproduce" line.
    reproduce: String,
    options: String,
    machine: String,
    date: String,
    commit: String,
    rustc: String,
    emulator: String,
    bin_dir: String,
    pub roundtrips: Option<(Vec<roundtrips::Row>, String)>,
    pub argon2: Option<(argon::Report, String, String)>,
    pub cpu: Option<CpuSection>,
    pub cold: Option<(Vec<cold::Row>, String, String)>,
    pub jobs: Option<(jobs::Drain, Vec<jobs::Audit>, String, String)>,
    pub migrate: Vec<(jobs::Migration, String)>,
    pub costs: Option<CostSection>,
    pub memory: Option<Vec<memory::Workload>>,
    /// The bundles recorded, and every function binary of the template.
    pub bundles: Option<(Vec<Bundle>, Vec<String>)>,
    /// Hot accounts: the runs and the load at their start.
    pub hot: Option<(hot::Report, String)>,
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn run(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// The load averages, as `uptime` prints them.
pub fn load() -> String {
    let text = read("/proc/loadavg");
    let parts: Vec<&str> = text.split_whitespace().take(3).collect();
    format!("load average {}", parts.join(", "))
}

fn machine() -> String {
    let cpuinfo = read("/proc/cpuinfo");
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU", |(_, v)| v.trim())
        .to_owned();
    let cpus = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let memory_gib = read("/proc/meminfo")
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kib| kib.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    let os = read("/etc/os-release")
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map_or("Linux".to_owned(), |v| v.trim_matches('"').to_owned());
    let kernel = read("/proc/sys/kernel/osrelease").trim().to_owned();
    format!(
        "{model}, {cpus} vCPUs, {memory_gib:.0} GiB RAM, {os}, kernel {kernel}, {}",
        std::env::consts::ARCH
    )
}

impl Report {
    pub fn new(options: &Options) -> Self {
        let dirty = !run("git", &["status", "--porcelain", "--untracked-files=no"]).is_empty();
        let commit = format!(
            "{}{}",
            run("git", &["rev-parse", "--short=12", "HEAD"]),
            if dirty { " (with uncommitted changes in the working tree)" } else { "" }
        );
        let now = time::OffsetDateTime::now_utc();
        let date = now
            .replace_nanosecond(0)
            .unwrap_or(now)
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let emulator = run(
            &options.python,
            &["-c", "from importlib.metadata import version; print('moto', version('moto'))"],
        );
        let mut reproduce = Vec::new();
        let mut words = options.command.split(' ');
        while let Some(word) = words.next() {
            if word == "--only" {
                words.next();
            } else {
                reproduce.push(word);
            }
        }
        Self {
            command: options.command.clone(),
            reproduce: reproduce.join(" "),
            options: format!(
                "{} requests per HTTP function ({} for register and login), {} Argon2 rounds, {} cold starts per function, \
                 {} outbox events, {} audit entries, migrate over {} items with {:?} segments",
                options.requests,
                options.argon2_requests,
                options.argon2_rounds,
                options.cold_starts,
                options.outbox_events,
                options.audit_entries,
                options.migrate_items,
                options.migrate_segments
            ),
            machine: machine(),
            date,
            commit,
            rustc: run("rustc", &["-V"]),
            emulator: format!(
                "{emulator} via scripts/emulator.py, the launcher of the tests and the local stack: DynamoDB backend \
                 serialized, TransactWriteItems undone item by item (a cancelled one leaves no item change and no \
                 stream record) and a Query walks only its partition (moto alone copies and walks whole tables)"
            ),
            bin_dir: options.bin_dir.display().to_string(),
            roundtrips: None,
            argon2: None,
            cpu: None,
            cold: None,
            jobs: None,
            migrate: Vec::new(),
            costs: None,
            memory: None,
            bundles: None,
            hot: None,
        }
    }

    fn stamp(&self, out: &mut String) {
        let _ = writeln!(out, "*Measured {} at commit {}, by `{}`.*\n", self.date, self.commit, self.command);
    }

    /// The whole document; sections this run did not measure are taken from
    /// `existing` (the file as an earlier run wrote it) when it has them.
    pub fn render_merged(&self, existing: Option<&str>, ran: &dyn Fn(&str) -> bool) -> String {
        let fresh = self.render();
        let sections = |text: &str| -> Vec<(String, String)> {
            let mut parts: Vec<(String, String)> = Vec::new();
            for line in text.split_inclusive('\n') {
                if line.starts_with("## ") {
                    parts.push((line.chars().take(5).collect(), String::new()));
                }
                if let Some((_, body)) = parts.last_mut() {
                    body.push_str(line);
                }
            }
            parts
        };
        let header: String = fresh.split_inclusive('\n').take_while(|l| !l.starts_with("## ")).collect();
        let old = existing.map(sections).unwrap_or_default();
        let names = [
            ("## 1.", "roundtrips"),
            ("## 2.", "cpu"),
            ("## 3.", "argon2"),
            ("## 4.", "cold"),
            ("## 5.", "jobs"),
            ("## 6.", "migrate"),
            ("## 7.", "roundtrips"),
            ("## 8.", "roundtrips"),
            ("## 9.", "bundles"),
            ("## 11", "hot"),
        ];
        let mut out = header;
        for (key, body) in sections(&fresh) {
            let keep = names.iter().find(|(k, _)| *k == key).filter(|(_, name)| !ran(name)).and_then(|_| {
                old.iter()
                    .find(|(k, text)| *k == key && !text.contains("Not run (`--only` left it out)"))
                    .map(|(_, t)| t.clone())
            });
            out.push_str(&keep.unwrap_or(body));
        }
        out
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# Benchmarks\n");
        let _ = writeln!(
            out,
            "Written by the bench command, `{}` (see the README), from one run on the machine below. \
             Benchmarks report numbers; they never fail on timing. Round trips are exact and hardware-independent; \
             every time depends on the machine, its load, and on the AWS emulator (moto, a Python server) that \
             stands in for DynamoDB, KMS and SQS. Handler CPU and Argon2 exclude the emulator; wall times and \
             job throughput include it and are emulator-bound, not what AWS would give.\n",
            self.command
        );
        let _ = writeln!(out, "| | |\n| --- | --- |");
        let _ = writeln!(out, "| machine | {} |", self.machine);
        let _ = writeln!(
            out,
            "| date | {} (this run; each section gives the date and commit it was measured at) |",
            self.date
        );
        let _ = writeln!(out, "| commit | {} |", self.commit);
        let _ = writeln!(
            out,
            "| toolchain | {}; the functions and every timed section: `--release` profile of the root Cargo.toml (opt-level 3, fat LTO, 1 codegen unit, stripped); this run's bench binary: `{}` profile |",
            self.rustc,
            if cfg!(debug_assertions) { "dev" } else { "release" }
        );
        let _ = writeln!(out, "| emulator | {} |", self.emulator);
        let _ = writeln!(out, "| command | `{}` (this run: {}) |", self.command, self.options);
        let _ = writeln!(
            out,
            "| machine load | 2 vCPUs shared with other work; the 1-minute load average is given next to each section (`uptime`) |\n"
        );
        self.render_roundtrips(&mut out);
        self.render_cpu(&mut out);
        self.render_argon2(&mut out);
        self.render_cold(&mut out);
        self.render_jobs(&mut out);
        self.render_migrate(&mut out);
        self.render_costs(&mut out);
        self.render_memory(&mut out);
        self.render_bundles(&mut out);
        let _ = writeln!(out, "{}\n", LEDGER_READS.trim());
        self.render_hot(&mut out);
        let _ = writeln!(out, "{}\n", FIRST_RUN.trim());
        let _ = writeln!(out, "{}\n", DELIVERY.trim());
        let _ = writeln!(out, "{}\n", SEARCH_COST.trim());
        let _ = writeln!(out, "{}", NOT_MEASURED.trim());
        out
    }

    fn render_hot(&self, out: &mut String) {
        let _ = writeln!(out, "## 11. Hot accounts: captures per second into one account\n");
        let Some((report, load)) = &self.hot else {
            let _ = writeln!(out, "Not run (`--only` left it out).\n");
            return;
        };
        self.stamp(out);
        let options = &report.options;
        let _ = writeln!(
            out,
            "A simulation, not AWS: the capture handler's DynamoDB client goes through the fault-injection proxy \
             (docs/FAULTS.md) with its per-item write limit on the merchant account's items, {units} write units per \
             second per item ({per} per second per balance item: a transactional update costs 2), one \
             second of burst; DynamoDB's own limit is 1,000 units per second per partition, so multiply the rates by \
             {scale:.0} for the real ceiling. The payers are 16 accounts outside the limit (each customer's own \
             account is not hot). Each run authorizes a pool of 100-cent payments into a fresh merchant account, then \
             keeps {concurrency} captures in flight for {seconds} s (each waits for the shard its payment was given, so \
             with N in flight and K shards a shard idles about (K − 1) / (N + K − 1) of the time); a 503 (the \
             transaction builder's four attempts all throttled) is retried with the same Idempotency-Key after \
             {pause} ms. The rate counts captures answered 200 within the window. Start: {load}. Reproduce: `{command} --only hot`.\n",
            units = options.units_per_second,
            per = options.units_per_second / 2.0,
            scale = 1000.0 / options.units_per_second.max(f64::EPSILON),
            concurrency = options.concurrency,
            seconds = options.seconds,
            pause = hot::RETRY_PAUSE.as_millis(),
            command = self.reproduce,
        );
        let _ = writeln!(
            out,
            "| balance shards | captures | window (s) | captures/s | × 1 shard | of the limit's ceiling | throttled writes | 503s retried |\n\
             | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
        let per_item = options.units_per_second / 2.0;
        let base = report.runs.first().map_or(1.0, hot::Run::per_second).max(f64::EPSILON);
        for run in &report.runs {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {:.1} | {:.1} | {:.0} % | {} | {} |",
                run.shards,
                run.captures,
                run.elapsed.as_secs(),
                run.per_second(),
                run.per_second() / base,
                100.0 * run.per_second() / (per_item * f64::from(run.shards)).max(f64::EPSILON),
                run.throttled,
                run.retried
            );
        }
        let _ = writeln!(
            out,
            "\nThe ceiling is the limit's: shards × {per_item} captures per second. Below it: time lost between a \
             bucket refilling and a waiting capture's next attempt, a shard left idle while the captures in flight \
             wait on others, and the emulator and handlers sharing this machine's CPU with the polling.\n\n\
             After both runs `verify` replayed the tenant's ledger: {} ({}).\n\n\
             Why it scales: a capture's only write to the merchant account's balance is one update of the shard its \
             payment was given at authorization (a hash of the payment id), so K shards take K times the writes; \
             each capture still costs 2 DynamoDB calls (the same BatchGetItem and TransactWriteItems as into any \
             account). What stays serialized on shard 0: debits and holds of the hot account itself (payouts, \
             refunds); when shard 0 alone cannot cover one, its shards' posted credits are swept into it (one Query \
             and one TransactWriteItems touching every shard) and the command runs again (section 10).\n",
            if report.verify_ok { "clean, no money created or lost" } else { "NOT clean" },
            report.verify_summary,
            per_item = per_item,
        );
    }

    fn render_roundtrips(&self, out: &mut String) {
        let _ = writeln!(out, "## 1. Round trips per operation\n");
        let Some((rows, load)) = &self.roundtrips else {
            let _ = writeln!(out, "Not run (`--only` left it out).\n");
            return;
        };
        self.stamp(out);
        let _ = writeln!(
            out,
            "Requests the real handler sends, counted by an SDK interceptor on its clients (attempts on the wire, so \
             a retry would show), against the emulator. Start: {load}. Reproduce: `{} --only roundtrips`. \
             The bounds (capture ≤ 2 DynamoDB calls fresh, exactly 1 replayed; login: 1 read, 1 transaction and \
             1 KMS sign, plus 1 conditional update of the per-address counter for a client without a device \
             token) are asserted by `tests/payments.rs` and `tests/auth.rs`. Counted on warm containers: \
             the first request a container serves also sends one KMS `GetPublicKey` (the token key, memoized per \
             container) in every function that issues or checks access tokens, and one KMS `GenerateMac` (the \
             email lookup key, likewise) in every function that finds a user by email.\n",
            self.reproduce
        );
        let _ = writeln!(out, "| operation | DynamoDB | KMS | SQS |\n| --- | --- | --- | --- |");
        for row in rows {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                row.operation,
                row.describe("dynamodb"),
                row.describe("kms"),
                row.describe("sqs")
            );
        }
        let _ = writeln!(out, "\n{MEDIA_ROUND_TRIPS}");
        for row in rows.iter().filter(|r| r.per > 1) {
            let per = row.per as f64;
            let _ = writeln!(
                out,
                "\n{}: {:.2} DynamoDB and {:.2} SQS requests per event.",
                row.operation,
                row.count("dynamodb") as f64 / per,
                row.count("sqs") as f64 / per
            );
        }
        let _ = writeln!(out);
    }

    fn render_cpu(&self, out: &mut String) {
        let _ = writeln!(out, "## 2. Handler CPU per invocation\n");
        let Some((rows, (user, sys), before, after)) = &self.cpu else {
            let _ = writeln!(out, "Not run (`--only` left it out).\n");
            return;
        };
        self.stamp(out);
        let _ = writeln!(
            out,
            "Each HTTP function's handler called in process with an API Gateway v2 event, one request at a time on a \
             current-thread Tokio runtime, with the environment template.yaml gives the function (production Argon2 \
             cost) and warm clients, like a warm container. CPU is the user+sys time of the bench process around \
             each call (`CLOCK_PROCESS_CPUTIME_ID`): all of the handler's work — parsing, JWT checks, SigV4 signing, \
             HTTP to the emulator, JSON, logging, and the blocking-pool thread where Argon2 runs (a per-thread \
             clock would miss it) — and none of the emulator's, which is another process. Wall time includes the \
             emulator's answers. Load: {before} at the start, {after} at the end. Whole section: {:.1} s user, \
             {:.1} s system (`getrusage`). Reproduce: `{} --only cpu`.\n",
            user.as_secs_f64(),
            sys.as_secs_f64(),
            self.reproduce
        );
        let _ = writeln!(
            out,
            "| function | requests | request | CPU median (ms) | CPU p99 (ms) | CPU max (ms) | wall median (ms) | wall p99 (ms) |\n\
             | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |"
        );
        for row in rows {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                row.function,
                row.cpu.n,
                row.what,
                ms(row.cpu.median),
                ms(row.cpu.p99),
                ms(row.cpu.max),
                ms(row.wall.median),
                ms(row.wall.p99)
            );
        }
        let _ = writeln!(out);
    }

    fn render_argon2(&self, out: &mut String) {
        let _ = writeln!(out, "## 3. Argon2id: ours against the reference C implementation\n");
        let Some((report, before, after)) = &self.argon2 else {
            let _ = writeln!(out, "Not run (`--only` left it out).\n");
            return;
        };
        self.stamp(out);
        let c = &report.cost;
        let ratio = |ours: &Summary, reference: &Summary| {
            if reference.median.is_zero() {
                0.0
            } else {
                ours.median.as_secs_f64() / reference.median.as_secs_f64()
            }
        };
        let _ = writeln!(
            out,
            "The login's verification (`caas::auth::password::verify`, the `argon2` crate as compiled into this \
             release binary) and the reference C implementation ({}, from the project venv) verify the same PHC \
             hash, m = {} KiB, t = {}, p = {}, {} rounds each, one after the other in the same run. Load: {before} \
             at the start, {after} at the end. Reproduce: `{} --only argon2`.\n",
            report.c_versions, c.memory_kib, c.iterations, c.parallelism, report.rounds, self.reproduce
        );
        let _ = writeln!(
            out,
            "| implementation | CPU median (ms) | CPU p99 (ms) | wall median (ms) | wall p99 (ms) |\n| --- | ---: | ---: | ---: | ---: |"
        );
        let _ = writeln!(
            out,
            "| ours, a fresh buffer per call (the `argon2` crate's `verify_password`) | {} | {} | {} | {} |",
            ms(report.ours_cpu.median),
            ms(report.ours_cpu.p99),
            ms(report.ours_wall.median),
            ms(report.ours_wall.p99)
        );
        let _ = writeln!(
            out,
            "| ours as login verifies (`caas::auth::password::verify`: one buffer per container, reused and wiped) | {} | {} | {} | {} |",
            ms(report.reused_cpu.median),
            ms(report.reused_cpu.p99),
            ms(report.reused_wall.median),
            ms(report.reused_wall.p99)
        );
        let _ = writeln!(
            out,
            "| reference C (argon2-cffi) | {} | {} | {} | {} |",
            ms(report.c_cpu.median),
            ms(report.c_cpu.p99),
            ms(report.c_wall.median),
            ms(report.c_wall.p99)
        );
        let _ = writeln!(
            out,
            "\nRatio ours / reference (median): **{:.2}× CPU, {:.2}× wall**. Of our CPU, {} ms per verification is \
             system time (the kernel zero-filling the 64 MiB of fresh pages), against {} ms with a reused buffer. The reference verified our hash: {}. \
             AVX2 detected at run time (the crate's x86-64 fast path): {}.\n",
            ratio(&report.ours_cpu, &report.c_cpu),
            ratio(&report.ours_wall, &report.c_wall),
            ms(report.ours_sys),
            ms(report.reused_sys),
            if report.interop { "yes" } else { "NO" },
            if report.avx2 { "yes" } else { "no" }
        );
        let verdict = ratio(&report.ours_cpu, &report.c_cpu);
        let _ = writeln!(
            out,
            "{}\n",
            if verdict <= 1.05 {
                "**Verdict: ours is not slower than the reference C implementation** on this machine (a ratio within \
                 5 % counts as equal: the two runs take turns on a shared machine)."
            } else {
                "**Verdict: ours is slower than the reference C implementation** on this machine; the findings \
                 below say where the time goes and what can be changed."
            }
        );
        let _ = writeln!(out, "{}\n", crate::report::ARGON2_FINDINGS.trim());
    }

    fn render_cold(&self, out: &mut String) {
        let _ = writeln!(out, "## 4. Cold start, size, memory\n");
        let Some((rows, before, after)) = &self.cold else {
            let _ = writeln!(out, "Not run (`--only` left it out).\n");
            return;
        };
        self.stamp(out);
        let _ = writeln!(
            out,
            "Each function's release binary (`{}`) launched as Lambda launches `bootstrap`: a clean environment \
             with the variables template.yaml gives the function, behind a Runtime API emulator built into the bench. \
             *Init* is process start → first `GET /runtime/invocation/next`; *first answer* is process start → the \
             first invocation's response posted (the first event is a real request: a login verifies a password at \
             the production cost, a capture moves money). Peak RSS is the process's `VmHWM` after that answer. \
             Zipped is the binary as a Lambda bundle (one `bootstrap` entry, deflated). Load: {before} at the start, \
             {after} at the end. Reproduce: `{} --only cold`.\n",
            self.bin_dir, self.reproduce
        );
        let _ = writeln!(
            out,
            "**Architecture:** these are x86_64 binaries, which this machine can start. The template deploys \
             arm64: section 9 has the arm64 bundles' sizes (`scripts/bundles`); they cannot be started here.\n"
        );
        let _ = writeln!(
            out,
            "| function | binary size (MiB) | zipped (MiB) | starts | init median (ms) | first answer median (ms) | first answer p99 (ms) | peak RSS median (MiB) | answers |\n\
             | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
        );
        let mib =
            |bytes: Option<u64>| bytes.map_or("–".to_owned(), |b| format!("{:.1}", b as f64 / 1_048_576.0));
        for row in rows {
            let mut rss = row.peak_rss_kib.clone();
            rss.sort_unstable();
            let rss =
                rss.get(rss.len() / 2).map_or("–".to_owned(), |kib| format!("{:.1}", *kib as f64 / 1024.0));
            let answers = match &row.note {
                Some(note) => format!("{} {}", row.answers.join(", "), note).trim().to_owned(),
                None => row.answers.join(", "),
            };
            let timed = row.first.n > 0;
            let or_dash = |value: String| if timed { value } else { "–".to_owned() };
            let _ = writeln!(
                out,
                "| {} (`{}`) | {} | {} | {} | {} | {} | {} | {} | {} |",
                row.function,
                row.binary,
                mib(row.size),
                mib(row.zipped),
                row.first.n,
                or_dash(ms(row.init.median)),
                or_dash(ms(row.first.median)),
                or_dash(ms(row.first.p99)),
                rss,
                answers
            );
        }
        let _ = writeln!(out);
    }

    fn render_jobs(&self, out: &mut String) {
        let _ = writeln!(out, "## 5. Jobs\n");
        let Some((drain, audits, before, after)) = &self.jobs else {
            let _ = writeln!(out, "Not run (`--only` left it out).\n");
            return;
        };
        self.stamp(out);
        let rate = |n: usize, d: Duration| if d.is_zero() { 0.0 } else { n as f64 / d.as_secs_f64() };
        let _ = writeln!(
            out,
            "The real handlers in process against the emulator; the rates are bound by the emulator (one Python \
             process whose DynamoDB backend is serialized), so they are a floor for the code, not AWS's figures; \
             calls per event are exact. Load: {before} at the start, {after} at the end. Reproduce: `{} --only jobs`.\n",
            self.reproduce
        );
        let _ = writeln!(
            out,
            "| job | events | wall (s) | events/s | CPU per event (ms) | SQS calls per event | DynamoDB calls per event |\n\
             | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
        let per = |calls: usize, n: usize| if n == 0 { 0.0 } else { calls as f64 / n as f64 };
        let _ = writeln!(
            out,
            "| outbox-drain, {} stream batch(es) of ≤ 100 | {} | {:.2} | {:.0} | {:.3} | {:.2} | {:.2} |",
            drain.batches,
            drain.events,
            drain.wall.as_secs_f64(),
            rate(drain.events, drain.wall),
            drain.cpu.as_secs_f64() * 1000.0 / drain.events.max(1) as f64,
            per(drain.sqs_calls, drain.events),
            per(drain.dynamodb_calls, drain.events)
        );
        for audit in audits {
            let _ = writeln!(
                out,
                "| audit-writer, {} ({} × {} entries, SQS batches of 10{}) | {} | {:.2} | {:.0} ({:.0} per tenant) | {:.3} | 0 | {:.2} |",
                audit.label,
                audit.tenants,
                audit.entries / audit.tenants.max(1),
                if audit.chains_verified { ", chains verified" } else { ", CHAIN VERIFICATION FAILED" },
                audit.entries,
                audit.wall.as_secs_f64(),
                rate(audit.entries, audit.wall),
                rate(audit.entries, audit.wall) / audit.tenants.max(1) as f64,
                audit.cpu.as_secs_f64() * 1000.0 / audit.entries.max(1) as f64,
                per(audit.dynamodb_calls, audit.entries)
            );
        }
        let _ = writeln!(
            out,
            "\nTen tenants run as ten concurrent invocations (one FIFO message group each, as Lambda scales an SQS FIFO \
             source), each tenant's batches in order; one tenant's chain is serialized by design (one writer per tenant).\n"
        );
    }

    fn render_migrate(&self, out: &mut String) {
        let _ = writeln!(out, "## 6. Jobs: migrate\n");
        if self.migrate.is_empty() {
            let _ = writeln!(out, "Not run (`--only` left it out).\n");
            return;
        }
        self.stamp(out);
        let _ = writeln!(
            out,
            "Each row on a fresh copy of the stack: v1 user items seeded with BatchWriteItem, then `{{\"action\":\"up\"}}` \
             (to the latest version) with the given segments, the jobs queue delivered as Lambda's SQS trigger does \
             (one message per invocation, every visible message at once) until it is empty. Items/s is items over the \
             time from the `up` command to the empty queue. Every item is a conditional write to the emulator, whose \
             DynamoDB backend is serialized, so more segments cannot go faster here than one Python process allows. \
             Reproduce: `{} --only migrate`.\n",
            self.reproduce
        );
        let _ = writeln!(
            out,
            "| segments | items | seeding (s) | wall (s) | items/s | segment invocations | failed deliveries | CPU per item (ms) | outcome | load at start |\n\
             | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"
        );
        for (run, load) in &self.migrate {
            let rate = if run.wall.is_zero() { 0.0 } else { run.items as f64 / run.wall.as_secs_f64() };
            let _ = writeln!(
                out,
                "| {} | {} | {:.1} | {:.1} | {:.0} | {} | {} | {:.3} | {} | {} |",
                run.segments,
                run.items,
                run.seed.as_secs_f64(),
                run.wall.as_secs_f64(),
                rate,
                run.invocations,
                run.failed_deliveries,
                run.cpu.as_secs_f64() * 1000.0 / run.items.max(1) as f64,
                run.outcome,
                load
            );
        }
        let _ = writeln!(out);
    }
}

pub const ARGON2_FINDINGS: &str = "
What decides the speed, and what was checked:

- **Release profile.** opt-level 3, fat LTO and one codegen unit already apply to `argon2` and `blake2` (the dev \
profile builds them at opt-level 3 too). Nothing is left to turn on; `panic = \"unwind\"` costs nothing in the \
compression loop, which makes no calls that can unwind.
- **Features.** The features of `argon2` 0.5.3 (`alloc`, `password-hash`, `rand`, `std`, `simple`, `zeroize`) do not \
touch the compression code, and there is no SIMD feature to enable. On x86-64 the crate compiles its block compression \
a second time with AVX2 enabled and picks it at run time (`cpufeatures`), so the shipped x86-64 binary already runs the \
AVX2 code without `-C target-cpu`. `blake2` only computes H0 and the final variable-length hash (a few KiB of the \
192 MiB the t = 3 passes process); its SIMD features need a nightly compiler.
- **target-cpu.** A `-C target-cpu=native` build of the same code was faster in a side run on this machine (AVX-512 \
in all of it), but it ties the binary to the build machine's CPU. For Lambda arm64, the baseline `aarch64` target already \
includes NEON (Advanced SIMD is mandatory in AArch64), which LLVM's autovectorizer uses for the BlaMka rounds, and the \
crate has no run-time-dispatched arm64 path to unlock. The bundles keep cargo-lambda's `neoverse-n1` (Graviton2 and \
every later Graviton, section 9); `neoverse-v1` would leave Graviton2 out.
- **Memory.** The crate's own verification allocates a fresh, zeroed 64 MiB block array per call, so each pays \
16,384 page faults and the kernel's zero-fill: the system time above. The C reference pays the same (it allocates and \
touches 64 MiB per call, then wipes it). Login keeps one buffer per container and reuses it \
(`Argon2::hash_password_into_with_memory` plus the constant-time comparison of `password_hash::Output`), wiping it \
after each check, at the price of 64 MiB resident for the container's lifetime (section 8 weighs that against \
the MemorySize).
- **Result.** No change to the release profile or to the crate's features makes the shipped code faster without giving \
up portability, so the root Cargo.toml was left as it is; the buffer reuse is the code change that does.
";

/// The cost of balances as of a time, statements and split payments: exact
/// call counts (asserted by tests/ledger.rs), the same on any machine.
pub const LEDGER_READS: &str = "
## 10. Ledger reads, split payments and hot accounts: cost per call

Exact DynamoDB calls, hardware-independent, asserted by `tests/ledger.rs` and `tests/shards.rs` (never timed). *E* is the number of an \
account's entries since its latest balance snapshot before the time asked: the verify job writes one snapshot per \
account per UTC day that had entries, once the day has ended (plus 15 minutes for transactions still committing), so \
*E* is the current day's entries plus those of days not snapshotted yet (verify runs every 6 hours). It does not grow \
with the account's history: a year of entries reads like a day of them. Before an account's first snapshot *E* is all \
of its entries. An entry item is about 300 bytes: a strongly consistent read unit (4 KB) carries about 13.

| operation | DynamoDB calls | items read |
| --- | --- | --- |
| `GET /v1/accounts/{id}` | 1: Query (`begins_with(sk, \"ACCOUNT\")`, strongly consistent: the account item and a hot account's *K* − 1 credit shards, summed) | *K* (1 unless a hot account; 32 items of about 300 bytes are 3 read units) |
| `GET /v1/accounts/{id}/balance?at=` | 3: Query (the account with its shards: who may see it), Query (the latest snapshot of a day ended by `at`, `Limit 1`), Query (the entries since, by key range: a transaction's id carries its time); another page only past 1 MB | 1 + at most 1 + *E* |
| `GET /v1/accounts/{id}/statement?from=&to=` | 6, the last 5 concurrently: Query (the account), a snapshot Query and an entries Query for each of the opening and the closing balance, one Query for the page | 1 + 2 + *E*(from) + *E*(to) + the page (`limit`, at most 100) |
| create-payment with `splits` (1 to 45 legs) | 2 fresh (BatchGetItem of 2 + *N* keys: the idempotency record, the payer, the *N* payees; TransactWriteItems of at most 9 + 2*N* ≤ 99 actions), 1 replayed (BatchGetItem) | 2 + *N* |
| capture, void, refund of a split payment | 2 fresh (BatchGetItem of the idempotency record and the payment; one TransactWriteItems for every leg), 1 replayed | 2 |
| expire-holds, per expired hold | 1 TransactWriteItems (the void's writes, conditional on the deadline having passed), plus 1 Query per 100 holds per index shard (4 shards) | the index page |
| capture, void, refund into a hot account (*K* shards) | the same: 2 fresh, 1 replayed (each leg's credits go to the one shard its payment was given at authorization; the transaction has the same actions) | 2 |
| a debit of a hot account (a payment or hold from it, a refund out of it) | 2 fresh when shard 0 covers it; else its TransactWriteItems is refused and 4 more follow, 6 in all: a Query of its shards, one TransactWriteItems sweeping them into shard 0 (at most *K* updates), and the command again (BatchGetItem, TransactWriteItems) | 2 + *K* |
| `PATCH /v1/accounts/{id}` of a hot account | the single-item TransactWriteItems (refused: the account has shards), for closing or a new limit a sweep (Query, TransactWriteItems), a Query of its shards, one TransactWriteItems changing the account and every shard, the Query of the answer | *K* per query |
";

/// A newcomer's first `scripts/run`, timed by `scripts/first-run` (not by the
/// bench: it needs an empty clone and a quiet machine).
pub const FIRST_RUN: &str = "
## 12. A newcomer's first run

*Measured 2026-12-01 at commit 724c085, the way `scripts/first-run` times it (a fresh clone, nothing built), on this 2-vCPU \
machine with a quiet CPU (load average 2.4 at the end).*

| step | time |
| --- | ---: |
| `scripts/run` begins → first HTTP answer (`GET /.well-known/jwks.json`): the venv and moto installed, 289 crates \
built with the `dev` profile (3 min 21 s of it), the emulator started, the template provisioned, a cold start | \
**3 min 40 s** |
| the crate downloads into an empty cargo home (`CARGO_HOME=$(mktemp -d) cargo fetch --locked`), not in the row \
above | 2 s |
| the venv's installs without a pip cache (`PIP_NO_CACHE_DIR=1`), instead of the cached ones above | 31 s |

So a newcomer on a 2-core machine gets a first answer in about 4 minutes, under the 10-minute goal: that is why \
`scripts/run` builds the `dev` profile by default (the crypto crates optimized, so a login verifies at production \
cost). `--profile local` (optimized, no LTO) and `--profile release` (what `sam build` deploys, fat LTO) take tens \
of minutes the first time on 2 cores and are for timing work.
";

/// The fan-out's cost: exact call counts (asserted by tests/delivery.rs), the
/// same on any machine.
pub const DELIVERY: &str = "
## 13. Real-time delivery: round trips per message and per connection

Exact calls, hardware-independent, asserted by `tests/delivery.rs` (never timed). The deliver function takes a batch \
of up to 10 events of the delivery queue; *P* is the number of a conversation's participants, *C* the number of \
their live WebSocket connections (a user with two devices has two).

| work | calls | items read |
| --- | --- | --- |
| the conversation and its participants, per conversation in the batch | 1 Query (strongly consistent, the \
conversation's partition up to its messages; one page holds far more than 256 participants) | 1 + *P* (about 200 \
bytes each: 256 participants are 13 read units) |
| the messages of the batch's message events (events carry no text) | 1 BatchGetItem (strongly consistent) | one \
per message (1 read unit each, up to 4 for 4000 characters outside ASCII) |
| each participant's live connections | *P* Queries of `gsi1` (eventually consistent, the ids only, expired \
ones filtered) | their connections (0.5 read units each Query) |
| the pushes | 1 `PostToConnection` per event and connection | |
| a gone connection (`410`) | 1 DeleteItem | |

So one message to a conversation of *P* participants with *C* live connections costs **2 + *P* DynamoDB calls and \
*C* pushes**: a group of 3 with 3 connections, 5 calls and 3 pushes (the test's count). The reads are shared by the \
batch: 10 messages of one conversation cost the same 2 + *P* calls and 10 *C* pushes, so per delivered frame the \
fan-out costs one push per connection and (2 + *P*) / (10 *C*) DynamoDB calls at full batches. Each push is one API \
Gateway WebSocket message (metered per 32 KB; a frame carries one message of at most 4000 characters). What grows \
with the conversation is the *P* connection Queries per batch (run 16 at a time): a per-conversation index of \
connections would make it one Query, at the price of a write per conversation of the user at every connect and \
disconnect.

`GET /v1/conversations/{id}/presence` reads the same: 1 + *P* Queries (the conversation's partition, then each \
participant's connections); nothing is written per heartbeat.
";

/// The cost of a search and of indexing: exact call counts (asserted by
/// tests/search.rs), the same on any machine.
pub const SEARCH_COST: &str = "
## 14. Search: cost per query and per indexed message

Exact calls, hardware-independent, asserted by `tests/search.rs` (never timed). *k*: a message's distinct words (at \
most 50 indexed); *g*: words an edit removed; *C*: the caller's conversations; *n*: people whose names match a \
conversation search (at most 10). Postings are under 1 KB (keys, ids, 9 bytes of `terms` per word): one write unit \
each; index pages are eventually consistent reads (half a read unit per 4 KB, about 13 postings).

| operation | DynamoDB calls | KMS |
| --- | --- | --- |
| `GET /v1/search/messages` | 4: UpdateItem (the search limit), Query (the caller's inbox, `gsi1`), Query (one page of up to 100 \
postings of the longest word, filtered by the others), BatchGetItem (the hits and the caller's participant items of \
their conversations, at most 100 keys); one more Query per 100 postings outside the caller's conversations, at most 5, \
then the page ends with a `next_cursor` | 0 (the lookup key: one `GenerateMac` per container) |
| `GET /v1/search/users` | 3: UpdateItem, Query (an index page), BatchGetItem (the hits' directory entries and keys) | 1 \
`Decrypt` per person shown |
| `GET /v1/search/conversations` | 4 + *n* + ⌈*C* / 100⌉: UpdateItem, Query (the caller's inbox), Query (the people \
index), a `gsi1` Query per matching person, a BatchGetItem per 100 of the caller's conversations (their titles), a \
BatchGetItem of the page's participant items | 0 |
| indexing a posted or edited message (index-search) | 2 GetItems (the message, its document) and 2 BatchWriteItems \
(the postings, 25 a call: ⌈(*k* + *g*) / 25⌉; then the document); nothing written when its words did not change; *k* + \
*g* + 1 write units | 0 |
| indexing a deleted message | 2 GetItems and 1 BatchWriteItem (its postings and document deleted) | 0 |
| indexing a person (registered, erased) | registered: BatchGetItem (entry and key), GetItem (document), BatchWriteItems \
of one posting per name prefix (Ada Lovelace: 11) and the document; erased: GetItem and the deletes | 1 `Decrypt` when \
registered |
| outbox-drain | a routed event is one more entry in a SendMessageBatch to the search queue (10 a call): 100 \
registrations cost 10 more calls (`tests/outbox.rs`) | – |
";

pub const NOT_MEASURED: &str = "
## Not measured

- **arm64 cold starts** (section 4): the bundles of section 9 are arm64 binaries this x86_64 machine cannot run; \
section 4 starts the x86_64 release binaries.
- **Handler CPU of the functions section 2 does not run** (tenants, me, create-invitation, list-users, update-user, \
create-client, rotate-client-secret, revoke-client, oauth-token): section 8 sizes them with the CPU and wait of a \
measured function that sends the same AWS calls or more (its list says which); `cpu.rs` has no requests for them yet. \
verify's and backup's work grows with the table and the restore; section 8 says why they keep their sizes.
- **migrate over 100,000 items** (the command's default): the committed rows in section 6 \
ran over the number of items their command line gives (`--migrate-items`). At the emulator's rate of about 100 items/s, \
three runs over 100,000 items take about an hour on this machine; run `scripts/bench --only migrate` for them.
- **outbox-drain's rate** is the emulator's: of the time per event, the drain's own CPU is the figure in the CPU \
column; the rest is moto answering BatchWriteItem and SendMessageBatch.
- **AWS's own latency and throughput**: no AWS account is reachable; every wall time and rate here is the emulator's.
- **outbox-drain in section 5** was last measured before the drain marked its items 25 to a BatchWriteItem: its \
DynamoDB calls per event (1.00) and its CPU per event are those of one UpdateItem per event. Section 1 has the \
current count (0.04); section 7 prices the drain with that older, higher CPU figure until `--only jobs` runs again \
from a release build.
- **Section 3 before the buffer reuse**: the committed section 3 was measured when login still allocated per call; \
its second row is the bench's own reuse loop without the wipe, not `password::verify` (`--only argon2` from a \
release build measures the shipped code).
- **Capacity units from AWS itself** (section 7): computed from the bytes by the published rules; the emulator's \
`ConsumedCapacity` figures are placeholders.
";

/// Section 1's media routes: exact counts that `tests/media.rs` asserts (the
/// bench does not run S3). Presigning is computed in the function: no request.
const MEDIA_ROUND_TRIPS: &str = "Media routes (counts asserted by `tests/media.rs` on warm containers; a presigned URL is \
signed in the function and sends nothing):\n\n\
| operation | DynamoDB | S3 |\n\
| --- | --- | --- |\n\
| request-upload | 1 (TransactWriteItems) | 0 (a presigned PUT) |\n\
| complete-upload | 2 (BatchGetItem, TransactWriteItems) | 2 (HeadObject, DeleteObjectTagging); as not declared: HeadObject, DeleteObject, and no transaction |\n\
| get-media | 1 (BatchGetItem) | 0 (a presigned GET) |\n\
| delete-media | 2 (BatchGetItem, TransactWriteItems) | 1 (DeleteObject) |\n\
| post-message with attachments | 2 (BatchGetItem, TransactWriteItems): the media items ride in the same read and transaction | 0 |";
