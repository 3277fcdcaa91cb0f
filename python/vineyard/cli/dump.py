"""Objects to files and back (``vineyard-cli dump`` / ``load``).

One object is one folder ``<dir>/<object id>/``: ``meta.json`` (format, the object's id,
typename, size, names and its metadata tree as ``ObjectMeta.to_dict()`` gives it) and one
``<blob id>.bin`` per blob of the tree. Loading creates the blobs again, then the tree
bottom-up with the new blob ids (a member shared by several parents is created once),
persists the root when the dumped one was persistent and restores its names.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List

FORMAT = "vineyard-dump/1"
_CHUNK = 8 << 20
# Keys of a metadata tree the server sets: never copied into a new ObjectMeta.
_SERVER_KEYS = {"id", "typename", "nbytes", "instance_id", "signature", "transient", "global",
                "__timestamp"}


@dataclass
class Plan:
    id: Any
    typename: str
    nbytes: int
    tree: Dict[str, Any]
    meta: Any                                   # with the local blobs mapped
    blobs: Dict[str, int] = field(default_factory=dict)  # blob id -> size


def _blob_leaves(tree: Dict[str, Any], out: Dict[str, int]) -> None:
    if tree.get("typename") == "vineyard::Blob":
        out[tree["id"]] = int(tree.get("length", tree.get("nbytes", 0)))
        return
    for value in tree.values():
        if isinstance(value, dict) and "typename" in value:
            _blob_leaves(value, out)


def plan(client, oid) -> Plan:
    """What dumping ``oid`` writes; its blobs must all be on the connected instance."""
    meta = client.get_object_meta(oid)
    tree = meta.to_dict()
    blobs: Dict[str, int] = {}
    _blob_leaves(tree, blobs)
    return Plan(oid, meta.typename, sum(blobs.values()), tree, meta, blobs)


def write(p: Plan, output: str, names: List[str], advance: Callable[[int], None]) -> str:
    import vineyard

    folder = os.path.join(output, f"o{int(p.id):016x}")
    os.makedirs(folder, exist_ok=True)
    for blob_id, size in p.blobs.items():
        bid = vineyard.ObjectID(blob_id)
        target = os.path.join(folder, f"{blob_id}.bin")
        with open(target, "wb") as f:
            if size:
                try:
                    blob = p.meta.get_buffer(bid)
                except vineyard.VineyardException as e:
                    raise vineyard.ObjectNotExistsException(
                        f"blob {blob_id} of {p.id} is not on this instance ({e}): migrate "
                        f"the object here first (vineyard-cli migrate {p.id})") from None
                view = memoryview(blob).cast("B")
                for start in range(0, len(view), _CHUNK):
                    chunk = view[start:start + _CHUNK]
                    f.write(chunk)
                    advance(len(chunk))
    doc = {"format": FORMAT, "id": f"o{int(p.id):016x}", "typename": p.typename, "nbytes": p.nbytes,
           "names": names, "persistent": not p.tree.get("transient", True),
           "blobs": p.blobs, "meta": p.tree}
    with open(os.path.join(folder, "meta.json"), "w") as f:
        json.dump(doc, f, indent=1, default=str)
    return folder


@dataclass
class Dumped:
    folder: str
    id: str
    typename: str
    nbytes: int
    names: List[str]
    persistent: bool
    blobs: Dict[str, int]
    tree: Dict[str, Any]


def find(path: str) -> List[Dumped]:
    """The dumped objects in ``path``: an object folder, or a directory of them."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file or directory")
    folders = [path] if os.path.exists(os.path.join(path, "meta.json")) else sorted(
        os.path.join(path, d) for d in os.listdir(path)
        if os.path.exists(os.path.join(path, d, "meta.json")))
    if not folders:
        raise FileNotFoundError(f"{path}: no meta.json here nor in its folders: not a dump")
    out = []
    for folder in folders:
        meta_path = os.path.join(folder, "meta.json")
        try:
            with open(meta_path) as f:
                doc = json.load(f)
            if doc.get("format") != FORMAT:
                raise ValueError(f"format {doc.get('format')!r}, expected {FORMAT!r}")
            out.append(Dumped(folder, doc["id"], doc["typename"], int(doc["nbytes"]),
                              list(doc.get("names", [])), bool(doc.get("persistent")),
                              {k: int(v) for k, v in doc["blobs"].items()}, doc["meta"]))
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{meta_path}: not a dump's meta.json ({e})") from None
    return out


def load(client, d: Dumped, restore_names: bool, advance: Callable[[int], None]):
    """Recreates ``d`` on the connected instance; returns the new root's id. What was
    created is deleted again when a step fails."""
    import vineyard

    created_blobs: Dict[str, Any] = {}
    created_objects: List[Any] = []
    try:
        for blob_id, size in d.blobs.items():
            if size == 0:
                created_blobs[blob_id] = vineyard.ObjectID.empty_blob()
                continue
            path = os.path.join(d.folder, f"{blob_id}.bin")
            if os.path.getsize(path) != size:
                raise ValueError(f"{path}: {os.path.getsize(path)} bytes, the dump says {size}")
            builder = client.create_blob(size)
            with open(path, "rb") as f:
                offset = 0
                while offset < size:
                    chunk = f.read(min(_CHUNK, size - offset))
                    builder.copy(offset, chunk)
                    offset += len(chunk)
                    advance(len(chunk))
            created_blobs[blob_id] = builder.seal(client).id
        done: Dict[str, Any] = {}

        def build(tree: Dict[str, Any]):
            if tree.get("typename") == "vineyard::Blob":
                return created_blobs[tree["id"]]
            if tree["id"] in done:
                return done[tree["id"]]
            meta = vineyard.ObjectMeta(global_=bool(tree.get("global", False)))
            meta.typename = tree["typename"]
            meta.nbytes = int(tree.get("nbytes", 0))
            for key, value in tree.items():
                if key in _SERVER_KEYS:
                    continue
                if isinstance(value, dict) and "typename" in value:
                    meta.add_member(key, build(value))
                else:
                    meta[key] = value
            made = client.create_metadata(meta)
            created_objects.append(made.id)
            done[tree["id"]] = made.id
            return made.id

        root = build(d.tree)
        if d.persistent or (restore_names and d.names):
            client.persist(root)
        if restore_names:
            for name in d.names:
                client.put_name(root, name)
        return root
    except BaseException:
        for oid in reversed(created_objects):
            try:
                client.delete(oid, force=True, deep=False)
            except Exception:  # noqa: BLE001
                pass
        for bid in created_blobs.values():
            try:
                if not bid.is_blob() or bid == vineyard.ObjectID.empty_blob():
                    continue
                client.delete(bid, force=True, deep=False)
            except Exception:  # noqa: BLE001
                pass
        raise
