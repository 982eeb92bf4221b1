"""zoomus: Server-to-Server (account_credentials) through grantmux: its
`oauth_uri` and `base_uri` point at grantmux, nothing else changes."""

import datetime

from zoomus import ZoomClient

from common import (ACCOUNT_ID, CLIENT_ID, CLIENT_SECRET, GRANTMUX, Failure, expect, run)


def flow():
    client = ZoomClient(CLIENT_ID, CLIENT_SECRET, ACCOUNT_ID,
                        base_uri=f"{GRANTMUX}/v2", oauth_uri=f"{GRANTMUX}/oauth/token")
    if not client.config["token"]:
        # zoomus swallows the token answer and keeps None.
        raise Failure("zoomus got no access_token from grantmux's /oauth/token")
    user = expect(client.user.get(id="me"), 200, "user.get(id='me')").json()
    expect(client.user.me(), 200, "user.me()")
    start = datetime.datetime(2030, 1, 1, 10, 0, 0)
    meeting = expect(client.meeting.create(user_id="me", topic="grantmux matrix", type=2,
                                           start_time=start, duration=30),
                     201, "meeting.create").json()
    expect(client.meeting.get(id=meeting["id"]), 200, "meeting.get")
    listed = expect(client.meeting.list(user_id="me"), 200, "meeting.list").json()
    if meeting["id"] not in [m.get("id") for m in listed.get("meetings", [])]:
        raise Failure("meeting.list does not show the meeting just created")
    expect(client.meeting.delete(id=meeting["id"]), 204, "meeting.delete")
    client.refresh_token()  # mints again through grantmux
    expect(client.user.get(id=user["id"]), 200, "user.get after refresh_token()")
    return "S2S token, user.get(me), user.me, meeting create/get/list/delete, refresh_token(), user.get"


if __name__ == "__main__":
    run("zoomus", flow)
