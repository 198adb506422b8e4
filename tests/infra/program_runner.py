"""Run the real Pulumi program (`__main__.py`) under mocks for one stack; dump a JSON record.

Used as a script, one process per stack, because the Pulumi runtime keeps global state:

    python tests/infra/program_runner.py --stack dev --out record.json \
        [--set 'ecommerce:storage.rawExpiryDays=-1'] [--unset ecommerce:alertEmail]

The record holds every resource (type, name, inputs, parent, protect, retainOnDelete,
explicit dependsOn), the stack outputs, every warning the program raised or logged,
and, when the program stopped, its error message.
"""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import os
import re
import runpy
import sys
import uuid
import warnings
import zlib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "ecommerce"
ACCOUNT = "123456789012"
REGION = "eu-west-1"

sys.path.insert(0, str(ROOT))

import pulumi  # noqa: E402
import yaml  # noqa: E402
from pulumi._types import _py_properties  # noqa: E402
from pulumi.runtime import mocks, rpc  # noqa: E402
from pulumi.runtime.stack import run_pulumi_func  # noqa: E402
from pulumi.runtime.sync_await import _sync_await  # noqa: E402


def stack_config(stack: str) -> dict[str, Any]:
    """`Pulumi.<stack>.yaml` as written, before Pulumi turns it into strings."""
    data = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text()) or {}
    return dict(data.get("config") or {})


def apply_overrides(config: dict[str, Any], sets: list[str], unsets: list[str]) -> None:
    """`ns:key.path=value` (value parsed as YAML) and `ns:key.path` removals."""
    for item in sets:
        path, _, value = item.partition("=")
        _assign(config, path, yaml.safe_load(value), remove=False)
    for path in unsets:
        _assign(config, path, None, remove=True)


def _assign(config: dict[str, Any], path: str, value: Any, *, remove: bool) -> None:
    namespace, _, rest = path.partition(":")
    top, *inner = rest.split(".")
    key = f"{namespace}:{top}"
    if not inner:
        if remove:
            config.pop(key, None)
        else:
            config[key] = value
        return
    target = config.setdefault(key, {})
    for part in inner[:-1]:
        target = target.setdefault(part, {})
    if remove:
        target.pop(inner[-1], None)
    else:
        target[inner[-1]] = value


def engine_strings(config: dict[str, Any]) -> dict[str, str]:
    """What the Pulumi engine hands a program: scalars as text, structures as JSON."""
    out = {}
    for key, value in config.items():
        if isinstance(value, str):
            out[key] = value
        elif isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif isinstance(value, int | float):
            out[key] = str(value)
        elif value is not None:
            out[key] = json.dumps(value)
    return out


def plain(value: Any) -> Any:
    """Inputs as JSON: assets and archives become descriptive dicts."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, pulumi.FileAsset):
        return {"__asset": "file", "path": str(value.path)}
    if isinstance(value, pulumi.FileArchive):
        return {"__archive": "file", "path": str(value.path)}
    if isinstance(value, pulumi.AssetArchive):
        return {"__archive": "assets", "assets": {k: plain(v) for k, v in value.assets.items()}}
    if isinstance(value, pulumi.StringAsset):
        return {"__asset": "string", "text": value.text}
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return repr(value)


class Mocks(pulumi.runtime.Mocks):
    """Physical ids and ARNs in the shapes AWS returns, so policy linters judge real ones."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        state = dict(args.inputs)
        module, kind = args.typ.split(":")[1].split("/")[0], args.typ.split(":")[-1]
        physical = state.get("name") or f"{args.name}-{zlib.crc32(args.name.encode()) % 10**7:07d}"
        if args.typ == "aws:s3/bucket:Bucket":
            physical = state.setdefault("bucket", physical)
        if args.typ == "aws:kms/key:Key":
            physical = str(uuid.uuid5(uuid.NAMESPACE_URL, args.name))
            state["keyId"] = physical
        if args.typ == "aws:sqs/queue:Queue":
            state["url"] = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{physical}"
        if args.typ == "aws:lambda/layerVersion:LayerVersion":
            state["arn"] = f"arn:aws:lambda:{REGION}:{ACCOUNT}:layer:{state.get('layerName')}:1"
        arn = _realistic_arn(args.typ, physical, state)
        state.setdefault(
            "arn", arn or f"arn:aws:{module}:{REGION}:{ACCOUNT}:{kind.lower()}/{physical}"
        )
        state.setdefault("name", physical)
        return physical, state

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, list]:
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {
                "accountId": ACCOUNT,
                "arn": f"arn:aws:iam::{ACCOUNT}:user/test",
                "userId": "AIDTEST",
                "id": ACCOUNT,
            }, []
        if args.token == "aws:index/getPartition:getPartition":
            return {
                "partition": "aws",
                "dnsSuffix": "amazonaws.com",
                "reverseDnsPrefix": "com.amazonaws",
                "id": "aws",
            }, []
        if args.token == "aws:index/getRegion:getRegion":
            return {"region": REGION, "name": REGION, "id": REGION}, []
        raise NotImplementedError(f"unmocked call {args.token}")


def _realistic_arn(typ: str, physical: str, state: dict[str, Any]) -> str | None:
    """The ARN AWS gives each resource type the program makes policies about."""
    regional = f"{REGION}:{ACCOUNT}"
    shapes = {
        "aws:s3/bucket:Bucket": f"arn:aws:s3:::{physical}",
        "aws:s3/bucketObjectv2:BucketObjectv2": (
            f"arn:aws:s3:::{state.get('bucket')}/{state.get('key')}"
        ),
        "aws:iam/role:Role": f"arn:aws:iam::{ACCOUNT}:role/{physical}",
        "aws:kms/key:Key": f"arn:aws:kms:{regional}:key/{physical}",
        "aws:kms/alias:Alias": f"arn:aws:kms:{regional}:{physical}",
        "aws:sqs/queue:Queue": f"arn:aws:sqs:{regional}:{physical}",
        "aws:cloudwatch/logGroup:LogGroup": f"arn:aws:logs:{regional}:log-group:{physical}",
        "aws:lambda/function:Function": f"arn:aws:lambda:{regional}:function:{physical}",
        "aws:cloudwatch/eventRule:EventRule": f"arn:aws:events:{regional}:rule/{physical}",
        "aws:sns/topic:Topic": f"arn:aws:sns:{regional}:{physical}",
        "aws:cloudwatch/metricAlarm:MetricAlarm": f"arn:aws:cloudwatch:{regional}:alarm:{physical}",
        "aws:glue/catalogDatabase:CatalogDatabase": f"arn:aws:glue:{regional}:database/{physical}",
        "aws:glue/catalogTable:CatalogTable": (
            f"arn:aws:glue:{regional}:table/{state.get('databaseName')}/{physical}"
        ),
        "aws:athena/workgroup:Workgroup": f"arn:aws:athena:{regional}:workgroup/{physical}",
    }
    return shapes.get(typ)


class RecordingMonitor(mocks.MockMonitor):
    """A MockMonitor that also keeps each registration's options."""

    def __init__(self, mock: pulumi.runtime.Mocks) -> None:
        super().__init__(mock)
        self.records: list[dict[str, Any]] = []

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)
        if request.type == "pulumi:pulumi:Stack":
            return response
        inputs = rpc.deserialize_properties(request.object)
        property_deps = {
            key: sorted(deps.urns) for key, deps in request.propertyDependencies.items()
        }
        implicit = {urn for urns in property_deps.values() for urn in urns}
        self.records.append(
            {
                "urn": response.urn,
                "type": request.type,
                "name": request.name,
                "custom": bool(request.custom),
                "parent": request.parent or None,
                "protect": bool(request.protect),
                "retainOnDelete": bool(request.retainOnDelete),
                "ignoreChanges": sorted(request.ignoreChanges),
                # depends_on: dependencies not explained by an input that references them.
                "dependsOn": sorted(set(request.dependencies) - implicit),
                "dependencies": sorted(request.dependencies),
                "provider": request.provider or None,
                "inputs": plain(inputs),
                # What the mocks returned, so tests can follow references by ARN or id.
                "outputs": {
                    key: value
                    for key, value in self.resources[response.urn].state.items()
                    if key in ("arn", "name", "keyId", "url", "bucket", "key")
                }
                | {"id": self.resources[response.urn].id},
            }
        )
        return response


def spy_on_resource_classes() -> dict[str, type]:
    """Resource type token -> the pulumi-aws class the program constructed for it."""
    classes: dict[str, type] = {}
    original = pulumi.CustomResource.__init__

    def spy(self: Any, t: str, name: str, *args: Any, **kwargs: Any) -> None:
        classes[t] = type(self)
        original(self, t, name, *args, **kwargs)

    pulumi.CustomResource.__init__ = spy  # type: ignore[method-assign]
    return classes


def accepts_tags(cls: type) -> bool:
    init = getattr(cls, "_internal_init", None)
    return init is not None and "tags" in inspect.signature(init).parameters


_ARGS_REF = re.compile(r"ForwardRef\('(\w+Args)'\)")


def deprecated_inputs(cls: type, inputs: dict[str, Any]) -> list[str]:
    """Input paths that set a property pulumi-aws marks deprecated, nested types included.

    The SDK only warns about a deprecated property when its Args class is built;
    keyword arguments skip that, so this walks the inputs against the Args types.
    """
    module = sys.modules[cls.__module__]
    args_cls = getattr(module, f"{cls.__name__}Args", None)
    return _walk(args_cls, inputs, module, "") if args_cls is not None else []


def _walk(args_cls: type, value: Any, module: Any, path: str) -> list[str]:
    if isinstance(value, list):
        return [f for i, v in enumerate(value) for f in _walk(args_cls, v, module, f"{path}[{i}]")]
    if not isinstance(value, dict):
        return []
    found = []
    properties = {name: prop for _, name, prop in _py_properties(args_cls)}
    for key, inner in value.items():
        prop = properties.get(key)
        if prop is None:
            continue
        where = f"{path}.{key}" if path else key
        if "_pulumi_deprecated_callable" in getattr(prop.fget, "__dict__", {}):
            found.append(where)
        refs = _ARGS_REF.findall(str(prop.fget.__annotations__.get("return", "")))
        nested = getattr(module, refs[0], None) if refs else None
        if nested is not None:
            found += _walk(nested, inner, module, where)
    return found


def _describe_warning(
    message: Warning | str, category: type[Warning], filename: str, lineno: int, *_: Any
) -> dict[str, Any]:
    """A warning, and whether it fired while a module or class body was being imported.

    pulumi-aws warns about every deprecated class in its own module body when a
    package is imported; only warnings raised while *using* a class or property
    say something about this program.
    """
    scope = "runtime"
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_filename == filename and frame.f_lineno == lineno:
            body = frame.f_code.co_name == "<module>" or "__qualname__" in frame.f_locals
            scope = "import" if body else "runtime"
            break
        frame = frame.f_back
    return {
        "category": category.__name__,
        "message": str(message),
        "file": filename,
        "scope": scope,
    }


def _deprecated_canary() -> None:
    """Proves the capture works: a deprecated resource and a deprecated property."""
    import pulumi_aws as aws

    # Looked up by name so source scans for deprecated resources in the program stay
    # meaningful: this is the one deliberate use, and only in this test canary.
    deprecated_bucket = getattr(aws.s3, "Bucket" + "V2")
    deprecated_bucket("canary-bucket-v2")
    aws.cloudwatch.EventRule("canary-rule", schedule_expression="rate(1 day)", is_enabled=False)


def run(stack: str, sets: list[str], unsets: list[str], *, canary: bool = False) -> dict[str, Any]:
    config = stack_config(stack)
    apply_overrides(config, sets, unsets)
    pulumi.runtime.set_all_config(engine_strings(config), [])

    logged: list[dict[str, str]] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            logged.append({"level": record.levelname, "message": record.getMessage()})

    logger = logging.getLogger("pulumi-program")
    logger.addHandler(Capture())
    logger.setLevel(logging.DEBUG)
    logger.propagate = False

    mock = Mocks()
    monitor = RecordingMonitor(mock)
    pulumi.runtime.set_mocks(
        mock, project=PROJECT, stack=stack, preview=False, logger=logger, monitor=monitor
    )
    classes = spy_on_resource_classes()

    os.chdir(ROOT)  # `pulumi up` runs the program from the project directory
    error = None
    caught: list[dict[str, Any]] = []

    def program() -> None:
        runpy.run_path(str(ROOT / "__main__.py"), run_name="__main__")
        if canary:
            _deprecated_canary()

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = lambda *a, **k: caught.append(_describe_warning(*a))
        try:
            _sync_await(run_pulumi_func(program))
        except Exception as exc:  # the record says what stopped the program
            error = {"type": type(exc).__name__, "message": str(exc)}

    outputs: dict[str, Any] = {}
    root = pulumi.runtime.settings.get_root_resource()
    if error is None and root is not None:
        for key, value in getattr(root, "outputs", {}).items():
            outputs[key] = plain(_sync_await(pulumi.Output.from_input(value).future()))

    return {
        "stack": stack,
        "account": ACCOUNT,
        "config": config,
        "resources": monitor.records,
        "outputs": outputs,
        "taggable": {t: accepts_tags(cls) for t, cls in classes.items()},
        "deprecatedInputs": {
            r["urn"]: found
            for r in monitor.records
            if r["type"] in classes
            and (found := deprecated_inputs(classes[r["type"]], r["inputs"]))
        },
        "warnings": caught,
        "logs": logged,
        "error": error,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stack", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--set", dest="sets", action="append", default=[])
    parser.add_argument("--unset", dest="unsets", action="append", default=[])
    parser.add_argument("--canary", action="store_true", help="also use deprecated APIs")
    args = parser.parse_args()
    record = run(args.stack, args.sets, args.unsets, canary=args.canary)
    args.out.write_text(json.dumps(record, indent=1, sort_keys=True))
    return 0 if record["error"] is None else 3


if __name__ == "__main__":
    sys.exit(main())
