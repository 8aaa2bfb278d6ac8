"""A Kubernetes API server in memory on 127.0.0.1, for the cluster code's own Kubernetes client.

It stores objects by their REST path, answers the client's calls as the API server would (404 for an absent
object, 409 for a second create), records every call as the RBAC request it is (verb, API group, resource,
namespace), and can refuse calls an RBAC rule set does not grant (403, as the API server's authorizer) or fail
reads of a resource (500). It also plays KServe's Standard-mode controller: an InferenceService it stores gets a
predictor Deployment `<name>-predictor` whose pod template holds the InferenceService's containers, rolled out
at once, and a Ready condition. A TrainJob it stores completes at once unless `trainjobs_complete` is False.

The verbs are those of Kubernetes' request info resolver (k8s.io/apiserver pkg/endpoints/request/requestinfo.go):
GET of an object is `get`, of a collection `list` (`watch` with ?watch=true), POST `create`, PUT `update`, PATCH
`patch`, DELETE `delete`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class ApiCall:
    verb: str
    group: str
    resource: str
    namespace: str
    name: str


def parse_path(method: str, url: str) -> tuple[ApiCall, str]:
    """The RBAC request a REST call is, and the stored object's key (its collection path and name)."""
    parts = urlsplit(url)
    segments = [s for s in parts.path.split("/") if s]
    # /api/v1/namespaces/NS/RESOURCE[/NAME[/SUBRESOURCE]] or /apis/GROUP/VERSION/namespaces/NS/RESOURCE[/...]
    if segments[:1] == ["api"]:
        group, at = "", 2
    elif segments[:1] == ["apis"]:
        group, at = segments[1], 3
    else:
        raise ValueError(f"not a resource path: {url}")
    if segments[at : at + 1] != ["namespaces"] or len(segments) < at + 3:
        raise ValueError(f"only namespaced resources are served here: {url}")
    namespace, resource = segments[at + 1], segments[at + 2]
    name = segments[at + 3] if len(segments) > at + 3 else ""
    collection = "/".join(segments[: at + 3])
    if len(segments) > at + 4:
        resource = f"{resource}/{segments[at + 4]}"
    watch = parse_qs(parts.query).get("watch", ["false"])[0] == "true"
    verb = {
        "GET": ("get" if name else ("watch" if watch else "list")),
        "POST": "create",
        "PUT": "update",
        "PATCH": "patch",
        "DELETE": "delete" if name else "deletecollection",
    }[method]
    return ApiCall(verb, group, resource, namespace, name), collection


def rules_allow(rules: list[dict], call: ApiCall) -> bool:
    """Whether RBAC PolicyRules (a Role's `rules`) grant this call."""
    return any(
        (call.group in rule.get("apiGroups", []) or "*" in rule.get("apiGroups", []))
        and (call.resource in rule.get("resources", []) or "*" in rule.get("resources", []))
        and (call.verb in rule.get("verbs", []) or "*" in rule.get("verbs", []))
        and (not rule.get("resourceNames") or call.name in rule["resourceNames"])
        for rule in rules
    )


@dataclass
class FakeKubernetes:
    url: str = ""
    objects: dict[str, dict[str, dict]] = field(default_factory=dict)
    calls: list[ApiCall] = field(default_factory=list)
    granted: list[dict] | None = None
    """RBAC rules the caller holds in every namespace; None grants everything."""
    failing_reads: set[str] = field(default_factory=set)
    """Resources whose reads answer 500."""
    deployments_roll_out: bool = True
    trainjobs_complete: bool = True

    def stored(self, collection: str, name: str) -> dict | None:
        return self.objects.get(collection, {}).get(name)

    def put(self, collection: str, body: dict) -> dict:
        """Store an object as the API server does: resourceVersion and generation move on every write."""
        previous = self.stored(collection, body["metadata"]["name"]) or {"metadata": {}}
        body = json.loads(json.dumps(body))
        body["metadata"]["resourceVersion"] = str(int(previous["metadata"].get("resourceVersion", "0")) + 1)
        body["metadata"]["generation"] = previous["metadata"].get("generation", 0) + 1
        self.objects.setdefault(collection, {})[body["metadata"]["name"]] = body
        return body

    def handle(self, method: str, url: str, body: dict | None) -> tuple[int, dict]:
        call, collection = parse_path(method, url)
        self.calls.append(call)
        if self.granted is not None and not rules_allow(self.granted, call):
            return 403, status(
                403,
                "Forbidden",
                f'cannot {call.verb} resource "{call.resource}" in API group '
                f'"{call.group}" in the namespace "{call.namespace}"',
            )
        if call.verb in {"get", "list", "watch"} and call.resource in self.failing_reads:
            return 500, status(500, "InternalError", f"reading {call.resource} failed")
        current = self.stored(collection, call.name) if call.name else None
        if call.verb == "get":
            return (200, current) if current else (404, status(404, "NotFound", f"{call.resource} {call.name!r}"))
        if call.verb == "list":
            return 200, {"kind": "List", "items": list(self.objects.get(collection, {}).values())}
        if call.verb == "create":
            if self.stored(collection, body["metadata"]["name"]):
                return 409, status(409, "AlreadyExists", body["metadata"]["name"])
            return 201, self.react(call, collection, self.put(collection, body))
        if call.verb == "update":
            if current is None:
                return 404, status(404, "NotFound", call.name)
            if body["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
                return 409, status(409, "Conflict", "the object has been modified")
            return 200, self.react(call, collection, self.put(collection, body))
        if call.verb == "delete":
            if current is None:
                return 404, status(404, "NotFound", call.name)
            del self.objects[collection][call.name]
            return 200, status(200, "Success", "deleted")
        return 405, status(405, "MethodNotAllowed", call.verb)

    def react(self, call: ApiCall, collection: str, stored: dict) -> dict:
        """What the controllers watching these resources do at once."""
        if call.resource == "inferenceservices":
            name = stored["metadata"]["name"]
            deployments = f"apis/apps/v1/namespaces/{call.namespace}/deployments"
            previous = self.stored(deployments, f"{name}-predictor")
            deployment = self.put(
                deployments,
                {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "metadata": {"name": f"{name}-predictor", "namespace": call.namespace},
                    "spec": {
                        "replicas": 1,
                        "selector": {"matchLabels": {"app": f"{name}-predictor"}},
                        "template": {
                            "metadata": {"labels": {"app": f"{name}-predictor"}},
                            "spec": {"containers": stored["spec"]["predictor"]["containers"]},
                        },
                    },
                },
            )
            generation = deployment["metadata"]["generation"]
            rolled = self.deployments_roll_out
            deployment["status"] = {
                "observedGeneration": generation,
                "replicas": 1 if rolled or previous is None else 2,
                "updatedReplicas": 1 if rolled else 0,
                "availableReplicas": 1,
            }
            stored["status"] = {"conditions": [{"type": "Ready", "status": "True"}]}
        if call.resource == "trainjobs" and self.trainjobs_complete:
            stored["status"] = {"conditions": [{"type": "Complete", "status": "True", "reason": "JobsCompleted"}]}
        return stored


def status(code: int, reason: str, message: str) -> dict:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "code": code,
        "reason": reason,
        "message": message,
    }


@contextmanager
def fake_kubernetes(server: FakeKubernetes | None = None) -> Iterator[FakeKubernetes]:
    """The server on a free port of 127.0.0.1 until the block ends."""
    fake = server or FakeKubernetes()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body: Any = json.loads(self.rfile.read(length)) if length else None
            code, answer = fake.handle(self.command, self.path, body)
            payload = json.dumps(answer).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

        def log_message(self, *args: object) -> None:
            pass

    http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{http.server_address[1]}"
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        http.shutdown()
        http.server_close()
