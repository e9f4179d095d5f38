//! An endpoint's events as the tenant sees them: each outbox row with its status, the body its
//! attempts post, the attempts themselves, a replay and a test event.

use missive_core::webhook::message_id;
use missive_core::{Scope, WebhookEventId, WebhookId};
use missive_store::WebhookEventRecord;

use super::Webhooks;
use super::views::{
    ListWebhookEventsQuery, WebhookAttemptList, WebhookAttemptView, WebhookEventList,
    WebhookEventRefView, WebhookEventView,
};
use crate::tenancy::caller::Caller;
use crate::tenancy::error::ServiceError;
use crate::tenancy::page::page_limit;

fn event_view(record: &WebhookEventRecord, payload: Option<serde_json::Value>) -> WebhookEventView {
    WebhookEventView {
        object: "webhook_event",
        message_id: message_id(record.id),
        id: record.id,
        kind: record.kind,
        status: record.status,
        attempts: record.attempts,
        next_attempt_at: (!record.status.is_final()).then_some(record.next_attempt_at),
        created_at: record.created_at,
        payload,
    }
}

impl Webhooks {
    /// A page of an endpoint's events, newest first.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`] for another tenant's or an unknown endpoint.
    pub async fn events(
        &self,
        caller: Caller<'_>,
        id: WebhookId,
        query: &ListWebhookEventsQuery,
    ) -> Result<WebhookEventList, ServiceError> {
        let reach = caller.require_reach(Scope::WebhooksManage)?;
        let limit = page_limit(query.limit)?;
        self.store.get_webhook(reach, id).await?;
        let (events, has_more) = self
            .store
            .list_webhook_events(reach, id, query.after, limit)
            .await?;
        Ok(WebhookEventList {
            object: "list",
            data: events.into_iter().map(|e| event_view(&e, None)).collect(),
            has_more,
        })
    }

    /// One event, with the body its attempts post.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`] for another endpoint's or an unknown event.
    pub async fn event(
        &self,
        caller: Caller<'_>,
        id: WebhookId,
        event_id: WebhookEventId,
    ) -> Result<WebhookEventView, ServiceError> {
        let reach = caller.require_reach(Scope::WebhooksManage)?;
        let (record, content) = self.store.get_webhook_event(reach, id, event_id).await?;
        let payload = serde_json::from_slice(&content.payload().body()).ok();
        Ok(event_view(&record, payload))
    }

    /// An event's attempts, oldest first.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`] for another endpoint's or an unknown event.
    pub async fn attempts(
        &self,
        caller: Caller<'_>,
        id: WebhookId,
        event_id: WebhookEventId,
    ) -> Result<WebhookAttemptList, ServiceError> {
        let reach = caller.require_reach(Scope::WebhooksManage)?;
        self.store.get_webhook_event(reach, id, event_id).await?;
        let attempts = self.store.webhook_attempts(reach, event_id).await?;
        Ok(WebhookAttemptList {
            object: "list",
            data: attempts
                .into_iter()
                .map(|a| WebhookAttemptView {
                    id: a.id.to_string(),
                    http_status_code: a.http_status,
                    response: a.response,
                    duration_ms: a.duration_ms,
                    sent_at: a.created_at,
                })
                .collect(),
            has_more: false,
        })
    }

    /// Sends an event again from the start of the retry schedule, with the same id and body.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`].
    pub async fn replay(
        &self,
        caller: Caller<'_>,
        id: WebhookId,
        event_id: WebhookEventId,
    ) -> Result<WebhookEventRefView, ServiceError> {
        let reach = caller.require_reach(Scope::WebhooksManage)?;
        self.store.replay_webhook_event(reach, id, event_id).await?;
        Ok(WebhookEventRefView {
            object: "webhook_event",
            id: event_id,
        })
    }

    /// Queues a test event for the endpoint (`email.sent` with `data.test`, no email).
    ///
    /// # Errors
    /// [`ServiceError::NotFound`].
    pub async fn test(
        &self,
        caller: Caller<'_>,
        id: WebhookId,
    ) -> Result<WebhookEventRefView, ServiceError> {
        let reach = caller.require_reach(Scope::WebhooksManage)?;
        let event_id = self.store.queue_test_webhook_event(reach, id).await?;
        Ok(WebhookEventRefView {
            object: "webhook_event",
            id: event_id,
        })
    }
}
