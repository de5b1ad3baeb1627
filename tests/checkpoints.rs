//! Signed audit checkpoints against the emulator: the audit writer signs one
//! every N entries and the verify job one per run; the published key verifies
//! them; truncation, rewrites, a head moved back and forged checkpoints are
//! caught against them; the export bundle verifies with the offline verifier
//! (tools/audit-verify.py) and a tampered one does not.

use aws_sdk_dynamodb::types::AttributeValue;
use caas::audit::{AuditEntry, BreakReason, ChainReport, Checkpoint, SignedCheckpoint};
use caas::auth::Role;
use caas::outbox::OutboxEvent;
use caas::tenant::TenantId;
use caas_tests::api::{Api, api_event};
use caas_tests::*;
use serde_json::{Value, json};
use std::collections::HashMap;

fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).unwrap()
}

fn event(tenant_name: &str, n: u32) -> OutboxEvent {
    let payload = json!({ "n": n, "user_id": format!("user-{n}"), "note": "é \"quoted\"\n/" });
    caas_tests::triggers::synthetic_event(tenant_name, n, payload)
}

/// Appends `count` events in batches of `batch` through the audit writer's app.
async fn append(app: &caas::App, tenant_name: &str, count: u32, batch: usize) {
    let events: Vec<OutboxEvent> = (1..=count).map(|n| event(tenant_name, n)).collect();
    for chunk in events.chunks(batch) {
        caas::audit::append_events(app, &tenant(tenant_name), chunk).await.unwrap();
    }
}

fn checkpoint_table(stack: &TestStack) -> String {
    stack.stack.table_named("AuditCheckpointTable").expect("the checkpoint table").to_owned()
}

async fn stored_checkpoints(stack: &TestStack, tenant_name: &str) -> Vec<SignedCheckpoint> {
    caas::store::audit_checkpoints::list(&stack.clients.dynamodb, &checkpoint_table(stack), tenant_name)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.checkpoint)
        .collect()
}

async fn run_verify_job(stack: &TestStack) -> caas::integrity::IntegrityReport {
    let event = lambda_runtime::LambdaEvent::new(json!({}), lambda_runtime::Context::default());
    verify::handler(&stack.app("VerifyFunction"), event).await.expect("verify runs")
}

async fn verify_live(stack: &TestStack, tenant_name: &str) -> ChainReport {
    caas::audit::trust::verify_live(&stack.app("VerifyAuditFunction"), &tenant(tenant_name)).await.unwrap()
}

fn broken(report: &ChainReport) -> (bool, Option<u64>, Option<BreakReason>) {
    (report.ok, report.first_broken_seq, report.reason)
}

fn entry_key(tenant_name: &str, seq: u64) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(format!("T#{tenant_name}#AUDIT"))),
        ("sk".to_owned(), AttributeValue::S(format!("E#{seq:020}"))),
    ])
}

async fn entries(stack: &TestStack, tenant_name: &str) -> Vec<AuditEntry> {
    let (page, _) =
        caas::store::audit::entries_after(&stack.clients.dynamodb, &stack.table(), tenant_name, 0, 1000)
            .await
            .unwrap();
    page.into_iter().map(Result::unwrap).collect()
}

/// What someone with write access to the table can do: set the head.
async fn set_head(stack: &TestStack, tenant_name: &str, to: &Checkpoint) {
    let mut key = entry_key(tenant_name, 0);
    key.insert("sk".into(), AttributeValue::S("HEAD".into()));
    stack
        .clients
        .dynamodb
        .update_item()
        .table_name(stack.table())
        .set_key(Some(key))
        .update_expression("SET #seq = :seq, #hash = :hash")
        .expression_attribute_names("#seq", "seq")
        .expression_attribute_names("#hash", "hash")
        .expression_attribute_values(":seq", AttributeValue::N(to.seq.to_string()))
        .expression_attribute_values(":hash", AttributeValue::S(to.hash.clone()))
        .send()
        .await
        .unwrap();
}

async fn delete_entry(stack: &TestStack, tenant_name: &str, seq: u64) {
    stack
        .clients
        .dynamodb
        .delete_item()
        .table_name(stack.table())
        .set_key(Some(entry_key(tenant_name, seq)))
        .send()
        .await
        .unwrap();
}

/// Rewrites entry `seq`'s payload and re-hashes it and every entry after
/// it, and the head: a chain whose every link and head agree.
async fn rewrite_from(stack: &TestStack, tenant_name: &str, seq: u64, payload: Value) {
    let mut chain = entries(stack, tenant_name).await;
    let mut prev = chain
        .iter()
        .find(|e| e.seq == seq - 1)
        .map_or(caas::audit::GENESIS_HASH.to_owned(), |e| e.hash.clone());
    for entry in chain.iter_mut().filter(|e| e.seq >= seq) {
        if entry.seq == seq {
            entry.payload = payload.clone();
        }
        entry.prev_hash = prev.clone();
        entry.hash = entry.expected_hash(&prev);
        prev = entry.hash.clone();
        stack
            .clients
            .dynamodb
            .update_item()
            .table_name(stack.table())
            .set_key(Some(entry_key(tenant_name, entry.seq)))
            .update_expression("SET payload = :p, prev_hash = :prev, #hash = :hash")
            .expression_attribute_names("#hash", "hash")
            .expression_attribute_values(":p", AttributeValue::S(caas::sorted_json::encode(&entry.payload)))
            .expression_attribute_values(":prev", AttributeValue::S(entry.prev_hash.clone()))
            .expression_attribute_values(":hash", AttributeValue::S(entry.hash.clone()))
            .send()
            .await
            .unwrap();
    }
    let last = chain.last().unwrap().checkpoint();
    set_head(stack, tenant_name, &last).await;
}

async fn get(
    api: &Api<'_>,
    function: &str,
    path: &str,
    token: Option<&str>,
    query: &[(&str, &str)],
) -> (u16, Value) {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = bearer.iter().map(|b| ("authorization", b.as_str())).collect();
    let response = api.call(function, api_event("GET", path, &[], query, &headers, None)).await;
    let (status, body) = parts(&response);
    if status >= 400 {
        assert_problem(&response, status);
    }
    (status, body)
}

/// The published checkpoint key, checked against a signature by hand (p256,
/// not the code under test).
fn verify_with_jwk(jwk: &Value, checkpoint: &SignedCheckpoint) -> bool {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use p256::ecdsa::signature::Verifier;
    let coordinate = |name: &str| B64.decode(jwk[name].as_str().unwrap()).unwrap();
    let point = p256::EncodedPoint::from_affine_coordinates(
        coordinate("x").as_slice().into(),
        coordinate("y").as_slice().into(),
        false,
    );
    let key = p256::ecdsa::VerifyingKey::from_encoded_point(&point).unwrap();
    let signature = p256::ecdsa::Signature::from_slice(&B64.decode(&checkpoint.signature).unwrap()).unwrap();
    let message = format!(
        r#"{{"format":"caas.audit.checkpoint.v1","head_hash":"{}","seq":{},"tenant_id":"{}","time":"{}"}}"#,
        checkpoint.head_hash, checkpoint.seq, checkpoint.tenant_id, checkpoint.time
    );
    jwk["kid"] == checkpoint.key_id.as_str() && key.verify(message.as_bytes(), &signature).is_ok()
}

#[tokio::test]
async fn the_writer_signs_every_n_entries_the_verify_job_signs_the_head_and_the_key_is_published() {
    let stack = TestStack::new().await;
    let writer = stack.app_with("AuditWriterFunction", &[("AUDIT_CHECKPOINT_EVERY", "4")]);
    // 1..=3, 4..=6, 7..=9, 10: the chain passes 4 (at 6) and 8 (at 9).
    append(&writer, "acme", 10, 3).await;
    let signed = stored_checkpoints(&stack, "acme").await;
    assert_eq!(signed.iter().map(|c| c.seq).collect::<Vec<_>>(), [6, 9]);
    let chain = entries(&stack, "acme").await;
    for checkpoint in &signed {
        assert_eq!(checkpoint.head_hash, chain[checkpoint.seq as usize - 1].hash);
        assert_eq!(checkpoint.tenant_id, "acme");
    }

    let report = run_verify_job(&stack).await;
    assert!(report.ok, "{report:?}");
    assert_eq!(report.audit[0].chain.checkpoint_seq, Some(10), "the verified head is signed");
    let signed = stored_checkpoints(&stack, "acme").await;
    assert_eq!(signed.iter().map(|c| c.seq).collect::<Vec<_>>(), [6, 9, 10]);
    // Nothing new: no new checkpoint.
    run_verify_job(&stack).await;
    assert_eq!(stored_checkpoints(&stack, "acme").await.len(), 3);

    let api = Api::new(&stack);
    let (status, keys) = get(&api, "AuditKeysFunction", "/.well-known/audit-keys.json", None, &[]).await;
    assert_eq!(status, 200);
    let jwk = &keys["keys"][0];
    assert_eq!(
        (jwk["kty"].as_str(), jwk["crv"].as_str(), jwk["alg"].as_str()),
        (Some("EC"), Some("P-256"), Some("ES256"))
    );
    let (_, tokens) = get(&api, "JwksFunction", "/.well-known/jwks.json", None, &[]).await;
    assert_ne!(tokens["keys"][0]["kid"], jwk["kid"], "its own key, not the token key");
    for checkpoint in &signed {
        assert!(verify_with_jwk(jwk, checkpoint), "{checkpoint:?}");
    }
    assert!(verify_live(&stack, "acme").await.ok);
}

#[tokio::test]
async fn truncation_rewrites_a_head_moved_back_and_forged_checkpoints_are_caught() {
    let stack = TestStack::new().await;
    let writer = stack.app("AuditWriterFunction");
    for name in ["trunc", "rewrite", "moved", "forged"] {
        append(&writer, name, 6, 6).await;
    }
    let report = run_verify_job(&stack).await;
    assert!(report.ok, "{report:?}");
    assert!(report.audit.iter().all(|c| c.chain.checkpoint_seq == Some(6)), "{report:?}");

    // Truncation: the last two entries deleted and the head moved back to
    // entry 4. Links and head agree; the checkpoint at 6 does not.
    let chain = entries(&stack, "trunc").await;
    delete_entry(&stack, "trunc", 6).await;
    delete_entry(&stack, "trunc", 5).await;
    set_head(&stack, "trunc", &chain[3].checkpoint()).await;
    let plain =
        caas::audit::verify_chain(&stack.clients.dynamodb, &stack.table(), &tenant("trunc")).await.unwrap();
    assert!(plain.ok, "without the checkpoint the truncation is invisible");
    assert_eq!(broken(&verify_live(&stack, "trunc").await), (false, Some(5), Some(BreakReason::Truncated)));

    // A rewrite: entry 2 changed and every hash after it recomputed.
    rewrite_from(&stack, "rewrite", 2, json!({"n": 2, "user_id": "someone-else"})).await;
    let plain =
        caas::audit::verify_chain(&stack.clients.dynamodb, &stack.table(), &tenant("rewrite")).await.unwrap();
    assert!(plain.ok, "a consistent rewrite passes the links");
    assert_eq!(
        broken(&verify_live(&stack, "rewrite").await),
        (false, Some(6), Some(BreakReason::CheckpointMismatch))
    );

    // The head moved back over entries that are still there.
    let chain = entries(&stack, "moved").await;
    set_head(&stack, "moved", &chain[3].checkpoint()).await;
    let report = verify_live(&stack, "moved").await;
    assert!(!report.ok);
    assert_eq!(report.first_broken_seq, Some(5));
    // (the checkpoint at 6 is past the head too; the stored entries name it first)
    assert!(
        matches!(report.reason, Some(BreakReason::EntriesPastHead | BreakReason::Truncated)),
        "{report:?}"
    );
    // Without a checkpoint past the head, entries past it are a break of their own.
    append(&writer, "past", 6, 6).await;
    let chain = entries(&stack, "past").await;
    set_head(&stack, "past", &chain[3].checkpoint()).await;
    assert_eq!(
        broken(&verify_live(&stack, "past").await),
        (false, Some(5), Some(BreakReason::EntriesPastHead))
    );

    // A forged checkpoint (the checkpoint table written without the key):
    // a higher one to make the chain look truncated is refused as such.
    let mut forged = stored_checkpoints(&stack, "forged").await.remove(0);
    forged.seq = 9;
    forged.head_hash = "ab".repeat(32);
    stack
        .clients
        .dynamodb
        .put_item()
        .table_name(checkpoint_table(&stack))
        .set_item(Some(
            serde_dynamo::to_item(json!({
                "pk": "T#forged#CHECKPOINT", "sk": format!("C#{:020}", 9), "kind": "audit_checkpoint",
                "schema_version": 1, "tenant_id": forged.tenant_id, "seq": forged.seq,
                "head_hash": forged.head_hash, "time": forged.time, "key_id": forged.key_id,
                "signature": forged.signature,
            }))
            .unwrap(),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(
        broken(&verify_live(&stack, "forged").await),
        (false, Some(9), Some(BreakReason::BadCheckpoint))
    );

    // The verify job reports every one of them and signs none of them.
    let report = run_verify_job(&stack).await;
    let mut chains: Vec<(&str, bool)> =
        report.audit.iter().map(|c| (c.tenant_id.as_str(), c.chain.ok)).collect();
    chains.sort();
    assert_eq!(
        chains,
        [("forged", false), ("moved", false), ("past", false), ("rewrite", false), ("trunc", false)]
    );
    assert_eq!(stored_checkpoints(&stack, "trunc").await.iter().map(|c| c.seq).collect::<Vec<_>>(), [6]);

    // The route answers the same (an auditor of the truncated tenant).
    let api = Api::new(&stack);
    let auditor = api.invited("trunc", "auditor@trunc.example", Role::Auditor).await;
    let (status, body) = get(&api, "VerifyAuditFunction", "/v1/audit/verify", Some(&auditor), &[]).await;
    assert_eq!(status, 200);
    assert_eq!((body["ok"].as_bool(), body["reason"].as_str()), (Some(false), Some("truncated")));
}

#[tokio::test]
async fn a_whole_chain_removed_is_still_found_by_its_checkpoints() {
    let stack = TestStack::new().await;
    append(&stack.app("AuditWriterFunction"), "gone", 3, 3).await;
    assert!(run_verify_job(&stack).await.ok);
    for seq in 1..=3 {
        delete_entry(&stack, "gone", seq).await;
    }
    let mut head = entry_key("gone", 0);
    head.insert("sk".into(), AttributeValue::S("HEAD".into()));
    stack.clients.dynamodb.delete_item().table_name(stack.table()).set_key(Some(head)).send().await.unwrap();
    let report = run_verify_job(&stack).await;
    assert!(!report.ok);
    assert_eq!(report.broken_chains().map(|c| c.tenant_id.as_str()).collect::<Vec<_>>(), ["gone"]);
}

/// Runs the offline verifier on the key file and bundle files; its exit code and report.
fn offline_verify(keys: &Value, bundles: &[Value]) -> (i32, Value) {
    let dir = std::env::temp_dir().join(format!("audit-verify-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let key_file = dir.join("audit-keys.json");
    std::fs::write(&key_file, keys.to_string()).unwrap();
    let mut args = vec![repo_root().join("tools/audit-verify.py"), key_file];
    for (i, bundle) in bundles.iter().enumerate() {
        let file = dir.join(format!("bundle-{i}.json"));
        std::fs::write(&file, bundle.to_string()).unwrap();
        args.push(file);
    }
    let python = repo_root().join(".venv/bin/python");
    let output = std::process::Command::new(python).args(&args).output().expect("run the offline verifier");
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report = serde_json::from_str(&stdout)
        .unwrap_or_else(|_| panic!("{stdout} {}", String::from_utf8_lossy(&output.stderr)));
    (output.status.code().unwrap_or(-1), report)
}

#[tokio::test]
async fn the_export_bundle_verifies_offline_and_a_tampered_one_does_not() {
    let stack = TestStack::new().await;
    let writer = stack.app_with("AuditWriterFunction", &[("AUDIT_CHECKPOINT_EVERY", "5")]);
    append(&writer, "acme", 12, 4).await;
    assert!(run_verify_job(&stack).await.ok);
    let api = Api::new(&stack);
    let auditor = api.invited("acme", "auditor@acme.example", Role::Auditor).await;
    let (_, keys) = get(&api, "AuditKeysFunction", "/.well-known/audit-keys.json", None, &[]).await;

    // All pages of the export.
    let mut pages = Vec::new();
    let mut after = "0".to_owned();
    loop {
        let (status, page) = get(
            &api,
            "ExportAuditFunction",
            "/v1/audit/export",
            Some(&auditor),
            &[("after_seq", &after), ("limit", "5")],
        )
        .await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["format"], "caas.audit.bundle.v1");
        let next = page.get("next_after_seq").cloned();
        pages.push(page);
        match next {
            Some(next) => after = next.to_string(),
            None => break,
        }
    }
    assert_eq!(pages.len(), 3);
    let seqs: Vec<u64> =
        pages[2]["checkpoints"].as_array().unwrap().iter().map(|c| c["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [8, 12], "the writer crossed 5 at 8 and 10 at 12; the verify job found the head signed");

    let (code, report) = offline_verify(&keys, &pages);
    assert_eq!((code, report["ok"].as_bool()), (0, Some(true)), "{report}");
    assert_eq!(report["entries_checked"], 12);
    assert_eq!(report["head_seq"], 12);

    // One page alone is incomplete.
    let (code, report) = offline_verify(&keys, &pages[..2]);
    assert_eq!((code, report["reason"].as_str()), (1, Some("incomplete_export")), "{report}");

    // An edited payload.
    let mut edited = pages.clone();
    edited[1]["entries"][0]["payload"]["user_id"] = json!("someone-else");
    let (code, report) = offline_verify(&keys, &edited);
    assert_eq!(
        (code, report["reason"].as_str(), report["first_broken_seq"].as_u64()),
        (1, Some("hash_mismatch"), Some(6))
    );

    // The last page dropped and the second made the last: truncated against the checkpoints.
    let mut cut = pages[..2].to_vec();
    cut[1].as_object_mut().unwrap().remove("next_after_seq");
    let (code, report) = offline_verify(&keys, &cut);
    assert_eq!((code, report["reason"].as_str()), (1, Some("truncated")), "{report}");

    // A consistent rewrite of the chain (every hash recomputed) against the signed checkpoints.
    rewrite_from(&stack, "acme", 3, json!({"n": 3})).await;
    let (_, rewritten) = get(&api, "ExportAuditFunction", "/v1/audit/export", Some(&auditor), &[]).await;
    assert!(rewritten.get("next_after_seq").is_none(), "default limit 1000: one page");
    let (code, report) = offline_verify(&keys, std::slice::from_ref(&rewritten));
    assert_eq!((code, report["reason"].as_str()), (1, Some("checkpoint_mismatch")), "{report}");

    // A checkpoint whose content was changed, or signed by another key.
    let mut moved = pages.clone();
    moved[2]["checkpoints"][0]["seq"] = json!(4);
    let (code, report) = offline_verify(&keys, &moved);
    assert_eq!((code, report["reason"].as_str()), (1, Some("bad_checkpoint")), "{report}");
    let mut other_key = keys.clone();
    other_key["keys"][0]["kid"] = json!("another-key");
    let (code, report) = offline_verify(&other_key, &pages);
    assert_eq!((code, report["reason"].as_str()), (1, Some("bad_checkpoint")), "{report}");

    // Bad parameters are 400s; members are refused.
    let (status, problem) =
        get(&api, "ExportAuditFunction", "/v1/audit/export", Some(&auditor), &[("limit", "1001")]).await;
    assert_eq!((status, problem["field"].as_str()), (400, Some("limit")));
    let member = api.token("acme", "ada@example.com").await;
    let (status, _) = get(&api, "ExportAuditFunction", "/v1/audit/export", Some(&member), &[]).await;
    assert_eq!(status, 403);
}
