"""Do two API servers answer the same bytes? (issue 19: a faster route must not change an answer.)

Sends one list of GET requests to two servers serving copies of the same `bench api` store (e.g.
main from its own checkout and a branch: two SQLite servers cannot share one data folder, so the
second copy has its own database and hard-linked results) and compares, per request, the status,
the headers but `date` (names without case) and the body. The requests: the bench's random
targets of every route, cursors followed to the end, limits 1 to above the maximum, bad cursors,
metrics and feet, unknown athletes and sessions, `/health` and an unknown route; each of them with
a missing and a wrong key too, and with `--keys` with every other key given (coach, athlete), so
the role answers (404 for what a key may not see) are compared as well.

    python -m strideflow.benchmarks._api_same URL_A URL_B --key ADMIN_KEY [--keys K2 K3] [--full]

Prints the count of requests and of those that differ (the first few shown); exit status 1 if any
differs. Only the standard library: the comparison is of bytes, not of parsed JSON.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import sys
from urllib.parse import urlencode, urlsplit

from strideflow.benchmarks.api import FULL, QUICK, StoreSpec, athlete_id, route_requests, session_id
from strideflow.hardware.schema import PRONATION_EXCURSION_DEG

IGNORED_HEADERS = {"date"}
FOLLOW_PAGES = 40  # at most this many pages of one list are followed by its cursor


def _get(url: str, path: str, params: dict, key: str | None) -> tuple[int, list[tuple[str, str]], bytes]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
    try:
        target = f"{path}?{urlencode(params)}" if params else path
        conn.request("GET", target, headers={"Authorization": f"Bearer {key}"} if key else {})
        answer = conn.getresponse()
        body = answer.read()
        headers = sorted((k.lower(), v) for k, v in answer.getheaders() if k.lower() not in IGNORED_HEADERS)
        return answer.status, headers, body
    finally:
        conn.close()


def requests(spec: StoreSpec, n_random: int, seed: int = 19) -> list[tuple[str, dict]]:
    """(path, query parameters) of the requests sent to both servers, cursors not included."""
    rng = random.Random(seed)
    out = []
    for make in route_requests(spec).values():
        out += [make(rng) for _ in range(n_random)]
    a, s = athlete_id(0), session_id(0)
    last_a = athlete_id(spec.athletes - 1)
    for limit in (1, 2, 7, 100, 500, 5000, 100_000):
        out += [
            ("/v1/athletes", {"limit": limit}),
            (f"/v1/athletes/{last_a}/sessions", {"limit": limit}),
            (f"/v1/sessions/{s}/strides", {"athlete_id": a, "limit": limit}),
            (f"/v1/athletes/{a}/trends", {"limit": limit}),
        ]
    out += [
        ("/v1/athletes", {}),
        ("/v1/athletes", {"limit": 0}),
        ("/v1/athletes", {"limit": "x"}),
        ("/v1/athletes", {"cursor": "not-a-cursor"}),
        ("/v1/athletes", {"cursor": "WyJzZXNzaW9ucyIsWyJhIiwiYiJdXQ"}),  # a sessions cursor
        (f"/v1/athletes/{a}", {}),
        ("/v1/athletes/NOBODY", {}),
        ("/v1/athletes/NOBODY/sessions", {}),
        (f"/v1/athletes/{a}/sessions", {"cursor": "bad"}),
        (f"/v1/athletes/{a}/sessions", {"limit": 3, "cursor": "WyJzZXNzaW9ucyIsWyJ4IiwiUzAxIl1d"}),
        (f"/v1/athletes/{a}/trends", {}),
        (f"/v1/athletes/{a}/trends", {"metric": "no_such_metric"}),
        (f"/v1/athletes/{a}/trends", {"metric": PRONATION_EXCURSION_DEG, "foot": "left"}),
        (f"/v1/athletes/{a}/trends", {"foot": "middle"}),
        (f"/v1/sessions/{s}", {"athlete_id": a}),
        (f"/v1/sessions/{s}", {}),
        ("/v1/sessions/NOSESSION", {}),
        ("/v1/sessions/NOSESSION/strides", {}),
        (f"/v1/sessions/{s}/strides", {"athlete_id": a, "foot": "right", "valid": "true", "limit": 50}),
        (f"/v1/sessions/{s}/strides", {"athlete_id": a, "valid": "false"}),
        (f"/v1/sessions/{s}/strides", {"athlete_id": a, "t_from": 50, "t_to": 10}),
        (f"/v1/sessions/{s}/strides", {"athlete_id": a, "foot": "middle"}),
        (f"/v1/sessions/{s}/strides", {"athlete_id": a, "cursor": "bad"}),
        ("/health", {}),
        ("/v1/no-such-route", {}),
    ]
    return out


def compare(url_a: str, url_b: str, keys: list[str], spec: StoreSpec, n_random: int) -> tuple[int, list[str]]:
    """(requests sent to each server, descriptions of those answered differently)."""
    sent, differ = 0, []

    def one(path: str, params: dict, key: str | None) -> bytes | None:
        nonlocal sent
        sent += 1
        a, b = _get(url_a, path, params, key), _get(url_b, path, params, key)
        if a != b:
            which = keys.index(key) if key in keys else None
            differ.append(f"{path} {params} key #{which}: {a!r:.300} != {b!r:.300}")
            return None
        return a[2] if a[0] == 200 else None

    for key in [*keys, None, "sf_" + "0" * 32 + "_wrong"]:
        for path, params in requests(spec, n_random):
            body = one(path, params, key)
            pages = 0
            while body is not None and pages < FOLLOW_PAGES and key in keys:
                try:
                    cursor = json.loads(body).get("next_cursor")
                except (ValueError, AttributeError):
                    break
                if not cursor:
                    break
                body = one(path, {**params, "cursor": cursor}, key)
                pages += 1
    return sent, differ


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url_a")
    parser.add_argument("url_b")
    parser.add_argument("--key", required=True, help="an admin key valid on both servers")
    parser.add_argument("--keys", nargs="*", default=[], help="more keys (coach, athlete) valid on both")
    parser.add_argument("--quick", action="store_true", help="the --quick store's ids")
    parser.add_argument("--random", type=int, default=40, help="random targets per route")
    args = parser.parse_args(argv)
    spec = QUICK if args.quick else FULL
    sent, differ = compare(args.url_a, args.url_b, [args.key, *args.keys], spec, args.random)
    print(f"{sent} requests, {len(differ)} answered differently")
    for line in differ[:10]:
        print(" ", line)
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
