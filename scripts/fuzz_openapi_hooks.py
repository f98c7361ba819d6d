"""schemathesis hooks for scripts/fuzz_openapi.sh.

* `error_bodies_are_json`, a check of the shared contract's rule that schemathesis has no built-in check
  for: every 4xx/5xx answer is `{code, message}` JSON, "never an HTML or empty body" — also for the
  wrong-method (405) and not-an-upgrade (400) answers that the OpenAPI document does not list.
* `filter_failure` accepts the known defects below, nothing else; `filter_case` does not send the one
  request known to set up a later crash.

Each known defect is tracked elsewhere and fixed in code this fuzzer's owner may not change
(chat/src/service, chat/src/store, src/server.rs, signaling/). A failure is dropped only when the request
carries exactly that defect's trigger, so every other failure of the same operation still fails the run.
Remove an entry once its fix lands: the fuzzer then guards the fix.
"""

import json
import os

import schemathesis

# FUZZ_NO_KNOWN=1 reports the known defects too (to see whether they are fixed yet).
ACCEPT_KNOWN = os.environ.get("FUZZ_NO_KNOWN", "") in ("", "0")


def _operation_id(case):
    return case.operation.definition.raw.get("operationId")


def _position_above(case, limit):
    body = case.body
    if not isinstance(body, dict):
        return False
    position = body.get("position")
    return isinstance(position, int) and not isinstance(position, bool) and position > limit


# operation id -> predicate(case) for known 500s, e.g. `"search_messages": lambda case: "\x00" in ...`.
# None now: the NUL in the search query and channel positions above 10000 were fixed (commit 6c07f0b).
KNOWN_500 = {}

# operation id -> predicate(case) for requests not sent at all: they would leave the server in a state
# that crashes later requests, so the failure would be charged to innocent operations.
KNOWN_CRASH_SETUP = {
    # None now: a role PATCHed near i32::MAX made the next role creation overflow (fixed: saturating).
}

# None now: /healthz, /readyz, /metrics, /api/openapi.json and /voice answer the JSON error too.
KNOWN_EMPTY_405: set = set()


def _known_non_json_error(case, response):
    return False


class ErrorBodyNotJson(AssertionError):
    pass


@schemathesis.check
def error_bodies_are_json(ctx, response, case):
    """Every 4xx/5xx answer carries the contract's `{code, message}` JSON body."""
    if response.status_code < 400 or case.method.upper() == "HEAD" or _known_non_json_error(case, response):
        return None
    content_type = ",".join(response.headers.get("content-type", []))
    if not content_type.startswith("application/json"):
        raise ErrorBodyNotJson(
            f"{response.status_code} answered with Content-Type {content_type or 'none'!r} and body "
            f"{response.content[:200]!r}; errors must be {{code, message}} JSON"
        )
    try:
        body = json.loads(response.content)
    except ValueError:
        raise ErrorBodyNotJson(f"{response.status_code} body is not JSON: {response.content[:200]!r}") from None
    if not (isinstance(body, dict) and isinstance(body.get("code"), str) and isinstance(body.get("message"), str)):
        raise ErrorBodyNotJson(f"{response.status_code} body is not {{code, message}}: {response.content[:200]!r}")
    return None


@schemathesis.hook
def filter_case(context, case):
    known = KNOWN_CRASH_SETUP.get(_operation_id(case)) if ACCEPT_KNOWN else None
    return not (known is not None and known(case))


@schemathesis.hook
def filter_failure(context, failure, case, response):
    known = KNOWN_500.get(_operation_id(case)) if ACCEPT_KNOWN else None
    if known is not None and response is not None and response.status_code == 500 and known(case):
        return False  # a known defect: not this run's failure
    return True
