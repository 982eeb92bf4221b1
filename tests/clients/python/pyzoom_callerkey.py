"""pyzoom: its token helpers call https://zoom.us/oauth/token (hard-coded in
pyzoom/oauth.py), so it runs with the workaround: a grantmux [[caller]] key as
its access token and `base_url` pointed at grantmux."""

from pyzoom import ZoomClient

from common import GRANTMUX, Failure, caller_key, expect, run


def flow():
    client = ZoomClient(access_token=caller_key("pyzoom"), base_url=f"{GRANTMUX}/v2")
    me = expect(client.raw.get("/users/me"), 200, "raw.get('/users/me')").json()
    if not me.get("id"):
        raise Failure(f"/users/me answered no id: {me}")
    # pyzoom's typed create_meeting/get_meeting parse the answer into ZoomMeeting,
    # which requires status, start_url, h323_password, pstn_password and
    # encrypted_password: grantmux's simulator leaves those out of its meeting
    # objects (real Zoom sends them), so they fail with a pydantic ValidationError
    # here. The same calls go through pyzoom's raw client instead; the typed
    # list and delete work.
    created = expect(client.raw.post("/users/me/meetings", body={
        "topic": "grantmux matrix", "type": 2, "start_time": "2030-01-01T10:00:00",
        "duration": 30, "timezone": "UTC"}), 201, "raw.post('/users/me/meetings')").json()
    expect(client.raw.get(f"/meetings/{created['id']}"), 200, "raw.get('/meetings/<id>')")
    listed = client.meetings.list_meetings()
    if created["id"] not in [m.id for m in listed.meetings]:
        raise Failure("list_meetings does not show the meeting just created")
    if not client.meetings.delete_meeting(created["id"]):
        raise Failure("delete_meeting answered False")
    return "caller key as access_token: GET /users/me, raw create/get meeting, typed list_meetings, delete_meeting"


if __name__ == "__main__":
    run("pyzoom", flow)
