"""Schemathesis hooks for Passport's API document (loaded with SCHEMATHESIS_HOOKS).

- Two string formats the document uses and JSON Schema cannot spell out: `mobile`
  (a number libphonenumber calls valid) and `password` (one the strength policy
  accepts). Without them, "schema-valid" data would be numbers that do not exist
  and passwords like "00000000", which the server rightly refuses.
- Authentication: a token of the test user, logged in again whenever a request
  answers 401 (a test case may well have logged that session out).
- Test data: one `DELETE /passport/sessions/{session_id}` in two is given a live
  session of the test user's, so that ending a session is tried on real ones and
  not only on ids that do not exist.
- One kind of failure is not the API's: a "schema-violating" password accepted. A
  custom format has no complement, so to violate `password` schemathesis drops the
  format and draws any string, which is sometimes a strong password that the server
  rightly accepts. Only that failure is dropped; a short, long or mistyped password
  still has to be refused.
"""
import os
import random
import re
import string

import requests
import schemathesis
from hypothesis import strategies as st

BASE = os.environ["PASSPORT_BASE"]
MOBILE = os.environ["PASSPORT_MOBILE"]
PASSWORD = os.environ["PASSPORT_PASSWORD"]

# Chinese mobiles: +86, then 13x and eight digits (every 130-139 prefix is valid).
schemathesis.openapi.format(
    "mobile",
    st.builds(lambda n: "+8613%09d" % n, st.integers(min_value=0, max_value=999_999_999)),
)

ALPHABET = string.ascii_letters + string.digits


def strong_password(seed):
    # Random over a 62-letter alphabet, 20 long: far beyond any guessing a
    # strength check does, whatever seed Hypothesis shrinks to.
    rng = random.Random(seed)
    return "".join(rng.choice(ALPHABET) for _ in range(20))


schemathesis.openapi.format("password", st.builds(strong_password, st.integers()))


def login(device):
    r = requests.post(
        BASE + "/passport/login",
        json={"mobile": MOBILE, "password": PASSWORD, "device": device},
        timeout=30,
    )
    r.raise_for_status()
    return r.json()["data"]


@schemathesis.auth()
class PassportLogin:
    def get(self, case, ctx):
        return login("schemathesis")["token"]

    def set(self, case, data, ctx):
        case.headers = case.headers or {}
        case.headers["Authorization"] = "JWT " + data


SESSION_PATH = "/passport/sessions/{session_id}"
_turn = {"n": 0}


@schemathesis.hook
def map_path_parameters(ctx, path_parameters):
    operation = getattr(ctx, "operation", None)
    if operation is None or operation.path != SESSION_PATH or not path_parameters:
        return path_parameters
    _turn["n"] += 1
    if _turn["n"] % 2:
        return path_parameters
    return {**path_parameters, "session_id": login("to be ended")["session_id"]}


PASSWORD_FORMAT = re.compile(r"violates `format` at /properties/(password|new_password)")


def only_password_format(message):
    """Whether every violation a failure names is the password's format."""
    _, found, component = message.partition("Invalid component:")
    parts = [p.strip() for p in re.split(r"\n\s*- |\n|^\s*in body\s*-?", component.strip())]
    parts = [p for p in parts if p and p != "in body"]
    return bool(found and parts) and all(PASSWORD_FORMAT.fullmatch(p) for p in parts)


@schemathesis.hook
def filter_failure(ctx, failure, case, response):
    return not (getattr(failure, "code", None) == "ST201" and only_password_format(failure.message or ""))
