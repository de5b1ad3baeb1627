//! Media of a conversation: files its participants upload straight to S3
//! with presigned URLs, then attach to messages. Items in
//! [`crate::store::media`]; objects in the media bucket under
//! `t/<tenant>/c/<conversation>/<media id>`.
//!
//! - **Request** (`POST .../media {content_type, size}`): one transaction
//!   (the pending item, the caller still a participant and an active user,
//!   the tenant active, the caller's hit on the upload limit,
//!   `media.requested`), then a presigned PUT whose signature covers the
//!   content type, the length and the `pending` tag (no round trip: the
//!   signature is computed here).
//! - **Complete** (`POST .../media/{media_id}/complete`): one consistent
//!   BatchGetItem (the item, the caller's participant item), HeadObject
//!   (size and type as declared; otherwise the object is deleted and 422),
//!   DeleteObjectTagging (the bucket's lifecycle rule expires objects still
//!   tagged `pending` after a day: abandoned uploads), one transaction
//!   (pending → ready, the caller still a participant, `media.uploaded`).
//! - **Get** (`GET .../media/{media_id}`): one BatchGetItem, then a
//!   presigned GET of a few minutes (ready media only).
//! - **Delete** (`DELETE .../media/{media_id}`): its uploader, the
//!   conversation's admins, the tenant's owners and admins: one BatchGetItem,
//!   one transaction (the tombstone, the caller's right re-checked,
//!   `media.deleted`), then DeleteObject; a retry of a deleted item deletes
//!   the object again (S3's delete is idempotent).
//!
//! Only participants see media; anyone else gets 404, as for the
//! conversation. Events name the media, the conversation and the uploader,
//! never a file name or content.

use super::conversations::{caller_checks, participant_refusal};
use super::{conversation_id, event, not_found, require_person};
use crate::app::App;
use crate::auth::Authenticated;
use crate::clock::rfc3339;
use crate::error::AppError;
use crate::http::RequestContext;
use crate::ratelimit::{self, Counter};
use crate::store::chat as chat_store;
use crate::store::labels::ChatLabel;
use crate::store::media::{self as store, MediaRecord, MediaStatus};
use crate::store::tx::Tx;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

/// The largest upload: 25 MiB.
pub const MAX_SIZE: u64 = 25 * 1024 * 1024;
/// The content types a conversation takes.
pub const CONTENT_TYPES: [&str; 13] = [
    "image/jpeg",
    "image/png",
    "image/gif",
    "image/webp",
    "image/heic",
    "video/mp4",
    "video/quicktime",
    "audio/mpeg",
    "audio/mp4",
    "audio/ogg",
    "audio/webm",
    "application/pdf",
    "text/plain",
];
/// How long an upload URL works.
pub const UPLOAD_URL_SECONDS: u64 = 900;
/// How long a download URL works.
pub const DOWNLOAD_URL_SECONDS: u64 = 300;
/// A pending upload can be completed for a day (the bucket's lifecycle rule
/// expires objects still tagged pending after one day).
pub const PENDING_SECONDS: i64 = 86_400;
/// A deleted item stays as a tombstone this long (a retried delete finds it).
pub const TOMBSTONE_SECONDS: i64 = 86_400;
/// Attachments of one message, at most.
pub const MAX_ATTACHMENTS: usize = 10;
/// The tag of an object not completed yet (the lifecycle rule's filter).
pub const PENDING_TAG: &str = "pending=true";
const OPERATION: &str = "request_upload";

/// `POST /v1/conversations/{id}/media`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadRequest {
    pub content_type: String,
    #[serde(deserialize_with = "size_number")]
    pub size: u64,
}

/// A size in a JSON body: a whole number of bytes (as in JSON Schema, `3.0` is 3).
fn size_number<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    let number = serde_json::Number::deserialize(deserializer)?;
    crate::http::whole_number(&number)
        .ok_or_else(|| serde::de::Error::custom("must be a whole number of bytes"))
}

/// A media item as participants see it.
#[derive(Debug, Clone, Serialize)]
pub struct MediaView {
    pub media_id: String,
    pub conversation_id: String,
    pub uploader_id: String,
    pub content_type: String,
    pub size: u64,
    pub status: MediaStatus,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
}

impl From<&MediaRecord> for MediaView {
    fn from(m: &MediaRecord) -> Self {
        Self {
            media_id: m.media_id.clone(),
            conversation_id: m.conversation_id.clone(),
            uploader_id: m.uploader_id.clone(),
            content_type: m.content_type.clone(),
            size: m.size,
            status: m.status,
            created_at: m.created_at.clone(),
            completed_at: m.completed_at.clone(),
        }
    }
}

/// The answer to an upload request: the pending item and how to upload.
#[derive(Debug, Clone, Serialize)]
pub struct UploadTicket {
    #[serde(flatten)]
    pub media: MediaView,
    pub upload: PresignedUrl,
}

/// A ready item with a download URL (none while pending).
#[derive(Debug, Clone, Serialize)]
pub struct MediaWithDownload {
    #[serde(flatten)]
    pub media: MediaView,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub download: Option<PresignedUrl>,
}

/// A presigned request: send it with exactly these method and headers.
#[derive(Debug, Clone, Serialize)]
pub struct PresignedUrl {
    pub method: String,
    pub url: String,
    pub headers: BTreeMap<String, String>,
    pub expires_at: String,
}

/// A content type of the allow-list (parameters such as `; charset=` are refused).
fn content_type(raw: &str) -> Result<String, AppError> {
    let lower = raw.trim().to_ascii_lowercase();
    if CONTENT_TYPES.contains(&lower.as_str()) {
        Ok(lower)
    } else {
        Err(AppError::bad_request(
            "content_type",
            format!("content_type: one of {}", CONTENT_TYPES.join(", ")),
        ))
    }
}

fn size(raw: u64) -> Result<u64, AppError> {
    if (1..=MAX_SIZE).contains(&raw) {
        Ok(raw)
    } else {
        Err(AppError::bad_request("size", format!("size: 1 to {MAX_SIZE} bytes")))
    }
}

/// An upload request's content type and size, checked (400 naming the field).
pub fn checked(request: &UploadRequest) -> Result<(String, u64), AppError> {
    Ok((content_type(&request.content_type)?, size(request.size)?))
}

/// A media id from the path (one this API hands out, else 404).
fn media_id(raw: &str) -> Result<String, AppError> {
    if crate::ids::is_valid_id(raw) { Ok(raw.to_owned()) } else { Err(media_not_found()) }
}

fn media_not_found() -> AppError {
    AppError::NotFound("media")
}

/// Media ids named as a message's attachments: valid ids, distinct, at most
/// [`MAX_ATTACHMENTS`] (400 naming the entry).
pub fn attachment_ids(raw: &[String]) -> Result<Vec<String>, AppError> {
    if raw.len() > MAX_ATTACHMENTS {
        return Err(AppError::bad_request("attachments", format!("attachments: at most {MAX_ATTACHMENTS}")));
    }
    let mut out: Vec<String> = Vec::with_capacity(raw.len());
    for (n, id) in raw.iter().enumerate() {
        if !crate::ids::is_valid_id(id) || out.contains(id) {
            return Err(AppError::bad_request(
                format!("attachments[{n}]"),
                format!("attachments[{n}]: must be a media id, once"),
            ));
        }
        out.push(id.clone());
    }
    Ok(out)
}

/// The item keys of a post's attachments.
pub(super) fn attachment_keys(
    tenant: &str,
    conversation_id: &str,
    ids: &[String],
) -> Vec<crate::store::Item> {
    ids.iter().map(|id| store::media_key(tenant, conversation_id, id)).collect()
}

/// The conditions of a post's attachments on the items read with it: each a
/// ready upload of the author in this conversation (else 422); in the
/// transaction, each still ready.
pub(super) fn attachment_checks(
    table: &str,
    tenant: &str,
    conversation_id: &str,
    author: &str,
    ids: &[String],
    found: Vec<Option<crate::store::Item>>,
) -> Result<Vec<crate::store::Action<ChatLabel>>, AppError> {
    let mut checks = Vec::with_capacity(ids.len());
    for (n, (id, item)) in ids.iter().zip(found).enumerate() {
        let record = item.map(store::decode_media).transpose()?;
        let usable = record.is_some_and(|m| m.status == MediaStatus::Ready && m.uploader_id == author);
        if !usable {
            return Err(unusable_attachment(n));
        }
        checks.push(store::require_ready(table, tenant, conversation_id, id, author)?);
    }
    Ok(checks)
}

pub(super) fn unusable_attachment(n: usize) -> AppError {
    AppError::Unprocessable(format!(
        "attachments[{n}]: must be a completed upload of yours in this conversation"
    ))
}

/// The media functions' S3 client and bucket.
fn s3(app: &App) -> Result<(&aws_sdk_s3::Client, &str), AppError> {
    let client = app.clients.s3.as_ref().ok_or_else(|| AppError::Internal("no S3 client".into()))?;
    let bucket =
        app.config.media_bucket.as_deref().ok_or(crate::config::ConfigError::Missing("MEDIA_BUCKET"))?;
    Ok((client, bucket))
}

fn s3_error<E>(
    context: &str,
    error: aws_sdk_s3::error::SdkError<E, aws_smithy_runtime_api::http::Response>,
) -> AppError
where
    E: std::error::Error + aws_sdk_s3::error::ProvideErrorMetadata + 'static,
{
    AppError::from_sdk(context, error)
}

/// Deletes an object (S3 answers a missing one as deleted).
async fn delete_object(client: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<(), AppError> {
    client
        .delete_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| s3_error("delete media object", e))?;
    Ok(())
}

fn presigning(app: &App, seconds: u64) -> Result<aws_sdk_s3::presigning::PresigningConfig, AppError> {
    aws_sdk_s3::presigning::PresigningConfig::builder()
        .start_time(app.now().into())
        .expires_in(Duration::from_secs(seconds))
        .build()
        .map_err(|e| AppError::internal("presigning config", e))
}

fn presigned(
    app: &App,
    request: &aws_sdk_s3::presigning::PresignedRequest,
    seconds: u64,
) -> Result<PresignedUrl, AppError> {
    let expires = app.now() + time::Duration::seconds(i64::try_from(seconds).unwrap_or(i64::MAX));
    // The headers the signature covers (the URL's X-Amz-SignedHeaders); no
    // other header the SDK added (a trace id) is the client's business.
    let signed: Vec<String> = request
        .uri()
        .split_once('?')
        .map(|(_, query)| form_urlencoded::parse(query.as_bytes()))
        .into_iter()
        .flatten()
        .filter(|(name, _)| name == "X-Amz-SignedHeaders")
        .flat_map(|(_, list)| list.split(';').map(str::to_owned).collect::<Vec<_>>())
        .collect();
    Ok(PresignedUrl {
        method: request.method().to_owned(),
        url: request.uri().to_owned(),
        headers: request
            .headers()
            .filter(|(name, _)| signed.iter().any(|s| s.eq_ignore_ascii_case(name)))
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_owned()))
            .collect(),
        expires_at: rfc3339(expires),
    })
}

/// A media route's target, read: the ids from the path, the media item and
/// the caller's participant item (one consistent BatchGetItem), and the S3
/// client with the bucket.
struct Opened<'a> {
    conversation_id: String,
    media_id: String,
    media: Option<MediaRecord>,
    participant: Option<chat_store::ParticipantRecord>,
    client: &'a aws_sdk_s3::Client,
    bucket: &'a str,
}

async fn open<'a>(
    app: &'a App,
    who: &Authenticated,
    raw_id: &str,
    raw_media_id: &str,
) -> Result<Opened<'a>, AppError> {
    require_person(who)?;
    let conversation_id = conversation_id(raw_id)?;
    let media_id = media_id(raw_media_id)?;
    let (client, bucket) = s3(app)?;
    let tenant = who.tenant.as_str();
    let keys = vec![
        store::media_key(tenant, &conversation_id, &media_id),
        chat_store::participant_key(tenant, &conversation_id, &who.principal.id),
    ];
    let mut found =
        crate::store::get_many(&app.clients.dynamodb, &app.config.table_name, keys).await?.into_iter();
    let media = found.next().flatten().map(store::decode_media).transpose()?;
    let participant = found.next().flatten().map(chat_store::decode_participant).transpose()?;
    Ok(Opened { conversation_id, media_id, media, participant, client, bucket })
}

/// A media item that is there for its participants: not deleted, and not a
/// pending one past its time.
fn live(media: Option<MediaRecord>, now: i64) -> Result<MediaRecord, AppError> {
    media
        .filter(|m| m.status != MediaStatus::Deleted)
        .filter(|m| m.status != MediaStatus::Pending || m.expires_at.is_some_and(|at| at > now))
        .ok_or_else(media_not_found)
}

/// `POST /v1/conversations/{id}/media`: see the module's documentation. 201.
pub async fn request_upload(
    app: &App,
    ctx: &RequestContext,
    who: &Authenticated,
    raw_id: &str,
    request: UploadRequest,
) -> Result<UploadTicket, AppError> {
    require_person(who)?;
    let conversation_id = conversation_id(raw_id)?;
    let (content_type, size) = checked(&request)?;
    let (client, bucket) = s3(app)?;
    let tenant = who.tenant.as_str();
    let table = &app.config.table_name;
    let me = &who.principal.id;
    let now = app.now();
    let media_id = crate::ids::new_id();
    let record = MediaRecord {
        tenant_id: tenant.to_owned(),
        conversation_id: conversation_id.clone(),
        media_id: media_id.clone(),
        uploader_id: me.clone(),
        content_type: content_type.clone(),
        size,
        object_key: store::object_key(tenant, &conversation_id, &media_id),
        status: MediaStatus::Pending,
        created_at: rfc3339(now),
        completed_at: None,
        deleted_at: None,
        expires_at: Some(now.unix_timestamp() + PENDING_SECONDS),
    };
    let limit = Counter::per_principal(OPERATION, &who.principal, app.config.rate_limits.uploads, now);
    let requested = event(
        who,
        ctx,
        &conversation_id,
        "media.requested",
        now,
        json!({
            "conversation_id": conversation_id,
            "media_id": media_id,
            "uploader_id": me,
            "content_type": content_type,
            "size": size,
        }),
    );
    let mut tx = Tx::new(table, &requested)?
        .push(store::insert_media(table, &record)?)
        .push(chat_store::require_participant(table, tenant, &conversation_id, me, false)?)
        .push(ratelimit::action(table, ChatLabel::RateLimit, &limit)?);
    for check in caller_checks(table, who, false)? {
        tx = tx.push(check);
    }
    tx.commit(&app.clients.dynamodb).await.map_err(|error| {
        if let Some(refusal) = participant_refusal(&error) {
            return refusal;
        }
        if let Some(refused) = ratelimit::refused(&error, ChatLabel::RateLimit, &limit, app.now()) {
            return refused;
        }
        error.into_app_error()
    })?;
    let put = client
        .put_object()
        .bucket(bucket)
        .key(&record.object_key)
        .content_type(&content_type)
        .content_length(i64::try_from(size).map_err(|e| AppError::internal("size", e))?)
        .tagging(PENDING_TAG)
        .presigned(presigning(app, UPLOAD_URL_SECONDS)?)
        .await
        .map_err(|e| AppError::internal("presign upload", aws_sdk_s3::error::DisplayErrorContext(e)))?;
    tracing::info!(tenant, %conversation_id, %media_id, size, "upload requested");
    Ok(UploadTicket { media: MediaView::from(&record), upload: presigned(app, &put, UPLOAD_URL_SECONDS)? })
}

/// `POST /v1/conversations/{id}/media/{media_id}/complete`: the uploader
/// declares the upload done; it is checked and made ready (200, the item).
pub async fn complete(
    app: &App,
    ctx: &RequestContext,
    who: &Authenticated,
    raw_id: &str,
    raw_media_id: &str,
) -> Result<MediaView, AppError> {
    let Opened { conversation_id, media_id, media, participant, client, bucket } =
        open(app, who, raw_id, raw_media_id).await?;
    let tenant = who.tenant.as_str();
    let table = &app.config.table_name;
    let me = &who.principal.id;
    participant.ok_or_else(not_found)?;
    let mut media = live(media, app.now().unix_timestamp())?;
    if media.uploader_id != *me {
        return Err(AppError::forbidden("only its uploader completes an upload"));
    }
    if media.status == MediaStatus::Pending {
        let head = client.head_object().bucket(bucket).key(&media.object_key).send().await;
        let head = match head {
            Ok(head) => head,
            Err(error) if error.as_service_error().is_some_and(|e| e.is_not_found()) => {
                return Err(AppError::Unprocessable("nothing was uploaded for this media yet".into()));
            }
            Err(error) => return Err(s3_error("check upload", error)),
        };
        let length = head.content_length().and_then(|l| u64::try_from(l).ok());
        let stored_type = head.content_type().map(|t| t.trim().to_ascii_lowercase());
        if length != Some(media.size) || stored_type.as_deref() != Some(media.content_type.as_str()) {
            delete_object(client, bucket, &media.object_key).await?;
            tracing::info!(tenant, %conversation_id, %media_id, "upload refused: not as declared");
            return Err(AppError::Unprocessable(
                "the upload's size or content type is not what was declared; it was deleted (upload again)"
                    .into(),
            ));
        }
    }
    // The object stays: off the lifecycle rule's pending filter (again, for a retry).
    client
        .delete_object_tagging()
        .bucket(bucket)
        .key(&media.object_key)
        .send()
        .await
        .map_err(|e| s3_error("untag upload", e))?;
    if media.status == MediaStatus::Ready {
        return Ok(MediaView::from(&media));
    }
    let now = app.now();
    let at = rfc3339(now);
    let uploaded = event(
        who,
        ctx,
        &conversation_id,
        "media.uploaded",
        now,
        json!({
            "conversation_id": conversation_id,
            "media_id": media_id,
            "uploader_id": me,
            "content_type": media.content_type,
            "size": media.size,
        }),
    );
    let mut tx = Tx::new(table, &uploaded)?
        .push(store::mark_ready(table, tenant, &conversation_id, &media_id, me, &at, now.unix_timestamp())?)
        .push(chat_store::require_participant(table, tenant, &conversation_id, me, false)?);
    for check in caller_checks(table, who, false)? {
        tx = tx.push(check);
    }
    if let Err(error) = tx.commit(&app.clients.dynamodb).await {
        if let Some(refusal) = participant_refusal(&error) {
            return Err(refusal);
        }
        return match error.condition_failed(ChatLabel::Media).map(|f| f.item.clone()) {
            // Completed by a concurrent call: the same answer.
            Some(Some(item)) => {
                let stored = store::decode_media(item)?;
                if stored.status == MediaStatus::Ready {
                    Ok(MediaView::from(&stored))
                } else {
                    Err(media_not_found())
                }
            }
            Some(None) => Err(media_not_found()),
            None => Err(error.into_app_error()),
        };
    }
    media.status = MediaStatus::Ready;
    media.completed_at = Some(at);
    tracing::info!(tenant, %conversation_id, %media_id, "upload completed");
    Ok(MediaView::from(&media))
}

/// `GET /v1/conversations/{id}/media/{media_id}`: the item and, once ready,
/// a short-lived download URL; participants only.
pub async fn get(
    app: &App,
    who: &Authenticated,
    raw_id: &str,
    raw_media_id: &str,
) -> Result<MediaWithDownload, AppError> {
    let Opened { media, participant, client, bucket, .. } = open(app, who, raw_id, raw_media_id).await?;
    participant.ok_or_else(not_found)?;
    let media = live(media, app.now().unix_timestamp())?;
    let download = if media.status == MediaStatus::Ready {
        let get = client
            .get_object()
            .bucket(bucket)
            .key(&media.object_key)
            .presigned(presigning(app, DOWNLOAD_URL_SECONDS)?)
            .await
            .map_err(|e| AppError::internal("presign download", aws_sdk_s3::error::DisplayErrorContext(e)))?;
        Some(presigned(app, &get, DOWNLOAD_URL_SECONDS)?)
    } else {
        None
    };
    Ok(MediaWithDownload { media: MediaView::from(&media), download })
}

/// `DELETE /v1/conversations/{id}/media/{media_id}`: its uploader, the
/// conversation's admins, the tenant's owners and admins (who need not be
/// participants) → 204.
pub async fn delete(
    app: &App,
    ctx: &RequestContext,
    who: &Authenticated,
    raw_id: &str,
    raw_media_id: &str,
) -> Result<(), AppError> {
    let Opened { conversation_id, media_id, media, participant, client, bucket } =
        open(app, who, raw_id, raw_media_id).await?;
    let tenant = who.tenant.as_str();
    let table = &app.config.table_name;
    let me = &who.principal.id;
    if participant.is_none() && !who.principal.can_manage_users() {
        return Err(not_found());
    }
    let media = media.ok_or_else(media_not_found)?;
    if media.status != MediaStatus::Deleted {
        let deleter = super::Deleter::of(who, &media.uploader_id, participant.as_ref()).ok_or_else(|| {
            AppError::forbidden(
                "only its uploader, the conversation's admins and the tenant's owners and admins delete media",
            )
        })?;
        let now = app.now();
        let at = rfc3339(now);
        let expires = now.unix_timestamp() + TOMBSTONE_SECONDS;
        let deleted = event(
            who,
            ctx,
            &conversation_id,
            "media.deleted",
            now,
            json!({ "conversation_id": conversation_id, "media_id": media_id, "uploader_id": media.uploader_id }),
        );
        let owner = deleter.owner(me);
        let tx = Tx::new(table, &deleted)?.push(store::mark_deleted(
            table,
            tenant,
            &conversation_id,
            &media_id,
            owner,
            &at,
            expires,
        )?);
        // Deleted meanwhile: the object is deleted below all the same.
        let already_deleted = |item| Ok(store::decode_media(item)?.status == MediaStatus::Deleted);
        deleter.commit(app, tx, who, &conversation_id, ChatLabel::Media, already_deleted).await?;
    }
    delete_object(client, bucket, &media.object_key).await?;
    tracing::info!(tenant, %conversation_id, %media_id, "media deleted");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declarations_and_attachments_are_checked() {
        let ok = UploadRequest { content_type: "Image/PNG".into(), size: 10 };
        assert_eq!(checked(&ok).ok(), Some(("image/png".to_owned(), 10)));
        for (content_type, size) in
            [("image/svg+xml", 10), ("text/html", 10), ("image/png; charset=x", 10), ("image/png", 0)]
        {
            let bad = UploadRequest { content_type: content_type.into(), size };
            assert!(checked(&bad).is_err(), "{content_type} {size}");
        }
        assert!(checked(&UploadRequest { content_type: "image/png".into(), size: MAX_SIZE + 1 }).is_err());
        let id = crate::ids::new_id();
        assert_eq!(attachment_ids(std::slice::from_ref(&id)).ok(), Some(vec![id.clone()]));
        assert!(attachment_ids(&[id.clone(), id.clone()]).is_err(), "twice");
        assert!(attachment_ids(&["x".to_owned()]).is_err());
        assert!(attachment_ids(&vec![crate::ids::new_id(); MAX_ATTACHMENTS + 1]).is_err());
        for (body, size) in [
            (r#"{"content_type":"image/png","size":3.0}"#, Some(3)),
            (r#"{"content_type":"image/png","size":-1}"#, None),
            (r#"{"content_type":"image/png","size":1.5}"#, None),
        ] {
            assert_eq!(serde_json::from_str::<UploadRequest>(body).ok().map(|r| r.size), size, "{body}");
        }
    }
}
