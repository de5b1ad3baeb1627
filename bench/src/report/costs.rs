//! Section 7 of docs/BENCHMARKS.md: capacity units and dollars per operation.

use super::Report;
use crate::capacity::{item_size, value_size, write_units};
use crate::costs::{self, Durations, LONGEST_TENANT, Priced};
use crate::prices;
use serde_json::{Map, Value};
use std::fmt::Write;

/// What section 7 is made of.
pub struct CostSection {
    pub priced: Vec<Priced>,
    pub durations: Durations,
    /// The item of the hand-worked example (the captured payment, as written).
    pub example: Option<Map<String, Value>>,
    pub load: String,
}

fn num(x: f64) -> String {
    if x == 0.0 {
        "0".to_owned()
    } else if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.4}")
    }
}

fn units(x: f64) -> String {
    if x.fract() == 0.0 { format!("{x:.0}") } else { format!("{x:.2}") }
}

/// The items of one operation, grouped: `n× Action kind (bytes) → units`.
fn items(row: &Priced) -> String {
    let mut groups: Vec<(String, usize, usize, usize, f64, f64, f64)> = Vec::new();
    for a in &row.accesses {
        let name = format!("{} {} {}", a.call, a.action, a.kind);
        match groups.iter_mut().find(|g| g.0 == name) {
            Some(g) => {
                g.1 += 1;
                g.2 = g.2.min(a.bytes);
                g.3 = g.3.max(a.bytes);
                g.4 += a.wru;
                g.5 += a.index_wru;
                g.6 += a.rru;
            }
            None => groups.push((name, 1, a.bytes, a.bytes, a.wru, a.index_wru, a.rru)),
        }
    }
    let parts: Vec<String> = groups
        .into_iter()
        .map(|(name, n, min, max, wru, index, rru)| {
            let count = if n == 1 { String::new() } else { format!("{n}× ") };
            let bytes = if min == max { format!("{max} B") } else { format!("{min}–{max} B") };
            let mut cost = Vec::new();
            if wru > 0.0 {
                cost.push(format!("{} WRU", units(wru)));
            }
            if index > 0.0 {
                cost.push(format!("{} index WRU", units(index)));
            }
            if rru > 0.0 {
                cost.push(format!("{} RRU", units(rru)));
            }
            format!("{count}{name} ({bytes}): {}", cost.join(" + "))
        })
        .collect();
    parts.join("; ")
}

impl Report {
    pub(super) fn render_costs(&self, out: &mut String) {
        let _ = writeln!(out, "## 7. Capacity units and dollars per operation\n");
        let Some(section) = &self.costs else {
            let _ = writeln!(out, "Not run (`--only` left it out; it comes with `roundtrips`).\n");
            return;
        };
        self.stamp(out);
        let _ = writeln!(
            out,
            "The operations of section 1, with the bytes they actually wrote and read: an SDK interceptor on the \
             handler's clients keeps every request body and answer, and the table's stream (`NEW_AND_OLD_IMAGES`) \
             gives each written item before and after. Units are **computed by DynamoDB's published rules**, not \
             taken from `ReturnConsumedCapacity`: the emulator answers that with fixed figures (moto: 1.0 for any \
             PutItem, 2.0 per transaction item, whatever the size). Rules (`bench/src/capacity.rs`): an item's \
             size is the sum of its attribute names' and values' bytes (string: UTF-8 bytes; number: 1 byte per \
             two significant digits + 1; boolean, null: 1; map, list: 3 + 1 per element + the elements); a write \
             costs 1 WRU per started KB of the larger of the item before and after, 2 in `TransactWriteItems`; \
             a `ConditionCheck` is counted as a transactional read of the checked item (2 RRU per started 4 KB: \
             the published rules do not single it out; if it is billed as a write instead, add 2 WRU per check, \
             one in login, two in refresh); each global secondary \
             index the item enters, leaves or changes in costs standard writes of the entry (both indexes project \
             ALL: the item's size), 2 when its index key changes; a strongly consistent read costs 1 RRU per \
             started 4 KB of each item (a missing item the minimum), eventually consistent half; a query rounds \
             the sum of its page. Start: {}. Reproduce: `{} --only roundtrips`.\n",
            section.load, self.reproduce
        );
        render_units(out, &section.priced);
        render_example(out, section.example.as_ref());
        render_dollars(out, section);
        render_powertools(out, section);
        let _ = writeln!(out, "{}\n", TRIMMED.trim());
    }
}

fn render_units(out: &mut String, priced: &[Priced]) {
    let bench_tenant = crate::bench::TENANT.len();
    let _ = writeln!(
        out,
        "| operation | table WRU | index WRU | RRU | outbox events | largest item (B) | WRU / RRU with a {LONGEST_TENANT}-character tenant id |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for row in priced {
        let largest = row.accesses.iter().map(|a| a.bytes).max().unwrap_or(0);
        let (write, read) = row.units_with_tenant(LONGEST_TENANT, bench_tenant);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {largest} | {} / {} |",
            row.operation,
            units(row.table_wru()),
            units(row.index_wru()),
            units(row.rru()),
            row.events,
            units(write),
            units(read)
        );
    }
    let _ =
        writeln!(out, "\nThe items behind each row (bytes as written or read; units by the rules above):\n");
    for row in priced {
        let _ = writeln!(out, "- **{}**: {}.", row.operation, items(row));
    }
    let _ = writeln!(
        out,
        "\nThe last column grows every copy of the tenant id (keys `T#<tenant>#…` and `tenant_id` values) to \
         {LONGEST_TENANT} characters, the longest `TenantId` accepts: which items would cross a 1 KB boundary.\n"
    );
}

fn render_example(out: &mut String, example: Option<&Map<String, Value>>) {
    let Some(item) = example else { return };
    let _ = writeln!(
        out,
        "**Hand-worked example** (to check the computation): the payment item the fresh capture wrote, attribute \
         by attribute (name bytes + value bytes):\n"
    );
    let _ =
        writeln!(out, "| attribute | value | name | value bytes | sum |\n| --- | --- | ---: | ---: | ---: |");
    let mut names: Vec<&String> = item.keys().collect();
    names.sort();
    for name in names {
        let value = &item[name];
        let shown = value.as_object().and_then(|m| m.iter().next()).map_or(String::new(), |(t, v)| {
            format!("{t} `{}`", v.as_str().map_or_else(|| v.to_string(), str::to_owned))
        });
        let size = value_size(value);
        let _ = writeln!(out, "| {name} | {shown} | {} | {size} | {} |", name.len(), name.len() + size);
    }
    let size = item_size(item);
    let _ = writeln!(
        out,
        "\nTotal {size} bytes → ⌈{size} / 1024⌉ = {} KB → **{} WRU** in the transaction (2 per started KB). A \
         number is 1 byte per two significant digits plus 1: `1000000000000` has one significant digit → 2 bytes; \
         `01a2…` ids are strings, one byte per character. The capture's row above lists this item as \"Put payment\".\n",
        write_units(size),
        2.0 * write_units(size)
    );
}

fn render_dollars(out: &mut String, section: &CostSection) {
    let downstream = costs::downstream_per_event(&section.priced);
    let _ = writeln!(
        out,
        "**Dollars per million operations** (per million events for the jobs' rows), at the on-demand us-east-1 \
         prices below. Lambda: arm64 at the function's MemorySize in template.yaml; duration = handler CPU × \
         max(1, 1769 / MemorySize) + the handler's wait on AWS, where CPU and wait (wall − CPU, against the \
         emulator) are the medians of {} measured on this machine's x86-64 vCPU at full speed (a Graviton vCPU \
         is taken as equal), billed per ms; a row with more or fewer calls than the measured request waits in \
         proportion; the jobs' wait is their sequential calls × the HTTP functions' wait per call. Cold starts \
         are not included. *Downstream* is what the operation's outbox events cost after it: per event, the \
         drain's and the audit writer's rows below plus {} SQS requests of the audit writer's event source \
         mapping (receive and delete per batch of 10): ${} per million events.\n",
        section.durations.source,
        costs::AUDIT_POLL_REQUESTS_PER_EVENT,
        num(downstream)
    );
    let _ = writeln!(
        out,
        "| operation | MemorySize (MB) | Lambda duration (ms) | DynamoDB writes | DynamoDB reads | KMS | SQS | Lambda | own | downstream | total |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for row in &section.priced {
        let d = row.dollars(downstream);
        let duration = row.lambda.map_or("–".to_owned(), |(ms, _)| format!("{ms:.0}"));
        let _ = writeln!(
            out,
            "| {} | {} | {duration} | {} | {} | {} | {} | {} | {} | {} | **{}** |",
            row.operation,
            row.memory_mb,
            num(d.writes),
            num(d.reads),
            num(d.kms),
            num(d.sqs),
            num(d.lambda),
            num(d.own()),
            num(d.downstream),
            num(d.total())
        );
    }
    let _ = writeln!(
        out,
        "\nPrices (stated for {}; **to be re-checked** against the AWS pricing pages, they change): DynamoDB \
         on-demand ${:.3} per million write request units and ${:.3} per million read request units (standard table \
         class, after the 2024-11-01 on-demand reduction); KMS ${:.2} per million asymmetric requests (ECC `Sign`; \
         $0.15 per 10,000); SQS FIFO ${:.2} per million requests (each 64 KB chunk one request); Lambda ${:.2} per \
         million requests and ${} per GB-second on arm64. Free tiers, storage ($0.25 per GB-month), \
         backups, PITR and data transfer are left out; stream reads by Lambda triggers are free.\n",
        prices::PRICE_DATE,
        prices::DYNAMODB_WRITE_UNITS,
        prices::DYNAMODB_READ_UNITS,
        prices::KMS_ASYMMETRIC,
        prices::SQS_FIFO,
        prices::LAMBDA_REQUESTS,
        prices::LAMBDA_ARM_GB_SECOND
    );
}

fn render_powertools(out: &mut String, section: &CostSection) {
    let find = |prefix: &str| section.priced.iter().find(|p| p.operation.starts_with(prefix));
    let (Some(ours), Some(theirs)) =
        (find("capture-payment, fresh"), find("capture-payment, the Powertools"))
    else {
        return;
    };
    let downstream = costs::downstream_per_event(&section.priced);
    let (a, b) = (ours.dollars(downstream), theirs.dollars(downstream));
    let calls = |p: &Priced| p.calls.get("dynamodb").map_or(0, Vec::len) as f64;
    let rows: [(&str, f64, f64); 8] = [
        ("DynamoDB calls", calls(ours), calls(theirs)),
        (
            "write request units (table + index)",
            ours.table_wru() + ours.index_wru(),
            theirs.table_wru() + theirs.index_wru(),
        ),
        ("read request units", ours.rru(), theirs.rru()),
        ("$ DynamoDB per million", a.writes + a.reads, b.writes + b.reads),
        ("Lambda duration (ms)", ours.lambda.map_or(0.0, |l| l.0), theirs.lambda.map_or(0.0, |l| l.0)),
        ("$ Lambda per million", a.lambda, b.lambda),
        ("$ per million, own", a.own(), b.own()),
        ("$ per million, with downstream", a.total(), b.total()),
    ];
    let _ = writeln!(
        out,
        "**Capture, ours against the Powertools way.** Measured on the same stack: a conditional PutItem of an \
         INPROGRESS record (Powertools' attributes `expiration`, `in_progress_expiration`, `status`, \
         `validation`), a strongly consistent GetItem of the payment, the same business transaction without our \
         idempotency record, and an UpdateItem completing the record with the response (`data`). Its Lambda \
         duration takes our capture's CPU and twice its wait (four calls where ours makes two). The units come \
         out about even (a record written twice outside the transaction against once inside it at the \
         transactional rate; one read fewer); the calls, and with them the latency, double, and the record is \
         no longer committed with the money movement.\n"
    );
    let _ = writeln!(
        out,
        "| capture-payment | ours | Powertools way | Powertools / ours |\n| --- | ---: | ---: | ---: |"
    );
    for (name, x, y) in rows {
        let ratio = if x == 0.0 { "–".to_owned() } else { format!("{:.2}×", y / x) };
        let _ = writeln!(out, "| {name} | {} | {} | {ratio} |", num(x), num(y));
    }
    let _ = writeln!(out);
}

const TRIMMED: &str = "
**What the bytes say, and what was trimmed.** No item of these operations reaches 1 KB, so with the bench's \
5-character tenant no attribute trim changes a unit: the units come from the number of items per transaction \
(2 each), from index entries rewritten with every change, and from the minimum charge of reads. Changed:

- *Outbox items no longer store `tenant_id` and `event_id`*: the key `T#<tenant>#OUTBOX#<event_id>` holds both \
(and `gsi2sk` the event id again while pending); the store puts them back into the envelope when it reads an \
item or a stream image, and items written before keep decoding. That is 9 + tenant bytes + 8 + 36 bytes less per \
outbox item, in the table, the pending index and every stream record (the drain's batch above: 454 bytes \
per marked item, 512 before). With a 64-character tenant id the `ledger.transaction_recorded` item of every \
payment operation held the tenant id three times and weighed about 1,060 bytes, over 1 KB; it now holds it \
twice and weighs about 943 bytes (825 with the bench's tenant, the largest item in the table above), so each \
payment operation keeps 2 WRU in its transaction, 1 in the pending index and 2 in the drain's mark for it \
instead of twice that.
- *outbox-drain* writes 25 items per call (BatchWriteItem) instead of one UpdateItem per event: the same units, \
1/25 of the calls.

Left as they are, for the owners of that code (each is a measured saving):

- *Index writes on every balance change*: account items sit in `gsi1` with `ProjectionType: ALL`, so each \
balance update rewrites the index entry: 2 WRU of every payment operation. A `KEYS_ONLY` (or `INCLUDE` of the \
listed fields) projection on `gsi1` would drop them; the same holds for the user item, whose `last_login_at` \
(written by every login, read by nothing but a test) rewrites its `gsi1` entry: 1 WRU per login.
- *The ledger event's payload* repeats the envelope's `tenant_id` and `occurred_at` (as `created_at`) and the \
ledger transaction item's postings; the payment event's payload repeats the payment item.
- *audit-writer* writes two items per event (the chain entry and the event's dedup marker) in one transaction: \
4 WRU per event, the largest share of the downstream cost.
";
