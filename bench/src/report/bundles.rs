//! Section 9 of docs/BENCHMARKS.md: the Lambda bundles `scripts/bundles`
//! built, from its record (`docs/bundles.tsv`, kept with the sources so a
//! measurement outlives the machine that made it).

use super::Report;
use std::fmt::Write;
use std::path::Path;

/// The record `scripts/bundles` appends to, relative to the repository root.
pub const BUNDLE_RECORD: &str = "docs/bundles.tsv";

/// The goals: a stripped binary under 8 MiB, a zipped bundle under 4 MiB.
const BINARY_GOAL: u64 = 8 * 1024 * 1024;
const ZIPPED_GOAL: u64 = 4 * 1024 * 1024;

/// One function's bundle as `scripts/bundles` recorded it.
pub struct Bundle {
    pub binary: String,
    pub arch: String,
    pub stripped: u64,
    pub zipped: u64,
    /// Wall time of the cargo call that built it (with `built_with` functions in all).
    pub seconds: u64,
    pub commit: String,
    pub date: String,
    /// How many functions that cargo call built (absent in older records: one).
    pub built_with: u64,
}

/// The record's lines (its header line and any unreadable line are skipped); a
/// missing record is no bundle.
pub fn read(path: &Path) -> Vec<Bundle> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            let number = |i: usize| f.get(i).and_then(|v| v.parse().ok());
            Some(Bundle {
                binary: (*f.first()?).to_owned(),
                arch: (*f.get(1)?).to_owned(),
                stripped: number(2)?,
                zipped: number(3)?,
                seconds: number(4)?,
                commit: (*f.get(5)?).to_owned(),
                date: (*f.get(6)?).to_owned(),
                built_with: number(7).unwrap_or(1),
            })
        })
        .collect()
}

fn mib(bytes: u64) -> String {
    format!("{:.2}", bytes as f64 / 1_048_576.0)
}

fn meets(b: &Bundle) -> bool {
    b.stripped < BINARY_GOAL && b.zipped < ZIPPED_GOAL
}

const ARCHES: [&str; 2] = ["arm64", "x86_64"];

fn minutes(seconds: u64) -> String {
    if seconds < 60 { format!("{seconds} s") } else { format!("{} min {} s", seconds / 60, seconds % 60) }
}

impl Report {
    pub(super) fn render_bundles(&self, out: &mut String) {
        let _ = writeln!(out, "## 9. Bundles\n");
        let Some((bundles, all)) = &self.bundles else {
            let _ = writeln!(out, "Not run (`--only` left it out).\n");
            return;
        };
        self.stamp(out);
        let _ = writeln!(
            out,
            "Lambda bundles built the way `sam build` builds them, by `scripts/bundles [--arch arm64|x86_64|both] \
             [names...]`, which records each build in `{BUNDLE_RECORD}`; this section is that record \
             (`{} --only bundles`). **arm64** (what the template deploys): `cargo lambda build --release --arm64 \
             --output-format zip -p <name>...`, the release profile (fat LTO, one codegen unit, stripped) with \
             cargo-lambda's `-C target-cpu=neoverse-n1`; the dependencies get the features `sam build`'s per-function \
             `cargo lambda build --bin <name>` gives them (every function asks for the same ones). **x86_64**, for \
             comparison: `cargo build --release -p <name>...` into `target/release`, the binaries section 4 starts \
             (no target-cpu), zipped as cargo-lambda zips (one `bootstrap` entry, deflated; Python's zipfile, whose \
             zip of an arm64 binary came within 0.1 % of cargo-lambda's). Goals, for arm64: \
             stripped binary under 8 MiB, zipped bundle under 4 MiB.\n",
            self.reproduce
        );
        let _ = writeln!(
            out,
            "| function | arm64 stripped (MiB) | arm64 zipped (MiB) | arm64 goals met | x86_64 stripped (MiB) | x86_64 zipped (MiB) |\n\
             | --- | ---: | ---: | --- | ---: | ---: |"
        );
        let find = |name: &str, arch: &str| bundles.iter().find(|b| b.binary == name && b.arch == arch);
        let mut names: Vec<&str> = all.iter().map(String::as_str).collect();
        for b in bundles {
            if !names.contains(&b.binary.as_str()) {
                names.push(&b.binary);
            }
        }
        for name in &names {
            let arm = find(name, "arm64");
            let x86 = find(name, "x86_64");
            if arm.is_none() && x86.is_none() {
                continue;
            }
            let size = |b: Option<&Bundle>, f: fn(&Bundle) -> u64| b.map_or("–".to_owned(), |b| mib(f(b)));
            let _ = writeln!(
                out,
                "| {name} | {} | {} | {} | {} | {} |",
                size(arm, |b| b.stripped),
                size(arm, |b| b.zipped),
                arm.map_or("not built", |b| if meets(b) { "yes" } else { "**no**" }),
                size(x86, |b| b.stripped),
                size(x86, |b| b.zipped),
            );
        }
        let _ = writeln!(out);
        for arch in ARCHES {
            let built: Vec<&Bundle> = bundles.iter().filter(|b| b.arch == arch).collect();
            let Some(largest) = built.iter().max_by_key(|b| b.stripped) else { continue };
            let largest_zip = built.iter().max_by_key(|b| b.zipped).copied().unwrap_or(largest);
            let met = built.iter().filter(|b| meets(b)).count();
            // The cargo calls: functions recorded with the same time, commit and call size.
            let mut calls: Vec<(u64, &str, u64, usize, &str)> = Vec::new();
            for b in &built {
                match calls
                    .iter_mut()
                    .find(|c| (c.0, c.1, c.2) == (b.seconds, b.commit.as_str(), b.built_with))
                {
                    Some(c) => {
                        c.3 += 1;
                        c.4 = c.4.max(b.date.as_str());
                    }
                    None => calls.push((b.seconds, &b.commit, b.built_with, 1, &b.date)),
                }
            }
            let calls: Vec<String> = calls
                .iter()
                .map(|(seconds, commit, with, n, date)| {
                    format!(
                        "{n} by a cargo call that built {with} in {} of wall time (commit {commit}, done {date})",
                        minutes(*seconds)
                    )
                })
                .collect();
            let _ = writeln!(
                out,
                "- **{arch}**: {met} of {} built meet both goals; largest {} ({} MiB stripped), largest bundle {} \
                 ({} MiB zipped). Built: {}.",
                built.len(),
                largest.binary,
                mib(largest.stripped),
                largest_zip.binary,
                mib(largest_zip.zipped),
                calls.join("; ")
            );
        }
        for arch in ARCHES {
            let missing: Vec<&str> = all
                .iter()
                .map(String::as_str)
                .filter(|name| !bundles.iter().any(|b| b.binary == *name && b.arch == arch))
                .collect();
            if !missing.is_empty() {
                let _ = writeln!(
                    out,
                    "- **Not built for {arch}** ({} of {}): {}. `scripts/bundles --arch {arch}` builds and records \
                     all of them.",
                    missing.len(),
                    all.len(),
                    missing.join(", ")
                );
            }
        }
        let _ = writeln!(out, "\n{}\n", BUNDLE_NOTES.trim());
    }
}

const BUNDLE_NOTES: &str = "
*Build time* is the wall time of the one cargo call that built the functions of a line above, on this 2-vCPU \
machine: the dependencies if they changed, then one fat-LTO link per function, two at a time, so on a shared \
machine the times are upper bounds. The 75-function arm64 call took 76 min: the shared crate and the 75 function \
crates, then the links at about a minute each, the first 32 min beside a fresh-clone `scripts/test` and at a lower \
priority. The first x86_64 call also built the release dependencies. A call that found everything built takes seconds. \
Before any trimming, `sam build JwksFunction` gave 8.64 MiB stripped and 4.15 MB zipped for arm64 \
in 7 min 19 s on 2 cores, and 10.57 MiB / 4.59 MB for x86_64. What was dropped, checked with \
`cargo tree -e features -p <function>`:

- *The SDK clients' TLS stack and crypto provider*: the SDKs' `default-https-client` feature builds rustls on \
aws-lc (`aws-lc-rs`, `aws-lc-sys`: a C crypto library with its own assembly). The clients now get one HTTPS client \
built in `caas::clients::http_client` (`aws-smithy-http-client` with `rustls-ring`): the same hyper and rustls, \
with `ring` for the handshake, and the system's root certificates, as before.
- *Unicode tables*: `url` (through aws-config, the SDKs and lambda_http) and `idna` (email domains, UTS 46) \
resolve IDNA with ICU4X's Unicode tables by default; `idna_adapter ~1.1` selects the unicode-rs backend instead \
(`unicode-normalization`, which email and password normalization use anyway, and `unicode-bidi`): smaller tables, \
and internationalized email domains still work (`~1.0`, ASCII-only, would refuse them). Choosing it over `~1.0` \
costs about 0.4 MiB in every bundle (capture-payment 7.45 → 7.82 MiB between the two measurements, with the \
code added between them).
- *aws-config's provider chains*: `aws_config::defaults(..).load()` compiles in everything the SDK can read its \
configuration from: the profile-file parser, STS (web identity, assume role), SSO, the ECS and EC2 metadata \
providers, and a provider per setting (FIPS, dual stack, app name, checksums, compression ...) over environment and \
profile. A Lambda function has none of those sources: Lambda puts the region and the execution role's credentials \
in its environment. `caas::clients::load_sdk_config` now builds the `SdkConfig` from exactly that (`AWS_REGION`, \
the credentials, and `AWS_ENDPOINT_URL` when the emulator is the endpoint). Every function lost 1.0 to 1.15 MiB \
stripped (login 7.90 → 6.77 MiB, backup 8.09 → 7.06 MiB, capture-payment 7.98 → 6.86 MiB; zipped, every bundle is now \
under 3.3 MiB). The local stack, the \
tests and the bench, which are not functions, keep the full loader.
- *backup and migrate at `opt-level = \"z\"`* (`[profile.release.package.backup]`, `.migrate`): the two jobs \
wait on DynamoDB (backups and restores; pages of items), so their speed is not what they pay for, and their fat-LTO \
link runs at the binary's own level. Before the provider chains went, backup measured 8.52 MiB at `opt-level = 3`, \
8.21 MiB at `\"s\"` and 8.09 MiB at `\"z\"` (over the 8 MiB goal); migrate 8.48 MiB at `opt-level = 3` and 7.79 MiB \
at `\"z\"`. A current-thread Tokio runtime in backup saved only 0.04 MiB and was not kept: every function runs the \
same runtime.
- *The media functions at `opt-level = \"s\"`* (request-upload, complete-upload, get-media, delete-media): they \
link aws-sdk-s3 beside the DynamoDB client and measured 8.30 to 8.46 MiB stripped at `opt-level = 3` (request-upload \
8.46 MiB, 3.80 MiB zipped); at `\"s\"` 7.74 to 7.88 MiB. They sign URLs and wait on S3 and DynamoDB: nothing \
CPU-bound. The other functions keep `opt-level = 3` (login's Argon2 is their CPU); the same override is the next \
step for any that crosses the goal. (These sizes too are from before the provider chains went.)
- *A regex engine*: logs were filtered with `EnvFilter`, which compiles `RUST_LOG` into regular expressions; \
`Targets` reads the same `target=level` lists without one.
- *aws-sdk-dynamodbstreams*: `serde_dynamo`'s stream-record conversion is a feature of the local stack, the tests \
and the bench only; the functions no longer build that SDK, as long as they are built by package (`sam build`'s \
call in each function's directory, `-p` in `scripts/bundles`): `cargo build --bin <name>` from the workspace root \
selects every member and unifies the dependencies' features with the tests' and the bench's.
- *Kept*: `aws_lambda_events` already has only `dynamodb`, `sqs`, `streams` and `apigw` (lambda_http adds `alb` \
and `vpc_lattice` itself, not optional); `lambda_http` has only `apigw_http` and `tracing`; `h2` stays \
(aws-smithy-http-client always enables HTTP/2).

**target-cpu: kept.** On arm64 cargo-lambda compiles for `neoverse-n1`, the Graviton2 core; Graviton3 and 4 \
(Neoverse V1, V2) implement everything N1 has, so the bundle runs on every Graviton Lambda uses and gets the \
Armv8.2 instructions (LSE atomics among them) the generic `aarch64` target leaves out. On x86_64 its `haswell` \
(AVX2) is below every CPU Lambda runs x86_64 functions on. (Pinning `neoverse-v1` instead would leave Graviton2 out.)
";
