//! Section 8 of docs/BENCHMARKS.md: each function's MemorySize, chosen from
//! the cost model of section 7 (GB-seconds against warm latency).

use super::Report;
use super::costs::CostSection;
use crate::prices;
use std::fmt::Write;

/// The sizes considered: above 1,769 MB a function gets a second vCPU, which
/// a handler running one request at a time (Argon2 with p = 1) cannot use.
pub const CANDIDATES_MB: [f64; 5] = [128.0, 256.0, 512.0, 1024.0, 1769.0];
/// What a millisecond of warm latency is worth: a larger size is taken while
/// it costs at most this many dollars per million invocations per ms saved.
pub const DOLLARS_PER_MS: f64 = 0.02;
/// Memory kept free above the function's peak RSS.
pub const RSS_HEADROOM: f64 = 2.0;

/// One function's workload: CPU on a full vCPU and wait (ms) per invocation.
pub struct Workload {
    pub function: String,
    pub what: String,
    pub cpu: f64,
    pub wait: f64,
    pub peak_rss: Option<f64>,
    pub template_mb: Option<f64>,
}

/// (duration ms, $ per million invocations) at each candidate size.
fn curve(w: &Workload) -> Vec<(f64, f64, f64)> {
    CANDIDATES_MB
        .iter()
        .map(|&mb| {
            let (ms, gb_s) = prices::lambda(w.cpu, w.wait, mb);
            (mb, ms, prices::lambda_dollars(gb_s))
        })
        .collect()
}

/// The smallest size that holds the peak RSS with headroom, then larger ones
/// while each step costs at most [`DOLLARS_PER_MS`] per ms it saves.
pub fn choose(w: &Workload) -> f64 {
    let floor = w.peak_rss.map_or(0.0, |rss| rss * RSS_HEADROOM * 1.048_576);
    let points: Vec<_> = curve(w).into_iter().filter(|(mb, ..)| *mb >= floor).collect();
    let Some(mut chosen) = points.first().copied() else { return prices::FULL_VCPU_MB };
    for next in points.into_iter().skip(1) {
        let saved = chosen.1 - next.1;
        if saved <= 0.0 || (next.2 - chosen.2) / saved > DOLLARS_PER_MS {
            break;
        }
        chosen = next;
    }
    chosen.0
}

pub fn workloads(section: &CostSection, template: &std::collections::HashMap<String, u64>) -> Vec<Workload> {
    let d = &section.durations;
    let mut rows: Vec<Workload> = d
        .by_function
        .iter()
        .map(|(function, (cpu, wall))| Workload {
            function: function.clone(),
            what: "section 2".to_owned(),
            cpu: *cpu,
            wait: (wall - cpu).max(0.0),
            peak_rss: d.peak_rss.get(function).copied(),
            template_mb: template.get(function).map(|&mb| mb as f64),
        })
        .collect();
    for job in ["OutboxDrainFunction", "AuditWriterFunction"] {
        let work = section.priced.iter().find(|p| p.function == job).and_then(|p| p.work.map(|w| (p.per, w)));
        if let Some((per, (cpu, wait))) = work {
            rows.push(Workload {
                function: job.to_owned(),
                what: format!("a batch of {per} (sections 5 and 1)"),
                cpu,
                wait,
                peak_rss: d.peak_rss.get(job).copied(),
                template_mb: template.get(job).map(|&mb| mb as f64),
            });
        }
    }
    rows
}

impl Report {
    pub(super) fn render_memory(&self, out: &mut String) {
        let _ = writeln!(out, "## 8. Memory sizes\n");
        let Some((section, workloads)) = self.costs.as_ref().zip(self.memory.as_ref()) else {
            let _ = writeln!(out, "Not run (`--only` left it out; it comes with `roundtrips`).\n");
            return;
        };
        self.stamp(out);
        let _ = writeln!(
            out,
            "Lambda gives a function CPU in proportion to its memory, one full vCPU at 1,769 MB. With section 7's \
             model (duration = CPU × max(1, 1769 / MemorySize) + wait; arm64 GB-seconds and requests at the prices \
             there), each size's warm duration and dollars per million invocations, from {}. Rule: start at the \
             smallest size that holds {RSS_HEADROOM}× the function's peak RSS (section 4), then take the next size \
             while it costs at most ${DOLLARS_PER_MS} per million invocations for each millisecond it saves. Below \
             1,769 MB the CPU part costs the same GB-seconds at every size (memory × time stays constant), so a \
             CPU-bound function pays only for its wait to go faster; a function that mostly waits pays for every \
             megabyte. Sizes above 1,769 MB add a second vCPU no handler here uses. **Chosen** is what \
             template.yaml now says. Reproduce: `{} --only roundtrips`.\n",
            section.durations.source, self.command
        );
        let header: Vec<String> = CANDIDATES_MB.iter().map(|mb| format!("{mb} MB: ms / $")).collect();
        let _ = writeln!(
            out,
            "| function | workload | CPU (ms) | wait (ms) | peak RSS (MiB) | {} | chosen (MB) | template.yaml (MB) |\n| --- | --- | ---: | ---: | ---: |{} ---: | ---: |",
            header.join(" | "),
            " ---: |".repeat(CANDIDATES_MB.len())
        );
        for w in workloads {
            let cells: Vec<String> = curve(w).iter().map(|(_, ms, d)| format!("{ms:.0} / {d:.3}")).collect();
            let template = w.template_mb.map_or("–".to_owned(), |mb| format!("{mb}"));
            let chosen = choose(w);
            let mark = if w.template_mb == Some(chosen) { "" } else { " (differs)" };
            let _ = writeln!(
                out,
                "| {} | {} | {:.2} | {:.1} | {} | {} | **{chosen}** | {template}{mark} |",
                w.function,
                w.what,
                w.cpu,
                w.wait,
                w.peak_rss.map_or("–".to_owned(), |r| format!("{r:.1}")),
                cells.join(" | ")
            );
        }
        let _ = writeln!(out, "\n{}\n", MEMORY_NOTES.trim());
    }
}

const MEMORY_NOTES: &str = "
Read with care: the wait is the emulator's (a local Python server: slower than DynamoDB for queries, so the list \
and audit functions look more wait-bound than they are, which favours smaller sizes), and the CPU is this machine's \
x86-64 core standing in for a Graviton one. Functions without a row here (tenants, me, create-invitation, \
list-users, update-user, backup, migrate, verify) were not measured and keep their template sizes. outbox-drain's \
CPU per event was measured when it still sent one UpdateItem per event (section 5), so its row overstates its CPU. \
Cold starts are not in the model: their init CPU stretches by the same 1,769 / MemorySize.

**Argon2's block buffer (login).** Each verification allocated and zero-filled a fresh 64 MiB block array; one \
buffer kept per container and reused measured 27 % less CPU (section 3: 137 → 99.6 ms median; the difference is the \
kernel's page faults and zero-fill). The memory figures decide it: login's peak RSS is about 75 MiB either way (the fresh buffer \
is there at the peak too); with reuse those 64 MiB stay resident between invocations, 4 % of login's 1,769 MB, and \
Lambda bills the configured MemorySize, not the resident set, so keeping the buffer costs nothing while the CPU \
saving shortens every login by about 37 ms and its GB-seconds by about a quarter. Adopted in \
`caas::auth::password::verify`: one buffer per process behind a mutex (a verification that finds it busy, as \
parallel tests do, allocates its own), sized for the stored hash's parameters and wiped after each use (a 64 MiB memset over pages already mapped, \
a few ms of the saving; not re-measured in release here: `--only argon2` measures it). Registration (hashing, once \
per user) keeps the fresh allocation. At 256 MB the same 64 MiB would be a quarter of the function's memory: \
still within it, and still free of charge.
";
