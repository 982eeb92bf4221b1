//! The simulated REST routes: users and meetings, in memory.

use http::request::Parts;
use http::{Method, Response, StatusCode};
use serde_json::{Map, Value};

use super::api::Caller;
use super::reply;
use super::state::{lock, Shared};
use super::webhooks;
use crate::body::Body;

/// Dispatches an authorized request by method and path.
pub(crate) fn route(
    shared: &Shared,
    caller: &Caller,
    parts: &Parts,
    body: Option<&[u8]>,
) -> Response<Body> {
    let segments = segments(parts);
    let method = &parts.method;
    if let (&Method::POST, ["im", "chat", "messages"]) = (method, segments.as_slice()) {
        return chat_message(caller, body);
    }
    if caller.app {
        // An app token holds no user's scopes: Zoom's missing-scope answer
        // (ZOOM.md §4; the 400 status is UNCONFIRMED). Not 401 code 124, which
        // means a dead token and would send a proxy to refresh.
        return missing_scope("user:read:user");
    }
    match (method, segments.as_slice()) {
        (&Method::GET, ["users", id]) => get_user(shared, caller, id),
        (&Method::GET, ["users", id, "meetings"]) => list_meetings(shared, caller, id),
        (&Method::POST, ["users", id, "meetings"]) => create_meeting(shared, caller, id, body),
        (&Method::GET, ["meetings", id]) => get_meeting(shared, id),
        (&Method::PATCH, ["meetings", id]) => patch_meeting(shared, id, body),
        (&Method::DELETE, ["meetings", id]) => delete_meeting(shared, id),
        _ => reply::not_found(),
    }
}

/// The user whose daily meeting create/update cap this request spends (ZOOM.md
/// §5): a create spends its user's (`me` is the caller), an update its meeting's
/// host. An app token, or an update of a meeting that does not exist, spends none.
pub(crate) fn meeting_writer(shared: &Shared, caller: &Caller, parts: &Parts) -> Option<String> {
    if caller.app {
        return None;
    }
    match (&parts.method, segments(parts).as_slice()) {
        (&Method::POST, ["users", id, "meetings"]) => Some(resolve(caller, id).to_owned()),
        (&Method::PATCH, ["meetings", id]) => {
            let meeting = lock(&shared.directory).meeting(id.parse().ok()?)?;
            Some(meeting.get("host_id")?.as_str()?.to_owned())
        }
        _ => None,
    }
}

/// The path's segments after `/v2/`.
fn segments(parts: &Parts) -> Vec<&str> {
    let path = parts.uri.path().trim_end_matches('/');
    path.split('/').skip(2).collect()
}

/// `POST /v2/im/chat/messages`, a chatbot's message: app tokens only.
fn chat_message(caller: &Caller, body: Option<&[u8]>) -> Response<Body> {
    if !caller.app {
        return missing_scope("imchat:bot");
    }
    let sent: Map<String, Value> = body
        .and_then(|b| serde_json::from_slice(b).ok())
        .unwrap_or_default();
    let answer = serde_json::json!({
        "message_id": super::jwt::random_id(16),
        "robot_jid": sent.get("robot_jid").cloned().unwrap_or(Value::Null),
        "sent_time": "2026-01-01T00:00:00Z",
        "to_jid": sent.get("to_jid").cloned().unwrap_or(Value::Null),
    });
    reply::json(StatusCode::CREATED, &answer)
}

/// Zoom's answer to a valid token without the route's scope.
fn missing_scope(scope: &str) -> Response<Body> {
    let message = format!("Invalid access token, does not contain scopes:[{scope}].");
    reply::api_error(StatusCode::BAD_REQUEST, 4711, &message)
}

/// `me` is the caller; any other id must be a user of the account.
fn resolve<'a>(caller: &'a Caller, id: &'a str) -> &'a str {
    if id == "me" {
        &caller.user
    } else {
        id
    }
}

fn get_user(shared: &Shared, caller: &Caller, id: &str) -> Response<Body> {
    let id = resolve(caller, id);
    match lock(&shared.directory).user(id) {
        Some(user) => reply::json(StatusCode::OK, &user),
        None => user_not_found(id),
    }
}

fn list_meetings(shared: &Shared, caller: &Caller, id: &str) -> Response<Body> {
    let id = resolve(caller, id);
    let dir = lock(&shared.directory);
    if !dir.has_user(id) {
        return user_not_found(id);
    }
    reply::json(StatusCode::OK, &dir.meetings_of(id))
}

fn create_meeting(
    shared: &Shared,
    caller: &Caller,
    id: &str,
    body: Option<&[u8]>,
) -> Response<Body> {
    let id = resolve(caller, id);
    let Some(fields) = json_object(body) else {
        return bad_body();
    };
    let now = shared.clock.now_secs();
    let meeting = {
        let mut dir = lock(&shared.directory);
        if !dir.has_user(id) {
            return user_not_found(id);
        }
        dir.create_meeting(id, fields, now)
    };
    // After the directory's lock is released: the event reads the settings' lock.
    webhooks::meeting_created(shared, caller, &meeting);
    reply::json(StatusCode::CREATED, &meeting)
}

fn get_meeting(shared: &Shared, id: &str) -> Response<Body> {
    let found = id
        .parse()
        .ok()
        .and_then(|n| lock(&shared.directory).meeting(n));
    match found {
        Some(meeting) => reply::json(StatusCode::OK, &meeting),
        None => meeting_not_found(id),
    }
}

fn patch_meeting(shared: &Shared, id: &str, body: Option<&[u8]>) -> Response<Body> {
    let Some(fields) = json_object(body) else {
        return bad_body();
    };
    let patched = id
        .parse()
        .is_ok_and(|n| lock(&shared.directory).patch_meeting(n, fields));
    if patched {
        reply::no_content()
    } else {
        meeting_not_found(id)
    }
}

fn delete_meeting(shared: &Shared, id: &str) -> Response<Body> {
    let deleted = id
        .parse()
        .is_ok_and(|n| lock(&shared.directory).delete_meeting(n));
    if deleted {
        reply::no_content()
    } else {
        meeting_not_found(id)
    }
}

/// The body as a JSON object; an empty body counts as `{}`.
fn json_object(body: Option<&[u8]>) -> Option<Map<String, Value>> {
    match body? {
        [] => Some(Map::new()),
        bytes => match serde_json::from_slice(bytes).ok()? {
            Value::Object(map) => Some(map),
            _ => None,
        },
    }
}

fn bad_body() -> Response<Body> {
    // Zoom's generic validation code.
    reply::api_error(
        StatusCode::BAD_REQUEST,
        300,
        "Request Body should be a valid JSON object.",
    )
}

fn user_not_found(id: &str) -> Response<Body> {
    reply::api_error(
        StatusCode::NOT_FOUND,
        1001,
        &format!("User does not exist: {id}."),
    )
}

fn meeting_not_found(id: &str) -> Response<Body> {
    reply::api_error(
        StatusCode::NOT_FOUND,
        3001,
        &format!("Meeting does not exist: {id}."),
    )
}
