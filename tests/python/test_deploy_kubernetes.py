"""vineyard.deploy.kubernetes without a Kubernetes API server (none runs here).

* Every generated object is a model of the official client and survives the client's
  own serialization and deserialization unchanged; deploy/kubernetes/*.yaml are the same
  objects (regenerate them with `python -m vineyard.deploy.kubernetes deploy/kubernetes`).
* The DaemonSet mounts what clients expect: the socket's directory on a hostPath, the
  socket flag and $VINEYARD_IPC_SOCKET pointing into it, the RPC port, etcd's Service.
* start_vineyardd and delete_kubernetes_objects drive the client's real HTTP calls
  against a small recording HTTP server on 127.0.0.1 standing in for the API server: it
  checks the requests (verbs, paths, bodies), not what a cluster would do with them.

Run: PYTHONPATH=python python3 -m pytest -q tests/python/test_deploy_kubernetes.py
"""
import glob
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

kubernetes = pytest.importorskip("kubernetes")
from kubernetes import client as k8s  # noqa: E402
from kubernetes.client.rest import ApiException  # noqa: E402

from vineyard.deploy import kubernetes as vk  # noqa: E402

from conftest import ROOT  # noqa: E402

MODEL = {"Namespace": "V1Namespace", "Service": "V1Service", "StatefulSet": "V1StatefulSet",
         "DaemonSet": "V1DaemonSet"}


def deserialize(doc):
    api = k8s.ApiClient()
    return api._ApiClient__deserialize(doc, MODEL[doc["kind"]])


def test_every_object_validates_against_the_client_models():
    objects = vk.manifests()
    assert [o.kind for o in objects] == ["Namespace", "Service", "Service", "StatefulSet",
                                         "DaemonSet", "Service"]
    for obj, doc in zip(objects, vk.to_dicts(objects)):
        assert type(obj).__name__ == MODEL[obj.kind]
        again = deserialize(json.loads(json.dumps(doc)))
        assert again == obj, obj.kind
    # The models check required fields: a container without a name is refused.
    with pytest.raises(ValueError):
        k8s.V1Container(name=None, image="x")


def test_manifest_files_are_the_generated_objects():
    files = sorted(glob.glob(os.path.join(ROOT, "deploy", "kubernetes", "*.yaml")))
    docs = []
    for path in files:
        with open(path) as f:
            docs += [d for d in yaml.safe_load_all(f) if d]
    assert docs == vk.to_dicts(vk.manifests()), \
        "deploy/kubernetes is stale: python -m vineyard.deploy.kubernetes deploy/kubernetes"
    for doc in docs:
        deserialize(doc)


def test_daemonset_mounts_what_clients_expect():
    objects = vk.manifests(namespace="ns1", size="2Gi", socket="/run/vy/vineyard.sock",
                           rpc_socket_port=9700, vineyard_image="img:1",
                           vineyard_image_pull_secrets="s1,s2")
    by = {(o.kind, o.metadata.name): o for o in objects}
    ds = by[("DaemonSet", "vineyardd")]
    pod = ds.spec.template.spec
    (c,) = pod.containers
    args = c.args
    assert "--socket=/run/vy/vineyard.sock" in args and "--size=2Gi" in args
    assert "--rpc_socket_port=9700" in args and "--rpc_host=$(POD_IP)" in args
    assert "--etcd_endpoint=http://vineyard-etcd.ns1.svc:2379" in args
    env = {e.name: e for e in c.env}
    assert env["VINEYARD_IPC_SOCKET"].value == "/run/vy/vineyard.sock"
    assert env["POD_IP"].value_from.field_ref.field_path == "status.podIP"
    (mount,) = c.volume_mounts
    (volume,) = pod.volumes
    assert mount.name == volume.name and mount.mount_path == "/run/vy"
    assert volume.host_path.path == "/var/run/vineyard-kubernetes/ns1/vineyardd"
    assert volume.host_path.type == "DirectoryOrCreate"
    assert c.readiness_probe._exec.command == ["test", "-S", "/run/vy/vineyard.sock"]
    assert [p.container_port for p in c.ports] == [9700, 9601]
    assert c.image == "img:1" and [s.name for s in pod.image_pull_secrets] == ["s1", "s2"]
    assert ds.spec.selector.match_labels.items() <= ds.spec.template.metadata.labels.items()
    rpc = by[("Service", "vineyardd-rpc")]
    assert rpc.spec.selector == ds.spec.template.metadata.labels
    assert rpc.spec.ports[0].port == 9700
    etcd = by[("StatefulSet", "vineyard-etcd")]
    etcd_pod = etcd.spec.template.metadata.labels
    assert by[("Service", "vineyard-etcd")].spec.selector == etcd_pod
    assert etcd.spec.service_name == "vineyard-etcd-peers"
    assert "--advertise-client-urls=http://vineyard-etcd.ns1.svc:2379" in \
        etcd.spec.template.spec.containers[0].args
    assert all(o.metadata.namespace == "ns1" for o in objects if o.kind != "Namespace")


class FakeApiServer:
    """Records requests; answers POST with the body (201), DELETE as the API server does
    (the deleted Service, a Status for the others), GET with 404 (deleted);
    ``fail_kind`` makes the POST of that kind answer 500."""

    def __init__(self):
        self.requests = []
        self.fail_kind = None
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _reply(self, code, body):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append(("POST", self.path, body))
                if body.get("kind") == outer.fail_kind:
                    return self._reply(500, {"kind": "Status", "code": 500,
                                             "message": "refused by the test"})
                self._reply(201, body)

            def do_DELETE(self):
                outer.requests.append(("DELETE", self.path, None))
                if "/services/" in self.path:
                    name = self.path.rsplit("/", 1)[1]
                    return self._reply(200, {"kind": "Service", "apiVersion": "v1",
                                             "metadata": {"name": name}})
                self._reply(200, {"kind": "Status", "apiVersion": "v1", "status": "Success"})

            def do_GET(self):
                outer.requests.append(("GET", self.path, None))
                self._reply(404, {"kind": "Status", "code": 404, "reason": "NotFound"})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        conf = k8s.Configuration(host=f"http://127.0.0.1:{self.httpd.server_port}")
        conf.proxy = None
        self.client = k8s.ApiClient(conf)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def api(monkeypatch):
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(var, raising=False)
    server = FakeApiServer()
    yield server
    server.close()


def test_start_and_delete_through_the_client(api):
    created = vk.start_vineyardd(namespace="vy", size="1Gi", k8s_client=api.client)
    posts = [(path, body["kind"], body["metadata"]["name"])
             for verb, path, body in api.requests if verb == "POST"]
    assert posts == [
        ("/api/v1/namespaces", "Namespace", "vy"),
        ("/api/v1/namespaces/vy/services", "Service", "vineyard-etcd-peers"),
        ("/api/v1/namespaces/vy/services", "Service", "vineyard-etcd"),
        ("/apis/apps/v1/namespaces/vy/statefulsets", "StatefulSet", "vineyard-etcd"),
        ("/apis/apps/v1/namespaces/vy/daemonsets", "DaemonSet", "vineyardd"),
        ("/api/v1/namespaces/vy/services", "Service", "vineyardd-rpc")]
    ds_body = [b for v, p, b in api.requests if v == "POST" and b["kind"] == "DaemonSet"][0]
    assert "--size=1Gi" in ds_body["spec"]["template"]["spec"]["containers"][0]["args"]
    assert len(created) == 6

    api.requests.clear()
    vk.delete_kubernetes_objects(created, k8s_client=api.client, wait=True, timeout_seconds=10)
    deletes = [path for verb, path, _ in api.requests if verb == "DELETE"]
    assert deletes == ["/api/v1/namespaces/vy/services/vineyardd-rpc",
                       "/apis/apps/v1/namespaces/vy/daemonsets/vineyardd",
                       "/apis/apps/v1/namespaces/vy/statefulsets/vineyard-etcd",
                       "/api/v1/namespaces/vy/services/vineyard-etcd",
                       "/api/v1/namespaces/vy/services/vineyard-etcd-peers",
                       "/api/v1/namespaces/vy"]
    assert len([1 for verb, _, _ in api.requests if verb == "GET"]) == 6  # waited for each


def test_a_failed_creation_removes_what_was_created(api):
    api.fail_kind = "DaemonSet"
    with pytest.raises(ApiException) as e:
        vk.start_vineyardd(namespace="vy", k8s_client=api.client)
    assert e.value.status == 500
    deletes = [path for verb, path, _ in api.requests if verb == "DELETE"]
    assert deletes == ["/apis/apps/v1/namespaces/vy/statefulsets/vineyard-etcd",
                       "/api/v1/namespaces/vy/services/vineyard-etcd",
                       "/api/v1/namespaces/vy/services/vineyard-etcd-peers"]
