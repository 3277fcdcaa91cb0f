"""vineyard on Kubernetes, through the official ``kubernetes`` Python client.

``start_vineyardd`` creates, in ``namespace``:

* ``vineyard-etcd``: a one-replica StatefulSet running etcd (from the vineyardd image,
  which ships Debian's etcd-server), with a headless Service for its pod and a Service
  ``vineyard-etcd`` on port 2379 for the instances;
* ``vineyardd``: a DaemonSet, one instance per node, joined through that etcd. The
  directory of its socket is the node's ``/var/run/vineyard-kubernetes/<namespace>/vineyardd``
  (a hostPath), mounted at ``dirname(socket)``: a pod on the node that mounts the same
  hostPath anywhere finds the socket there, under the name ``basename(socket)``. The
  instance's RPC endpoint is its pod IP and ``rpc_socket_port``; its metrics are on port
  9601;
* ``vineyardd-rpc``: a Service over the instances' RPC ports.

``manifests(...)`` returns the same objects without an API server (the YAML files under
``deploy/kubernetes/`` are its output with the defaults); ``delete_kubernetes_objects``
removes what ``start_vineyardd`` returned.
"""
from __future__ import annotations

import os
import time
from typing import Any, Dict, List, Optional

from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

__all__ = ["start_vineyardd", "delete_kubernetes_objects", "manifests", "to_dicts"]

ETCD_PORT = 2379
ETCD_PEER_PORT = 2380
_LABELS = {"app.kubernetes.io/name": "vineyard"}


def _labels(component: str) -> Dict[str, str]:
    return {**_LABELS, "app.kubernetes.io/component": component}


def _pull_secrets(secrets: Any) -> Optional[List[k8s.V1LocalObjectReference]]:
    if not secrets:
        return None
    if isinstance(secrets, str):
        secrets = [s.strip() for s in secrets.split(",") if s.strip()]
    return [k8s.V1LocalObjectReference(name=s) for s in secrets]


def manifests(namespace: str = "vineyard", size: str = "512Mi",
              socket: str = "/var/run/vineyard.sock", rpc_socket_port: int = 9600,
              vineyard_image: str = "vineyardcloudnative/vineyardd:latest",
              vineyard_image_pull_policy: str = "IfNotPresent",
              vineyard_image_pull_secrets: Any = None,
              etcd_prefix: str = "vineyard",
              host_socket_dir: Optional[str] = None) -> List[Any]:
    """The Kubernetes objects of a vineyard deployment, as models of the ``kubernetes``
    client (in the order they are created). ``host_socket_dir``: the node's directory
    that holds the socket (default ``/var/run/vineyard-kubernetes/<namespace>/vineyardd``),
    mounted at ``dirname(socket)`` in the vineyardd container."""
    socket_dir = os.path.dirname(socket) or "/"
    host_dir = host_socket_dir or f"/var/run/vineyard-kubernetes/{namespace}/vineyardd"
    etcd_host = f"vineyard-etcd.{namespace}.svc"
    pull_secrets = _pull_secrets(vineyard_image_pull_secrets)
    meta = lambda name, component: k8s.V1ObjectMeta(  # noqa: E731
        name=name, namespace=namespace, labels=_labels(component))

    etcd_headless = k8s.V1Service(
        api_version="v1", kind="Service", metadata=meta("vineyard-etcd-peers", "etcd"),
        spec=k8s.V1ServiceSpec(
            cluster_ip="None", selector=_labels("etcd"), publish_not_ready_addresses=True,
            ports=[k8s.V1ServicePort(name="client", port=ETCD_PORT),
                   k8s.V1ServicePort(name="peer", port=ETCD_PEER_PORT)]))
    etcd_service = k8s.V1Service(
        api_version="v1", kind="Service", metadata=meta("vineyard-etcd", "etcd"),
        spec=k8s.V1ServiceSpec(
            selector=_labels("etcd"),
            ports=[k8s.V1ServicePort(name="client", port=ETCD_PORT,
                                     target_port=ETCD_PORT)]))
    peer = f"http://vineyard-etcd-0.vineyard-etcd-peers.{namespace}.svc:{ETCD_PEER_PORT}"
    etcd_container = k8s.V1Container(
        name="etcd", image=vineyard_image, image_pull_policy=vineyard_image_pull_policy,
        command=["etcd"],
        args=["--name=vineyard-etcd-0", "--data-dir=/var/lib/etcd",
              f"--listen-client-urls=http://0.0.0.0:{ETCD_PORT}",
              f"--advertise-client-urls=http://{etcd_host}:{ETCD_PORT}",
              f"--listen-peer-urls=http://0.0.0.0:{ETCD_PEER_PORT}",
              f"--initial-advertise-peer-urls={peer}",
              f"--initial-cluster=vineyard-etcd-0={peer}",
              "--initial-cluster-state=new"],
        ports=[k8s.V1ContainerPort(name="client", container_port=ETCD_PORT),
               k8s.V1ContainerPort(name="peer", container_port=ETCD_PEER_PORT)],
        volume_mounts=[k8s.V1VolumeMount(name="data", mount_path="/var/lib/etcd")],
        readiness_probe=k8s.V1Probe(
            http_get=k8s.V1HTTPGetAction(path="/health", port=ETCD_PORT),
            period_seconds=5))
    etcd = k8s.V1StatefulSet(
        api_version="apps/v1", kind="StatefulSet", metadata=meta("vineyard-etcd", "etcd"),
        spec=k8s.V1StatefulSetSpec(
            replicas=1, service_name="vineyard-etcd-peers",
            selector=k8s.V1LabelSelector(match_labels=_labels("etcd")),
            template=k8s.V1PodTemplateSpec(
                metadata=k8s.V1ObjectMeta(labels=_labels("etcd")),
                spec=k8s.V1PodSpec(
                    containers=[etcd_container], image_pull_secrets=pull_secrets,
                    volumes=[k8s.V1Volume(name="data",
                                          empty_dir=k8s.V1EmptyDirVolumeSource())]))))

    vineyardd_container = k8s.V1Container(
        name="vineyardd", image=vineyard_image, image_pull_policy=vineyard_image_pull_policy,
        command=["vineyardd"],
        args=[f"--socket={socket}", f"--size={size}", "--meta=etcd",
              f"--etcd_endpoint=http://{etcd_host}:{ETCD_PORT}", f"--etcd_prefix={etcd_prefix}",
              "--skip_launch_etcd", "--meta_timeout=60", "--deployment=distributed",
              f"--rpc_socket_port={rpc_socket_port}", "--rpc_host=$(POD_IP)",
              "--socket_mode=0666", "--metrics", "--metrics_port=9601"],
        env=[k8s.V1EnvVar(name="POD_IP", value_from=k8s.V1EnvVarSource(
                 field_ref=k8s.V1ObjectFieldSelector(field_path="status.podIP"))),
             k8s.V1EnvVar(name="VINEYARD_IPC_SOCKET", value=socket)],
        ports=[k8s.V1ContainerPort(name="rpc", container_port=rpc_socket_port),
               k8s.V1ContainerPort(name="metrics", container_port=9601)],
        resources=k8s.V1ResourceRequirements(requests={"memory": size}),
        volume_mounts=[k8s.V1VolumeMount(name="vineyard-socket", mount_path=socket_dir)],
        readiness_probe=k8s.V1Probe(
            exec=k8s.V1ExecAction(command=["test", "-S", socket]), period_seconds=2),
        liveness_probe=k8s.V1Probe(
            tcp_socket=k8s.V1TCPSocketAction(port=rpc_socket_port),
            initial_delay_seconds=30, period_seconds=10))
    daemonset = k8s.V1DaemonSet(
        api_version="apps/v1", kind="DaemonSet", metadata=meta("vineyardd", "vineyardd"),
        spec=k8s.V1DaemonSetSpec(
            selector=k8s.V1LabelSelector(match_labels=_labels("vineyardd")),
            template=k8s.V1PodTemplateSpec(
                metadata=k8s.V1ObjectMeta(
                    labels=_labels("vineyardd"),
                    annotations={"prometheus.io/scrape": "true",
                                 "prometheus.io/port": "9601"}),
                spec=k8s.V1PodSpec(
                    containers=[vineyardd_container], image_pull_secrets=pull_secrets,
                    volumes=[k8s.V1Volume(
                        name="vineyard-socket",
                        host_path=k8s.V1HostPathVolumeSource(
                            path=host_dir, type="DirectoryOrCreate"))]))))
    rpc_service = k8s.V1Service(
        api_version="v1", kind="Service", metadata=meta("vineyardd-rpc", "vineyardd"),
        spec=k8s.V1ServiceSpec(
            selector=_labels("vineyardd"),
            ports=[k8s.V1ServicePort(name="rpc", port=rpc_socket_port,
                                     target_port=rpc_socket_port)]))
    namespace_obj = k8s.V1Namespace(api_version="v1", kind="Namespace",
                                    metadata=k8s.V1ObjectMeta(name=namespace, labels=_LABELS))
    return [namespace_obj, etcd_headless, etcd_service, etcd, daemonset, rpc_service]


def to_dicts(objects: List[Any]) -> List[Dict[str, Any]]:
    """The objects as the API server takes them (camelCase keys, no nulls)."""
    api = k8s.ApiClient()
    return [api.sanitize_for_serialization(o) for o in objects]


def _api_client(k8s_client: Any) -> Any:
    if k8s_client is not None:
        return k8s_client
    from kubernetes import config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return k8s.ApiClient()


def _create(api_client: Any, obj: Any) -> Any:
    ns = obj.metadata.namespace
    core, apps = k8s.CoreV1Api(api_client), k8s.AppsV1Api(api_client)
    if obj.kind == "Namespace":
        try:
            return core.create_namespace(obj)
        except ApiException as e:
            if e.status == 409:  # exists: used, and not deleted with the rest
                return None
            raise
    create = {"Service": core.create_namespaced_service,
              "StatefulSet": apps.create_namespaced_stateful_set,
              "DaemonSet": apps.create_namespaced_daemon_set}[obj.kind]
    return create(ns, obj)


def start_vineyardd(namespace: str = "vineyard", size: str = "512Mi",
                    socket: str = "/var/run/vineyard.sock", rpc_socket_port: int = 9600,
                    vineyard_image: str = "vineyardcloudnative/vineyardd:latest",
                    vineyard_image_pull_policy: str = "IfNotPresent",
                    vineyard_image_pull_secrets: Any = None,
                    k8s_client: Any = None) -> List[Any]:
    """Create etcd, the vineyardd DaemonSet and its RPC Service in ``namespace`` (see the
    module doc); returns the created objects (the namespace among them only when it did
    not exist), for ``delete_kubernetes_objects``. When a creation fails, what was
    created before it is deleted and the error raised.
    ``k8s_client``: a ``kubernetes.client.ApiClient`` (default: the in-cluster config,
    else ``~/.kube/config``'s current context)."""
    api_client = _api_client(k8s_client)
    created: List[Any] = []
    try:
        for obj in manifests(namespace, size, socket, rpc_socket_port, vineyard_image,
                             vineyard_image_pull_policy, vineyard_image_pull_secrets):
            result = _create(api_client, obj)
            if result is not None:
                created.append(obj)
    except BaseException:
        delete_kubernetes_objects([o for o in created if o.kind != "Namespace"],
                                  k8s_client=api_client)
        raise
    return created


def _delete(api_client: Any, obj: Any, body: Any) -> None:
    core, apps = k8s.CoreV1Api(api_client), k8s.AppsV1Api(api_client)
    name, ns = obj.metadata.name, obj.metadata.namespace
    if obj.kind == "Namespace":
        core.delete_namespace(name, body=body)
        return
    delete = {"Service": core.delete_namespaced_service,
              "StatefulSet": apps.delete_namespaced_stateful_set,
              "DaemonSet": apps.delete_namespaced_daemon_set}[obj.kind]
    delete(name, ns, body=body)


def _exists(api_client: Any, obj: Any) -> bool:
    core, apps = k8s.CoreV1Api(api_client), k8s.AppsV1Api(api_client)
    name, ns = obj.metadata.name, obj.metadata.namespace
    read = {"Namespace": lambda: core.read_namespace(name),
            "Service": lambda: core.read_namespaced_service(name, ns),
            "StatefulSet": lambda: apps.read_namespaced_stateful_set(name, ns),
            "DaemonSet": lambda: apps.read_namespaced_daemon_set(name, ns)}[obj.kind]
    try:
        read()
        return True
    except ApiException as e:
        if e.status == 404:
            return False
        raise


def delete_kubernetes_objects(targets: List[Any], k8s_client: Any = None, verbose: bool = False,
                              wait: bool = False, timeout_seconds: int = 60,
                              **kwargs: Any) -> None:
    """Delete ``targets`` (what ``start_vineyardd`` returned) in the reverse order of
    their creation; one already gone is skipped. ``wait``: until each is gone, at most
    ``timeout_seconds`` in all (TimeoutError after). ``kwargs`` go into the
    ``V1DeleteOptions`` (e.g. ``propagation_policy="Foreground"``)."""
    api_client = _api_client(k8s_client)
    body = k8s.V1DeleteOptions(**kwargs) if kwargs else None
    for obj in reversed(list(targets)):
        try:
            _delete(api_client, obj, body)
            if verbose:
                print(f"deleted {obj.kind} {obj.metadata.namespace or ''}/{obj.metadata.name}")
        except ApiException as e:
            if e.status != 404:
                raise
    if wait:
        deadline = time.monotonic() + timeout_seconds
        for obj in targets:
            while _exists(api_client, obj):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{obj.kind} {obj.metadata.name} still exists after "
                                       f"{timeout_seconds}s")
                time.sleep(0.5)


def _write_manifests(directory: str) -> List[str]:
    """Writes the default manifests as YAML, one file per object; returns the paths."""
    import yaml

    os.makedirs(directory, exist_ok=True)
    paths = []
    for i, doc in enumerate(to_dicts(manifests())):
        name = f"{i:02d}-{doc['kind'].lower()}-{doc['metadata']['name']}.yaml"
        path = os.path.join(directory, name)
        with open(path, "w") as f:
            f.write("# Generated by `python -m vineyard.deploy.kubernetes deploy/kubernetes`"
                    " (vineyard.deploy.kubernetes.manifests() with its defaults).\n")
            yaml.safe_dump(doc, f, sort_keys=False)
        paths.append(path)
    return paths


if __name__ == "__main__":
    import sys

    for p in _write_manifests(sys.argv[1] if len(sys.argv) > 1 else "deploy/kubernetes"):
        print(p)
