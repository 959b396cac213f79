//! The dashboard of SPEC §9: server-rendered HTML pages over the same
//! stored data as the API, never a scan on page load.
//!
//! Pages are maud templates: HTML written as Rust, checked by the compiler,
//! every interpolated value escaped unless marked otherwise (nothing here
//! is). maud was chosen over askama because a page is then ordinary Rust
//! (functions for the table row, the chart, the badge) with no template
//! files to keep in step and no runtime lookup. Every response carries a
//! Content-Security-Policy that allows only this server's own stylesheet,
//! script and images (no inline script or style), `nosniff`, and
//! `frame-ancestors 'none'`.
//!
//! | path | module |
//! | --- | --- |
//! | `/` | `overview.rs` (its volume table in `table.rs`) |
//! | `/volumes/{name}` | `volume.rs` |
//! | `/scans`, `/live/scans` | `scans.rs` |
//! | `/hosts` | `hosts.rs` |
//! | `/login`, `/logout`, `/actions/…` | `actions.rs` (sessions in `session.rs`) |
//! | `/assets/…` | `assets.rs` |

mod actions;
mod assets;
mod chart;
mod format;
mod hosts;
mod overview;
mod scans;
mod session;
mod table;
mod volume;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use maud::{DOCTYPE, Markup, html};
use volscan_domain::{ScanRun, ScanStatus, Timestamp};

use crate::{ApiError, AppState};
pub(crate) use chart::thin;
use session::{Sessions, Viewer};

/// What the pages keep between requests: the logged-in sessions, and the
/// overview's data of the current version.
#[derive(Default)]
pub(crate) struct Pages {
    sessions: Sessions,
    overview: crate::cache::Rendered<(), std::sync::Arc<overview::Read>>,
}

/// The Content-Security-Policy of every page: only this origin's files, no
/// inline script or style, no framing, forms only to this origin.
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; \
    frame-ancestors 'none'";

/// Adds the security headers every dashboard response carries.
fn secured(mut builder: actix_web::HttpResponseBuilder) -> actix_web::HttpResponseBuilder {
    builder
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::REFERRER_POLICY, "same-origin"));
    builder
}

/// An HTML page with `status`; never cached (it shows live figures).
fn page(status: StatusCode, markup: Markup) -> HttpResponse {
    secured(HttpResponse::build(status))
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(markup.into_string())
}

/// A `303 See Other` to a path on this server.
fn see_other(path: &str) -> HttpResponse {
    secured(HttpResponse::SeeOther()).insert_header((header::LOCATION, path)).finish()
}

/// Which page of the navigation is shown.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Nav {
    Overview,
    Scans,
    Hosts,
    Other,
}

/// The frame of every page: head, navigation, session controls, `body`.
fn layout(title: &str, nav: Nav, viewer: &Viewer, here: &str, body: Markup) -> Markup {
    let current = |which: Nav| (nav == which).then_some("page");
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { (title) " · volscan" }
                link rel="stylesheet" href=(assets::STYLE.path);
                link rel="icon" href=(assets::ICON.path) type="image/svg+xml";
                script src=(assets::SCRIPT.path) defer {}
            }
            body {
                header.top {
                    a.brand href="/" { "volscan" }
                    nav aria-label="Pages" {
                        a href="/" aria-current=[current(Nav::Overview)] { "Overview" }
                        a href="/scans" aria-current=[current(Nav::Scans)] { "Scans" }
                        a href="/hosts" aria-current=[current(Nav::Hosts)] { "Hosts" }
                        a href="/api/v1/openapi.json" { "API" }
                    }
                    div.session {
                        @if viewer.may_act() {
                            (action_button("/actions/scan-all", "Scan all", "secondary", viewer, here))
                        }
                        @if viewer.auth {
                            @if viewer.session.is_some() {
                                (action_button("/logout", "Log out", "secondary", viewer, here))
                            } @else {
                                a.button href={ "/login?next=" (encode(here)) } { "Log in" }
                            }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// A button that `POST`s a form to `action` with the CSRF field and the
/// page to come back to.
fn action_button(action: &str, label: &str, class: &str, viewer: &Viewer, back: &str) -> Markup {
    html! {
        form.inline method="post" action=(action) {
            input type="hidden" name="csrf" value=(viewer.csrf());
            input type="hidden" name="back" value=(back);
            button class=(class) type="submit" { (label) }
        }
    }
}

/// Percent-encodes everything but unreserved characters and `/`, for a
/// path or query value put into a link.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The path and query of `request`, to come back to after an action.
fn here(request: &HttpRequest) -> String {
    session::local_path(request.uri().path_and_query().map(|pq| pq.as_str()))
}

/// The viewer of `request`, or the redirect to `/login` when `AUTH_READ`
/// makes every page need a session and there is none.
fn reader(request: &HttpRequest, state: &AppState) -> Result<Viewer, HttpResponse> {
    let viewer = Viewer::of(request, &state.pages.sessions, state.auth_token.is_some());
    if state.auth_read && viewer.auth && viewer.session.is_none() {
        return Err(see_other(&format!("/login?next={}", encode(&here(request)))));
    }
    Ok(viewer)
}

/// An error as a page: its status and message. A 5xx says no more than
/// the API does ("internal error"); its cause goes to the log here.
fn error_page(err: &ApiError, viewer: &Viewer, here: &str) -> HttpResponse {
    let (status, _) = err.classify();
    if status.is_server_error() {
        tracing::error!(error = ?err, path = here, "dashboard page failed");
    }
    let body = html! {
        h1 { (status.canonical_reason().unwrap_or("Error")) }
        p.notice.error { (err.to_string()) }
        p { a href="/" { "Back to the overview" } }
    };
    page(status, layout("Error", Nav::Other, viewer, here, body))
}

/// A status badge for a run.
fn status_badge(status: ScanStatus) -> Markup {
    html! { span class={ "badge " (status.as_str()) } data-field="status" { (status.as_str()) } }
}

/// A queued or running run's progress: a bar (updated live by the script).
fn progress(run: &ScanRun) -> Markup {
    html! {
        progress max="100" value=(run.progress) aria-label="progress" { (run.progress) " %" }
        " " span.muted data-field="progress" { (run.progress) " %" }
    }
}

/// Whether containers use a volume: "in use", or "unused" with since when
/// volscan has seen it so (or "as of volscan's first look", when it was
/// already unused then: volscan cannot know for how long before).
fn use_of(volume: &volscan_domain::Volume, now: Timestamp) -> Markup {
    let first_look = |since: Timestamp| since <= volume.first_seen_at + time::Duration::minutes(2);
    html! {
        @match (volume.in_use, volume.unused_since) {
            (Some(true), _) => "in use",
            (Some(false), Some(since)) if first_look(since) => {
                span.badge.unused { "unused" } " "
                span.muted title={ "no container referred to it when volscan first looked, " (format::utc(since)) } { "since before volscan looked" }
            }
            (Some(false), Some(since)) => { span.badge.unused { "unused" } " " span.muted { "since " (format::when(since, now)) } }
            (Some(false), None) => span.badge.unused { "unused" },
            (None, _) => span.muted title="containers not looked at yet" { "—" },
        }
    }
}

/// When the page was drawn, for relative times.
fn now() -> Timestamp {
    Timestamp::now_utc()
}

/// A route for `GET` and `HEAD` (actix answers `HEAD` without the body).
fn read() -> actix_web::Route {
    use actix_web::guard;
    web::route().guard(guard::Any(guard::Get()).or(guard::Head()))
}

/// Registers the dashboard's routes on `config`.
pub(crate) fn configure(config: &mut web::ServiceConfig) {
    config
        .service(web::resource("/").route(read().to(overview::overview)))
        .service(web::resource("/volumes/{name}").route(read().to(volume::volume)))
        .service(web::resource("/scans").route(read().to(scans::scans)))
        .service(web::resource("/hosts").route(read().to(hosts::hosts)))
        .service(web::resource("/live/scans").route(read().to(scans::live)))
        .service(
            web::resource("/login")
                .route(read().to(actions::login_form))
                .route(web::post().to(actions::login)),
        )
        .service(web::resource("/logout").route(web::post().to(actions::logout)))
        .service(web::resource("/actions/scan-all").route(web::post().to(actions::scan_all)))
        .service(web::resource("/actions/scan/{name}").route(web::post().to(actions::scan_volume)))
        .service(web::resource("/actions/cancel/{scan_id}").route(web::post().to(actions::cancel)))
        .service(web::resource("/assets/{file}").route(read().to(assets::serve)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_encode_what_is_not_plain() {
        assert_eq!(encode("/volumes/a_b.c-1"), "/volumes/a_b.c-1");
        assert_eq!(encode("/?q=<x> y&z"), "/%3Fq%3D%3Cx%3E%20y%26z");
    }
}
