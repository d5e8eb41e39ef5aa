//! Owners' webhook endpoints: registered with their URL checked and a signing secret made (shown
//! this once), listed (the admin sees every owner's), rotated (the old secret signs beside the
//! new one for a day), deleted with their deliveries. Anyone else's endpoint reads as not found.

use super::error::AppError;
use crate::context::AppContext;
use crate::domain::EndpointId;
use crate::domain::webhook::{EventType, WebhookEndpoint};
use crate::keys::Caller;
use crate::ports::StoreError;
use crate::webhooks::signature::SigningSecret;
use crate::webhooks::target::check_url;
use chrono::Utc;

/// The longest description kept.
pub const MAX_DESCRIPTION: usize = 500;

/// What an owner asks to register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEndpoint {
    pub url: String,
    /// The events wanted (every one but `ping` when absent).
    pub events: Option<Vec<EventType>>,
    pub description: Option<String>,
}

/// An endpoint with its secret in clear, as answered once: at registration and rotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WithSecret {
    pub endpoint: WebhookEndpoint,
    pub secret: String,
}

/// Registers `new` for `owner`, within the owner's limit (`MAX_WEBHOOK_ENDPOINTS`).
pub async fn register(
    ctx: &AppContext,
    owner: &str,
    new: NewEndpoint,
) -> Result<WithSecret, AppError> {
    let url = check_url(new.url.trim(), ctx.config.webhooks.allow_private)
        .map_err(|why| AppError::invalid(format!("url: {why}"), Some("url")))?;
    if let Some(events) = &new.events {
        if events.is_empty() {
            return Err(AppError::invalid(
                "events: name at least one, or leave it out for all",
                Some("events"),
            ));
        }
        if events.len() > EventType::DEFAULT.len() {
            return Err(AppError::invalid(
                format!(
                    "events: at most {} (each event once)",
                    EventType::DEFAULT.len()
                ),
                Some("events"),
            ));
        }
        if events.contains(&EventType::Ping) {
            return Err(AppError::invalid(
                "events: ping is sent by the test route only, to every endpoint",
                Some("events"),
            ));
        }
    }
    if new
        .description
        .as_ref()
        .is_some_and(|d| d.chars().count() > MAX_DESCRIPTION)
    {
        return Err(AppError::invalid(
            format!("description: at most {MAX_DESCRIPTION} characters"),
            Some("description"),
        ));
    }
    let secret = SigningSecret::generate().expose();
    let endpoint = WebhookEndpoint::new(
        owner,
        url.to_string(),
        new.events,
        new.description,
        secret.clone(),
        Utc::now(),
    );
    let limit = ctx.config.limits.max_webhook_endpoints;
    match ctx.webhooks.create_endpoint(&endpoint, limit).await {
        Ok(()) => Ok(WithSecret { endpoint, secret }),
        Err(StoreError::Conflict) => Err(AppError::TooManyEndpoints { limit }),
        Err(other) => Err(other.into()),
    }
}

/// The caller's endpoint `id` (any, for the admin).
pub async fn owned_endpoint(
    ctx: &AppContext,
    caller: &Caller,
    id: EndpointId,
) -> Result<WebhookEndpoint, AppError> {
    match ctx.webhooks.get_endpoint(id).await? {
        Some(e) if caller.is_admin || e.owner == caller.owner => Ok(e),
        _ => Err(AppError::EndpointNotFound(id)),
    }
}

/// The caller's endpoints, oldest first; every owner's for the admin.
pub async fn list_endpoints(
    ctx: &AppContext,
    caller: &Caller,
) -> Result<Vec<WebhookEndpoint>, AppError> {
    let owner = (!caller.is_admin).then_some(caller.owner.as_str());
    Ok(ctx.webhooks.list_endpoints(owner).await?)
}

/// A new secret for the caller's endpoint `id`; the old one signs beside it for a day.
pub async fn rotate_secret(
    ctx: &AppContext,
    caller: &Caller,
    id: EndpointId,
) -> Result<WithSecret, AppError> {
    for _ in 0..8 {
        let current = owned_endpoint(ctx, caller, id).await?;
        let secret = SigningSecret::generate().expose();
        let rotated = current.rotate(secret.clone(), Utc::now());
        match ctx.webhooks.update_endpoint(&rotated).await {
            Ok(()) => {
                return Ok(WithSecret {
                    endpoint: rotated,
                    secret,
                });
            }
            Err(StoreError::Conflict) => continue,
            Err(other) => return Err(other.into()),
        }
    }
    Err(AppError::Conflict)
}

/// Deletes the caller's endpoint `id` with its deliveries.
pub async fn delete_endpoint(
    ctx: &AppContext,
    caller: &Caller,
    id: EndpointId,
) -> Result<(), AppError> {
    owned_endpoint(ctx, caller, id).await?;
    Ok(ctx.webhooks.delete_endpoint(id).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::testing::{caller, context, context_with};

    fn new(url: &str) -> NewEndpoint {
        NewEndpoint {
            url: url.to_owned(),
            events: None,
            description: Some("shop previews".to_owned()),
        }
    }

    #[tokio::test]
    async fn an_owner_registers_sees_rotates_and_deletes_only_its_own_endpoints() {
        let t = context();
        let alice = caller("alice");
        let made = register(&t, "alice", new("https://example.com/hooks"))
            .await
            .unwrap();
        assert!(made.secret.starts_with("whsec_"));
        assert_eq!(made.endpoint.events, EventType::DEFAULT.to_vec());
        let id = made.endpoint.endpoint_id;
        assert_eq!(owned_endpoint(&t, &alice, id).await.unwrap(), made.endpoint);
        assert!(matches!(
            owned_endpoint(&t, &caller("bob"), id).await,
            Err(AppError::EndpointNotFound(_))
        ));
        assert!(list_endpoints(&t, &caller("bob")).await.unwrap().is_empty());
        let admin = Caller {
            owner: "admin".into(),
            is_admin: true,
        };
        assert_eq!(list_endpoints(&t, &admin).await.unwrap().len(), 1);

        let rotated = rotate_secret(&t, &alice, id).await.unwrap();
        assert_ne!(rotated.secret, made.secret);
        let now = Utc::now();
        assert_eq!(
            rotated.endpoint.signing_secrets(now).collect::<Vec<_>>(),
            [rotated.secret.as_str(), made.secret.as_str()]
        );
        assert!(matches!(
            delete_endpoint(&t, &caller("bob"), id).await,
            Err(AppError::EndpointNotFound(_))
        ));
        delete_endpoint(&t, &alice, id).await.unwrap();
        assert!(list_endpoints(&t, &alice).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn urls_events_descriptions_and_the_limit_are_checked() {
        let t = context_with(|c| c.limits.max_webhook_endpoints = 1);
        for (url, field) in [
            ("http://example.com/hooks", "url"),
            ("https://127.0.0.1/hooks", "url"),
            ("https://169.254.169.254/latest", "url"),
            ("not a url", "url"),
        ] {
            let err = register(&t, "alice", new(url)).await.unwrap_err();
            assert!(
                matches!(&err, AppError::Invalid { field: Some(f), .. } if f == field),
                "{url}: {err:?}"
            );
        }
        for events in [vec![], vec![EventType::Ping]] {
            let mut asked = new("https://example.com/x");
            asked.events = Some(events);
            assert!(register(&t, "alice", asked).await.is_err());
        }
        let mut long = new("https://example.com/x");
        long.description = Some("d".repeat(MAX_DESCRIPTION + 1));
        assert!(register(&t, "alice", long).await.is_err());
        register(&t, "alice", new("https://example.com/1"))
            .await
            .unwrap();
        assert!(matches!(
            register(&t, "alice", new("https://example.com/2")).await,
            Err(AppError::TooManyEndpoints { limit: 1 })
        ));
        register(&t, "bob", new("https://example.com/2"))
            .await
            .unwrap();

        let local = context_with(|c| c.webhooks.allow_private = true);
        assert!(
            register(&local, "alice", new("http://127.0.0.1:9/hook"))
                .await
                .is_ok()
        );
    }
}
