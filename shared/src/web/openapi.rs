//! The OpenAPI description's shared parts. Each route declares its operation beside its handler
//! (`#[utoipa::path]`), and the routers are built from those declarations (`utoipa_axum`), so
//! the document and the routes cannot drift. Here, what the document adds around them: each
//! status's error envelope (`Error404`: `ErrorBody` whose `error_code` is one of the 404 codes),
//! the errors every operation may answer, including those the layers give before any route
//! runs, event streams in OpenAPI 3.1's terms, the security schemes, the document's header, and
//! what multipart forms share.

use super::error::{ERROR_CODES, ErrorBody, code_enum};
use utoipa::IntoResponses;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{AllOfBuilder, ObjectBuilder, OneOfBuilder, Schema};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{InfoBuilder, OpenApi, Ref, RefOr};

/// The name of the envelope schema of `status` (`Error404`): `ErrorBody` with the codes of that
/// status alone.
fn envelope_name(status: impl std::fmt::Display) -> String {
    format!("Error{status}")
}

/// The errors any operation may answer with; each is the envelope (the document rewrites each
/// to its status's own, see [`document`]).
#[derive(IntoResponses)]
#[allow(dead_code)] // A description for the document; never built.
pub enum ApiErrors {
    /// Malformed: an invalid id, a body that cannot be read, a foreign file type.
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// No or an unknown API key.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// The key may not use this route.
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// No such resource (or someone else's).
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// The request body stopped arriving (`BODY_IDLE_TIMEOUT_SECONDS`).
    #[response(status = 408)]
    Timeout(ErrorBody),
    /// The resource's state does not allow it.
    #[response(status = 409)]
    Conflict(ErrorBody),
    /// Too large a body, file or image.
    #[response(status = 413)]
    TooLarge(ErrorBody),
    /// A body of another media type than the route reads.
    #[response(status = 415)]
    UnsupportedMediaType(ErrorBody),
    /// A value out of range or of the wrong shape.
    #[response(status = 422)]
    Invalid(ErrorBody),
    /// Rate limit or daily quota reached (`Retry-After`, unless no wait lets the request through).
    #[response(status = 429)]
    TooMany(ErrorBody),
    /// A dependency did not answer.
    #[response(status = 503)]
    Unavailable(ErrorBody),
}

/// The document around the operations the routers declared.
pub fn document(mut api: OpenApi) -> OpenApi {
    api.info = InfoBuilder::new()
        .title("image2model")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "Photos in, 3D models (glTF binary) out. Authenticate with `Authorization: Bearer <key>` \
             or `X-API-Key: <key>`. Every error is the JSON envelope of `ErrorBody`.",
        ))
        .build();
    let components = api.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
    );
    components.add_security_scheme(
        "api_key",
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
    );
    every_operation(&mut api, answer_what_the_layers_refuse);
    every_operation(&mut api, stream_items);
    every_operation(&mut api, narrow_error_envelopes);
    add_error_envelopes(&mut api);
    for name in multipart_forms(&api) {
        let schemas = &mut api.components.get_or_insert_with(Default::default).schemas;
        if let Some(RefOr::T(Schema::Object(form))) = schemas.get_mut(&name) {
            form.property_names = Some(Box::new(field_name_schema()));
        }
    }
    api
}

/// Calls `change` on every operation of the document.
fn every_operation(api: &mut OpenApi, change: fn(&mut Operation)) {
    for item in api.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        operations.into_iter().flatten().for_each(change);
    }
}

/// What the layers around every route refuse before it runs (`layers.rs`, and the local
/// server's connection cap), whatever the route declares.
const LAYER_REFUSALS: [(&str, &str); 2] = [
    (
        "400",
        "A header that takes one value sent twice, or a request axum could not read",
    ),
    (
        "429",
        "Over a rate limit, or (local server) too many connections from one client",
    ),
];

/// Adds [`LAYER_REFUSALS`] to an operation that does not already answer them.
fn answer_what_the_layers_refuse(op: &mut Operation) {
    for (status, description) in LAYER_REFUSALS {
        op.responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| {
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("ErrorBody")))
                            .build(),
                    )
                    .into()
            });
    }
}

/// An event stream's schema, in OpenAPI 3.1's terms (3.2's `itemSchema` is not 3.1, and the
/// generators we test with read 3.1 only): each event as the route declares it (what schemathesis
/// validates every event of a stream against), or the whole body as text (what a client that
/// reads the body at once, as generated clients do, receives).
fn stream_items(op: &mut Operation) {
    for response in op.responses.responses.values_mut() {
        let RefOr::T(response) = response else {
            continue;
        };
        if let Some(RefOr::T(content)) = response.content.get_mut("text/event-stream")
            && let Some(event) = content.schema.take()
        {
            let text = ObjectBuilder::new()
                .schema_type(utoipa::openapi::Type::String)
                .content_media_type("text/event-stream")
                .description(Some("The whole stream as text, read at once"));
            content.schema = Some(OneOfBuilder::new().item(event).item(text).into());
        }
    }
}

/// Points every error answer at its status's envelope (`Error404` for a 404 of `ErrorBody`).
fn narrow_error_envelopes(op: &mut Operation) {
    let generic = Ref::from_schema_name("ErrorBody").ref_location;
    for (status, response) in op.responses.responses.iter_mut() {
        let RefOr::T(response) = response else {
            continue;
        };
        for content in response.content.values_mut() {
            let RefOr::T(content) = content else {
                continue;
            };
            if matches!(&content.schema, Some(RefOr::Ref(r)) if r.ref_location == generic) {
                content.schema = Some(Ref::from_schema_name(envelope_name(status)).into());
            }
        }
    }
}

/// The envelope of each status an operation answers (`Error404`: `ErrorBody` whose
/// `error_code` is one of the 404 codes of [`ERROR_CODES`]).
fn add_error_envelopes(api: &mut OpenApi) {
    let document = serde_json::to_string(&*api).unwrap_or_default();
    let components = api.components.get_or_insert_with(Default::default);
    for (status, codes) in ERROR_CODES {
        let name = envelope_name(status);
        if !document.contains(&format!("\"#/components/schemas/{name}\"")) {
            continue;
        }
        let narrowed = AllOfBuilder::new()
            .item(Ref::from_schema_name("ErrorBody"))
            .item(
                ObjectBuilder::new()
                    .property("error_code", code_enum(codes.iter().copied()))
                    .required("error_code"),
            )
            .description(Some(format!("The error envelope of a {status} answer.")))
            .build();
        components
            .schemas
            .insert(name, Schema::AllOf(narrowed).into());
    }
}

/// A multipart field's name travels in a part header, where control characters other than tab
/// cannot be written (CR and LF are escaped by clients as `%0D` and `%0A`). Forms accept fields
/// they do not know, as the old API did, but only under names a header can carry.
const FIELD_NAME_PATTERN: &str = "^[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f]*$";

fn field_name_schema() -> Schema {
    ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .pattern(Some(FIELD_NAME_PATTERN))
        .into()
}

/// The component names of the schemas of every `multipart/form-data` request body.
fn multipart_forms(api: &OpenApi) -> Vec<String> {
    let operations = api.paths.paths.values().flat_map(|item| {
        [&item.get, &item.put, &item.post, &item.delete, &item.patch]
            .into_iter()
            .flatten()
    });
    operations
        .filter_map(|op| match &op.request_body {
            Some(RefOr::T(body)) => Some(body),
            _ => None,
        })
        .filter_map(|body| match body.content.get("multipart/form-data") {
            Some(RefOr::T(content)) => match &content.schema {
                Some(RefOr::Ref(r)) => r.ref_location.rsplit('/').next().map(str::to_owned),
                _ => None,
            },
            _ => None,
        })
        .collect()
}
