//! The dashboard's state-changing forms: log in and out, "Scan all", "Scan
//! now" on a volume, and cancel a run. Each checks, in this order, that the
//! request comes from this origin, the per-client rate limit (the API's),
//! and the session's CSRF token when `AUTH_TOKEN` is set (see
//! `session.rs`); then it asks the scheduler, exactly as the API does, and
//! answers `303 See Other` back to the page it came from.

use std::time::Instant;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::html;
use serde::Deserialize;

use super::session::{self, Viewer};
use super::{Nav, encode, error_page, layout, page, see_other};
use crate::guard::{constant_time_eq, rate_limit};
use crate::hosts::{HostQuery, Named};
use crate::routes::volume_name;
use crate::{ApiError, AppState};

/// The fields every action form sends.
#[derive(Deserialize)]
pub(crate) struct ActionForm {
    csrf: Option<String>,
    back: Option<String>,
}

/// Origin, rate limit and CSRF, in that order; the viewer when all pass,
/// else the answer to send.
fn guard(
    request: &HttpRequest,
    state: &AppState,
    form: &ActionForm,
) -> Result<Viewer, HttpResponse> {
    let viewer = Viewer::of(request, &state.pages.sessions, state.auth_token.is_some());
    let back = session::local_path(form.back.as_deref());
    let refuse = |status: StatusCode, message: &str| {
        let body =
            html! { h1 { "Refused" } p.notice.error { (message) } p { a href=(back) { "Back" } } };
        page(status, layout("Refused", Nav::Other, &viewer, &back, body))
    };
    if !session::same_origin(request) {
        return Err(refuse(StatusCode::FORBIDDEN, "This form was sent from another site."));
    }
    if let Err(err) = rate_limit(request, &state.limiter) {
        return Err(error_page(&err, &viewer, &back));
    }
    if viewer.auth && viewer.session.is_none() {
        return Err(see_other(&format!("/login?next={}", encode(&back))));
    }
    if !viewer.accepts(form.csrf.as_deref().unwrap_or("")) {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            "This form is out of date (its session ended); reload the page and try again.",
        ));
    }
    Ok(viewer)
}

/// Runs `action` once `guard` lets the form through, then answers: back
/// to the page the form came from, or the scheduler's refusal as a page.
/// `action` is a future, so nothing of it runs when the guard refuses.
async fn act(
    request: &HttpRequest,
    state: &AppState,
    form: &ActionForm,
    action: impl Future<Output = Result<(), ApiError>>,
) -> HttpResponse {
    let viewer = match guard(request, state, form) {
        Ok(viewer) => viewer,
        Err(answer) => return answer,
    };
    let back = session::local_path(form.back.as_deref());
    match action.await {
        Ok(()) => see_other(&back),
        Err(err) => error_page(&err, &viewer, &back),
    }
}

/// `POST /actions/scan-all`.
pub(crate) async fn scan_all(
    request: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<ActionForm>,
) -> HttpResponse {
    let action = async { state.scheduler.scan_all().await.map(drop).map_err(ApiError::from) };
    act(&request, &state, &form, action).await
}

/// `POST /actions/scan/{name}?host=ID` (another host's volume: queued for that host).
pub(crate) async fn scan_volume(
    request: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    host: web::Query<HostQuery>,
    form: web::Form<ActionForm>,
) -> HttpResponse {
    let action = async {
        let name = volume_name(&path)?;
        let queued = match host.named(&state, false)? {
            Named::Other(host) => state.scheduler.scan_volume_on(&host, name).await,
            _ => state.scheduler.scan_volume(name).await,
        };
        queued.map(drop).map_err(ApiError::from)
    };
    act(&request, &state, &form, action).await
}

/// `POST /actions/cancel/{scan_id}`.
pub(crate) async fn cancel(
    request: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: web::Form<ActionForm>,
) -> HttpResponse {
    let action = async {
        let id =
            path.parse().map_err(|_| ApiError::ScanNotFound(path.chars().take(64).collect()))?;
        state.scheduler.cancel(id).await.map(drop).map_err(ApiError::from)
    };
    act(&request, &state, &form, action).await
}

/// Query of `GET /login`.
#[derive(Deserialize)]
pub(crate) struct LoginQuery {
    next: Option<String>,
}

/// The login page, with `problem` above the form.
fn login_page(
    status: StatusCode,
    viewer: &Viewer,
    next: &str,
    problem: Option<&str>,
) -> HttpResponse {
    let body = html! {
        h1 { "Log in" }
        p { "This volscan asks for its access token (" code { "AUTH_TOKEN" } ") before it "
            "lets anyone scan or cancel." }
        @if let Some(problem) = problem { p.notice.error role="alert" { (problem) } }
        form method="post" action="/login" {
            input type="hidden" name="next" value=(next);
            p { label for="token" { "Token" } br;
                input #token type="password" name="token" required autocomplete="current-password" autofocus; }
            p { button type="submit" { "Log in" } }
        }
        p.muted { "The token is checked once; the browser then holds only a session cookie that "
            "scripts cannot read, valid for 12 hours." }
    };
    page(status, layout("Log in", Nav::Other, viewer, next, body))
}

/// `GET /login?next=PATH`.
pub(crate) async fn login_form(
    request: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<LoginQuery>,
) -> HttpResponse {
    let next = session::local_path(query.next.as_deref());
    let viewer = Viewer::of(&request, &state.pages.sessions, state.auth_token.is_some());
    if !viewer.auth || viewer.session.is_some() {
        return see_other(&next);
    }
    login_page(StatusCode::OK, &viewer, &next, None)
}

/// The login form's fields.
#[derive(Deserialize)]
pub(crate) struct LoginForm {
    token: String,
    next: Option<String>,
}

/// `POST /login`: the token for a session cookie.
pub(crate) async fn login(
    request: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<LoginForm>,
) -> HttpResponse {
    let next = session::local_path(form.next.as_deref());
    let viewer = Viewer::of(&request, &state.pages.sessions, state.auth_token.is_some());
    let Some(token) = state.auth_token.as_deref() else { return see_other(&next) };
    if !session::same_origin(&request) {
        return login_page(
            StatusCode::FORBIDDEN,
            &viewer,
            &next,
            Some("This form was sent from another site."),
        );
    }
    if let Err(err) = rate_limit(&request, &state.limiter) {
        return login_page(StatusCode::TOO_MANY_REQUESTS, &viewer, &next, Some(&err.to_string()));
    }
    if !constant_time_eq(form.token.as_bytes(), token.as_bytes()) {
        let peer = request.peer_addr().map(|addr| addr.ip().to_string()).unwrap_or_default();
        tracing::warn!(client = %peer, "dashboard login with a wrong token");
        return login_page(
            StatusCode::UNAUTHORIZED,
            &viewer,
            &next,
            Some("That is not the token."),
        );
    }
    let (id, _csrf) = state.pages.sessions.create(Instant::now());
    let mut response = see_other(&next);
    if let Err(err) = response.add_cookie(&session::cookie(id)) {
        tracing::error!(error = %err, "could not set the session cookie");
    }
    response
}

/// `POST /logout`.
pub(crate) async fn logout(
    request: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<ActionForm>,
) -> HttpResponse {
    let viewer = match guard(&request, &state, &form) {
        Ok(viewer) => viewer,
        Err(answer) => return answer,
    };
    if let Some((id, _)) = &viewer.session {
        state.pages.sessions.remove(id);
    }
    let mut response = see_other("/");
    if let Err(err) = response.add_cookie(&session::cleared()) {
        tracing::error!(error = %err, "could not clear the session cookie");
    }
    response
}
