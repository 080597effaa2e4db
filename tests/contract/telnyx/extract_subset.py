"""Trim Telnyx spec3.yml to a subset of operations plus transitively referenced components."""

import sys

import yaml

SRC = sys.argv[1]
DST = sys.argv[2]

WANT = {
    "/telephony_credentials": ["get", "post"],
    "/telephony_credentials/{id}": ["get", "patch", "delete"],
    "/telephony_credentials/{id}/token": ["post"],
    "/credential_connections": ["get", "post"],
    "/credential_connections/{id}": ["get", "delete"],
    "/calls": ["post"],
    "/calls/{call_control_id}": ["get"],
    "/calls/{call_control_id}/actions/hangup": ["post"],
    # Two-leg calls (agent leg + customer leg), ringback, recording: added 2026-11-30.
    "/calls/{call_control_id}/actions/answer": ["post"],
    "/calls/{call_control_id}/actions/bridge": ["post"],
    "/calls/{call_control_id}/actions/transfer": ["post"],
    "/calls/{call_control_id}/actions/playback_start": ["post"],
    "/calls/{call_control_id}/actions/playback_stop": ["post"],
    "/calls/{call_control_id}/actions/record_start": ["post"],
    "/calls/{call_control_id}/actions/record_stop": ["post"],
    "/calls/{call_control_id}/actions/record_pause": ["post"],
    "/calls/{call_control_id}/actions/record_resume": ["post"],
    "/recordings": ["get"],
    "/recordings/{recording_id}": ["get", "delete"],
    "/recordings/actions/delete": ["post"],
}
WEBHOOKS = [
    "callInitiated",
    "callAnswered",
    "callBridged",
    "callHangup",
    "callPlaybackStarted",
    "callPlaybackEnded",
    "callRecordingSaved",
    "callRecordingError",
]
HTTP = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


class Loader(yaml.SafeLoader):
    pass


# Keep strings like '2024-01-01' / 'on' etc. exactly as they are: don't let YAML 1.1
# resolvers turn timestamps into datetime objects (would change the data on dump).
Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}

with open(SRC) as f:
    spec = yaml.load(f, Loader=Loader)

paths_out = {}
for p, methods in WANT.items():
    item = spec["paths"][p]
    present = {k for k in item if k in HTTP}
    missing = set(methods) - present
    if missing:
        sys.exit(f"missing {p} {missing}")
    new = {k: v for k, v in item.items() if k not in HTTP}  # path-level params, summary...
    for m in methods:
        new[m] = item[m]
    dropped = present - set(methods)
    if dropped:
        print(f"note: dropped {p} {sorted(dropped)}", file=sys.stderr)
    paths_out[p] = new

comps = spec["components"]
need = {}  # (section, name)


def walk(node):
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            if not ref.startswith("#/components/"):
                sys.exit(f"unsupported ref {ref}")
            parts = ref[len("#/components/") :].split("/")
            if len(parts) != 2:
                sys.exit(f"unsupported nested ref {ref}")
            key = (parts[0], parts[1].replace("~1", "/").replace("~0", "~"))
            if key not in need:
                need[key] = True
                walk(comps[key[0]][key[1]])
        for v in node.values():
            walk(v)
    elif isinstance(node, list):
        for v in node:
            walk(v)


walk(paths_out)
webhooks_out = {name: spec["webhooks"][name] for name in WEBHOOKS}
walk(webhooks_out)

# security: global requirement + any per-operation requirements
sec_names = set()
for req in spec.get("security", []):
    sec_names.update(req)
for item in paths_out.values():
    for m, op in item.items():
        if m in HTTP:
            for req in op.get("security", []) or []:
                sec_names.update(req)
    # security schemes may be referenced via 'security' only
components_out = {}
for sec, name in sorted(need):
    components_out.setdefault(sec, {})[name] = comps[sec][name]
components_out["securitySchemes"] = {n: comps["securitySchemes"][n] for n in sorted(sec_names)}
# Keep components sections in the same order as the source
ordered = {}
for sec in comps:
    if sec in components_out:
        ordered[sec] = dict(sorted(components_out[sec].items()))

tags_used = []
for item in paths_out.values():
    for m, op in item.items():
        if m in HTTP:
            for t in op.get("tags", []):
                if t not in tags_used:
                    tags_used.append(t)
tags_out = [t for t in spec.get("tags", []) if t["name"] in tags_used]

out = {}
for k in spec:  # preserve top-level key order of the source
    if k == "openapi":
        out[k] = spec[k]
    elif k == "info":
        out[k] = spec[k]
    elif k == "servers":
        out[k] = spec[k]
    elif k == "security":
        out[k] = spec[k]
    elif k == "tags":
        out[k] = tags_out
    elif k == "paths":
        out[k] = paths_out
    elif k == "components":
        out[k] = ordered
    elif k == "webhooks":
        out[k] = webhooks_out
    else:
        print(f"note: dropped top-level key {k}", file=sys.stderr)


class Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data):
        return True


with open(DST, "w") as f:
    yaml.dump(out, f, Dumper=Dumper, sort_keys=False, allow_unicode=True, width=88)

print(
    f"paths={len(paths_out)} ops={sum(1 for i in paths_out.values() for m in i if m in HTTP)}",
    file=sys.stderr,
)
for sec, d in ordered.items():
    print(f"  {sec}: {len(d)}", file=sys.stderr)
