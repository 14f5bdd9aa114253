"""Offline validation of weir's deployment material; run by scripts/validate-deploy.sh.

Checks, with the pinned tools of scripts/validate-deploy.requirements.txt:

- Kubernetes manifests (every *.yaml/*.yml directly in each given directory,
  or the given files): YAML without duplicate keys; every built-in kind
  against the OpenAPI schema of one pinned Kubernetes version, strict
  (unknown fields are errors), from kubernetes-validate's bundled schemas;
  KEDA ScaledObjects against deploy/kubernetes/schemas/ (KEDA's CRD, strict,
  with the Kafka trigger's metadata keys); a kind with no schema is an error.
- kustomization.yaml: its resources exist and every manifest beside it is
  listed (except *.example.yaml); rendered with `kubectl kustomize` and the
  output validated too when kubectl is installed.
- The resources agree with each other: selectors select the pod template,
  named ports and referenced ConfigMaps/ServiceAccounts exist, the pipeline
  file in the ConfigMap parses and its [source.kafka] brokers/topic/group/start
  are what the KEDA trigger measures, its [telemetry] port is the one probed
  and scraped, its writable directories are on volumes, every "${NAME}" it
  uses is in the pod's environment, and the grace period outlasts the host's
  90 s shutdown.
- The Dockerfile with hadolint; the Grafana dashboard's structure and every
  query's PromQL (parsed and type-checked after substituting Grafana's
  variables).

Prints what it checked; exits 1 if anything is wrong, naming the file.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import promql_parser
import yaml
from kubernetes_validate import utils as kv
from referencing import Registry, Resource

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib

DEFAULT_KUBERNETES_VERSION = "1.33"
# The host's own bound on a graceful stop (SIGTERM: flush, commit, exit).
HOST_SHUTDOWN_SECONDS = 90


class Problems:
    def __init__(self):
        self.items = []

    def add(self, where, message):
        self.items.append(f"{where}: {message}")
        print(f"FAIL {where}: {message}")


def display(path):
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


# --- YAML ------------------------------------------------------------------


class StrictLoader(yaml.SafeLoader):
    """A SafeLoader for which a key repeated in one mapping is an error
    (PyYAML keeps the last one silently; kubectl refuses the file)."""


def _construct_mapping(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark,
                f"found duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_documents(path, problems):
    try:
        text = Path(path).read_text()
        return [doc for doc in yaml.load_all(text, Loader=StrictLoader) if doc is not None]
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        problems.add(display(path), f"not valid YAML: line {mark.line + 1}, column "
                                    f"{mark.column + 1}: {e.problem}")
        return []
    except (OSError, yaml.YAMLError) as e:
        problems.add(display(path), f"not valid YAML: {e}")
        return []


def resource_name(doc):
    meta = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
    return f"{doc.get('kind', '?')}/{meta.get('name', '?')}"


def error_path(error):
    path = ".".join(str(p) for p in error.absolute_path)
    return path or "(top level)"


def report_schema_errors(errors, where, problems):
    errors = sorted(errors, key=lambda e: list(map(str, e.absolute_path)))
    for error in errors:
        # For anyOf/oneOf, the branch that came closest says more.
        detail = jsonschema.exceptions.best_match(error.context) if error.context else error
        problems.add(where, f"{error_path(error)}: {detail.message}")
    return not errors


# --- schemas ---------------------------------------------------------------


class Schemas:
    def __init__(self, kubernetes_version, schema_dir):
        self.kubernetes_version = kubernetes_version
        supported = [v for v in kv.all_versions()
                     if kv.major_minor(v) == kv.major_minor(kubernetes_version)]
        if not supported:
            sys.exit(f"kubernetes-validate {kv.__version__} has no schemas for Kubernetes "
                     f"{kubernetes_version} (it has {', '.join(kv.all_versions())})")
        self.k8s_dir = f"kubernetes-json-schema/v{supported[-1]}-local-strict"
        definitions = kv.schema_contents(f"{self.k8s_dir}/_definitions.json", kubernetes_version)
        self.k8s_registry = Resource.from_contents(definitions) @ Registry()
        self.crds = {}
        for path in sorted(Path(schema_dir).glob("*.json")):
            schema = json.loads(path.read_text())
            api_version = schema["properties"]["apiVersion"]["const"]
            kind = schema["properties"]["kind"]["const"]
            jsonschema.Draft202012Validator.check_schema(schema)
            self.crds[(api_version, kind)] = (path, jsonschema.Draft202012Validator(schema))

    def validator(self, doc):
        """(label, validator) for a resource, or None if no schema knows its kind."""
        api_version, kind = doc.get("apiVersion"), doc.get("kind")
        if (api_version, kind) in self.crds:
            path, validator = self.crds[(api_version, kind)]
            return f"{path.name}, strict", validator
        if not isinstance(api_version, str) or not isinstance(kind, str):
            return None
        # kubernetes-validate's file naming: rbac.authorization.k8s.io/v1 -> rbac-v1
        group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
        try:
            schema = kv.schema_contents(f"{self.k8s_dir}/{kind.lower()}-{group_version}.json",
                                        self.kubernetes_version)
        except FileNotFoundError:
            return None
        registry = Resource.from_contents(schema) @ self.k8s_registry
        return (f"Kubernetes {self.kubernetes_version}, strict",
                jsonschema.Draft202012Validator(schema, registry=registry))


# --- manifests -------------------------------------------------------------


def manifest_files(paths, problems):
    files = []
    for path in paths:
        path = Path(path)
        if path.is_dir():
            found = sorted(p for p in path.iterdir()
                           if p.is_file() and p.suffix in (".yaml", ".yml"))
            if not found:
                problems.add(display(path), "no *.yaml manifests in this directory")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            problems.add(display(path), "no such file or directory")
    return files


def is_kustomization(doc):
    return str(doc.get("apiVersion", "")).startswith("kustomize.config.k8s.io/")


def validate_resource(doc, where, schemas, problems):
    if not isinstance(doc, dict):
        problems.add(where, "a manifest must be a mapping")
        return False
    found = schemas.validator(doc)
    if found is None:
        problems.add(where, f"no schema for kind {doc.get('kind')!r} of apiVersion "
                            f"{doc.get('apiVersion')!r} (Kubernetes {schemas.kubernetes_version}, "
                            f"or the CRDs in deploy/kubernetes/schemas/)")
        return False
    label, validator = found
    ok = report_schema_errors(validator.iter_errors(doc), where, problems)
    if ok:
        print(f"ok   {where} ({label})")
    return ok


def check_kustomization(path, doc, problems):
    where = f"{display(path)}: Kustomization"
    directory = path.parent
    listed = set()
    for entry in doc.get("resources") or []:
        target = directory / entry
        if not target.exists():
            problems.add(where, f"resources: {entry} does not exist")
        listed.add(target.resolve())
    for manifest in sorted(directory.iterdir()):
        if (manifest.suffix in (".yaml", ".yml") and manifest.name not in
                ("kustomization.yaml", "kustomization.yml") and
                ".example." not in manifest.name and manifest.resolve() not in listed):
            problems.add(where, f"{manifest.name} is not in resources (name it "
                                "*.example.yaml if it is not meant to be applied)")
    print(f"ok   {where}: {len(listed)} resources listed")


def kustomize_build(directory, schemas, problems):
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        print(f"skip {display(directory)}: kubectl not installed, `kubectl kustomize` not run")
        return []
    result = subprocess.run([kubectl, "kustomize", str(directory)],
                            capture_output=True, text=True)
    where = f"{display(directory)}: kubectl kustomize"
    if result.returncode != 0:
        problems.add(where, result.stderr.strip() or f"exit status {result.returncode}")
        return []
    docs = [d for d in yaml.safe_load_all(result.stdout) if d is not None]
    for doc in docs:
        validate_resource(doc, f"{where}: {resource_name(doc)}", schemas, problems)
    return docs


# --- consistency -----------------------------------------------------------


def selects(selector, labels):
    """Whether a LabelSelector (or a Service's plain label map) selects `labels`."""
    if not isinstance(selector, dict) or "matchExpressions" in selector:
        return False  # matchExpressions: not used here
    match = selector.get("matchLabels") if "matchLabels" in selector else selector
    return bool(match) and all(labels.get(k) == v for k, v in match.items())


def kafka_brokers(text):
    return sorted(b.strip() for b in str(text).split(",") if b.strip())


def port_of(address):
    return int(str(address).rsplit(":", 1)[1])


def check_consistency(resources, problems):
    """resources: (file, doc) pairs that passed their schema."""
    by_kind = {}
    for path, doc in resources:
        by_kind.setdefault(doc["kind"], []).append((path, doc))
    names = {(doc["kind"], doc["metadata"].get("name")) for _, doc in resources}
    configmaps = {doc["metadata"]["name"]: doc for _, doc in by_kind.get("ConfigMap", [])}
    secrets = {doc["metadata"]["name"]: doc for _, doc in by_kind.get("Secret", [])}
    deployments = {doc["metadata"]["name"]: (path, doc) for path, doc in by_kind.get("Deployment", [])}
    checked = 0

    for name, (path, deployment) in deployments.items():
        where = f"{display(path)}: Deployment/{name}"
        spec = deployment["spec"]
        template = spec["template"]
        pod_labels = template.get("metadata", {}).get("labels", {})
        pod = template["spec"]
        checked += 1
        if not selects(spec.get("selector"), pod_labels):
            problems.add(where, "spec.selector does not select the pod template's labels")
        grace = pod.get("terminationGracePeriodSeconds", 30)
        if grace <= HOST_SHUTDOWN_SECONDS:
            problems.add(where, f"terminationGracePeriodSeconds is {grace}: a host may take "
                                f"{HOST_SHUTDOWN_SECONDS} s to stop cleanly, so it must be longer")
        account = pod.get("serviceAccountName")
        if account and ("ServiceAccount", account) not in names:
            problems.add(where, f"serviceAccountName {account!r}: no such ServiceAccount here")
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for volume in volumes.values():
            ref = volume.get("configMap", {}).get("name")
            if ref and ref not in configmaps and not volume["configMap"].get("optional"):
                problems.add(where, f"volume {volume['name']!r}: no ConfigMap {ref!r} here")
        for container in pod["containers"]:
            cwhere = f"{where}: container {container['name']}"
            ports = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                port = container.get(probe, {}).get("httpGet", {}).get("port")
                if isinstance(port, str) and port not in ports:
                    problems.add(cwhere, f"{probe} uses port {port!r}, which the container "
                                         "does not name")
            for source in container.get("envFrom", []):
                ref = source.get("secretRef") or source.get("configMapRef") or {}
                pool = secrets if "secretRef" in source else configmaps
                if ref.get("name") not in pool and not ref.get("optional"):
                    problems.add(cwhere, f"envFrom {ref.get('name')!r} does not exist here "
                                         "and is not optional")
            env = {e["name"] for e in container.get("env", [])}
            for source in container.get("envFrom", []):
                ref = source.get("secretRef") or source.get("configMapRef") or {}
                pool = secrets if "secretRef" in source else configmaps
                provided = pool.get(ref.get("name"), {})
                env |= set(provided.get("data", {}) or {}) | set(provided.get("stringData", {}) or {})
            mounts = {m["mountPath"].rstrip("/"): m for m in container.get("volumeMounts", [])}
            for mount in mounts.values():
                if mount["name"] not in volumes:
                    problems.add(cwhere, f"volumeMount {mount['name']!r}: no such volume")
            read_only_root = container.get("securityContext", {}).get("readOnlyRootFilesystem")
            annotations = template.get("metadata", {}).get("annotations", {})
            for mount_path, mount in mounts.items():
                volume = volumes.get(mount["name"], {})
                cm = configmaps.get(volume.get("configMap", {}).get("name"))
                if cm is None:
                    continue
                for key, text in (cm.get("data") or {}).items():
                    if key.endswith(".toml"):
                        check_pipeline(f"{mount_path}/{key}", text, cm, container, ports, env,
                                       mounts, volumes, read_only_root, annotations,
                                       deployment, by_kind, cwhere, problems)

    for path, service in by_kind.get("Service", []):
        where = f"{display(path)}: Service/{service['metadata']['name']}"
        checked += 1
        selector = service["spec"].get("selector", {})
        targets = [d for _, d in deployments.values()
                   if all(d["spec"]["template"]["metadata"].get("labels", {}).get(k) == v
                          for k, v in selector.items())]
        if not targets:
            problems.add(where, "its selector selects no Deployment's pods")
        for port in service["spec"].get("ports", []):
            target = port.get("targetPort")
            for d in targets:
                named = {p.get("name") for c in d["spec"]["template"]["spec"]["containers"]
                         for p in c.get("ports", [])}
                if isinstance(target, str) and target not in named:
                    problems.add(where, f"targetPort {target!r} is not a named port of "
                                        f"Deployment/{d['metadata']['name']}")

    for path, pdb in by_kind.get("PodDisruptionBudget", []):
        where = f"{display(path)}: PodDisruptionBudget/{pdb['metadata']['name']}"
        checked += 1
        if not any(selects(pdb["spec"].get("selector"), d["spec"]["template"]["metadata"].get("labels", {}))
                   for _, d in deployments.values()):
            problems.add(where, "its selector selects no Deployment's pods")

    for path, scaled in by_kind.get("ScaledObject", []):
        where = f"{display(path)}: ScaledObject/{scaled['metadata']['name']}"
        checked += 1
        spec = scaled["spec"]
        # The CRD's CEL rule (x-kubernetes-validations), which JSON Schema cannot say.
        if spec.get("minReplicaCount", 0) > spec.get("maxReplicaCount", 100):
            problems.add(where, "minReplicaCount must be less than or equal to maxReplicaCount")
        ref = spec["scaleTargetRef"]
        if ref.get("kind", "Deployment") == "Deployment" and ref["name"] not in deployments:
            problems.add(where, f"scaleTargetRef: no Deployment {ref['name']!r} here")
    print(f"ok   cross-checks of {checked} resources (selectors, ports, references, "
          "the pipeline file against the pod and the KEDA trigger)")


def check_pipeline(path_in_pod, text, configmap, container, ports, env, mounts, volumes,
                   read_only_root, annotations, deployment, by_kind, where, problems):
    where = f"{where}: {path_in_pod} (ConfigMap/{configmap['metadata']['name']})"
    try:
        pipeline = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        problems.add(where, f"not valid TOML: {e}")
        return
    kafka = pipeline.get("source", {}).get("kafka")
    # "${NAME}" references: the host refuses to start if one is unset.
    for key, value in (kafka or {}).get("properties", {}).items():
        for name in re.findall(r"\$\{([^}]*)\}", str(value)):
            if name not in env:
                problems.add(where, f"source.kafka.properties.{key} uses ${{{name}}}, which is "
                                    "not in the container's environment")
    # Directories the host writes must be on a volume when the root is read-only.
    writable = [p for p, m in mounts.items() if not m.get("readOnly")]
    for key, value in (("runtime.compiled_cache_dir", pipeline.get("runtime", {}).get("compiled_cache_dir")),
                       ("event_mode.state_dir", pipeline.get("event_mode", {}).get("state_dir"))):
        if read_only_root and value is None:
            problems.add(where, f"{key} is not set: its default is on the read-only root filesystem")
        elif read_only_root and not any(str(value) == p or str(value).startswith(p + "/") for p in writable):
            problems.add(where, f"{key} = {value!r} is not on a writable volume "
                                "(the root filesystem is read-only)")
    listen = pipeline.get("telemetry", {}).get("listen")
    if listen is None:
        problems.add(where, "no [telemetry] listen: nothing serves /healthz, /readyz and /metrics")
    else:
        port = port_of(listen)
        if not str(listen).startswith(("0.0.0.0:", "[::]:")):
            problems.add(where, f"telemetry.listen = {listen!r}: probes and Prometheus reach the "
                                "pod's address, so listen on 0.0.0.0")
        if port not in ports.values():
            problems.add(where, f"telemetry.listen port {port} is not a container port")
        scrape = annotations.get("prometheus.io/port")
        if scrape is not None and scrape != str(port):
            problems.add(where, f"prometheus.io/port is {scrape}, telemetry.listen port is {port}")
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            probe_port = container.get(probe, {}).get("httpGet", {}).get("port")
            if probe_port is not None and ports.get(probe_port, probe_port) != port:
                problems.add(where, f"{probe} probes port {probe_port}, the host serves {port}")
    if kafka is None:
        return
    brokers = next((e.get("value") for e in container.get("env", [])
                    if e["name"] == "WEIR_KAFKA_BROKERS" and "value" in e), kafka.get("brokers"))
    for path, scaled in by_kind.get("ScaledObject", []):
        if scaled["spec"]["scaleTargetRef"]["name"] != deployment["metadata"]["name"]:
            continue
        for i, trigger in enumerate(scaled["spec"]["triggers"]):
            if trigger["type"] != "kafka":
                continue
            meta = trigger["metadata"]
            twhere = f"{display(path)}: ScaledObject/{scaled['metadata']['name']}: triggers.{i}.metadata"
            for field, expected in (("consumerGroup", kafka.get("group")), ("topic", kafka.get("topic"))):
                if field in meta and meta[field] != expected:
                    problems.add(twhere, f"{field} is {meta[field]!r} but the pipeline's "
                                         f"[source.kafka] has {expected!r}: KEDA would scale on "
                                         "another group's lag")
            if "bootstrapServers" in meta and kafka_brokers(meta["bootstrapServers"]) != kafka_brokers(brokers):
                problems.add(twhere, f"bootstrapServers is {meta['bootstrapServers']!r} but the "
                                     f"hosts use {brokers!r}")
            start = kafka.get("start", "earliest")
            policy = meta.get("offsetResetPolicy", "latest")
            if policy != start:
                problems.add(twhere, f"offsetResetPolicy is {policy!r} but the pipeline starts a "
                                     f"new group at {start!r}")


# --- Dockerfile ------------------------------------------------------------


def check_dockerfile(path, hadolint, problems):
    if not Path(path).is_file():
        problems.add(display(path), "no such file")
        return
    if hadolint is None:
        print(f"skip {display(path)}: hadolint not installed")
        return
    result = subprocess.run([hadolint, "--no-color", str(path)], capture_output=True, text=True)
    if result.returncode != 0:
        for line in (result.stdout + result.stderr).strip().splitlines():
            problems.add(display(path), f"hadolint: {line}")
        if not (result.stdout + result.stderr).strip():
            problems.add(display(path), f"hadolint exited with {result.returncode}")
    else:
        print(f"ok   {display(path)} (hadolint {hadolint_version(hadolint)})")


def hadolint_version(hadolint):
    out = subprocess.run([hadolint, "--version"], capture_output=True, text=True).stdout
    return out.strip().rsplit(" ", 1)[-1]


# --- Grafana dashboard -----------------------------------------------------

# Grafana's variables, replaced by what they stand for before parsing.
GRAFANA_VARIABLES = [
    (re.compile(r"\$__rate_interval\b|\$__interval\b|\$__range\b|\$\{__rate_interval\}|\$\{__interval\}|\$\{__range\}"), "5m"),
    (re.compile(r"\$__interval_ms\b|\$__range_ms\b|\$__range_s\b"), "300"),
]


def substitute(expr, variables):
    for pattern, value in GRAFANA_VARIABLES:
        expr = pattern.sub(value, expr)
    for name in variables:
        expr = re.sub(r"\$\{" + re.escape(name) + r"(:[a-z]+)?\}|\$" + re.escape(name) + r"\b",
                      "placeholder", expr)
    return expr


def check_dashboard(path, problems):
    where = display(path)
    try:
        dashboard = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        problems.add(where, f"not valid JSON: {e}")
        return
    before = len(problems.items)
    for key in ("title", "uid", "schemaVersion", "panels", "templating"):
        if key not in dashboard:
            problems.add(where, f"no {key!r}")
    if len(problems.items) > before:
        return
    inputs = {i.get("name") for i in dashboard.get("__inputs", [])}
    if "DS_PROMETHEUS" not in inputs:
        problems.add(where, "__inputs has no DS_PROMETHEUS (the data source chosen at import)")
    variables = {v.get("name"): v for v in dashboard["templating"].get("list", [])}
    pipeline = variables.get("pipeline")
    if pipeline is None:
        problems.add(where, "no `pipeline` template variable")
    panels = []
    for panel in dashboard["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))  # collapsed rows
    ids, cells, queries = set(), {}, 0
    for panel in panels:
        pwhere = f"{where}: panel {panel.get('id')} {panel.get('title', '')!r}"
        if panel.get("id") in ids:
            problems.add(pwhere, "duplicate panel id")
        ids.add(panel.get("id"))
        grid = panel.get("gridPos", {})
        if not all(isinstance(grid.get(k), int) for k in ("x", "y", "w", "h")) or \
                grid["x"] + grid["w"] > 24:
            problems.add(pwhere, f"gridPos {grid} is not inside Grafana's 24 columns")
            continue
        if panel.get("type") != "row" or not panel.get("collapsed"):
            for x in range(grid["x"], grid["x"] + grid["w"]):
                for y in range(grid["y"], grid["y"] + grid["h"]):
                    if (x, y) in cells:
                        problems.add(pwhere, f"overlaps panel {cells[(x, y)]}")
                        break
                    cells[(x, y)] = panel.get("id")
                else:
                    continue
                break
        if panel.get("type") in ("row", "text"):
            continue
        datasource = panel.get("datasource")
        if not isinstance(datasource, dict) or datasource.get("uid") != "${DS_PROMETHEUS}":
            problems.add(pwhere, "datasource is not ${DS_PROMETHEUS}")
        targets = panel.get("targets", [])
        if not targets:
            problems.add(pwhere, "no queries")
        for target in targets:
            expr = target.get("expr", "")
            queries += 1
            try:
                promql_parser.parse(substitute(expr, variables))
            except Exception as e:  # the parser's errors are ValueErrors, but any counts
                problems.add(pwhere, f"refId {target.get('refId')}: PromQL: {e}: {expr}")
    for name, variable in variables.items():
        if variable.get("type") == "query":
            query = variable.get("query")
            query = query.get("query") if isinstance(query, dict) else query
            if not re.fullmatch(r"label_values\((.+),\s*\w+\)", str(query)):
                problems.add(where, f"variable {name}: query {query!r} is not label_values(...)")
            else:
                selector = re.fullmatch(r"label_values\((.+),\s*\w+\)", query).group(1)
                try:
                    promql_parser.parse(substitute(selector, variables))
                except ValueError as e:
                    problems.add(where, f"variable {name}: PromQL: {e}")
    if len(problems.items) == before:
        print(f"ok   {where} ({len(panels)} panels, {queries} PromQL queries parsed)")


# --- main ------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", help="manifest directories or files "
                        "(default: deploy/kubernetes)")
    parser.add_argument("--root", default=Path(__file__).resolve().parent.parent, type=Path)
    parser.add_argument("--kubernetes-version",
                        default=os.environ.get("WEIR_KUBERNETES_VERSION", DEFAULT_KUBERNETES_VERSION))
    parser.add_argument("--dockerfile", type=Path)
    parser.add_argument("--dashboard", type=Path)
    parser.add_argument("--hadolint")
    args = parser.parse_args()
    root = args.root
    paths = [Path(p) for p in args.paths] or [root / "deploy/kubernetes"]
    dockerfile = args.dockerfile or root / "deploy/Dockerfile"
    dashboard = args.dashboard or root / "deploy/grafana/weir-dashboard.json"
    hadolint = args.hadolint or shutil.which("hadolint", path=str(Path(sys.executable).parent))

    problems = Problems()
    schemas = Schemas(args.kubernetes_version, root / "deploy/kubernetes/schemas")
    print(f"validate-deploy: Kubernetes {args.kubernetes_version} schemas "
          f"(kubernetes-validate {kv.__version__}), "
          f"{', '.join(f'{k} ({p.name})' for (_, k), (p, _) in schemas.crds.items())}")

    resources, kustomizations = [], []
    for path in manifest_files(paths, problems):
        for doc in load_documents(path, problems):
            if isinstance(doc, dict) and is_kustomization(doc):
                kustomizations.append((path, doc))
                continue
            where = f"{display(path)}: {resource_name(doc) if isinstance(doc, dict) else '?'}"
            if validate_resource(doc, where, schemas, problems):
                resources.append((path, doc))
    # Rendering and cross-checks would only repeat the problems found so far.
    manifests_ok = not problems.items
    for path, doc in kustomizations:
        check_kustomization(path, doc, problems)
        if manifests_ok:
            kustomize_build(path.parent, schemas, problems)
    if resources and manifests_ok:
        try:
            check_consistency(resources, problems)
        except (KeyError, TypeError, AttributeError, ValueError, IndexError) as e:
            problems.add("cross-checks", f"a resource lacks what they need ({type(e).__name__}: {e})")
    elif resources:
        print("skip cross-checks and `kubectl kustomize`: fix the problems above first")
    check_dockerfile(dockerfile, hadolint, problems)
    try:
        check_dashboard(dashboard, problems)
    except (KeyError, TypeError, AttributeError, ValueError) as e:
        problems.add(display(dashboard), f"unexpected structure ({type(e).__name__}: {e})")

    if problems.items:
        print(f"validate-deploy: FAILED, {len(problems.items)} problem(s)")
        return 1
    print(f"validate-deploy: ok ({len(resources)} resources, "
          f"{len(kustomizations)} kustomization(s), Dockerfile, dashboard)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
