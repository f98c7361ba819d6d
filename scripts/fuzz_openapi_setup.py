#!/usr/bin/env python3
"""Seeds a running Chorus with data for the OpenAPI fuzzer and writes schemathesis's config.

Called by scripts/fuzz_openapi.sh; stdlib only. Over REST it registers users, creates guilds, channels,
roles, messages, reactions, pins, invites, a DM and spare sessions, so that generated requests reach
past "404 not_found" into the handlers. It then writes a schemathesis.toml that

  * sends the fuzzing user's bearer token with every request (logout gets a token of its own);
  * binds path, query and body ids (guild_id, channel_id, message_id, role_id, user_id, target_id,
    code, emoji, before/after/around, recipient_id, parent_id, reply_to, roles[*]) to dictionaries of
    the real ids, drawn with probability DICT_P (the rest stay random, which exercises the 400/404 paths);
  * gives every destructive operation (delete guild/channel/message/role, kick, ban, leave, revoke
    session/invite, logout) ids of its own spare objects, so the main guild, channel and token
    survive the whole run.

After the run, `--check` asks whether the fuzzing token, the main guild and its text channel are still
there: if the token died early, every later request was a 401 and the run proved nothing.

Usage: fuzz_openapi_setup.py BASE_URL OUT_DIR HOOKS_FILE
       fuzz_openapi_setup.py --check BASE_URL OUT_DIR
"""

import json
import os
import secrets
import sys
import urllib.error
import urllib.request

DICT_P = 0.85


class Api:
    def __init__(self, base):
        self.base = base.rstrip("/")

    def call(self, method, path, token=None, body=None, expect=(200, 201, 204)):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + "/api/v1" + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", "Bearer " + token)
        req.add_header("User-Agent", "chorus-fuzz-setup")
        try:
            with urllib.request.urlopen(req, timeout=30) as res:
                status, raw = res.status, res.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        if status not in expect:
            sys.exit(f"fuzz_openapi: {method} {path} answered {status}: {raw[:500]!r}")
        return json.loads(raw) if raw else None


def check(base, out_dir):
    with open(os.path.join(out_dir, "canary.json"), encoding="utf-8") as f:
        canary = json.load(f)
    api, token = Api(base), canary["token"]
    for path in ("/users/@me", f"/guilds/{canary['guild']}", f"/channels/{canary['channel']}/messages?limit=1"):
        api.call("GET", path, token, expect=(200,))
    print("fuzz check: the fuzzing token, the main guild and its channel survived the run")


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--check":
        return check(sys.argv[2], sys.argv[3])
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    base, out_dir, hooks = sys.argv[1], sys.argv[2], sys.argv[3]
    api = Api(base)
    tag = secrets.token_hex(3)
    password = "fuzz-" + secrets.token_hex(8)

    def register(name):
        r = api.call("POST", "/auth/register", body={"username": f"{name}_{tag}", "password": password})
        return r["user"], r["token"]

    # The first registered user is an instance admin (GET /api/v1/admin/stats and /admin answer 200).
    owner, token = register("owner")
    member, member_token = register("member")
    outsider, _ = register("outsider")
    victims = [register(f"victim{i}") for i in range(3)]

    def login():
        return api.call("POST", "/auth/login", body={"username": owner["username"], "password": password})["token"]

    logout_token = login()
    for _ in range(3):
        login()  # spare sessions for revoke_session
    sessions = api.call("GET", "/users/@me/sessions", token)
    spare_sessions = [s["id"] for s in sessions if not s["current"]]
    # Never hand out the session of the fuzzing token or of the logout token.
    logout_session = [s["id"] for s in api.call("GET", "/users/@me/sessions", logout_token) if s["current"]]
    spare_sessions = [s for s in spare_sessions if s not in logout_session]

    guild = api.call("POST", "/guilds", token, {"name": "fuzz guild"})
    gid = guild["id"]
    by_kind = {}
    for ch in guild["channels"]:
        by_kind.setdefault(ch["kind"], []).append(ch["id"])
    text, voice = by_kind["text"][0], by_kind["voice"][0]
    category = api.call("POST", f"/guilds/{gid}/channels", token, {"name": "fuzz category", "kind": "category"})["id"]
    text2 = api.call("POST", f"/guilds/{gid}/channels", token, {"name": "second", "parent_id": category})["id"]
    spare_channels = [
        api.call("POST", f"/guilds/{gid}/channels", token, {"name": f"spare-{i}"})["id"] for i in range(4)
    ]

    role = api.call("POST", f"/guilds/{gid}/roles", token, {"name": "fuzz role", "permissions": "3072"})["id"]
    spare_roles = [api.call("POST", f"/guilds/{gid}/roles", token, {"name": f"spare {i}"})["id"] for i in range(3)]

    invite = api.call("POST", f"/guilds/{gid}/invites", token, {})["code"]
    spare_invites = [api.call("POST", f"/guilds/{gid}/invites", token, {})["code"] for _ in range(3)]
    for _, t in [(member, member_token)] + victims:
        api.call("POST", f"/invites/{invite}", t)
    api.call("PATCH", f"/guilds/{gid}/members/{member['id']}", token, {"roles": [role]})

    messages = []
    for i in range(5):
        body = {"content": f"fuzz message {i} <@{member['id']}>"}
        if messages:
            body["reply_to"] = messages[-1]
        messages.append(api.call("POST", f"/channels/{text}/messages", token, body)["id"])
    messages.append(api.call("POST", f"/channels/{text}/messages", member_token, {"content": "from member"})["id"])
    api.call("PUT", f"/channels/{text}/messages/{messages[0]}/reactions/%F0%9F%91%8D", token)
    api.call("PUT", f"/channels/{text}/messages/{messages[0]}/reactions/%F0%9F%91%8D", member_token)
    api.call("PUT", f"/channels/{text}/pins/{messages[1]}", token)
    spare_messages = [
        api.call("POST", f"/channels/{text}/messages", token, {"content": f"spare {i}"})["id"] for i in range(4)
    ]
    api.call("PUT", f"/channels/{text}/permissions/{role}", token, {"kind": "role", "allow": "1024", "deny": "0"})

    dm = api.call("POST", "/users/@me/channels", token, {"recipient_id": member["id"]})["id"]
    messages.append(api.call("POST", f"/channels/{dm}/messages", token, {"content": "hello in a DM"})["id"])

    # Guilds to delete, and one owned by someone else to leave (and rejoin through its invite).
    spare_guilds = [api.call("POST", "/guilds", token, {"name": f"spare {i}"})["id"] for i in range(3)]
    other = api.call("POST", "/guilds", member_token, {"name": "member's guild"})["id"]
    other_invite = api.call("POST", f"/guilds/{other}/invites", member_token, {})["code"]
    api.call("POST", f"/invites/{other_invite}", token)

    users = [owner["id"], member["id"], outsider["id"]] + [u["id"] for u, _ in victims]
    dictionaries = {
        "guilds": [gid, other],
        "channels": [text, text2, voice, category, dm],
        "text_channels": [text, text2, dm],
        "categories": [category],
        "messages": messages,
        "roles": [role, gid],
        "users": users,
        "users_or_me": users + ["@me"],
        "targets": [role, gid, member["id"]],
        "invites": [invite, other_invite],
        "emoji": ["👍", "🎉", "party:123"],
        "spare_guilds": spare_guilds,
        "leave_guilds": [other],
        "spare_channels": spare_channels,
        "spare_messages": spare_messages,
        "spare_roles": spare_roles,
        "spare_sessions": spare_sessions,
        "spare_invites": spare_invites,
        "victims": [u["id"] for u, _ in victims],
        # Real files, and paths that must not leave web/assets/.
        "assets": ["css/app.css", "js/api.js", "js/main.js", "../Cargo.toml", "js/../../index.html", "%2e%2e/x"],
        "usernames": [owner["username"]],
        "passwords": [password],
    }

    def bind(name):
        return {"dictionary": name, "probability": DICT_P}

    common = {
        "path.guild_id": bind("guilds"),
        "path.channel_id": bind("channels"),
        "path.message_id": bind("messages"),
        "path.role_id": bind("roles"),
        "path.user_id": bind("users_or_me"),
        "path.target_id": bind("targets"),
        "path.code": bind("invites"),
        "path.emoji": bind("emoji"),
        "query.before": bind("messages"),
        "query.after": bind("messages"),
        "query.around": bind("messages"),
        "body.recipient_id": bind("users"),
        "body.parent_id": bind("categories"),
        "body.reply_to": bind("messages"),
        "body.roles[*]": bind("roles"),
        "path.path": bind("assets"),
    }
    # Destructive operations act on spare objects only: their ids come from these dictionaries and never
    # from schemathesis's pool of ids seen in responses (which holds the main guild, channel, session...).
    destructive = {
        "delete_guild": {"path.guild_id": bind("spare_guilds")},
        "leave_guild": {"path.guild_id": bind("leave_guilds")},
        "delete_channel": {"path.channel_id": bind("spare_channels")},
        "delete_message": {"path.channel_id": bind("text_channels"), "path.message_id": bind("spare_messages")},
        "delete_role": {"path.role_id": bind("spare_roles")},
        "kick_member": {"path.user_id": bind("victims")},
        "ban_member": {"path.user_id": bind("victims")},
        "revoke_invite": {"path.code": bind("spare_invites")},
        "revoke_session": {"path.session_id": bind("spare_sessions")},
    }
    overrides = {
        "unban_member": {"path.user_id": bind("victims")},
        "login": {"body.username": bind("usernames"), "body.password": bind("passwords")},
    }
    lines = [
        "# Written by scripts/fuzz_openapi_setup.py for one run; do not edit.",
        f"hooks = {json.dumps(hooks)}",
        "",
        # schemathesis keeps failures for `st replay` here instead of in ./.schemathesis.
        "[cache]",
        f"directory = {json.dumps(os.environ.get('FUZZ_CACHE_DIR', os.path.join(out_dir, 'cache')))}",
        "",
        "[warnings]",
        # Every operation answering only 401/403 means the fuzzing token died: the run proved nothing.
        'fail-on = ["missing_auth", "rate_limited", "unmatched_filter"]',
        "",
        "[headers]",
        f'Authorization = "Bearer {token}"',
        "",
        "[dictionaries]",
    ]
    for name, values in dictionaries.items():
        lines.append(f"{name} = {{ values = {json.dumps(values, ensure_ascii=False)} }}")
    lines += ["", "[parameters]"]
    lines += [f"{json.dumps(k)} = {inline(v)}" for k, v in common.items()]
    for op, params in list(destructive.items()) + list(overrides.items()):
        lines += ["", "[[operations]]", f"include-operation-id = {json.dumps(op)}", "[operations.parameters]"]
        lines += [f"{json.dumps(k)} = {inline(v)}" for k, v in params.items()]
        if op in destructive:
            for phase in ("examples", "coverage", "fuzzing"):
                lines += [f"[operations.phases.{phase}.extra-data-sources]", "responses = false"]
    # logout spends its own token (the fuzzing token must keep working); /admin reads the cookie.
    lines += ["", "[[operations]]", 'include-operation-id = "logout"', "[operations.headers]"]
    lines += [f'Authorization = "Bearer {logout_token}"']
    lines += ["", "[[operations]]", 'include-operation-id = "admin_page"', "[operations.headers]"]
    lines += [f'Cookie = "chorus_token={token}"']
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "canary.json"), "w", encoding="utf-8") as f:
        json.dump({"token": token, "guild": gid, "channel": text}, f)
    with open(os.path.join(out_dir, "schemathesis.toml"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print(
        f"fuzz setup: users {len(users)}, guild {gid}, channels {len(dictionaries['channels'])}, "
        f"messages {len(messages)}, roles {len(dictionaries['roles'])}, spare sessions {len(spare_sessions)}"
    )


def inline(binding):
    return "{ " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in binding.items()) + " }"


if __name__ == "__main__":
    main()
