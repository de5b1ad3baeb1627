//! The bench command's binary (run it through `scripts/bench`, which starts
//! the emulator and builds the release binaries): measures round trips,
//! handler CPU, Argon2id against the reference C implementation, cold start
//! and size, and job throughput, and writes the results as Markdown.

mod accounting;
mod argon;
mod bench;
mod capacity;
mod cold;
mod costs;
mod cpu;
mod error;
mod hot;
mod http;
mod jobs;
mod prices;
mod recorder;
mod report;
mod roundtrips;
mod runtime_api;
mod stats;

use error::{BenchError, Result};
use std::path::PathBuf;

const USAGE: &str = "caas-bench [--out FILE] [--only SECTIONS] [--requests N] [--argon2-requests N] \
[--argon2-rounds N] [--cold-starts N] [--outbox-events N] [--audit-entries N] [--migrate-items N] \
[--migrate-segments LIST] [--hot-seconds N] [--hot-units N] [--hot-concurrency N] [--bin-dir DIR] [--python PATH] \
[--command TEXT]\n  SECTIONS: comma-separated of roundtrips,cpu,argon2,cold,jobs,migrate,bundles,hot (default: all)";

const SECTIONS: [&str; 8] = ["roundtrips", "cpu", "argon2", "cold", "jobs", "migrate", "bundles", "hot"];

pub struct Options {
    pub out: PathBuf,
    pub sections: Vec<String>,
    pub requests: usize,
    pub argon2_requests: usize,
    pub argon2_rounds: usize,
    pub cold_starts: usize,
    pub outbox_events: usize,
    pub audit_entries: usize,
    pub migrate_items: usize,
    pub migrate_segments: Vec<u32>,
    pub hot_seconds: usize,
    pub hot_units: usize,
    pub hot_concurrency: usize,
    pub bin_dir: PathBuf,
    pub python: String,
    pub command: String,
}

impl Options {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Self> {
        let mut options = Self {
            out: PathBuf::from("docs/BENCHMARKS.md"),
            sections: SECTIONS.map(str::to_owned).to_vec(),
            requests: 1000,
            argon2_requests: 1000,
            argon2_rounds: 20,
            cold_starts: 20,
            outbox_events: 1000,
            audit_entries: 1000,
            migrate_items: 100_000,
            migrate_segments: vec![1, 4, 16],
            hot_seconds: 30,
            hot_units: 2,
            hot_concurrency: 96,
            bin_dir: PathBuf::from("target/release"),
            python: ".venv/bin/python".to_owned(),
            command: "scripts/bench".to_owned(),
        };
        while let Some(flag) = args.next() {
            if flag == "-h" || flag == "--help" {
                return Err(BenchError::Usage(USAGE.to_owned()));
            }
            let value =
                args.next().ok_or_else(|| BenchError::Usage(format!("{flag} needs a value\n{USAGE}")))?;
            let number = |value: &str| -> Result<usize> {
                value.parse().map_err(|_| BenchError::Usage(format!("{flag}: not a number: {value}")))
            };
            match flag.as_str() {
                "--out" => options.out = PathBuf::from(value),
                "--only" => options.sections = value.split(',').map(|s| s.trim().to_owned()).collect(),
                "--requests" => options.requests = number(&value)?,
                "--argon2-requests" => options.argon2_requests = number(&value)?,
                "--argon2-rounds" => options.argon2_rounds = number(&value)?.max(1),
                "--cold-starts" => options.cold_starts = number(&value)?,
                "--outbox-events" => options.outbox_events = number(&value)?,
                "--audit-entries" => options.audit_entries = number(&value)?,
                "--migrate-items" => options.migrate_items = number(&value)?,
                "--hot-seconds" => options.hot_seconds = number(&value)?.max(1),
                "--hot-units" => options.hot_units = number(&value)?.max(1),
                "--hot-concurrency" => options.hot_concurrency = number(&value)?.max(1),
                "--migrate-segments" => {
                    options.migrate_segments = value
                        .split(',')
                        .map(|s| s.trim().parse::<u32>().ok().filter(|n| (1..=1000).contains(n)))
                        .collect::<Option<Vec<u32>>>()
                        .ok_or_else(|| {
                            BenchError::Usage(format!("--migrate-segments: not a list of 1..=1000: {value}"))
                        })?;
                }
                "--bin-dir" => options.bin_dir = PathBuf::from(value),
                "--python" => options.python = value,
                "--command" => options.command = value,
                other => return Err(BenchError::Usage(format!("unknown option {other}\n{USAGE}"))),
            }
        }
        for section in &options.sections {
            if !SECTIONS.contains(&section.as_str()) {
                return Err(BenchError::Usage(format!("unknown section {section}\n{USAGE}")));
            }
            // The hot-account rates are set by the simulated write limit, not by the build.
            if cfg!(debug_assertions) && !["roundtrips", "bundles", "hot"].contains(&section.as_str()) {
                return Err(BenchError::Usage(format!(
                    "{section} is timed: run it from a release build (scripts/bench without --dev)"
                )));
            }
        }
        Ok(options)
    }

    fn runs(&self, section: &str) -> bool {
        self.sections.iter().any(|s| s == section)
    }
}

fn main() {
    let result = Options::parse(std::env::args().skip(1)).and_then(|options| {
        // One thread drives every handler, like a Lambda container; the
        // blocking pool (Argon2) is still there, as it is in the functions.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(BenchError::io("tokio runtime"))?;
        runtime.block_on(run(&options))
    });
    if let Err(e) = result {
        eprintln!("caas-bench: {e}");
        std::process::exit(if matches!(e, BenchError::Usage(_)) { 2 } else { 1 });
    }
}

async fn run(options: &Options) -> Result<()> {
    if std::env::var("AWS_ENDPOINT_URL").is_err() {
        return Err(BenchError::Setup(
            "AWS_ENDPOINT_URL is not set: run through scripts/bench, which starts the emulator".into(),
        ));
    }
    let logs = options.out.with_extension("handler-logs.jsonl");
    let log_path = std::env::temp_dir().join(logs.file_name().unwrap_or_default());
    let log_file =
        std::fs::File::create(&log_path).map_err(BenchError::io(format!("create {}", log_path.display())))?;
    // The handlers log as in Lambda (JSON lines, one write per line), into a file.
    caas::telemetry::init_with_writer(std::sync::Mutex::new(log_file));

    let mut report = report::Report::new(options);
    eprintln!("caas-bench: provisioning the stack from template.yaml");
    let bench = bench::Bench::new().await?;
    let fixture = bench::Fixture::new(&bench).await?;

    if options.runs("roundtrips") {
        eprintln!("caas-bench: round trips");
        let load = report::load();
        let rows = roundtrips::measure(&bench, &fixture).await?;
        report.roundtrips = Some((rows, load));
    }
    if options.runs("argon2") {
        eprintln!("caas-bench: Argon2id, ours and the reference C implementation");
        let load = report::load();
        let cost = bench.app("LoginFunction", bench::Cost::Template, false)?.config.argon2;
        let result = argon::measure(&options.python, cost, options.argon2_rounds)?;
        report.argon2 = Some((result, load, report::load()));
    }
    if options.runs("cpu") {
        eprintln!("caas-bench: handler CPU");
        let load = report::load();
        let (u0, s0) = stats::rusage_self();
        let rows = cpu::measure(
            &bench,
            &fixture,
            &cpu::Options { requests: options.requests, argon2_requests: options.argon2_requests },
        )
        .await?;
        let (u1, s1) = stats::rusage_self();
        report.cpu = Some((rows, (u1.saturating_sub(u0), s1.saturating_sub(s0)), load, report::load()));
    }
    if options.runs("cold") {
        eprintln!("caas-bench: cold starts");
        let load = report::load();
        let scratch = std::env::temp_dir();
        let rows = cold::measure(
            &bench,
            &fixture,
            &cold::Options {
                bin_dir: options.bin_dir.clone(),
                starts: options.cold_starts,
                python: options.python.clone(),
                scratch,
            },
        )
        .await?;
        report.cold = Some((rows, load, report::load()));
    }
    if options.runs("jobs") {
        eprintln!("caas-bench: jobs");
        let load = report::load();
        let drain = jobs::outbox_drain(&bench, options.outbox_events).await?;
        let one = jobs::audit_writer(&bench, "one tenant", 1, options.audit_entries).await?;
        let ten = jobs::audit_writer(&bench, "ten tenants at once", 10, (options.audit_entries / 10).max(10))
            .await?;
        report.jobs = Some((drain, vec![one, ten], load, report::load()));
    }
    if options.runs("migrate") {
        for &segments in &options.migrate_segments {
            eprintln!("caas-bench: migrate, {} items, {segments} segments", options.migrate_items);
            let load = report::load();
            let run = jobs::migrate(options.migrate_items, segments).await?;
            report.migrate.push((run, load));
        }
    }
    if options.runs("hot") {
        eprintln!("caas-bench: hot accounts");
        let load = report::load();
        let hot = hot::measure(
            &bench,
            &fixture,
            hot::Options {
                units_per_second: options.hot_units as f64,
                seconds: options.hot_seconds as u64,
                concurrency: options.hot_concurrency,
                shards: vec![1, 8],
            },
        )
        .await?;
        report.hot = Some((hot, load));
    }
    if options.runs("bundles") {
        let record = PathBuf::from(report::BUNDLE_RECORD);
        let mut all: Vec<String> = bench.stack.template.functions().into_iter().map(|f| f.binary).collect();
        all.sort();
        report.bundles = Some((report::read_bundles(&record), all));
    }
    let existing = std::fs::read_to_string(&options.out).ok();
    if let Some((rows, load)) = &report.roundtrips {
        let section = cost_section(&bench, &report, rows, load, existing.as_deref()).await?;
        let memory =
            bench.stack.template.functions().into_iter().map(|f| (f.logical_id, f.memory_mb)).collect();
        report.memory = Some(report::workloads(&section, &memory));
        report.costs = Some(section);
    }
    let text = report.render_merged(existing.as_deref(), &|section| options.runs(section));
    if let Some(dir) = options.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(BenchError::io(format!("create {}", dir.display())))?;
    }
    std::fs::write(&options.out, text).map_err(BenchError::io(format!("write {}", options.out.display())))?;
    eprintln!("caas-bench: wrote {} (handler logs: {})", options.out.display(), log_path.display());
    Ok(())
}

/// Section 7 from the round-trip rows, with this run's durations where it
/// measured them and the document's sections 2 and 5 otherwise.
async fn cost_section(
    bench: &bench::Bench,
    report: &report::Report,
    rows: &[roundtrips::Row],
    load: &str,
    existing: Option<&str>,
) -> Result<report::CostSection> {
    let mut durations = existing.map(costs::Durations::from_document).unwrap_or_default();
    if let Some((cpu_rows, ..)) = &report.cpu {
        for row in cpu_rows {
            let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
            durations.by_function.insert(row.function.to_owned(), (ms(row.cpu.median), ms(row.wall.median)));
        }
        durations.source = "section 2 of this run".to_owned();
    }
    if let Some((drain, audits, ..)) = &report.jobs {
        let per = |cpu: std::time::Duration, n: usize| cpu.as_secs_f64() * 1000.0 / n.max(1) as f64;
        durations.drain_cpu_per_event = Some(per(drain.cpu, drain.events));
        durations.audit_cpu_per_event = audits.first().map(|a| per(a.cpu, a.entries));
        durations.source = format!("{} and section 5 of this run", durations.source);
    }
    if let Some((run, _)) = report.migrate.iter().find(|(run, _)| run.segments == 1) {
        let per_item = |d: std::time::Duration| d.as_secs_f64() * 1000.0 / run.items.max(1) as f64;
        let cpu = per_item(run.cpu);
        durations.migrate_per_item = Some((cpu, (per_item(run.wall) - cpu).max(0.0)));
        durations.migrate_source = "section 6 of this run".to_owned();
    }
    let memory = bench.stack.template.functions().into_iter().map(|f| (f.logical_id, f.memory_mb)).collect();
    let indexes = bench.indexes().await?;
    let priced = costs::price(rows, &indexes, bench::TENANT, &memory, &durations);
    let example = rows.iter().find(|r| r.operation == "capture-payment, fresh").and_then(|r| {
        r.changes.iter().find_map(|c| {
            c.after.clone().filter(|a| a.get("kind") == Some(&serde_json::json!({"S": "payment"})))
        })
    });
    Ok(report::CostSection { priced, durations, example, load: load.to_owned() })
}
