//! Signed checkpoints as a service: signing a chain head with the audit KMS
//! key (the verify job, and the audit writer every N entries), loading a
//! tenant's checkpoints with their signatures checked, the published keys,
//! verification of the live chain against them, and the export bundle.

use super::chain::Checkpoint;
use super::checkpoint::{SignedCheckpoint, encode_signature};
use super::service::{ChainReport, Start, verify_chain_with};
use crate::app::App;
use crate::auth::jwt::TokenKey;
use crate::clock::rfc3339;
use crate::error::AppError;
use crate::store::audit as chain_store;
use crate::store::audit_checkpoints as store;
use crate::store::labels::AuditLabel;
use crate::store::tx::{Tx, TxError};
use crate::tenant::TenantId;
use serde::Serialize;

/// The checkpoint verification key, fetched from KMS once per container.
pub async fn audit_key(app: &App) -> Result<&TokenKey, AppError> {
    app.audit_key
        .get_or_try_init(|| async {
            crate::signing::public_key(&app.clients.kms, app.config.audit_signing_key_id()?, "audit").await
        })
        .await
}

/// `/.well-known/audit-keys.json`: the checkpoint keys as a JWKS.
pub async fn audit_keys(app: &App) -> Result<serde_json::Value, AppError> {
    Ok(serde_json::json!({ "keys": [audit_key(app).await?.jwk] }))
}

/// Signs `head` of `tenant`'s chain and stores the checkpoint. `None` when a
/// checkpoint at that seq exists already (another writer signed it).
#[tracing::instrument(skip(app, head), fields(tenant = %tenant, seq = head.seq))]
pub async fn sign(
    app: &App,
    tenant: &TenantId,
    head: &Checkpoint,
) -> Result<Option<SignedCheckpoint>, AppError> {
    let key_id = app.config.audit_signing_key_id()?;
    let table = app.config.audit_checkpoint_table()?;
    let mut checkpoint = SignedCheckpoint {
        tenant_id: tenant.to_string(),
        seq: head.seq,
        head_hash: head.hash.clone(),
        time: rfc3339(app.now()),
        key_id: key_id.to_owned(),
        signature: String::new(),
    };
    let der =
        crate::signing::sign_es256(&app.clients.kms, key_id, checkpoint.signed_bytes(), "audit checkpoint")
            .await?;
    checkpoint.signature =
        encode_signature(&der).map_err(|e| AppError::internal("checkpoint signature", e))?;
    match Tx::without_event(table)
        .push(store::insert(table, &checkpoint)?)
        .commit(&app.clients.dynamodb)
        .await
    {
        Ok(()) => {
            tracing::info!(seq = checkpoint.seq, "audit checkpoint signed");
            Ok(Some(checkpoint))
        }
        Err(error @ TxError::Cancelled(_)) if error.condition_failed(AuditLabel::Checkpoint).is_some() => {
            Ok(None)
        }
        Err(error) => Err(error.into_app_error()),
    }
}

/// A tenant's stored checkpoints, signatures checked.
#[derive(Debug, Clone, Default)]
pub struct Trusted {
    /// Every checkpoint that verifies and is stored where it belongs, in seq order.
    pub checkpoints: Vec<SignedCheckpoint>,
    /// The seq of the first one that does not.
    pub bad: Option<u64>,
}

impl Trusted {
    pub fn positions(&self) -> Vec<Checkpoint> {
        self.checkpoints.iter().map(SignedCheckpoint::position).collect()
    }

    pub fn latest(&self) -> Option<&SignedCheckpoint> {
        self.checkpoints.last()
    }
}

/// Loads `tenant`'s checkpoints and checks each signature with the audit key.
pub async fn trusted(app: &App, tenant: &TenantId) -> Result<Trusted, AppError> {
    let table = app.config.audit_checkpoint_table()?;
    let stored = store::list(&app.clients.dynamodb, table, tenant.as_str()).await?;
    if stored.is_empty() {
        return Ok(Trusted::default());
    }
    let key = audit_key(app).await?;
    let mut trusted = Trusted::default();
    for item in stored {
        match item.checkpoint.verify(key) {
            Ok(()) if item.in_place => trusted.checkpoints.push(item.checkpoint),
            result => {
                tracing::warn!(seq = item.checkpoint.seq, error = ?result.err(), "audit checkpoint refused");
                trusted.bad = Some(trusted.bad.map_or(item.checkpoint.seq, |b| b.min(item.checkpoint.seq)));
            }
        }
    }
    trusted.checkpoints.sort_by_key(|c| c.seq);
    Ok(trusted)
}

/// Verifies `tenant`'s live chain in the app's table against its signed
/// checkpoints: from the genesis or the checkpoint below the oldest entry,
/// every checkpoint matched, the latest one reached, no entry past the head.
pub async fn verify_live(app: &App, tenant: &TenantId) -> Result<ChainReport, AppError> {
    let trusted = trusted(app, tenant).await?;
    let table = &app.config.table_name;
    let mut report =
        verify_chain_with(&app.clients.dynamodb, table, tenant, Start::Anchored(trusted.positions()), true)
            .await?;
    report.checkpoint_seq = trusted.latest().map(|c| c.seq);
    if let Some(seq) = trusted.bad.filter(|_| report.ok) {
        report.ok = false;
        report.first_broken_seq = Some(seq);
        report.reason = Some(super::BreakReason::BadCheckpoint);
        tracing::warn!(seq, "audit checkpoint does not verify");
    }
    Ok(report)
}

/// Verifies `tenant`'s chain in a restored copy of the table (a drill or a
/// restore): against the signed checkpoints at or below its head (a copy
/// from before later checkpoints is behind them by design), so a chain that
/// retention shortened starts from its checkpoint too.
pub async fn verify_restored(app: &App, table: &str, tenant: &TenantId) -> Result<ChainReport, AppError> {
    let trusted = trusted(app, tenant).await?;
    let head = chain_store::head(&app.clients.dynamodb, table, tenant.as_str()).await?.map_or(0, |h| h.seq);
    let anchors: Vec<Checkpoint> = trusted.positions().into_iter().filter(|c| c.seq <= head).collect();
    let latest = anchors.last().map(|c| c.seq);
    let mut report =
        verify_chain_with(&app.clients.dynamodb, table, tenant, Start::Anchored(anchors), false).await?;
    report.checkpoint_seq = latest;
    Ok(report)
}

/// Verifies the live chain and, when it holds and its head is past the
/// latest checkpoint, signs the head (the verify job's periodic checkpoint).
pub async fn verify_and_checkpoint(app: &App, tenant: &TenantId) -> Result<ChainReport, AppError> {
    let mut report = verify_live(app, tenant).await?;
    if report.ok && report.head_seq > report.checkpoint_seq.unwrap_or(0) {
        let head = Checkpoint { seq: report.head_seq, hash: report.head_hash.clone() };
        sign(app, tenant, &head).await?;
        report.checkpoint_seq = Some(head.seq);
    }
    Ok(report)
}

/// Every tenant with a chain or a checkpoint (a chain whose head and entries
/// were all removed still has its checkpoints).
pub async fn tenants(app: &App) -> Result<Vec<TenantId>, AppError> {
    let table = app.config.audit_checkpoint_table()?;
    let mut names = chain_store::tenants_with_chains(&app.clients.dynamodb, &app.config.table_name).await?;
    names.extend(store::tenants(&app.clients.dynamodb, table).await?);
    names.sort();
    names.dedup();
    Ok(names.iter().filter_map(|t| TenantId::parse(t).ok()).collect())
}

/// The bundle format of `GET /v1/audit/export`.
pub const BUNDLE_FORMAT: &str = "caas.audit.bundle.v1";
pub const DEFAULT_EXPORT_LIMIT: u32 = 1000;
pub const MAX_EXPORT_LIMIT: u32 = 1000;

/// `GET /v1/audit/export`: a page of entries and every signed checkpoint.
#[derive(Debug, Clone, Serialize)]
pub struct Bundle {
    pub format: &'static str,
    pub tenant_id: String,
    /// Every checkpoint of the tenant whose signature verifies, in seq order,
    /// read before the entries (so none is past the entries of the last page).
    pub checkpoints: Vec<SignedCheckpoint>,
    pub entries: Vec<super::AuditEntry>,
    /// Pass as `after_seq` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_after_seq: Option<u64>,
}

/// The export bundle page of entries after `after_seq`.
pub async fn export(app: &App, tenant: &TenantId, after_seq: u64, limit: u32) -> Result<Bundle, AppError> {
    let trusted = trusted(app, tenant).await?;
    let page = super::service::list(app, tenant, super::ListQuery { after_seq, limit }).await?;
    Ok(Bundle {
        format: BUNDLE_FORMAT,
        tenant_id: tenant.to_string(),
        checkpoints: trusted.checkpoints,
        entries: page.entries,
        next_after_seq: page.next_after_seq,
    })
}
