"""Our schema against the Compose Specification: the same keys as docker compose v2.40 reads
(tests/data/compose-spec-keys.txt lists them), so a valid file is never refused for a key and an
unknown key is still an error."""

import json
import textwrap
from pathlib import Path

import pytest

from compose_net.errors import ConfigErrors
from compose_net.loader import LoadOptions, load
from compose_net.loader.validate import SCHEMA_PATH

KEYS = Path(__file__).resolve().parent.parent / "data" / "compose-spec-keys.txt"


def key_paths(schema: dict) -> set[str]:
    """Every key path a schema declares: `<*>` for any name, `[]` for any list item."""
    defs = schema.get("definitions", {})
    out: set[str] = set()

    def walk(node, prefix: str, seen: frozenset) -> None:
        if not isinstance(node, dict):
            return
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[1]
            if name not in seen:
                walk(defs[name], prefix, seen | {name})
        for key in ("oneOf", "anyOf", "allOf"):
            for sub in node.get(key, []):
                walk(sub, prefix, seen)
        for key, sub in node.get("properties", {}).items():
            path = f"{prefix}.{key}" if prefix else key
            out.add(path)
            walk(sub, path, seen)
        for pattern, sub in node.get("patternProperties", {}).items():
            if not pattern.startswith("^x-"):
                walk(sub, f"{prefix}.<*>", seen)
        if isinstance(node.get("additionalProperties"), dict):
            walk(node["additionalProperties"], f"{prefix}.<*>", seen)
        if isinstance(node.get("items"), dict):
            walk(node["items"], f"{prefix}[]", seen)

    walk(schema, "", frozenset())
    return out


def test_our_schema_has_exactly_the_keys_of_the_compose_specification():
    spec = {line for line in KEYS.read_text().splitlines() if line and not line.startswith("#")}
    with open(SCHEMA_PATH, encoding="utf-8") as fh:
        ours = key_paths(json.load(fh))
    assert sorted(spec - ours) == [], "keys of the specification our schema refuses"
    assert sorted(ours - spec) == [], "keys our schema accepts that the specification does not have"


def load_text(tmp_path, text):
    (tmp_path / "compose.yml").write_text(textwrap.dedent(text))
    return load(LoadOptions(files=("compose.yml",), cwd=str(tmp_path), environ={}, project_name="p"))


def test_keys_of_the_current_specification_are_accepted(tmp_path):
    result = load_text(tmp_path, """\
        services:
          web:
            image: x
            develop:
              watch:
                - {path: ./src, action: sync+restart, target: /src, initial_sync: true}
            gpus: [{driver: nvidia, count: 1, capabilities: [gpu]}]
            models:
              llm: {endpoint_var: LLM_URL, model_var: LLM_NAME}
              other:
            deploy:
              resources:
                limits: {cpus: "0.5", memory: 50M, pids: 100}
                reservations:
                  generic_resources: [{discrete_resource_spec: {kind: gpu, value: 2}}]
                  devices: [{capabilities: [gpu], count: all}]
          worker:
            image: x
            gpus: all
            models: [llm]
            provider: {type: model, options: {model: ai/smollm2, flags: [a, b], size: 3}}
        models:
          llm: {model: ai/smollm2}
          other: {model: ai/other}
        configs:
          cfg: {external: {name: shared-config}}
        secrets:
          sec: {external: {name: shared-secret}}
        """)
    assert set(result.project.services) == {"web", "worker"}


@pytest.mark.parametrize("snippet, message", [
    ("develop: {watch: [{path: ., action: sync, initial_synch: true}]}",
     'services.web.develop.watch[0].initial_synch: unknown key "initial_synch" in services.web.develop.watch[0] '
     '(did you mean "initial_sync"?)'),
    ("deploy: {resources: {limits: {devices: [{capabilities: [gpu]}]}}}",
     'services.web.deploy.resources.limits.devices: unknown key "devices" in services.web.deploy.resources.limits'),
    ("deploy: {resources: {reservations: {pids: 5}}}",
     'services.web.deploy.resources.reservations.pids: unknown key "pids" in '
     "services.web.deploy.resources.reservations"),
    ("deploy: {resources: {reservations: {devices: [{count: 1}]}}}",
     'services.web.deploy.resources.reservations.devices[0]: missing required key "capabilities"'),
    ("models: {llm: {endpoint: X}}", 'services.web.models.llm.endpoint: unknown key "endpoint" in services.web.models.llm'),
    ("pull_policy: sometimes", 'services.web.pull_policy: "sometimes" does not match'),
    ("oom_score_adj: 2000", "services.web.oom_score_adj: must be at most 1000"),
    ("gpus: some", 'services.web.gpus: "some" is not one of: all'),
])
def test_what_the_specification_refuses_stays_refused(tmp_path, snippet, message):
    with pytest.raises(ConfigErrors) as e:
        load_text(tmp_path, f"services:\n  web:\n    image: x\n    {snippet}\n")
    assert len(e.value.errors) == 1
    assert str(e.value.errors[0]).startswith(f"compose.yml:4: {message}")
