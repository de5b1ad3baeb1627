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

/// Functions section 2 does not measure, priced with the CPU and wait of a
/// measured function that sends the same AWS calls or more and does no less
/// work: (function, stand-in, whether the stand-in's wait counts, why). A
/// function section 2 measures is priced from its own row instead.
pub const STAND_INS: [(&str, &str, bool, &str); 54] = [
    (
        "TenantsFunction",
        "CreateAccountFunction",
        true,
        "the operators' commands (create, update, suspend, invite): one read or one TransactWriteItems each, as \
         create-account's one transaction",
    ),
    (
        "MeFunction",
        "GetAccountFunction",
        false,
        "checks the access token and answers from its claims, with no AWS call: get-account's CPU (the same token \
         check and a GetItem, so an upper bound) and no wait",
    ),
    (
        "CreateInvitationFunction",
        "CreateAccountFunction",
        true,
        "one TransactWriteItems (the invitation, the tenant still active, the caller's role, the outbox event)",
    ),
    (
        "ListUsersFunction",
        "ListTransactionsFunction",
        true,
        "one consistent Query page of the tenant's directory, as list-transactions' first page",
    ),
    (
        "UpdateUserFunction",
        "CapturePaymentFunction",
        true,
        "one GetItem of the target's entry and one TransactWriteItems, as capture's read and transaction",
    ),
    (
        "CreateClientFunction",
        "CreateAccountFunction",
        true,
        "one TransactWriteItems and a SHA-256 of the new secret",
    ),
    (
        "RotateClientSecretFunction",
        "CreateAccountFunction",
        true,
        "one TransactWriteItems (no read) and a SHA-256",
    ),
    ("RevokeClientFunction", "CreateAccountFunction", true, "one TransactWriteItems, no read"),
    (
        "OAuthTokenFunction",
        "RefreshFunction",
        true,
        "one BatchGetItem (the client and its tenant), a SHA-256 and a KMS Sign; refresh sends a read, a Sign and \
         a TransactWriteItems more (an upper bound)",
    ),
    (
        "ListSessionsFunction",
        "ListTransactionsFunction",
        true,
        "one consistent Query of the caller's sessions, as list-transactions' first page",
    ),
    (
        "RevokeSessionFunction",
        "CreateAccountFunction",
        true,
        "one TransactWriteItems (the session, its refresh tokens' family, the outbox event)",
    ),
    (
        "LogoutAllFunction",
        "CapturePaymentFunction",
        true,
        "one Query of the caller's sessions and one TransactWriteItems, as capture's read and transaction",
    ),
    (
        "ChangePasswordFunction",
        "LoginFunction",
        true,
        "an Argon2id verification of the current password and a hash of the new one, a read and one transaction: login's work and more (twice its Argon2 CPU), so a full vCPU as login",
    ),
    ("EnrolTotpFunction", "CreateAccountFunction", true, "a KMS GenerateDataKey and one TransactWriteItems"),
    (
        "ConfirmTotpFunction",
        "CapturePaymentFunction",
        true,
        "a GetItem, a KMS Decrypt, ten SHA-256 recovery-code hashes and one TransactWriteItems",
    ),
    (
        "DisableTotpFunction",
        "LoginFunction",
        true,
        "an Argon2id verification of the password, a KMS Decrypt and one transaction: login's CPU",
    ),
    (
        "RegenerateRecoveryCodesFunction",
        "CapturePaymentFunction",
        true,
        "a GetItem, a KMS Decrypt, ten SHA-256 hashes and one TransactWriteItems",
    ),
    (
        "ResetMfaFunction",
        "CreateAccountFunction",
        true,
        "one TransactWriteItems (the factor, the caller's role, the outbox event)",
    ),
    (
        "MfaSignInFunction",
        "RefreshFunction",
        true,
        "a GetItem, a KMS Decrypt, a KMS Sign and one TransactWriteItems, as refresh's read, Sign and transaction",
    ),
    (
        "SigningKeysFunction",
        "CreateAccountFunction",
        true,
        "the operator's rotate, retire and status: a few KMS calls and one item write, rarely",
    ),
    (
        "ExportAuditFunction",
        "ListAuditFunction",
        true,
        "Query pages of the chain and of the checkpoints, as list-audit",
    ),
    (
        "AuditKeysFunction",
        "JwksFunction",
        true,
        "answers the checkpoint key from a per-container cache, as jwks",
    ),
    (
        "EraseUserFunction",
        "LoginFunction",
        true,
        "an Argon2id verification of the password (erasing oneself), two GetItems and one TransactWriteItems: \
         login's CPU",
    ),
    (
        "ExportUserFunction",
        "ListTransactionsFunction",
        true,
        "GetItems, a KMS Decrypt and Query pages (sessions, consents, accounts, entries, payments, the audit \
         chain), as list-transactions' reads, several times over",
    ),
    (
        "RecordConsentFunction",
        "CreateAccountFunction",
        true,
        "one TransactWriteItems (the record, the tenant and the caller still active, the outbox event)",
    ),
    (
        "ListConsentsFunction",
        "ListTransactionsFunction",
        true,
        "one consistent Query page of the caller's consents",
    ),
    (
        "UpdateAccountFunction",
        "CapturePaymentFunction",
        true,
        "one TransactWriteItems and a GetItem of the account after it, as capture's transaction and read",
    ),
    (
        "GetBalanceFunction",
        "ListTransactionsFunction",
        true,
        "a GetItem and two Query pages (the day's snapshot, the entries since), as list-transactions' read and page",
    ),
    (
        "GetStatementFunction",
        "ListTransactionsFunction",
        true,
        "a GetItem and five Query pages, four of them concurrent, as list-transactions' read and pages",
    ),
    (
        "ExpireHoldsFunction",
        "CapturePaymentFunction",
        true,
        "per expired hold one TransactWriteItems (the void through the ledger) and its share of an index Query, as capture's transaction and read",
    ),
    (
        "CreateConversationFunction",
        "CreateAccountFunction",
        true,
        "one TransactWriteItems (the conversation, its participants, the tenant, the caller and each participant active, the outbox event)",
    ),
    (
        "GetConversationFunction",
        "ListTransactionsFunction",
        true,
        "one consistent Query of the conversation's partition up to its messages",
    ),
    (
        "ListConversationsFunction",
        "ListTransactionsFunction",
        true,
        "an index Query of the caller's inbox and a BatchGetItem per hundred conversations",
    ),
    (
        "AddParticipantsFunction",
        "CapturePaymentFunction",
        true,
        "one TransactWriteItems and a Query of the result, as capture's transaction and read",
    ),
    (
        "RemoveParticipantFunction",
        "CreateAccountFunction",
        true,
        "one TransactWriteItems (the participant, the count, the caller's right, the outbox event)",
    ),
    (
        "LeaveConversationFunction",
        "CreateAccountFunction",
        true,
        "one TransactWriteItems (the participant, the count, the caller, the outbox event)",
    ),
    (
        "PostMessageFunction",
        "CapturePaymentFunction",
        true,
        "one BatchGetItem and one TransactWriteItems (the sequence number, the message, the idempotency record, the outbox event), as capture's",
    ),
    (
        "SearchMessagesFunction",
        "ListTransactionsFunction",
        true,
        "an UpdateItem (the search limit), an index Query of the caller's inbox, a Query page of the index and one \
         BatchGetItem, as list-transactions' read and page and a little more",
    ),
    (
        "SearchConversationsFunction",
        "ListTransactionsFunction",
        true,
        "an UpdateItem (the search limit), index Queries (the caller's inbox, the people index, named people's \
         inboxes) and BatchGetItems of the caller's conversations, as the conversation list",
    ),
    (
        "SearchUsersFunction",
        "ListTransactionsFunction",
        true,
        "an UpdateItem (the search limit), a Query page of the index, one BatchGetItem and a KMS Decrypt per person \
         shown",
    ),
    (
        "IndexSearchFunction",
        "CapturePaymentFunction",
        true,
        "per event: a GetItem or BatchGetItem (and a KMS Decrypt for a name), a GetItem of the document and one or \
         two BatchWriteItems of its postings, as capture's reads and transaction",
    ),
    (
        "ListMessagesFunction",
        "ListTransactionsFunction",
        true,
        "a GetItem and one Query page, as list-transactions' read and page",
    ),
    (
        "EditMessageFunction",
        "CreateAccountFunction",
        true,
        "one TransactWriteItems (the message, the author's checks, the outbox event)",
    ),
    (
        "DeleteMessageFunction",
        "CapturePaymentFunction",
        true,
        "one BatchGetItem and one TransactWriteItems, as capture's read and transaction",
    ),
    (
        "MarkReadFunction",
        "CreateAccountFunction",
        true,
        "one TransactWriteItems (the read state, the conversation's sequence number, the outbox event)",
    ),
    (
        "WsConnectFunction",
        "CreateAccountFunction",
        true,
        "the access token's check and one PutItem, less than create-account's token check and transaction",
    ),
    (
        "WsDisconnectFunction",
        "GetAccountFunction",
        true,
        "one DeleteItem and no token check, less than get-account's check and GetItem",
    ),
    (
        "WsSendFunction",
        "CapturePaymentFunction",
        true,
        "a GetItem, then post-message's BatchGetItem and TransactWriteItems, as capture's read and transaction",
    ),
    (
        "RequestUploadFunction",
        "CreateAccountFunction",
        true,
        "one TransactWriteItems (the media item, the caller's checks, the upload limit, the outbox event) and a \
         presigned PUT signed in memory",
    ),
    (
        "CompleteUploadFunction",
        "CapturePaymentFunction",
        true,
        "one BatchGetItem, HeadObject and DeleteObjectTagging, one TransactWriteItems: capture's read and \
         transaction and two small S3 waits",
    ),
    (
        "GetMediaFunction",
        "GetAccountFunction",
        true,
        "one BatchGetItem and a presigned GET signed in memory, as get-account's read",
    ),
    (
        "DeleteMediaFunction",
        "CapturePaymentFunction",
        true,
        "one BatchGetItem, one TransactWriteItems and a DeleteObject, as capture's read and transaction",
    ),
    (
        "GetPresenceFunction",
        "ListTransactionsFunction",
        true,
        "a Query of the conversation and its participants, then one Query of live connections per participant \
         (concurrent), as list-transactions' Query page",
    ),
    (
        "DeliverFunction",
        "CapturePaymentFunction",
        true,
        "per message (section 13): a Query of the conversation's participants, a BatchGetItem of the message, a \
         Query of live connections per participant (concurrent) and a PostToConnection per connection: more \
         calls than capture's two, fewer bytes written",
    ),
];

/// Migrate's workload is priced per this many items (section 6's one-segment run);
/// the rule's choice does not depend on it (cost and time grow alike).
pub const MIGRATE_ITEMS: f64 = 100.0;

/// Functions the model does not size, and why: (function, MemorySize, why).
pub const KEPT: [(&str, f64, &str); 3] = [
    (
        "VerifyFunction",
        1769.0,
        "every 6 hours: a Scan of the whole table, summing every account's ledger and re-hashing every tenant's \
         audit chain, within a 900 s timeout; its CPU grows with the table, so it keeps a full vCPU (at 4 runs a \
         day its cost is negligible at any size)",
    ),
    (
        "BackupFunction",
        512.0,
        "daily backup and weekly drill: mostly waiting on DynamoDB's backup and restore calls (a smaller size pays \
         less for the wait), then the drill verifies the restored table like verify (a larger one scans faster); \
         a third of a vCPU between the two, at a few runs a week",
    ),
    (
        "RetentionFunction",
        1769.0,
        "daily: a Scan of the whole table, deleting what is past each tenant's retention and re-hashing a chain \
         before trimming it below a checkpoint, as verify does; its CPU grows with the table, so a full vCPU as \
         verify",
    ),
];

/// One function's workload: CPU on a full vCPU and wait (ms) per invocation.
pub struct Workload {
    pub function: String,
    pub what: String,
    pub cpu: f64,
    pub wait: f64,
    pub peak_rss: Option<f64>,
    pub template_mb: Option<f64>,
    /// A size chosen without the model ([`KEPT`]).
    pub fixed: Option<f64>,
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
    if let Some(mb) = w.fixed {
        return mb;
    }
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

/// Dollars per million invocations per ms saved of the step to the chosen size (0 at the first size).
fn last_step(w: &Workload) -> f64 {
    let chosen = choose(w);
    let points = curve(w);
    let Some(i) = points.iter().position(|(mb, ..)| *mb == chosen).filter(|&i| i > 0) else { return 0.0 };
    let ((_, ms0, d0), (_, ms1, d1)) = (points[i - 1], points[i]);
    if ms0 > ms1 { (d1 - d0) / (ms0 - ms1) } else { 0.0 }
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
            fixed: None,
        })
        .collect();
    for (function, stand_in, waits, _) in STAND_INS {
        if d.by_function.contains_key(function) {
            continue;
        }
        if let Some((cpu, wall)) = d.by_function.get(stand_in) {
            rows.push(Workload {
                function: function.to_owned(),
                what: format!("estimated: as {stand_in}"),
                cpu: *cpu,
                wait: if waits { (wall - cpu).max(0.0) } else { 0.0 },
                peak_rss: d.peak_rss.get(function).or_else(|| d.peak_rss.get(stand_in)).copied(),
                template_mb: template.get(function).map(|&mb| mb as f64),
                fixed: None,
            });
        }
    }
    if let Some((cpu, wait)) = d.migrate_per_item {
        rows.push(Workload {
            function: "MigrateFunction".to_owned(),
            what: format!("{MIGRATE_ITEMS} items (section 6, one segment)"),
            cpu: cpu * MIGRATE_ITEMS,
            wait: wait * MIGRATE_ITEMS,
            peak_rss: d.peak_rss.get("MigrateFunction").copied(),
            template_mb: template.get("MigrateFunction").map(|&mb| mb as f64),
            fixed: None,
        });
    }
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
                fixed: None,
            });
        }
    }
    for (function, mb, _) in KEPT {
        rows.push(Workload {
            function: function.to_owned(),
            what: "not modelled (below)".to_owned(),
            cpu: 0.0,
            wait: 0.0,
            peak_rss: d.peak_rss.get(function).copied(),
            template_mb: template.get(function).map(|&mb| mb as f64),
            fixed: Some(mb),
        });
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
            section.durations.source, self.reproduce
        );
        let header: Vec<String> = CANDIDATES_MB.iter().map(|mb| format!("{mb} MB: ms / $")).collect();
        let _ = writeln!(
            out,
            "| function | workload | CPU (ms) | wait (ms) | peak RSS (MiB) | {} | chosen (MB) | template.yaml (MB) |\n| --- | --- | ---: | ---: | ---: |{} ---: | ---: |",
            header.join(" | "),
            " ---: |".repeat(CANDIDATES_MB.len())
        );
        for w in workloads {
            let cells: Vec<String> = if w.fixed.is_some() {
                vec!["–".to_owned(); CANDIDATES_MB.len()]
            } else {
                curve(w).iter().map(|(_, ms, d)| format!("{ms:.0} / {d:.3}")).collect()
            };
            let template = w.template_mb.map_or("–".to_owned(), |mb| format!("{mb}"));
            let chosen = choose(w);
            let mark = if w.template_mb == Some(chosen) { "" } else { " (differs)" };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | **{chosen}** | {template}{mark} |",
                w.function,
                w.what,
                if w.fixed.is_some() { "–".to_owned() } else { format!("{:.2}", w.cpu) },
                if w.fixed.is_some() { "–".to_owned() } else { format!("{:.1}", w.wait) },
                w.peak_rss.map_or("–".to_owned(), |r| format!("{r:.1}")),
                cells.join(" | ")
            );
        }
        let estimated: Vec<String> = STAND_INS
            .iter()
            .filter(|(function, ..)| {
                workloads.iter().any(|w| w.function == *function && w.what.starts_with("estimated"))
            })
            .map(|(function, stand_in, _, why)| format!("- **{function}** as {stand_in}: {why}."))
            .collect();
        if !estimated.is_empty() {
            let _ = writeln!(
                out,
                "\n**Estimated rows.** Section 2 does not run these functions; each is priced with the CPU and wait \
                 of a measured function that sends the same AWS calls or more, and sized by the same rule:\n\n{}",
                estimated.join("\n")
            );
        }
        if let Some(w) = workloads.iter().find(|w| w.function == "MigrateFunction" && w.fixed.is_none()) {
            let _ = writeln!(
                out,
                "\n**MigrateFunction** from {}: per item {:.3} ms of CPU and {:.1} ms of wait (the emulator's \
                 conditional writes; DynamoDB answers faster, which would favour a larger size), priced per \
                 {MIGRATE_ITEMS} items. A segment invocation works until its deadline and hands the rest on, so \
                 the size sets how fast a segment migrates. The rule's last step, to {:.0} MB, costs ${:.3} per \
                 million for each ms it saves.",
                section.durations.migrate_source,
                w.cpu / MIGRATE_ITEMS,
                w.wait / MIGRATE_ITEMS,
                choose(w),
                last_step(w)
            );
        }
        let kept: Vec<String> =
            KEPT.iter().map(|(function, mb, why)| format!("- **{function}**, {mb} MB: {why}.")).collect();
        let _ = writeln!(out, "\n**Not modelled**, sized by what they do:\n\n{}", kept.join("\n"));
        let _ = writeln!(out, "\n{}\n", MEMORY_NOTES.trim());
    }
}

const MEMORY_NOTES: &str = "
Read with care: the wait is the emulator's (a local Python server: slower than DynamoDB for queries, so the list \
and audit functions look more wait-bound than they are, which favours smaller sizes), and the CPU is this machine's \
x86-64 core standing in for a Graviton one. outbox-drain's \
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
