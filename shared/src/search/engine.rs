//! The search engine behind one interface, [`Engine`], so a managed engine
//! (OpenSearch Serverless) can take the place of [`TableIndex`], the index
//! of our own in the table ([`crate::store::search`]). The services of
//! [`super::queries`] and [`super::indexer`] only call this trait; what they
//! get back are candidates, which they check against the items themselves
//! (the caller's membership, the message's current text, the person's
//! current name) before showing anything.

use crate::app::App;
use crate::clock::rfc3339;
use crate::error::AppError;
use crate::privacy::lookup::{self, LookupKey};
use crate::store::search::{self as store, DocRecord, PostingRecord, Scope};
use std::collections::{BTreeSet, HashSet};

/// Distinct tokens of one message that are indexed (the first ones in the text).
pub const MAX_MESSAGE_TOKENS: usize = 50;
/// Distinct tokens of one display name that are indexed (each with its prefixes).
pub const MAX_NAME_TOKENS: usize = 8;
/// Postings one query page reads from DynamoDB at most (then it stops with a cursor).
pub const MAX_EXAMINED: usize = 500;
const QUERY_PAGE: i32 = 100;
/// Hex digits of a term hash in a posting's `terms` (the `contains` filter):
/// 32 bits for messages (a false match is dropped when the text is checked),
/// 64 for names.
const SHORT_MESSAGE: usize = 8;
const SHORT_NAME: usize = 16;

/// A message the index found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageHit {
    pub message_id: String,
    pub conversation_id: String,
    pub seq: u64,
}

/// A page of candidates and where the next one starts (a document id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hits<T> {
    pub hits: Vec<T>,
    pub next: Option<String>,
}

/// A search engine: documents in, candidates out. Static dispatch only.
#[allow(async_fn_in_trait)]
pub trait Engine {
    /// Indexes message `seq` of a conversation as `content` (its id and
    /// text), replacing what it was indexed as; `None` removes it.
    async fn index_message(
        &self,
        tenant: &str,
        conversation_id: &str,
        seq: u64,
        content: Option<(&str, &str)>,
    ) -> Result<(), AppError>;

    /// Indexes a person of the directory by display name; `None` removes them.
    async fn index_person(&self, tenant: &str, user_id: &str, name: Option<&str>) -> Result<(), AppError>;

    /// Messages with every term as a whole token, newest first, in the
    /// conversations of `within` only, after the message id `after`; at most
    /// `want`.
    async fn messages(
        &self,
        tenant: &str,
        terms: &[String],
        within: &HashSet<String>,
        after: Option<&str>,
        want: usize,
    ) -> Result<Hits<MessageHit>, AppError>;

    /// People (user ids) whose name has a token starting with each term, in
    /// user-id order, after `after`; at most `want`.
    async fn people(
        &self,
        tenant: &str,
        terms: &[String],
        after: Option<&str>,
        want: usize,
    ) -> Result<Hits<String>, AppError>;
}

/// The index in the table: postings per term hash (see [`crate::store::search`]).
pub struct TableIndex<'a> {
    app: &'a App,
}

impl<'a> TableIndex<'a> {
    pub fn new(app: &'a App) -> Self {
        Self { app }
    }

    async fn key(&self) -> Result<&'a LookupKey, AppError> {
        lookup::key(self.app).await
    }

    /// Replaces the postings of document `name` with `terms` (term → short
    /// hashes of all), writing only what changed; the document item last.
    async fn replace(
        &self,
        tenant: &str,
        scope: Scope,
        name: &str,
        posting: Option<(PostingRecord, Vec<String>)>,
    ) -> Result<(), AppError> {
        let (dynamodb, table) = (&self.app.clients.dynamodb, &self.app.config.table_name);
        let doc_key = store::doc_key(tenant, scope, name);
        let old =
            crate::store::get(dynamodb, table, doc_key.clone()).await?.map(store::decode_doc).transpose()?;
        let old_terms: BTreeSet<String> =
            old.as_ref().map(|d| d.terms.iter().cloned().collect()).unwrap_or_default();
        let old_doc = old.as_ref().map(|d| d.doc.clone());
        match posting {
            None => {
                let Some(doc) = old_doc else { return Ok(()) };
                let mut deletes: Vec<_> =
                    old_terms.iter().map(|t| store::posting_key(tenant, scope, t, &doc)).collect();
                deletes.push(doc_key);
                store::write(dynamodb, table, Vec::new(), deletes).await
            }
            Some((record, terms)) => {
                let new_terms: BTreeSet<String> = terms.iter().cloned().collect();
                if new_terms == old_terms && old_doc.as_deref() == Some(record.doc.as_str()) {
                    return Ok(());
                }
                let mut puts = Vec::with_capacity(new_terms.len() + 1);
                for term in &new_terms {
                    puts.push(store::posting_item(scope, term, &record)?);
                }
                let deletes = match &old_doc {
                    Some(doc) => old_terms
                        .iter()
                        .filter(|t| !new_terms.contains(*t) || *doc != record.doc)
                        .map(|t| store::posting_key(tenant, scope, t, doc))
                        .collect(),
                    None => Vec::new(),
                };
                store::write(dynamodb, table, puts, deletes).await?;
                let doc = DocRecord {
                    tenant_id: tenant.to_owned(),
                    doc: record.doc.clone(),
                    terms: new_terms.into_iter().collect(),
                    indexed_at: rfc3339(self.app.now()),
                };
                store::write(dynamodb, table, vec![store::doc_item(scope, name, &doc)?], Vec::new()).await
            }
        }
    }

    /// The full (pk) and short (filter) hashes of `terms`.
    fn hashed(
        key: &LookupKey,
        tenant: &str,
        scope: Scope,
        terms: &[String],
        short: usize,
    ) -> Vec<(String, String)> {
        terms
            .iter()
            .map(|t| {
                let full = lookup::hex(&key.search_term(tenant, scope.code(), t)[..16]);
                let short = full[..short].to_owned();
                (full, short)
            })
            .collect()
    }

    /// Reads postings of the query's lead term (its longest: likely the
    /// rarest) that have the other terms, until `keep` has accepted `want + 1`
    /// or [`MAX_EXAMINED`] postings were read.
    #[allow(clippy::too_many_arguments)]
    async fn scan<T>(
        &self,
        tenant: &str,
        scope: Scope,
        terms: &[String],
        short: usize,
        after: Option<&str>,
        newest_first: bool,
        want: usize,
        mut keep: impl FnMut(&PostingRecord) -> Option<T>,
        doc_of: impl Fn(&T) -> String,
    ) -> Result<Hits<T>, AppError> {
        let key = self.key().await?;
        let mut hashed = Self::hashed(key, tenant, scope, terms, short);
        let lead = hashed
            .iter()
            .enumerate()
            .max_by_key(|(n, _)| (terms[*n].chars().count(), std::cmp::Reverse(*n)))
            .map(|(n, _)| n)
            .ok_or_else(|| AppError::Internal("a search without terms".into()))?;
        let (lead, _) = hashed.remove(lead);
        let also: Vec<String> = hashed.into_iter().map(|(_, short)| short).collect();
        let mut hits = Vec::new();
        let mut examined = 0;
        let mut start = after.map(str::to_owned);
        loop {
            let (page, next) = store::postings_page(
                &self.app.clients.dynamodb,
                &self.app.config.table_name,
                tenant,
                scope,
                &lead,
                &also,
                start.as_deref(),
                newest_first,
                QUERY_PAGE,
            )
            .await?;
            for posting in &page {
                if let Some(hit) = keep(posting) {
                    hits.push(hit);
                    if hits.len() > want {
                        hits.truncate(want);
                        let next = hits.last().map(&doc_of);
                        return Ok(Hits { hits, next });
                    }
                }
            }
            examined += usize::try_from(QUERY_PAGE).unwrap_or(100);
            match next {
                Some(next) if examined < MAX_EXAMINED => start = Some(next),
                // Stopped before the end: the next page goes on from here.
                next => return Ok(Hits { hits, next }),
            }
        }
    }
}

impl Engine for TableIndex<'_> {
    async fn index_message(
        &self,
        tenant: &str,
        conversation_id: &str,
        seq: u64,
        content: Option<(&str, &str)>,
    ) -> Result<(), AppError> {
        let name = store::message_doc(conversation_id, seq);
        let posting = match content {
            None => None,
            Some((message_id, text)) => {
                let mut tokens = super::tokens::tokens(text);
                tokens.truncate(MAX_MESSAGE_TOKENS);
                let key = self.key().await?;
                let hashed = Self::hashed(key, tenant, Scope::Messages, &tokens, SHORT_MESSAGE);
                let record = PostingRecord {
                    tenant_id: tenant.to_owned(),
                    doc: message_id.to_owned(),
                    conversation_id: Some(conversation_id.to_owned()),
                    seq: Some(seq),
                    user_id: None,
                    terms: short_terms(&hashed),
                };
                Some((record, hashed.into_iter().map(|(full, _)| full).collect()))
            }
        };
        self.replace(tenant, Scope::Messages, &name, posting).await
    }

    async fn index_person(&self, tenant: &str, user_id: &str, name: Option<&str>) -> Result<(), AppError> {
        let doc = store::person_doc(user_id);
        let posting = match name {
            None => None,
            Some(name) => {
                let mut tokens = super::tokens::tokens(name);
                tokens.truncate(MAX_NAME_TOKENS);
                let mut prefixes: Vec<String> = Vec::new();
                for token in &tokens {
                    for prefix in super::tokens::prefixes(token) {
                        if !prefixes.contains(&prefix) {
                            prefixes.push(prefix);
                        }
                    }
                }
                let key = self.key().await?;
                let hashed = Self::hashed(key, tenant, Scope::People, &prefixes, SHORT_NAME);
                let record = PostingRecord {
                    tenant_id: tenant.to_owned(),
                    doc: user_id.to_owned(),
                    conversation_id: None,
                    seq: None,
                    user_id: Some(user_id.to_owned()),
                    terms: short_terms(&hashed),
                };
                Some((record, hashed.into_iter().map(|(full, _)| full).collect()))
            }
        };
        self.replace(tenant, Scope::People, &doc, posting).await
    }

    async fn messages(
        &self,
        tenant: &str,
        terms: &[String],
        within: &HashSet<String>,
        after: Option<&str>,
        want: usize,
    ) -> Result<Hits<MessageHit>, AppError> {
        self.scan(
            tenant,
            Scope::Messages,
            terms,
            SHORT_MESSAGE,
            after,
            true,
            want,
            |p| match (&p.conversation_id, p.seq) {
                (Some(conversation_id), Some(seq)) if within.contains(conversation_id) => Some(MessageHit {
                    message_id: p.doc.clone(),
                    conversation_id: conversation_id.clone(),
                    seq,
                }),
                _ => None,
            },
            |hit| hit.message_id.clone(),
        )
        .await
    }

    async fn people(
        &self,
        tenant: &str,
        terms: &[String],
        after: Option<&str>,
        want: usize,
    ) -> Result<Hits<String>, AppError> {
        self.scan(
            tenant,
            Scope::People,
            terms,
            SHORT_NAME,
            after,
            false,
            want,
            |p| p.user_id.clone(),
            Clone::clone,
        )
        .await
    }
}

/// The `terms` attribute: short hashes between spaces.
fn short_terms(hashed: &[(String, String)]) -> String {
    let mut out = String::from(" ");
    for (_, short) in hashed {
        out.push_str(short);
        out.push(' ');
    }
    out
}
