//! `GET /openapi.json` (SPEC §13): the OpenAPI 3.1 document of the API, made by
//! `utoipa` from the handlers' `#[utoipa::path]` attributes and the request and
//! response types themselves. The router registers each documented handler through
//! the same attribute (`utoipa_axum::routes!` in `mod.rs`), so a route cannot be
//! served without being described, nor described at a path it is not served on.
//!
//! What lives here is what no handler owns: the envelope of SPEC §2, the error codes,
//! the security schemes, and the responses every operation of a kind shares.

use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{Object, ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, OpenApi, RefOr, Response, ResponseBuilder};
use utoipa::{Modify, PartialSchema, ToSchema};

use axum::http::header;
use axum::response::{IntoResponse, Response as HttpResponse};

use crate::error::ApiError;

/// The document's frame; the operations come from the router (`mod.rs`).
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Passport",
        description = "Authentication of a live-video platform: mobile and password, HS256 tokens checked against server-side sessions, stream keys and play tickets for media servers, forward auth for proxies. Every body is the envelope `{code, msg, data}` (and `error` on failures).",
        license(name = "MIT"),
    ),
    paths(super::forward_auth::verify_with_path),
    tags(
        (name = "accounts", description = "Sign up, log in, the caller's profile and password"),
        (name = "sessions", description = "Refresh, log out, devices"),
        (name = "streams", description = "A streamer's streams, keys and play tickets"),
        (name = "media servers", description = "Hooks for nginx-rtmp, SRS and MediaMTX (allowed addresses only)"),
        (name = "forward auth", description = "For nginx auth_request, Traefik, Caddy and Envoy"),
        (name = "operations", description = "Liveness and readiness"),
    ),
)]
pub struct ApiDoc;

/// The document as served: the shared parts added once every route is in.
pub fn finish(doc: &mut OpenApi) {
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    Shared.modify(doc);
}

/// The document, serialized once, as a response.
#[derive(Clone)]
pub struct Served(axum::body::Bytes);

pub fn served(doc: &OpenApi) -> Served {
    Served(doc.to_json().expect("the document serializes").into())
}

impl IntoResponse for Served {
    fn into_response(self) -> HttpResponse {
        ([(header::CONTENT_TYPE, "application/json")], self.0).into_response()
    }
}

/// Every successful answer: `{code, msg, data}`, `code` equal to the HTTP status.
#[derive(ToSchema)]
#[schema(bound = "T: ToSchema")]
pub struct Success<T> {
    /// The HTTP status again.
    #[schema(example = 200)]
    pub code: u16,
    /// `ok`, in the request's language.
    pub msg: String,
    pub data: T,
}

/// Every failure: `{code, msg, data: null, error}`.
#[derive(ToSchema)]
pub struct Failure {
    /// The HTTP status again.
    #[schema(example = 401)]
    pub code: u16,
    /// A human message in the request's language (`Accept-Language`: en or zh).
    pub msg: String,
    pub data: Null,
    pub error: ErrorCode,
}

/// JSON `null`: the `data` of a failure, and of a success that has nothing to say.
pub struct Null;

impl PartialSchema for Null {
    fn schema() -> RefOr<Schema> {
        Object::builder().schema_type(Type::Null).into()
    }
}
impl ToSchema for Null {}

/// The machine code of a failure (SPEC §2), for clients to branch on.
pub struct ErrorCode;

impl PartialSchema for ErrorCode {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(ApiError::one_of_each().iter().map(ApiError::code)))
            .into()
    }
}
impl ToSchema for ErrorCode {}

/// The two ways to present an access token: SPEC's `JWT <token>`, and `Bearer`
/// (the names the handlers' `security(...)` use).
const SECURED: &str = "jwt";
const BEARER: &str = "bearer";

/// Adds the security schemes, and to each operation the failures every operation
/// of its kind can answer with, so that no handler repeats them:
/// - with a token: 401 (no, a bad or an ended session);
/// - with a JSON body: 400, 413 and 415;
/// - every operation: 503 when a store is down or the password hashers are busy.
pub struct Shared;

impl Modify for Shared {
    fn modify(&self, doc: &mut OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            SECURED,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "`JWT <access token>`, the scheme of the original service",
            ))),
        );
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components
            .schemas
            .insert(Failure::name().into_owned(), Failure::schema());
        components
            .schemas
            .insert(ErrorCode::name().into_owned(), ErrorCode::schema());
        components.schemas.insert(Null::name().into_owned(), Null::schema());
        for item in doc.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
                &mut item.head,
                &mut item.options,
            ]
            .into_iter()
            .flatten()
            {
                add_shared_failures(op);
            }
        }
    }
}

fn add_shared_failures(op: &mut Operation) {
    let secured = op.security.as_ref().is_some_and(|reqs| !reqs.is_empty());
    let has_json_body = op
        .request_body
        .as_ref()
        .is_some_and(|b| b.content.contains_key("application/json"));
    let mut add = |status: &str, why: &str| {
        op.responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| failure(why).into());
    };
    if secured {
        add(
            "401",
            "no token, a bad one, or its session ended (`WWW-Authenticate` says which)",
        );
    }
    if has_json_body {
        add("400", "`invalid_params`: the body is not JSON of the expected shape");
        add("413", "`payload_too_large`: the body is over 16 KiB");
        add("415", "`unsupported_media_type`: the body is not `application/json`");
    }
    add(
        "503",
        "`store_unavailable` or `busy`, with `Retry-After`: try again shortly",
    );
}

/// A failure response: the envelope with an error code.
pub fn failure(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            Content::new(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name("Failure")))),
        )
        .build()
}
